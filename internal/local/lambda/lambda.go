// Package lambda runs keyline's Lambda handlers in process, through aws-lambda-go's
// handler wrapper, so payloads take the same JSON path as in AWS, with the Lambda
// context (request id, function ARN, a deadline from the function's timeout) and errors
// shaped as the Lambda Go runtime shapes them (errorType = the error's Go type name
// without its package, e.g. `errorString`; a panic's errorType is its value's type).
//
// Registry implements invoke.Invoker, and serves the Lambda Invoke REST API
// (`POST /2015-03-31/functions/{name}/invocations`) so the aws-sdk-go-v2 lambda client works.
package lambda

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/gofrs/uuid"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/invoke"
)

// ErrFunctionNotFound is wrapped by the error Invoke returns for an unknown function.
var ErrFunctionNotFound = errors.New("ResourceNotFoundException")

// ErrTooManyRequests is wrapped by the error Invoke returns when a function's reserved
// concurrency is exhausted.
var ErrTooManyRequests = invoke.ErrTooManyRequests

// ErrServiceFault is wrapped by an Invoke error when the Lambda service itself fails the
// call (an injected 5xx or timeout; Step Functions names it Lambda.ServiceException).
var ErrServiceFault = errors.New("ServiceException")

// DefaultTimeout is a function's timeout unless its Function says otherwise.
const DefaultTimeout = 60 * time.Second

// Function describes one registered function.
type Function struct {
	// Name is the function name (not an ARN).
	Name string
	// Handler is any handler shape aws-lambda-go's lambda.NewHandler accepts.
	Handler any
	// Timeout bounds each invocation (default DefaultTimeout); the handler's context
	// carries the deadline.
	Timeout time.Duration
	// ReservedConcurrency, when > 0, caps concurrent invocations; one more is refused
	// with TooManyRequestsException.
	ReservedConcurrency int
}

type function struct {
	Function
	arn     string
	handler awslambda.Handler
	sem     chan struct{}
}

// Options configure a Registry.
type Options struct {
	Region    string // default us-east-1
	AccountID string // default 000000000000
	Logger    *slog.Logger
	// Faults crashes invocations (nil: none).
	Faults *fault.Injector
}

// Registry holds the in-process functions. It is safe for concurrent use.
type Registry struct {
	opts Options
	log  *slog.Logger

	mu    sync.RWMutex
	funcs map[string]*function
}

var _ invoke.Invoker = (*Registry)(nil)

