// Package console is keyline's console API (API.md): JSON over HTTP with bearer tokens,
// served by `keyline local` and, in AWS, by a Lambda behind API Gateway. The operator may
// do everything; an org token only what concerns its own org, and any other org's app
// answers 404 on every route, exactly as a missing one does.
package console

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/provision"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/reencrypt"
	"github.com/keyline/keyline/internal/workflow/restore"
	"github.com/keyline/keyline/internal/workflow/revocation"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// RestoreValidator checks a restore request against R3 and R7 before it starts. A refusal
// is an error implementing Refusal; any other error is a failure to check.
type RestoreValidator interface {
	ValidateRestore(ctx context.Context, targetAppID, sourceAppID, backupID string) error
}

// Refusal is a rule refusing a request, with the HTTP status that says which kind:
// 409 (the state conflicts: deactivated, re-encrypting, retired) or 422 (the request can
// never succeed as asked: a CMK backup into a managed app).
type Refusal interface {
	error
	HTTPStatus() int
}

// Reactivator brings back an app whose key returned after the reactivation window
// (B1): the operator's decision, after the key passes its test round trip.
type Reactivator interface {
	ReactivateApp(ctx context.Context, appID, operator string) (lineage.App, error)
}

// StateMachines are the ARNs of the machines the console starts.
type StateMachines struct {
	Backup    string
	Reencrypt string
	Restore   string
}

// Options configure a Server.
type Options struct {
	Store      *lineage.Store
	Objects    objects.Source
	Provision  *provision.Provisioner
	Tokens     *Tokens
	Executions Executions
	Machines   StateMachines
	Restores   RestoreValidator
	// Reactivations serves the operator's reactivation route; nil answers 404 there.
	Reactivations Reactivator
	// Revocations is the revocation path (B2): a request that meets a customer key's
	// revoked-class KMS error reports it there (cause "console") before it is answered, so
	// that a lost CloudTrail event does not leave the app ACTIVE until the scheduled
	// key-health check. nil reports nothing.
	Revocations wferr.RevocationReporter
	Logger      *slog.Logger
	Now         func() time.Time
	// KeylineAccount is keyline's AWS account: a refused customer key is answered with the
	// `keyline key-policy --org ORG --account KeylineAccount` the customer must apply.
	KeylineAccount string
	// MaxObjectBytes caps one object upload (default 5 GiB).
	MaxObjectBytes int64
}

// Server is the console API as an http.Handler.
type Server struct {
	o   Options
	mux *http.ServeMux
	// reports lets concurrent requests that meet the same revoked key share one report.
	reports singleflight.Group
}

// New returns the console API.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxObjectBytes == 0 {
		o.MaxObjectBytes = 5 << 30
	}
	s := &Server{o: o, mux: http.NewServeMux()}
	s.route("POST /v1/orgs", s.createOrg)
	s.route("POST /v1/orgs/{orgId}/tokens", s.createToken)
	s.route("GET /v1/orgs/{orgId}/tokens", s.listTokens)
	s.route("DELETE /v1/orgs/{orgId}/tokens/{tokenId}", s.revokeToken)
	s.route("POST /v1/apps", s.createApp)
	s.route("GET /v1/apps", s.listApps)
	s.route("GET /v1/apps/{appId}", s.getApp)
	s.route("PUT /v1/apps/{appId}/objects/{path...}", s.putObject)
	s.route("GET /v1/apps/{appId}/objects/{path...}", s.getObject)
	s.route("GET /v1/apps/{appId}/keys", s.listKeys)
	s.route("POST /v1/apps/{appId}/backups", s.startBackup)
	s.route("GET /v1/apps/{appId}/backups", s.listBackups)
	s.route("POST /v1/apps/{appId}/reencryptions", s.startReencrypt)
	s.route("POST /v1/apps/{appId}/reencryptions/abort", s.abortReencrypt)
	s.route("POST /v1/apps/{appId}/restores", s.startRestore)
	s.route("GET /v1/apps/{appId}/restores/{restoreId}", s.getRestore)
	s.route("GET /v1/executions/{executionArn}", s.getExecution)
	s.route("GET /v1/apps/{appId}/audit", s.listAudit)
	s.route("POST /v1/apps/{appId}/reactivations", s.reactivate)
	s.handleUI()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, "NotFound", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path)})
	})
	return s
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

