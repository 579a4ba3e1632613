// Package kms serves AWS KMS locally: github.com/nsmithuk/local-kms runs in process,
// behind a fidelity layer that fixes where it differs from AWS KMS and records every
// management call as a CloudTrail event.
//
// What the layer fixes or adds:
//   - key-state errors name the key ARN as AWS does (`DisabledException: <arn> is disabled.`,
//     `KMSInvalidStateException: <arn> is pending deletion.`), also for Decrypt of a ciphertext
//     whose key is disabled or pending deletion, and for ReEncrypt's source and destination keys;
//   - ScheduleKeyDeletion accepts 7–30 days only, takes its DeletionDate from the clock, and
//     answers KeyId, DeletionDate, KeyState and PendingWindowInDays;
//   - CancelKeyDeletion leaves the key Disabled (local-kms enables it);
//   - a key past its deletion window is deleted (with its aliases) as soon as the clock says
//     so, and then answers `NotFoundException: Key '<arn>' does not exist`; nothing sleeps;
//   - EnableKey, DisableKey, key rotation, aliases and grants on a key pending deletion are refused;
//   - DescribeKey reports KeyState, Enabled and DeletionDate from the same state;
//   - missing parameters, malformed JSON and unknown operations answer AWS's error types
//     (ValidationException, SerializationException, UnknownOperationException).
//
// local-kms keeps its configuration in package globals (config.AWSRegion,
// config.AWSAccountId, config.DatabasePath). They are set once per process, by the first
// New; a later New with a different region or account fails with ErrConfigConflict.
// Each Service has its own key database (<DataDir>/kms), and its own layer state
// (deletion dates) in <DataDir>/kms-fidelity.json, so restarts keep both.
package kms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/uuid"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/sigv4"
	"github.com/nsmithuk/local-kms/src/cmk"
	kmsconfig "github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/nsmithuk/local-kms/src/service"
	"github.com/sirupsen/logrus"
)

// ErrConfigConflict is returned by New when local-kms's process-wide configuration was
// already set to another region or account.
var ErrConfigConflict = errors.New("kms: local-kms is already configured for another region or account in this process")

// ErrOpenDatabase is returned by New when the key database cannot be opened (for
// example because another Service holds it).
var ErrOpenDatabase = errors.New("kms: cannot open the key database")

// maxRequestBytes caps a KMS request body (AWS's largest are key policies of 32 KiB).
const maxRequestBytes = 1 << 20

// farFuture is the DeletionDate written into local-kms's own record of a key pending
// deletion, so that local-kms never deletes it by the wall clock: this layer decides.
const farFuture = int64(253402300799) // 9999-12-31T23:59:59Z

// Options configure a Service.
type Options struct {
	// DataDir is the local data directory; keys live in DataDir/kms.
	DataDir string
	// Region and AccountID name the keys' ARNs (defaults us-east-1, 000000000000).
	Region    string
	AccountID string
	// Clock gives deletion dates and event times (default clock.Real()).
	Clock clock.Clock
	// Sink receives the CloudTrail events of management calls (nil: none are sent).
	Sink EventSink
	// CloudTrailDelay delays each event's delivery by this long on Clock (0: delivered
	// before the call answers).
	CloudTrailDelay time.Duration
	// CloudTrailDrop, when it returns true for an event name, loses that event.
	CloudTrailDrop func(eventName string) bool
	// Logger receives warnings (default: discard).
	Logger *slog.Logger
}

// Service is the local KMS: an http.Handler for the `TrentService.*` JSON protocol.
type Service struct {
	opts  Options
	clk   clock.Clock
	log   *slog.Logger
	db    *data.Database
	quiet *logrus.Logger

	// mu orders key-state changes: management calls hold it exclusively, the rest shared.
	mu    sync.RWMutex
	state *stateFile

	// known caches what checkUsable found for a key reference; every management call
	// and every sweep clears it (both hold mu exclusively, so no reader refills it stale).
	knownMu sync.Mutex
	known   map[string]knownKey

	closeOnce sync.Once
	closed    chan struct{}
	wg        sync.WaitGroup
}

