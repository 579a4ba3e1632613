// Package endpoint serves keyline's local AWS-compatible endpoint: one loopback
// address (like LocalStack's gateway) that routes each request to a service handler
// (KMS, S3, DynamoDB, EventBridge, Step Functions, Lambda, STS) by its SigV4 credential
// scope, its X-Amz-Target header, or, for S3 and Lambda, the shape of its path.
//
// Unmodified aws-sdk-go-v2 clients reach it through BaseEndpoint / AWS_ENDPOINT_URL
// (S3 with UsePathStyle).
package endpoint

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/uuid"
	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/sigv4"
)

// Service names, as they appear in the SigV4 credential scope.
const (
	ServiceKMS      = "kms"
	ServiceS3       = "s3"
	ServiceDynamoDB = "dynamodb"
	ServiceEvents   = "events"
	ServiceStates   = "states"
	ServiceLambda   = "lambda"
	ServiceSTS      = "sts"
	// ServiceSecretsManager is Secrets Manager (the operator token's secret).
	ServiceSecretsManager = "secretsmanager"
)

// DefaultAddr is the address the endpoint listens on unless told otherwise.
const DefaultAddr = "127.0.0.1:4566"

// DefaultAccountID is the account every local resource belongs to.
const DefaultAccountID = "000000000000"

// ErrNotLoopback is returned when asked to listen on an address that is not loopback.
var ErrNotLoopback = errors.New("endpoint: refusing to listen on a non-loopback address")

// ErrStarted is returned by Start when the server is already listening.
var ErrStarted = errors.New("endpoint: server already started")

// Options configure a Server. The zero value is usable.
type Options struct {
	// Addr is the loopback host:port to listen on (default 127.0.0.1:4566; port 0 picks one).
	Addr string
	// AccountID is the account STS GetCallerIdentity reports (default 000000000000).
	AccountID string
	// Logger receives the access log (debug level) and recovered panics (error level).
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies for every service but S3 (default 32 MiB).
	MaxBodyBytes int64
	// MaxS3BodyBytes caps S3 request bodies (default 5 GiB + 1 MiB, S3's single-part limit).
	MaxS3BodyBytes int64
	// Faults injects errors and latency per service and operation (nil: none).
	Faults *fault.Injector
}

// Server is the local AWS endpoint. Register service handlers, then Start.
type Server struct {
	opts Options
	log  *slog.Logger

	mu         sync.RWMutex
	services   map[string]http.Handler
	extractors map[string]authz.Extractor
	authorizer authz.Authorizer
	principals *authz.Principals

	srvMu sync.Mutex
	srv   *http.Server
	ln    net.Listener
}

// New returns a Server with an STS handler (GetCallerIdentity) registered.
func New(opts Options) *Server {
	if opts.Addr == "" {
		opts.Addr = DefaultAddr
	}
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 32 << 20
	}
	if opts.MaxS3BodyBytes <= 0 {
		opts.MaxS3BodyBytes = 5<<30 + 1<<20
	}
	s := &Server{opts: opts, log: opts.Logger, services: map[string]http.Handler{}, extractors: map[string]authz.Extractor{}}
	s.services[ServiceSTS] = stsHandler{account: opts.AccountID}
	return s
}

// Register routes requests for service (a SigV4 service name such as "kms") to h,
// replacing any handler registered before.
func (s *Server) Register(service string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.services[service] = h
}

// CheckLoopback reports ErrNotLoopback unless addr's host is a loopback IP or "localhost".
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("endpoint: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%w: %q", ErrNotLoopback, addr)
	}
	return nil
}