type request struct {
	*http.Request
	who Principal
	// id is keyline's id of the request: audit entries and execution names use it.
	id string
	// clientID is the client's X-Request-Id (validated, at most MaxClientRequestIDLen).
	clientID string
}

// MaxClientRequestIDLen bounds a client's X-Request-Id.
const MaxClientRequestIDLen = 128

var clientRequestIDPattern = regexp.MustCompile(`^[\x21-\x7e]{1,128}$`)

type handlerFunc func(w http.ResponseWriter, r *request) error

// route registers h behind authentication, request ids, logging and error mapping.
func (s *Server) route(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := s.o.Now()
		// keyline generates the request id; a client's X-Request-Id is a separate field.
		reqID := lineage.NewID()
		w.Header().Set("X-Request-Id", reqID)
		clientID := r.Header.Get("X-Request-Id")
		log := s.o.Logger.With("requestId", reqID, "method", r.Method, "path", r.URL.Path)
		if clientID != "" && !clientRequestIDPattern.MatchString(clientID) {
			writeError(w, badRequest("X-Request-Id must be 1-%d printable ASCII characters without spaces", MaxClientRequestIDLen).(*apiError))
			return
		}
		if clientID != "" {
			w.Header().Set("X-Client-Request-Id", clientID)
			log = log.With("clientRequestId", clientID)
		}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p) // a response cut on purpose (see getObject): the server drops the connection
				}
				log.Error("console handler panicked", "panic", fmt.Sprint(p))
				writeError(w, &apiError{http.StatusInternalServerError, "InternalError", "internal error; the request id is " + reqID})
			}
		}()
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			token = "" // only `Authorization: Bearer <token>` is accepted, as at the gateway
		}
		who, err := s.o.Tokens.Authenticate(r.Context(), strings.TrimSpace(token))
		if err != nil {
			if !errors.Is(err, errUnauthenticated) {
				log.Error("authentication failed", "error", err)
				ae := &apiError{http.StatusInternalServerError, "InternalError", "cannot check the token now; retry (request id " + reqID + ")"}
				if d, ok := accessDenied(err); ok {
					ae = misconfigured(d, reqID)
				}
				writeError(w, ae)
				return
			}
			writeError(w, &apiError{http.StatusUnauthorized, "Unauthorized", "send `Authorization: Bearer <token>` with an operator or org token"})
			return
		}
		err = h(w, &request{Request: r, who: who, id: reqID, clientID: clientID})
		if err != nil {
			ae := s.mapError(err, reqID)
			if s.customerKeyUnusable(err) {
				s.reportRevoked(r.Context(), log, err)
			}
			if ae.status >= 500 {
				log.Error("request failed", "error", err, "actor", who.Actor())
			} else {
				log.Info("request refused", "status", ae.status, "code", ae.code, "reason", ae.message, "cause", err.Error(), "actor", who.Actor())
			}
			writeError(w, ae)
			return
		}
		log.Debug("request served", "actor", who.Actor(), "ms", s.o.Now().Sub(start).Milliseconds())
	})
}

// apiError is an answer other than success: `{"error": {"code", "message"}}`.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func badRequest(format string, a ...any) error {
	return &apiError{http.StatusBadRequest, "BadRequest", fmt.Sprintf(format, a...)}
}
func notFound(what string) error {
	return &apiError{http.StatusNotFound, "NotFound", what + " not found"}
}
func conflict(format string, a ...any) error {
	return &apiError{http.StatusConflict, "Conflict", fmt.Sprintf(format, a...)}
}
func unprocessable(format string, a ...any) error {
	return &apiError{http.StatusUnprocessableEntity, "Unprocessable", fmt.Sprintf(format, a...)}
}
func forbidden(msg string) error { return &apiError{http.StatusForbidden, "Forbidden", msg} }