var (
	cfgOnce               sync.Once
	cfgRegion, cfgAccount string
)

// configure sets local-kms's package globals once per process.
func configure(region, account, dbPath string) error {
	cfgOnce.Do(func() {
		kmsconfig.AWSRegion = region
		kmsconfig.AWSAccountId = account
		kmsconfig.DatabasePath = dbPath
		cfgRegion, cfgAccount = region, account
	})
	if cfgRegion != region || cfgAccount != account {
		return fmt.Errorf("%w (configured %s/%s, asked %s/%s)", ErrConfigConflict, cfgRegion, cfgAccount, region, account)
	}
	return nil
}

// New opens (or creates) the key database under opts.DataDir and returns the Service.
func New(opts Options) (*Service, error) {
	if opts.DataDir == "" {
		return nil, errors.New("kms: Options.DataDir is required")
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "000000000000"
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	dbPath := filepath.Join(opts.DataDir, "kms")
	if err := os.MkdirAll(dbPath, 0o700); err != nil {
		return nil, fmt.Errorf("kms: %w", err)
	}
	if err := configure(opts.Region, opts.AccountID, dbPath); err != nil {
		return nil, err
	}
	db, err := openDatabase(dbPath)
	if err != nil {
		return nil, err
	}
	st, err := loadState(filepath.Join(opts.DataDir, "kms-fidelity.json"))
	if err != nil {
		db.Close()
		return nil, err
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	quiet.SetLevel(logrus.ErrorLevel)
	return &Service{
		opts: opts, clk: opts.Clock, log: opts.Logger, db: db, quiet: quiet,
		state: st, closed: make(chan struct{}), known: map[string]knownKey{},
	}, nil
}

// openDatabase opens local-kms's leveldb, turning its panic into an error.
func openDatabase(path string) (db *data.Database, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%w at %s: %v", ErrOpenDatabase, path, v)
		}
	}()
	return data.NewDatabase(path), nil
}

// Close stops pending delayed deliveries and closes the key database.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.wg.Wait()
		s.mu.Lock()
		s.db.Close()
		s.mu.Unlock()
	})
	return nil
}

// Direct returns local-kms's own handler with no fidelity layer, on the same database
// (for comparison in benchmarks and tests).
func (s *Service) Direct() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			writeErr(w, http.StatusMethodNotAllowed, "UnknownOperationException", "")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes))
		if err != nil {
			writeErr(w, http.StatusBadRequest, "SerializationException", "cannot read the request body")
			return
		}
		resp := s.dispatch(r, operationOf(r), body)
		writeRaw(w, resp.Code, []byte(resp.Body))
	})
}

// dispatch calls local-kms's handler for op, as local-kms's own server does, with a quiet logger.
func (s *Service) dispatch(r *http.Request, op string, body []byte) handler.Response {
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	h := handler.NewRequestHandler(r2, s.quiet, s.db)
	m := reflect.ValueOf(h).MethodByName(op)
	if op == "" || !m.IsValid() || m.Type().NumIn() != 0 || m.Type().NumOut() != 1 ||
		m.Type().Out(0) != reflect.TypeOf(handler.Response{}) {
		return errResponse(http.StatusBadRequest, "UnknownOperationException", "")
	}
	out := m.Call(nil)
	return out[0].Interface().(handler.Response)
}

func operationOf(r *http.Request) string {
	t := r.Header.Get("X-Amz-Target")
	if !strings.HasPrefix(t, "TrentService.") {
		return ""
	}
	return strings.TrimPrefix(t, "TrentService.")
}