// Start listens on the configured loopback address and serves in the background
// until ctx ends or Shutdown is called.
func (s *Server) Start(ctx context.Context) error {
	if err := CheckLoopback(s.opts.Addr); err != nil {
		return err
	}
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.srv != nil {
		return ErrStarted
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", s.opts.Addr)
	if err != nil {
		return fmt.Errorf("endpoint: listen %s: %w", s.opts.Addr, err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 30 * time.Second}
	s.srv, s.ln = srv, ln
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("endpoint: serve", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return nil
}

// Addr returns the address the server listens on (the configured one before Start).
func (s *Server) Addr() string {
	s.srvMu.Lock()
	defer s.srvMu.Unlock()
	if s.ln != nil {
		return s.ln.Addr().String()
	}
	return s.opts.Addr
}

// URL returns the endpoint URL to give clients (http://host:port).
func (s *Server) URL() string { return "http://" + s.Addr() }

// Shutdown stops the server gracefully.
func (s *Server) Shutdown(ctx context.Context) error {
	s.srvMu.Lock()
	srv := s.srv
	s.srvMu.Unlock()
	if srv == nil {
		return nil
	}
	return srv.Shutdown(ctx)
}

// Route returns the service a request is for, and "" when none can be told.
func Route(r *http.Request) string {
	if sc, ok := sigv4.FromRequest(r); ok {
		return sc.Service
	}
	target := r.Header.Get("X-Amz-Target")
	switch {
	case strings.HasPrefix(target, "TrentService."):
		return ServiceKMS
	case strings.HasPrefix(target, "DynamoDB_20120810."), strings.HasPrefix(target, "DynamoDBStreams_20120810."):
		return ServiceDynamoDB
	case strings.HasPrefix(target, "AWSEvents."):
		return ServiceEvents
	case strings.HasPrefix(target, "AWSStepFunctions."):
		return ServiceStates
	case strings.HasPrefix(target, "secretsmanager."):
		return ServiceSecretsManager
	case target != "":
		return ""
	}
	if strings.HasPrefix(r.URL.Path, "/2015-03-31/functions") {
		return ServiceLambda
	}
	if r.URL.Path == "/" && (r.URL.Query().Get("Action") == "GetCallerIdentity" || isFormPost(r)) {
		return ServiceSTS
	}
	// Anything else without a target is S3 path-style (/bucket, /bucket/key, / = ListBuckets).
	return ServiceS3
}

func isFormPost(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

// operation names the API operation of a request for the access log.
func operation(service string, r *http.Request) string {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndexByte(t, '.'); i >= 0 {
			return t[i+1:]
		}
		return t
	}
	if service == ServiceSTS && r.Form != nil {
		if a := r.Form.Get("Action"); a != "" {
			return a
		}
	}
	if a := r.URL.Query().Get("Action"); a != "" {
		return a
	}
	return r.Method + " " + r.URL.Path
}

// ServeHTTP routes r to its service.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	service := Route(r)
	reqID := uuid.Must(uuid.NewV4()).String()
	sw := &statusWriter{ResponseWriter: w}
	s.mu.RLock()
	h := s.services[service]
	s.mu.RUnlock()

	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does
				panic(v)
			}
			s.log.Error("endpoint: panic in service handler", "service", service, "operation", operation(service, r),
				"request_id", reqID, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !sw.wrote {
				writeError(sw, service, http.StatusInternalServerError, "InternalFailure", "internal failure", reqID)
			}
		}
		s.log.Debug("aws request", "service", service, "operation", operation(service, r), "status", sw.status(),
			"duration", time.Since(start), "request_id", reqID)
	}()

	if p := GuardProblem(r); p != "" {
		writeError(sw, service, http.StatusForbidden, "AccessDeniedException", p, reqID)
		return
	}
	if h == nil {
		name := service
		if name == "" {
			name = r.Header.Get("X-Amz-Target")
		}
		writeError(sw, service, http.StatusBadRequest, "UnknownOperationException",
			fmt.Sprintf("no local service handles %q", name), reqID)
		return
	}
	limit := s.opts.MaxBodyBytes
	if service == ServiceS3 {
		limit = s.opts.MaxS3BodyBytes
	}
	if r.ContentLength > limit {
		writeError(sw, service, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge",
			fmt.Sprintf("request body of %d bytes exceeds the limit of %d", r.ContentLength, limit), reqID)
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(sw, r.Body, limit)
	}
	if service == ServiceSTS {
		_ = r.ParseForm() // the query protocol's Action is in the form body; parsed once, here, for the access log
	}
	if sw.Header().Get("X-Amzn-Requestid") == "" {
		sw.Header().Set("X-Amzn-Requestid", reqID)
	}
	if !s.authorize(sw, r, service, reqID) {
		return
	}
	if s.opts.Faults != nil && r.Header.Get(fault.NoFaultHeader) == "" {
		if !s.injectFault(sw, r, service, reqID) {
			return
		}
	}
	h.ServeHTTP(sw, r)
}

// writeError answers in the shape of the service's protocol: XML for S3 and STS,
// JSON (`{"__type": …}`) otherwise.
func writeError(w http.ResponseWriter, service string, status int, code, msg, reqID string) {
	switch service {
	case ServiceS3:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		_ = xml.NewEncoder(w).Encode(struct {
			XMLName   xml.Name `xml:"Error"`
			Code      string   `xml:"Code"`
			Message   string   `xml:"Message"`
			RequestID string   `xml:"RequestId"`
		}{Code: code, Message: msg, RequestID: reqID})
	case ServiceSTS:
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(status)
		_ = xml.NewEncoder(w).Encode(stsErrorResponse{Error: stsError{Type: "Sender", Code: code, Message: msg}, RequestID: reqID})
	case ServiceLambda:
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", code)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"Type":"User","message":%q}`, msg)
	default:
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-Errortype", code)
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, code, msg)
	}
}

// statusWriter records the status code for the access log.
type statusWriter struct {
	http.ResponseWriter
	code  int
	wrote bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(p)
}

// ReadFrom keeps io.Copy fast for large S3 bodies.
func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	if !w.wrote {
		w.code, w.wrote = http.StatusOK, true
	}
	return io.Copy(w.ResponseWriter, r)
}

// Flush passes flushes through.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.code
}