// mapError turns domain errors into API answers; bad input is never a 500.
func (s *Server) mapError(err error, reqID string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ref Refusal
	if errors.As(err, &ref) {
		code := "Conflict"
		if ref.HTTPStatus() == http.StatusUnprocessableEntity {
			code = "Unprocessable"
		}
		// A refusal that names its rule (a restore's reason code) answers with that code.
		var rc interface{ ReasonCode() string }
		if errors.As(err, &rc) && rc.ReasonCode() != "" {
			code = rc.ReasonCode()
		}
		return &apiError{ref.HTTPStatus(), code, ref.Error()}
	}
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return &apiError{http.StatusRequestEntityTooLarge, "TooLarge", fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)}
	case errors.Is(err, lineage.ErrInvalidInput), errors.Is(err, objects.ErrInvalid):
		return &apiError{http.StatusBadRequest, "BadRequest", err.Error()}
	case errors.Is(err, lineage.ErrNotFound), errors.Is(err, objects.ErrNotFound):
		return &apiError{http.StatusNotFound, "NotFound", err.Error()}
	case errors.Is(err, provision.ErrKeyUnusable), errors.Is(err, lineage.ErrKeyNotEnrolled):
		// One generic answer: nothing about the key, no KMS error text (B10).
		return &apiError{http.StatusUnprocessableEntity, "KeyRefused", lineage.KeyRefusedMessage}
	case errors.Is(err, lineage.ErrAccountEnrolled):
		// The account and what to do; never which org holds it.
		var ae *lineage.AccountEnrolledError
		msg := lineage.ErrAccountEnrolled.Error()
		if errors.As(err, &ae) {
			msg = ae.Error()
		}
		return &apiError{http.StatusConflict, "AccountEnrolled", msg}
	case errors.Is(err, objects.ErrScopeNotAllowed):
		return &apiError{http.StatusUnprocessableEntity, "Unprocessable", err.Error()}
	case errors.Is(err, lineage.ErrDuplicate), errors.Is(err, lineage.ErrConflict),
		errors.Is(err, lineage.ErrAppDeactivated), errors.Is(err, lineage.ErrReencrypting),
		errors.Is(err, objects.ErrAppNotWritable), errors.Is(err, objects.ErrGenerationNotUsable), errors.Is(err, objects.ErrKeyRevoked):
		return &apiError{http.StatusConflict, "Conflict", err.Error()}
	}
	if s.customerKeyUnusable(err) {
		// The customer's key refuses keyline (their doing): not keyline's failure.
		return &apiError{http.StatusConflict, "KeyUnusable", s.keyUnusableMessage()}
	}
	if d, ok := accessDenied(err); ok {
		// AWS refused one of keyline's own calls: its deployment, not the request, is wrong.
		return misconfigured(d, reqID)
	}
	return &apiError{http.StatusInternalServerError, "InternalError", "internal error; retry, and report the request id if it persists"}
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.status, map[string]any{"error": map[string]string{"code": e.code, "message": e.message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a JSON body (at most 1 MiB) into v; unknown fields and trailing data are errors.
func decode(r *request, v any) error {
	body := http.MaxBytesReader(nil, r.Body, 1<<20)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("the body must be a JSON object")
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return err
		}
		return badRequest("the body is not valid JSON for this route: %v", err)
	}
	if dec.More() {
		return badRequest("the body has data after the JSON object")
	}
	return nil
}

var idPattern = regexp.MustCompile(decl.IDPattern)

func checkID(kind, v string) error {
	if !idPattern.MatchString(v) {
		return badRequest("%s %q is not valid: 1–63 letters, digits, '.', '_' or '-', starting with a letter or digit", kind, v)
	}
	return nil
}

var keyARNPattern = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)

func checkKeyARN(v string) error {
	if !keyARNPattern.MatchString(v) {
		return badRequest("keyArn %q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)", v)
	}
	return nil
}

func (r *request) cause() lineage.Cause {
	return lineage.Cause{RequestID: r.id, ClientRequestID: r.clientID, Actor: r.who.Actor()}
}