// request holds the fields of a KMS request the layer looks at.
type request struct {
	KeyId               *string `json:"KeyId"`
	DestinationKeyId    *string `json:"DestinationKeyId"`
	SourceKeyId         *string `json:"SourceKeyId"`
	TargetKeyId         *string `json:"TargetKeyId"`
	AliasName           *string `json:"AliasName"`
	CiphertextBlob      []byte  `json:"CiphertextBlob"`
	Plaintext           []byte  `json:"Plaintext"`
	PendingWindowInDays *int64  `json:"PendingWindowInDays"`
}

// Operation groups.
var (
	// usableOps need a key that is Enabled.
	usableOps = set("Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
		"GenerateDataKeyPair", "GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify", "GenerateMac", "VerifyMac",
		"GetPublicKey", "DeriveSharedSecret")
	// notWhilePendingDeletion are refused on a key pending deletion.
	notWhilePendingDeletion = set("EnableKey", "DisableKey", "EnableKeyRotation", "DisableKeyRotation",
		"CreateAlias", "UpdateAlias", "CreateGrant", "RotateKeyOnDemand", "ImportKeyMaterial", "ScheduleKeyDeletion")
	// writeOps are the management calls recorded as CloudTrail events (readOnly false).
	writeOps = set("CreateKey", "CreateAlias", "DeleteAlias", "UpdateAlias", "DisableKey", "EnableKey",
		"ScheduleKeyDeletion", "CancelKeyDeletion", "PutKeyPolicy", "TagResource", "UntagResource",
		"UpdateKeyDescription", "EnableKeyRotation", "DisableKeyRotation", "RotateKeyOnDemand",
		"ImportKeyMaterial", "DeleteImportedKeyMaterial", "CreateGrant", "RetireGrant", "RevokeGrant",
		"ReplicateKey", "UpdatePrimaryRegion", "GetParametersForImport")
	// keyIdRequired lists operations whose KeyId AWS requires.
	keyIdRequired = set("DescribeKey", "EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion",
		"Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "GenerateDataKeyPair",
		"GenerateDataKeyPairWithoutPlaintext", "Sign", "Verify", "GenerateMac", "VerifyMac", "GetPublicKey",
		"PutKeyPolicy", "GetKeyPolicy", "TagResource", "UntagResource", "ListResourceTags", "UpdateKeyDescription",
		"EnableKeyRotation", "DisableKeyRotation", "GetKeyRotationStatus")
)

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// call is one request passing through the layer.
type call struct {
	op      string
	caller  string // the caller's account
	asIs    bool   // the response names keys as the caller did: not rewritten
	body    []byte
	req     request
	keyArn  string // the key the call concerns, when known
	reqID   string
	started time.Time
}

// ServeHTTP serves one KMS JSON request.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{op: operationOf(r), reqID: uuid.Must(uuid.NewV4()).String()}
	w.Header().Set("X-Amzn-Requestid", c.reqID)
	if r.Method != http.MethodPost || c.op == "" {
		writeErr(w, http.StatusBadRequest, "UnknownOperationException", "")
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "SerializationException", "cannot read the request body")
		return
	}
	if len(body) > maxRequestBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, "ValidationException", "request body too large")
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = []byte("{}")
	}
	c.body = body
	c.caller = callerAccount(r)
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil || obj == nil {
		s.finish(w, r, c, errResponse(http.StatusBadRequest, "SerializationException", "Start of structure or map found where not expected."))
		return
	}
	// Keys of other accounts: local-kms sees its own ARNs (accounts.go).
	if internal, bad := s.toInternal(body, c.caller); bad != nil {
		c.asIs = true
		s.finish(w, r, c, *bad)
		return
	} else {
		c.body = internal
	}
	if c.op == "CreateKey" && c.caller != s.opts.AccountID {
		withPolicy, err := withDefaultPolicy(c.body, c.caller)
		if err != nil {
			s.finish(w, r, c, errResponse(http.StatusBadRequest, "SerializationException", serializationMessage(err)))
			return
		}
		c.body = withPolicy
	}
	if err := json.Unmarshal(c.body, &c.req); err != nil {
		s.finish(w, r, c, errResponse(http.StatusBadRequest, "SerializationException", serializationMessage(err)))
		return
	}
	for _, ref := range []*string{c.req.KeyId, c.req.SourceKeyId, c.req.DestinationKeyId, c.req.TargetKeyId} {
		if bad := s.checkBareKeyID(ref, c.caller); bad != nil {
			c.asIs = true
			s.finish(w, r, c, *bad)
			return
		}
	}
	if _, ok := reflect.TypeOf(&handler.RequestHandler{}).MethodByName(c.op); !ok {
		s.finish(w, r, c, errResponse(http.StatusBadRequest, "UnknownOperationException", ""))
		return
	}

	s.sweep(r.Context())

	write := writeOps[c.op]
	if write {
		s.mu.Lock()
	} else {
		s.mu.RLock()
	}
	resp := s.handle(r, c)
	if write {
		s.forget()
		s.mu.Unlock()
	} else {
		s.mu.RUnlock()
	}
	s.finish(w, r, c, resp)
}

