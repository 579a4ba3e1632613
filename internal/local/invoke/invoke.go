// Package invoke is the one seam through which the local runtime (event bus targets,
// Step Functions tasks, the console) runs a Lambda function, whatever runs it.
package invoke

import (
	"context"
	"errors"
	"fmt"
)

// Lambda's synchronous invocation quotas: the request payload may be 6 MB (6,291,456
// bytes); a response over 6,291,556 bytes fails the invocation with
// Function.ResponseSizeTooLarge.
const (
	MaxSyncRequestBytes  = 6 << 20
	MaxSyncResponseBytes = 6<<20 + 100
	// ResponseTooLargeType is the errorType of an invocation whose response is too large.
	ResponseTooLargeType = "Function.ResponseSizeTooLarge"
)

// ErrRequestTooLarge is wrapped by the error of an invocation whose request payload is
// over MaxSyncRequestBytes (Lambda's RequestTooLargeException, HTTP 413).
var ErrRequestTooLarge = errors.New("RequestTooLargeException")

// ErrTooManyRequests is wrapped by an Invoke error when Lambda throttles the call
// (Step Functions names it Lambda.TooManyRequestsException).
var ErrTooManyRequests = errors.New("TooManyRequestsException")

// RequestTooLargeMessage is Lambda's message for ErrRequestTooLarge.
var RequestTooLargeMessage = fmt.Sprintf("Request must be smaller than %d bytes for the InvokeFunction operation", MaxSyncRequestBytes)

// Invoker runs a function by name with a JSON payload and returns its JSON result.
// A function that returned an error yields a *FunctionError, shaped as AWS shapes it.
type Invoker interface {
	Invoke(ctx context.Context, function string, payload []byte) ([]byte, error)
}

// InvokerFunc adapts a function to Invoker.
type InvokerFunc func(ctx context.Context, function string, payload []byte) ([]byte, error)

// Invoke calls f.
func (f InvokerFunc) Invoke(ctx context.Context, function string, payload []byte) ([]byte, error) {
	return f(ctx, function, payload)
}

// FunctionError is a handler's error as AWS Lambda reports it
// (`{"errorType": "...", "errorMessage": "..."}`).
type FunctionError struct {
	Type       string   `json:"errorType"`
	Message    string   `json:"errorMessage"`
	StackTrace []string `json:"stackTrace,omitempty"`
}

func (e *FunctionError) Error() string { return fmt.Sprintf("%s: %s", e.Type, e.Message) }

// AsFunctionError reports whether err is (or wraps) a function error.
func AsFunctionError(err error) (*FunctionError, bool) {
	var fe *FunctionError
	ok := errors.As(err, &fe)
	return fe, ok
}