// app loads an app the principal may see; any other org's app is a 404, as a missing one.
func (s *Server) app(r *request, appID string) (lineage.App, error) {
	if err := checkID("appId", appID); err != nil {
		return lineage.App{}, err
	}
	app, err := s.o.Store.GetApp(r.Context(), appID)
	if errors.Is(err, lineage.ErrNotFound) || (err == nil && !r.who.mayAccessOrg(app.OrgID)) {
		return lineage.App{}, notFound("app " + appID)
	}
	return app, err
}

// --- orgs and tokens ---

func (s *Server) createOrg(w http.ResponseWriter, r *request) error {
	if !r.who.Operator {
		return forbidden("only the operator creates orgs")
	}
	var body api.CreateOrg
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := checkID("orgId", body.OrgID); err != nil {
		return err
	}
	if strings.TrimSpace(body.Name) == "" {
		return badRequest("name is required")
	}
	for _, a := range body.Accounts {
		if !lineage.ValidAccountID(a) {
			return badRequest("accounts: %q is not an AWS account id (12 digits)", a)
		}
	}
	for _, k := range body.KeyARNs {
		if err := checkKeyARN(k); err != nil {
			return err
		}
	}
	org, err := s.o.Store.CreateOrg(r.Context(), lineage.Org{ID: body.OrgID, Name: body.Name, Accounts: body.Accounts, KeyARNs: body.KeyARNs})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, org)
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *request) error {
	if !r.who.Operator {
		return forbidden("only the operator issues org tokens")
	}
	orgID := r.PathValue("orgId")
	if err := checkID("orgId", orgID); err != nil {
		return err
	}
	var body api.CreateOrgToken
	if err := decode(r, &body); err != nil {
		return err
	}
	ttl := DefaultTokenTTL
	if body.TTLHours != nil {
		maxHours := int(MaxTokenTTL / time.Hour)
		if *body.TTLHours < 1 || *body.TTLHours > maxHours {
			return badRequest("ttlHours must be between 1 and %d (default %d)", maxHours, int(DefaultTokenTTL/time.Hour))
		}
		ttl = time.Duration(*body.TTLHours) * time.Hour
	}
	if _, err := s.o.Store.GetOrg(r.Context(), orgID); err != nil {
		if errors.Is(err, lineage.ErrNotFound) {
			return notFound("org " + orgID)
		}
		return err
	}
	tok, err := s.o.Tokens.IssueOrgToken(r.Context(), orgID, ttl)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, tok)
	return nil
}