// finish writes the response and records the CloudTrail event of a management call.
func (s *Service) finish(w http.ResponseWriter, r *http.Request, c *call, resp handler.Response) {
	if c.op == "CreateKey" || c.op == "DescribeKey" {
		resp = s.fixAccountID(resp)
	}
	if !c.asIs {
		resp.Body = s.toExternal(resp.Body)
	}
	if writeOps[c.op] {
		s.record(r, c, resp)
	}
	writeRaw(w, resp.Code, []byte(resp.Body))
}

// handle runs the checks, local-kms, and the fixes, under s.mu.
func (s *Service) handle(r *http.Request, c *call) handler.Response {
	if keyIdRequired[c.op] && (c.req.KeyId == nil) {
		return errResponse(http.StatusBadRequest, "ValidationException",
			"1 validation error detected: Value null at 'keyId' failed to satisfy constraint: Member must not be null")
	}
	if c.req.KeyId != nil {
		c.keyArn, _ = s.resolve(*c.req.KeyId)
	}
	switch {
	case (c.op == "CreateAlias" || c.op == "UpdateAlias") && c.req.TargetKeyId != nil:
		c.keyArn, _ = s.resolve(*c.req.TargetKeyId)
	case c.op == "DeleteAlias" && c.req.AliasName != nil:
		if arn, key := s.resolve(*c.req.AliasName); key != nil {
			c.keyArn = arn
		}
	}

	switch c.op {
	case "Encrypt":
		// local-kms echoes the plaintext in this error; AWS does not.
		if len(c.req.Plaintext) > 4096 {
			return errResponse(http.StatusBadRequest, "ValidationException",
				"1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096")
		}
	case "ScheduleKeyDeletion":
		if p := c.req.PendingWindowInDays; p != nil && (*p < 7 || *p > 30) {
			bound := "greater than or equal to 7"
			if *p > 30 {
				bound = "less than or equal to 30"
			}
			return errResponse(http.StatusBadRequest, "ValidationException", fmt.Sprintf(
				"1 validation error detected: Value '%d' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value %s",
				*p, bound))
		}
	}

	// Key-state checks, naming the key ARN as AWS does.
	if usableOps[c.op] {
		for _, ref := range s.keysUsedBy(c) {
			if resp, bad := s.checkUsable(ref); bad {
				return resp
			}
		}
	}
	if notWhilePendingDeletion[c.op] && c.keyArn != "" {
		if _, pending := s.state.pending(c.keyArn); pending {
			return errResponse(http.StatusBadRequest, "KMSInvalidStateException", c.keyArn+" is pending deletion.")
		}
	}

	resp := s.dispatch(r, c.op, c.body)
	resp = fixGenericErrors(resp)
	if resp.Code != http.StatusOK {
		return resp
	}

	switch c.op {
	case "CreateKey":
		var out struct{ KeyMetadata struct{ Arn, KeyId string } }
		if json.Unmarshal([]byte(resp.Body), &out) == nil {
			c.keyArn = out.KeyMetadata.Arn
			if c.caller != s.opts.AccountID {
				if err := s.state.setOwner(out.KeyMetadata.KeyId, c.caller); err != nil {
					return errResponse(http.StatusInternalServerError, "KMSInternalException", err.Error())
				}
			}
		}
	case "ScheduleKeyDeletion":
		return s.afterSchedule(c)
	case "CancelKeyDeletion":
		return s.afterCancel(c, resp)
	case "DescribeKey":
		return s.fixDescribe(resp)
	}
	return resp
}

