// Package invoke is the one seam through which the local runtime (event bus targets,
// Step Functions tasks, the console) runs a Lambda function, whatever runs it.
package invoke

import (
	"context"
	"errors"
	"fmt"
)

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