// orgForOperator checks the operator's token route on an existing org.
func (s *Server) orgForOperator(r *request, what string) (string, error) {
	if !r.who.Operator {
		return "", forbidden("only the operator " + what)
	}
	orgID := r.PathValue("orgId")
	if err := checkID("orgId", orgID); err != nil {
		return "", err
	}
	if _, err := s.o.Store.GetOrg(r.Context(), orgID); err != nil {
		if errors.Is(err, lineage.ErrNotFound) {
			return "", notFound("org " + orgID)
		}
		return "", err
	}
	return orgID, nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *request) error {
	orgID, err := s.orgForOperator(r, "lists org tokens")
	if err != nil {
		return err
	}
	list, err := s.o.Tokens.ListOrgTokens(r.Context(), orgID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, list)
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *request) error {
	orgID, err := s.orgForOperator(r, "revokes org tokens")
	if err != nil {
		return err
	}
	tokenID := r.PathValue("tokenId")
	if err := checkID("tokenId", tokenID); err != nil {
		return err
	}
	if err := s.o.Tokens.RevokeOrgToken(r.Context(), orgID, tokenID); err != nil {
		if errors.Is(err, ErrTokenNotFound) {
			return notFound("token " + tokenID + " of org " + orgID)
		}
		return err
	}
	s.o.Logger.InfoContext(r.Context(), "org token revoked", "requestId", r.id, "orgId", orgID, "tokenId", tokenID)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// --- apps ---

func viewApp(a lineage.App) api.App {
	return api.App{AppID: a.ID, OrgID: a.OrgID, KeyModel: string(a.KeyModel), Status: string(a.Status),
		StatusReason: a.StatusReason, ActiveGeneration: a.ActiveGeneration}
}

func (s *Server) createApp(w http.ResponseWriter, r *request) error {
	var body api.CreateApp
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := checkID("appId", body.AppID); err != nil {
		return err
	}
	if err := checkID("orgId", body.OrgID); err != nil {
		return err
	}
	if !r.who.mayAccessOrg(body.OrgID) {
		return notFound("org " + body.OrgID)
	}
	switch body.KeyModel {
	case "cmk":
		if err := checkKeyARN(body.KeyARN); err != nil {
			return err
		}
	case "managed", "":
		if body.KeyARN != "" {
			return badRequest("a provider-managed app takes no keyArn; use keyModel \"cmk\" to bring your own key")
		}
		body.KeyModel = "managed"
	default:
		return badRequest("keyModel must be \"cmk\" or \"managed\", not %q", body.KeyModel)
	}
	if _, err := s.o.Store.GetOrg(r.Context(), body.OrgID); err != nil {
		if errors.Is(err, lineage.ErrNotFound) {
			return notFound("org " + body.OrgID)
		}
		return err
	}
	app, err := s.o.Provision.CreateApp(r.Context(), provision.Request{
		AppID: body.AppID, OrgID: body.OrgID, KeyModel: lineage.KeyModel(body.KeyModel), KeyARN: body.KeyARN,
	}, r.cause())
	if errors.Is(err, provision.ErrKeyUnusable) || errors.Is(err, lineage.ErrKeyNotEnrolled) {
		// One answer whatever the cause (B10): what the customer must add, nothing about the key.
		return &apiError{http.StatusUnprocessableEntity, "KeyRefused", lineage.KeyRefusedFor(body.OrgID, s.o.KeylineAccount)}
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, viewApp(app))
	return nil
}

// listApps answers one page of the apps the caller may see: `?orgId=` narrows the
// operator's listing to one org; an org token sees its own org only (another org's id
// answers 404, as a missing org). `?cursor=` is the previous page's `next`; `?limit=`
// is 1–100 (default 100).
func (s *Server) listApps(w http.ResponseWriter, r *request) error {
	q := r.URL.Query()
	orgID, cursor := q.Get("orgId"), q.Get("cursor")
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return badRequest("limit must be a whole number from 1 to 100, not %q", v)
		}
		limit = n
	}
	if orgID != "" {
		if err := checkID("orgId", orgID); err != nil {
			return err
		}
		if !r.who.mayAccessOrg(orgID) {
			return notFound("org " + orgID)
		}
	}
	if !r.who.Operator {
		orgID = r.who.OrgID
	}
	var (
		page lineage.Page[lineage.App]
		err  error
	)
	if orgID == "" {
		page, err = s.o.Store.ListApps(r.Context(), cursor, limit)
	} else {
		page, err = s.o.Store.ListAppsByOrg(r.Context(), orgID, cursor, limit)
	}
	if err != nil {
		return err
	}
	out := api.AppsPage{Items: make([]api.App, 0, len(page.Items)), Next: page.Next}
	for _, a := range page.Items {
		if r.who.mayAccessOrg(a.OrgID) {
			out.Items = append(out.Items, viewApp(a))
		}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getApp(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, viewApp(app))
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	gens, err := s.o.Store.ListGenerations(r.Context(), app.ID)
	if err != nil {
		return err
	}
	out := make([]api.Generation, 0, len(gens))
	for _, g := range gens {
		v := api.Generation{Generation: g.Number, KeyArn: g.KeyARN, State: string(g.State), Since: g.Since, Reason: g.StateReason,
			Usable: g.Usable(), KeyState: string(lineage.KeyUsable)}
		if g.KeyRevoked {
			v.KeyState, v.Reason = string(lineage.KeyRevoked), g.KeyReason
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) listAudit(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	entries, err := s.o.Store.ListAudit(r.Context(), app.ID)
	if err != nil {
		return err
	}
	if entries == nil {
		entries = []lineage.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, entries)
	return nil
}

// --- objects ---

func (s *Server) objectScope(r *request, app lineage.App) (objects.Scope, error) {
	h := r.Header.Get("X-Keyline-Scope")
	if h == "" {
		if app.KeyModel == lineage.KeyModelCMK {
			return objects.ScopeCMK, nil
		}
		return objects.ScopeManaged, nil
	}
	sc, err := objects.ParseScope(h)
	if err != nil {
		return "", badRequest("X-Keyline-Scope must be \"cmk\" or \"managed\", not %q", h)
	}
	return sc, nil
}

func (s *Server) putObject(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	scope, err := s.objectScope(r, app)
	if err != nil {
		return err
	}
	body := http.MaxBytesReader(nil, r.Body, s.o.MaxObjectBytes)
	info, err := s.o.Objects.Put(r.Context(), app.ID, scope, r.PathValue("path"), body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, info)
	return nil
}

// objectFirstChunk is how much plaintext getObject reads, and so authenticates, before it
// answers 200: an object of at most this size is checked whole before a byte goes out.
const objectFirstChunk = 256 << 10

// getObject streams an object's plaintext to the client; nothing is staged on disk. The
// object's header and first chunk are authenticated before the status line goes out, so a
// damaged, revoked or missing object answers with its error. Damage found further in ends the
// response without its final chunk, which an HTTP client reports as an error, never as a
// complete object.
func (s *Server) getObject(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	scope, err := s.objectScope(r, app)
	if err != nil {
		return err
	}
	o, err := s.o.Objects.Open(r.Context(), app.ID, scope, r.PathValue("path"))
	if err != nil {
		return err
	}
	defer o.Close()
	first := make([]byte, objectFirstChunk)
	n, err := io.ReadFull(o, first)
	whole := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
	if err != nil && !whole {
		return fmt.Errorf("objects: read %s: %w", o.Key, err)
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("X-Keyline-Scope", string(o.Scope))
	w.Header().Set("X-Keyline-Generation", fmt.Sprint(o.Generation))
	if whole {
		w.Header().Set("Content-Length", strconv.Itoa(n))
	}
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(first[:n]); err != nil || whole {
		return nil // a client gone away has nothing more to read
	}
	if _, err := io.Copy(w, o); err != nil {
		s.o.Logger.Warn("object download ended early: the response is cut so the client sees an incomplete body",
			"requestId", r.id, "app", app.ID, "key", o.Key, "error", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}

// --- backups ---

func (s *Server) startBackup(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	var body struct{}
	if err := decode(r, &body); err != nil {
		return err
	}
	if app.Status == lineage.AppDeactivated {
		return conflict("app %s is deactivated (%s): no backups run until its key is usable again", app.ID, app.StatusReason)
	}
	return s.start(w, r, s.o.Machines.Backup, "backup-"+app.ID, backup.ExecutionInput{AppIDs: []string{app.ID}, RequestedBy: r.who.Actor()})
}

func (s *Server) listBackups(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	backups, err := s.o.Store.ListBackups(r.Context(), app.ID)
	if err != nil {
		return err
	}
	out := make([]api.Backup, 0, len(backups))
	for _, b := range backups {
		out = append(out, api.Backup{BackupID: b.ID, Generation: b.Generation, KeyArn: b.KeyARN, CreatedAt: b.CreatedAt,
			SizeBytes: b.SizeBytes, Restorable: b.Restorable, Reason: b.Reason})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// --- re-encryption ---

func (s *Server) startReencrypt(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	var body api.Reencrypt
	if err := decode(r, &body); err != nil {
		return err
	}
	if err := checkKeyARN(body.KeyARN); err != nil {
		return err
	}
	if app.KeyModel != lineage.KeyModelCMK {
		return unprocessable("app %s uses the provider-managed key: re-encryption moves customer-managed data to a new customer key, and provider-managed data is never altered by it (R4)", app.ID)
	}
	switch app.Status {
	case lineage.AppReencrypting:
		return conflict("app %s is already re-encrypting to generation %d; wait for it to finish", app.ID, app.PendingGeneration)
	case lineage.AppDeactivated:
		return conflict("app %s is deactivated (%s); re-enable its key first", app.ID, app.StatusReason)
	}
	// B10: a key outside the org's enrolment is refused before anything starts (the
	// re-encryption's own validation checks it again, with the key's round trip).
	org, err := s.o.Store.GetOrg(r.Context(), app.OrgID)
	if err != nil {
		return err
	}
	if err := org.CheckKey(body.KeyARN); err != nil {
		return err
	}
	return s.start(w, r, s.o.Machines.Reencrypt, "reencrypt-"+app.ID,
		reencrypt.Request{AppID: app.ID, KeyARN: body.KeyARN, RequestedBy: r.who.Actor(), RequestID: r.id})
}

// abortReencrypt is the operator's way out of a running or stuck re-encryption (I7): it
// starts the re-encryption machine straight at its Abort step, which brings the app to the
// defined aborted state (previous generation ACTIVE, moved objects back, pending generation
// retired). A running execution of that re-encryption finds it aborted at its next step.
func (s *Server) abortReencrypt(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	if !r.who.Operator {
		return forbidden("only the operator aborts a re-encryption")
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := decode(r, &body); err != nil {
		return err
	}
	if strings.TrimSpace(body.Reason) == "" {
		return badRequest("reason is required: it goes into the audit trail")
	}
	if app.Status != lineage.AppReencrypting || app.PendingGeneration == 0 {
		return conflict("app %s is not re-encrypting (status %s): nothing to abort", app.ID, app.Status)
	}
	return s.start(w, r, s.o.Machines.Reencrypt, "reencrypt-abort-"+app.ID, reencrypt.AbortInput{
		AppID: app.ID, OperatorAbort: true, RequestedBy: r.who.Actor(), RequestID: r.id,
		Error: reencrypt.StepError{Error: reencrypt.ErrOperatorAbort, Cause: body.Reason},
	})
}

// --- restores ---

func (s *Server) startRestore(w http.ResponseWriter, r *request) error {
	target, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	var body api.Restore
	if err := decode(r, &body); err != nil {
		return err
	}
	if body.BackupID == "" {
		return badRequest("backupId is required")
	}
	source := target
	if body.SourceAppID != "" && body.SourceAppID != target.ID {
		if source, err = s.app(r, body.SourceAppID); err != nil {
			return err
		}
	}
	if _, err := s.o.Store.GetBackup(r.Context(), source.ID, body.BackupID); err != nil {
		if errors.Is(err, lineage.ErrNotFound) {
			return notFound(fmt.Sprintf("backup %s of app %s", body.BackupID, source.ID))
		}
		return err
	}
	if err := s.o.Restores.ValidateRestore(r.Context(), target.ID, source.ID, body.BackupID); err != nil {
		return err
	}
	rs, err := s.o.Store.RecordRestore(r.Context(), lineage.Restore{
		AppID: target.ID, ID: lineage.NewID(), BackupID: body.BackupID, SourceAppID: source.ID,
		Status: lineage.RestorePending, RequestedBy: r.who.Actor(),
	})
	if err != nil {
		return err
	}
	input, err := json.Marshal(restore.Input{AppID: target.ID, RestoreID: rs.ID, BackupID: body.BackupID, SourceAppID: source.ID,
		RequestedBy: r.who.Actor()})
	if err != nil {
		return fmt.Errorf("restore input: %w", err)
	}
	arn, err := s.o.Executions.Start(r.Context(), s.o.Machines.Restore, "restore-"+rs.ID, input)
	if err != nil {
		rs.Status, rs.Reason = lineage.RestoreFailed, "could not start the restore: "+err.Error()
		_, _ = s.o.Store.UpdateRestore(r.Context(), rs)
		return err
	}
	rs.ExecutionArn = arn
	if _, err := s.o.Store.UpdateRestore(r.Context(), rs); err != nil {
		s.o.Logger.Warn("could not record the restore's execution", "restoreId", rs.ID, "error", err)
	}
	writeJSON(w, http.StatusAccepted, api.Started{ExecutionArn: arn, RestoreID: rs.ID})
	return nil
}

func (s *Server) getRestore(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	rs, err := s.o.Store.GetRestore(r.Context(), app.ID, r.PathValue("restoreId"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rs)
	return nil
}

// --- reactivation (B1, past the window) ---

func (s *Server) reactivate(w http.ResponseWriter, r *request) error {
	app, err := s.app(r, r.PathValue("appId"))
	if err != nil {
		return err
	}
	if !r.who.Operator {
		return forbidden("only the operator reactivates an app after the reactivation window")
	}
	var body struct{}
	if err := decode(r, &body); err != nil {
		return err
	}
	if s.o.Reactivations == nil {
		return notFound("reactivation")
	}
	app, err = s.o.Reactivations.ReactivateApp(r.Context(), app.ID, "operator (request "+r.id+")")
	if err != nil {
		if errors.Is(err, revocation.ErrNotDeactivated) {
			return conflict("%v", err)
		}
		if errors.Is(err, revocation.ErrKeyNotUsable) {
			return unprocessable("%v", err)
		}
		return err
	}
	writeJSON(w, http.StatusOK, viewApp(app))
	return nil
}

// --- executions ---

// start starts an execution named by keyline after what it does plus the request id. A client
// retrying the same request (same X-Request-Id) starts it once: the name then carries a digest
// of the principal, the machine, what it does and the client's id, so a client never chooses a
// name, nor reaches another principal's.
func (s *Server) start(w http.ResponseWriter, r *request, machine, prefix string, in any) error {
	input, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("execution input: %w", err)
	}
	id := r.id
	if r.clientID != "" {
		sum := sha256.Sum256([]byte(r.who.Actor() + "\x00" + machine + "\x00" + prefix + "\x00" + r.clientID))
		id = hex.EncodeToString(sum[:16])
	}
	name := executionName(prefix, id)
	arn, err := s.o.Executions.Start(r.Context(), machine, name, input)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, api.Started{ExecutionArn: arn})
	return nil
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9_-]`)

// executionName builds a valid Step Functions execution name (≤ 80 characters).
func executionName(prefix, id string) string {
	n := unsafeName.ReplaceAllString(prefix, "-") + "-" + unsafeName.ReplaceAllString(id, "-")
	if len(n) > 80 {
		n = n[len(n)-80:]
	}
	return n
}

func (s *Server) getExecution(w http.ResponseWriter, r *request) error {
	arn := r.PathValue("executionArn")
	if !strings.HasPrefix(arn, "arn:") {
		return badRequest("executionArn %q is not an ARN", arn)
	}
	ex, err := s.o.Executions.Describe(r.Context(), arn)
	if errors.Is(err, ErrNoExecution) {
		return notFound("execution " + arn)
	}
	if err != nil {
		return err
	}
	if !r.who.Operator && !s.executionVisible(r, ex) {
		return notFound("execution " + arn)
	}
	out := api.Execution{Status: ex.Status, Error: ex.Error, Cause: ex.Cause}
	if ex.Output != "" {
		out.Output = json.RawMessage(ex.Output)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// executionVisible reports whether every app an execution's input names belongs to the
// caller's org (the executions an org can start always name their apps).
func (s *Server) executionVisible(r *request, ex Execution) bool {
	var in struct {
		AppID       string   `json:"appId"`
		AppIDs      []string `json:"appIds"`
		SourceAppID string   `json:"sourceAppId"`
	}
	if json.Unmarshal([]byte(ex.Input), &in) != nil {
		return false
	}
	ids := append(in.AppIDs, in.AppID, in.SourceAppID)
	seen := 0
	for _, id := range ids {
		if id == "" {
			continue
		}
		app, err := s.o.Store.GetApp(r.Context(), id)
		if err != nil || app.OrgID != r.who.OrgID {
			return false
		}
		seen++
	}
	return seen > 0
}

var _ http.Handler = (*Server)(nil)