// keysUsedBy returns the key references (ids, ARNs, aliases) a cryptographic call uses.
func (s *Service) keysUsedBy(c *call) []string {
	var refs []string
	switch c.op {
	case "Decrypt", "ReEncrypt":
		src := c.req.KeyId
		if c.op == "ReEncrypt" {
			src = c.req.SourceKeyId
		}
		if src != nil {
			refs = append(refs, *src)
		} else if ident, _, _, ok := service.UnpackCiphertextBlob(c.req.CiphertextBlob); ok && strings.HasPrefix(ident, "arn:") {
			refs = append(refs, ident)
		}
		if c.op == "ReEncrypt" && c.req.DestinationKeyId != nil {
			refs = append(refs, *c.req.DestinationKeyId)
		}
	default:
		if c.req.KeyId != nil {
			refs = append(refs, *c.req.KeyId)
		}
	}
	return refs
}

// knownKey is what checkUsable concluded about a key reference.
type knownKey struct {
	resp handler.Response
	bad  bool
}

func (s *Service) forget() {
	s.knownMu.Lock()
	clear(s.known)
	s.knownMu.Unlock()
}

// checkUsable answers the AWS error for a key that exists but cannot be used.
// A key that does not exist is left to local-kms, which names it as AWS does.
func (s *Service) checkUsable(ref string) (handler.Response, bool) {
	s.knownMu.Lock()
	k, ok := s.known[ref]
	s.knownMu.Unlock()
	if ok {
		return k.resp, k.bad
	}
	resp, bad, exists := s.checkUsableUncached(ref)
	if exists {
		s.knownMu.Lock()
		if len(s.known) > 10000 {
			clear(s.known)
		}
		s.known[ref] = knownKey{resp: resp, bad: bad}
		s.knownMu.Unlock()
	}
	return resp, bad
}

func (s *Service) checkUsableUncached(ref string) (resp handler.Response, bad, exists bool) {
	arn, key := s.resolve(ref)
	if key == nil {
		return handler.Response{}, false, false
	}
	if _, pending := s.state.pending(arn); pending || key.GetMetadata().KeyState == cmk.KeyStatePendingDeletion {
		return errResponse(http.StatusBadRequest, "KMSInvalidStateException", arn+" is pending deletion."), true, true
	}
	md := key.GetMetadata()
	if md.KeyState == cmk.KeyStatePendingImport {
		return errResponse(http.StatusBadRequest, "KMSInvalidStateException", arn+" is pending import."), true, true
	}
	if !md.Enabled {
		return errResponse(http.StatusBadRequest, "DisabledException", arn+" is disabled."), true, true
	}
	return handler.Response{}, false, true
}

// resolve turns a key id, key ARN, alias name or alias ARN into the key's ARN, and
// loads the key (nil when it does not exist).
func (s *Service) resolve(ref string) (string, cmk.Key) {
	if strings.Contains(ref, "alias/") {
		aliasArn := ref
		if !strings.HasPrefix(ref, "arn:") {
			aliasArn = s.arnPrefix() + ref
		}
		a, err := s.db.LoadAlias(aliasArn)
		if err != nil || a == nil {
			return "", nil
		}
		ref = a.TargetKeyId
	}
	arn := ref
	if !strings.HasPrefix(ref, "arn:") {
		arn = s.arnPrefix() + "key/" + ref
	}
	key, err := s.db.LoadKey(arn)
	if err != nil || key == nil {
		return arn, nil
	}
	return arn, key
}