// New returns an empty Registry.
func New(opts Options) *Registry {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.AccountID == "" {
		opts.AccountID = "000000000000"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Registry{opts: opts, log: opts.Logger, funcs: map[string]*function{}}
}

// Register adds (or replaces) the function name with the default timeout.
func (r *Registry) Register(name string, handler any) {
	r.RegisterFunction(Function{Name: name, Handler: handler})
}

// RegisterFunction adds (or replaces) a function with its settings.
func (r *Registry) RegisterFunction(f Function) {
	if f.Timeout <= 0 {
		f.Timeout = DefaultTimeout
	}
	fn := &function{Function: f, arn: r.ARN(f.Name), handler: NewHandler(f.Handler)}
	if f.ReservedConcurrency > 0 {
		fn.sem = make(chan struct{}, f.ReservedConcurrency)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.funcs[f.Name] = fn
}

// ARN returns the function ARN of name.
func (r *Registry) ARN(name string) string {
	return "arn:aws:lambda:" + r.opts.Region + ":" + r.opts.AccountID + ":function:" + name
}

// Names lists the registered functions.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.funcs))
	for n := range r.funcs {
		out = append(out, n)
	}
	return out
}

// functionName accepts a name, `name:qualifier`, a partial ARN (`123456789012:function:name`)
// or a full ARN, as Lambda does.
func functionName(ref string) string {
	if i := strings.Index(ref, "function:"); i >= 0 {
		ref = ref[i+len("function:"):]
	}
	name, _, _ := strings.Cut(ref, ":")
	return name
}

// NotFoundError is the error for an unknown function.
type NotFoundError struct{ ARN string }

func (e *NotFoundError) Error() string {
	return "ResourceNotFoundException: Function not found: " + e.ARN
}

// Unwrap makes errors.Is(err, ErrFunctionNotFound) true.
func (e *NotFoundError) Unwrap() error { return ErrFunctionNotFound }

// Invoke runs the function synchronously. A handler error (or panic, or timeout)
// yields a *invoke.FunctionError; an unknown function a *NotFoundError. Invoke is the
// in-process path (Step Functions, the bus): the Lambda service's injected faults apply to
// it here, as the endpoint applies them to calls over HTTP.
func (r *Registry) Invoke(ctx context.Context, name string, payload []byte) ([]byte, error) {
	f := r.opts.Faults.Request(fault.ServiceLambda, "Invoke")
	if f.Latency > 0 {
		if err := sleep(ctx, f.Latency); err != nil {
			return nil, err
		}
	}
	switch f.Kind {
	case fault.KindThrottle:
		return nil, fmt.Errorf("%w: Rate Exceeded. (injected fault)", ErrTooManyRequests)
	case fault.KindServerError:
		return nil, fmt.Errorf("%w: the Lambda service failed the call (injected fault)", ErrServiceFault)
	case fault.KindTimeout:
		if err := sleep(ctx, f.TimeoutAfter); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: the call timed out (injected fault)", ErrServiceFault)
	}
	out, _, err := r.invoke(ctx, name, payload)
	return out, err
}

func (r *Registry) lookup(ref string) (*function, error) {
	name := functionName(ref)
	r.mu.RLock()
	fn := r.funcs[name]
	r.mu.RUnlock()
	if fn == nil {
		return nil, &NotFoundError{ARN: r.ARN(name)}
	}
	return fn, nil
}

func (r *Registry) invoke(ctx context.Context, ref string, payload []byte) ([]byte, string, error) {
	fn, err := r.lookup(ref)
	if err != nil {
		return nil, "", err
	}
	if len(payload) > invoke.MaxSyncRequestBytes {
		return nil, "", fmt.Errorf("%w: %s", invoke.ErrRequestTooLarge, invoke.RequestTooLargeMessage)
	}
	if fn.sem != nil {
		select {
		case fn.sem <- struct{}{}:
			defer func() { <-fn.sem }()
		default:
			return nil, "", fmt.Errorf("%w: Rate Exceeded. (reserved concurrency %d of %s)", ErrTooManyRequests, fn.ReservedConcurrency, fn.Name)
		}
	}
	reqID := uuid.Must(uuid.NewV4()).String()
	ictx, cancel := context.WithTimeout(ctx, fn.Timeout)
	defer cancel()
	ictx = lambdacontext.NewContext(ictx, &lambdacontext.LambdaContext{AwsRequestID: reqID, InvokedFunctionArn: fn.arn})

	crash := r.opts.Faults.Invocation(fn.Name)
	if crash.Point == fault.PointStart {
		return nil, reqID, crashError(reqID)
	}
	if crash.Point == fault.PointRandom {
		// The process dies at that moment: whatever the handler is doing is cut off there.
		var stop context.CancelFunc
		ictx, stop = context.WithTimeout(ictx, crash.After)
		defer stop()
	}

	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		defer func() {
			if v := recover(); v != nil {
				r.log.Warn("lambda: handler panicked", "function", fn.Name, "request_id", reqID, "panic", fmt.Sprint(v))
				done <- result{err: &invoke.FunctionError{Type: typeName(v), Message: fmt.Sprint(v), StackTrace: stack()}}
			}
		}()
		out, err := fn.handler.Invoke(ictx, payload)
		done <- result{out: out, err: err}
	}()
	if crash.Point != "" {
		// Crashed at the end or at a random point: the handler's answer, if any, is lost.
		select {
		case <-done:
		case <-ctx.Done():
			return nil, reqID, fmt.Errorf("lambda: invoke %s: %w", fn.Name, ctx.Err())
		}
		return nil, reqID, crashError(reqID)
	}
	select {
	case res := <-done:
		if res.err != nil {
			return nil, reqID, functionError(res.err)
		}
		if len(res.out) > invoke.MaxSyncResponseBytes {
			r.log.Warn("lambda: response over the synchronous payload quota", "function", fn.Name, "request_id", reqID, "bytes", len(res.out))
			return nil, reqID, &invoke.FunctionError{Type: invoke.ResponseTooLargeType,
				Message: fmt.Sprintf("Response payload size (%d bytes) exceeded maximum allowed payload size (%d bytes).", len(res.out), invoke.MaxSyncResponseBytes)}
		}
		return res.out, reqID, nil
	case <-ictx.Done():
		if ctx.Err() != nil {
			return nil, reqID, fmt.Errorf("lambda: invoke %s: %w", fn.Name, ctx.Err())
		}
		return nil, reqID, &invoke.FunctionError{Type: "Sandbox.Timedout",
			Message: fmt.Sprintf("%s %s Task timed out after %.2f seconds", time.Now().UTC().Format(time.RFC3339), reqID, time.Since(start).Seconds())}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CrashErrorType is the error type of an invocation whose runtime crashed.
const CrashErrorType = "Runtime.ExitError"

// crashError is what Lambda reports for an invocation whose runtime process died.
func crashError(reqID string) *invoke.FunctionError {
	return &invoke.FunctionError{Type: CrashErrorType,
		Message: "RequestId: " + reqID + " Error: Runtime exited with error: signal: killed (injected fault)"}
}

// functionError shapes a handler's error as the Lambda Go runtime reports it.
func functionError(err error) *invoke.FunctionError {
	if fe, ok := invoke.AsFunctionError(err); ok {
		return fe
	}
	var ire messages.InvokeResponse_Error
	if errors.As(err, &ire) {
		return &invoke.FunctionError{Type: ire.Type, Message: ire.Message}
	}
	var irp *messages.InvokeResponse_Error
	if errors.As(err, &irp) && irp != nil {
		return &invoke.FunctionError{Type: irp.Type, Message: irp.Message}
	}
	return &invoke.FunctionError{Type: typeName(err), Message: err.Error()}
}

// typeName is the runtime's errorType: the value's type name, without package, pointer elided.
func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return "nil"
	}
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Name()
}

func stack() []string {
	lines := strings.Split(strings.TrimSpace(string(debug.Stack())), "\n")
	if len(lines) > 40 {
		lines = lines[:40]
	}
	return lines
}