func (s *Service) arnPrefix() string {
	return "arn:aws:kms:" + s.opts.Region + ":" + s.opts.AccountID + ":"
}

// afterSchedule records the deletion date from the clock and answers as AWS does.
func (s *Service) afterSchedule(c *call) handler.Response {
	days := int64(30)
	if c.req.PendingWindowInDays != nil {
		days = *c.req.PendingWindowInDays
	}
	arn, key := s.resolve(*c.req.KeyId)
	if key == nil {
		return errResponse(http.StatusBadRequest, "NotFoundException", fmt.Sprintf("Key '%s' does not exist", arn))
	}
	c.keyArn = arn
	when := s.clk.Now().UTC().Add(time.Duration(days) * 24 * time.Hour).Truncate(time.Second)
	key.GetMetadata().DeletionDate = farFuture
	key.GetMetadata().Enabled = false
	key.GetMetadata().KeyState = cmk.KeyStatePendingDeletion
	if err := s.db.SaveKey(key); err != nil {
		return errResponse(http.StatusInternalServerError, "KMSInternalException", err.Error())
	}
	if err := s.state.setPending(arn, when, days); err != nil {
		return errResponse(http.StatusInternalServerError, "KMSInternalException", err.Error())
	}
	return okResponse(map[string]any{
		"KeyId":               arn,
		"DeletionDate":        epoch(when),
		"KeyState":            string(cmk.KeyStatePendingDeletion),
		"PendingWindowInDays": days,
	})
}

// afterCancel leaves the key Disabled, as AWS does.
func (s *Service) afterCancel(c *call, resp handler.Response) handler.Response {
	arn, key := s.resolve(*c.req.KeyId)
	if key == nil {
		return resp
	}
	c.keyArn = arn
	key.GetMetadata().Enabled = false
	key.GetMetadata().KeyState = cmk.KeyStateDisabled
	key.GetMetadata().DeletionDate = 0
	if err := s.db.SaveKey(key); err != nil {
		return errResponse(http.StatusInternalServerError, "KMSInternalException", err.Error())
	}
	if err := s.state.clear(arn); err != nil {
		return errResponse(http.StatusInternalServerError, "KMSInternalException", err.Error())
	}
	return okResponse(map[string]any{"KeyId": arn})
}

// fixDescribe reports KeyState, Enabled and DeletionDate from the layer's state.
func (s *Service) fixDescribe(resp handler.Response) handler.Response {
	var out map[string]map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || out["KeyMetadata"] == nil {
		return resp
	}
	md := out["KeyMetadata"]
	arn, _ := md["Arn"].(string)
	if p, ok := s.state.pending(arn); ok {
		md["KeyState"] = string(cmk.KeyStatePendingDeletion)
		md["Enabled"] = false
		md["DeletionDate"] = epoch(p.DeletionDate)
		md["PendingDeletionWindowInDays"] = p.PendingWindowInDays
	} else {
		delete(md, "DeletionDate")
	}
	return okResponse(out)
}

// sweep deletes every key whose deletion window has ended on the clock.
func (s *Service) sweep(ctx context.Context) {
	now := s.clk.Now()
	if !s.state.anyDue(now) {
		return
	}
	s.mu.Lock()
	due := s.state.due(now)
	var deleted []pendingKey
	for _, p := range due {
		if err := s.deleteKey(p.Arn); err != nil {
			s.log.Warn("kms: deleting a key past its window", "key", p.Arn, "err", err)
			continue
		}
		deleted = append(deleted, p)
	}
	s.forget()
	s.mu.Unlock()
	for _, p := range deleted {
		s.deliver(ctx, s.deleteKeyEvent(p))
	}
}

// Run deletes each key when its deletion window ends on the clock (emitting the DeleteKey
// service event then, even if no request arrives), until ctx ends or the Service closes.
func (s *Service) Run(ctx context.Context) {
	for {
		s.sweep(ctx)
		var wait <-chan time.Time
		if next, ok := s.state.next(); ok {
			wait = s.clk.After(next.Sub(s.clk.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-s.state.changed():
		case <-wait:
		}
	}
}

// Sweep deletes the keys whose deletion window has ended (each request does this too)
// and returns how many it deleted.
func (s *Service) Sweep(ctx context.Context) int {
	n := len(s.state.due(s.clk.Now()))
	s.sweep(ctx)
	return n
}

func (s *Service) deleteKey(arn string) error {
	aliases, err := s.db.ListAlias(s.arnPrefix()+"alias/", 1<<30, "", keyIDOf(arn))
	if err != nil {
		return fmt.Errorf("kms: list aliases of %s: %w", arn, err)
	}
	for _, a := range aliases {
		if err := s.db.DeleteObject(a.AliasArn); err != nil {
			return fmt.Errorf("kms: delete alias %s: %w", a.AliasArn, err)
		}
	}
	if err := s.db.DeleteObject(arn); err != nil {
		return fmt.Errorf("kms: delete key %s: %w", arn, err)
	}
	return s.state.clear(arn)
}

func keyIDOf(arn string) string {
	if i := strings.LastIndex(arn, "key/"); i >= 0 {
		return arn[i+len("key/"):]
	}
	return arn
}

// fixGenericErrors maps local-kms's non-AWS error shapes to AWS's.
func fixGenericErrors(resp handler.Response) handler.Response {
	if resp.Code == http.StatusOK {
		return resp
	}
	var e struct {
		Type    string `json:"__type"`
		Message string `json:"message"`
	}
	if json.Unmarshal([]byte(resp.Body), &e) != nil {
		return errResponse(resp.Code, "KMSInternalException", strings.TrimSpace(resp.Body))
	}
	if e.Type == "MissingParameterException" {
		field, ok := strings.CutSuffix(e.Message, " is a required parameter")
		if ok && field != "" {
			field = strings.ToLower(field[:1]) + field[1:]
			return errResponse(http.StatusBadRequest, "ValidationException", fmt.Sprintf(
				"1 validation error detected: Value null at '%s' failed to satisfy constraint: Member must not be null", field))
		}
		return errResponse(http.StatusBadRequest, "ValidationException", e.Message)
	}
	return resp
}

func serializationMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("Unexpected value for field %s", te.Field)
	}
	return "Malformed request body"
}

func epoch(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }

func okResponse(v any) handler.Response {
	b, err := json.Marshal(v)
	if err != nil {
		return errResponse(http.StatusInternalServerError, "KMSInternalException", err.Error())
	}
	return handler.Response{Code: http.StatusOK, Body: string(b)}
}

func errResponse(code int, typ, msg string) handler.Response {
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": msg})
	return handler.Response{Code: code, Body: string(b)}
}

func writeErr(w http.ResponseWriter, code int, typ, msg string) {
	r := errResponse(code, typ, msg)
	writeRaw(w, r.Code, []byte(r.Body))
}

func writeRaw(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	if code != http.StatusOK {
		var e struct {
			Type string `json:"__type"`
		}
		if json.Unmarshal(body, &e) == nil && e.Type != "" {
			w.Header().Set("X-Amzn-Errortype", e.Type)
		}
	}
	w.WriteHeader(code)
	_, _ = w.Write(body)
}

// callerOf returns the access key and source IP of a request, for CloudTrail.
func callerOf(r *http.Request) (akid, ip string) {
	if sc, ok := sigv4.FromRequest(r); ok {
		akid = sc.AccessKeyID
	}
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return akid, ip
}
