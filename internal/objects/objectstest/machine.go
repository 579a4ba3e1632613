package objectstest

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/invoke"
	locallambda "github.com/keyline/keyline/internal/local/lambda"
	"github.com/keyline/keyline/internal/local/states"
)

// Invoker runs handlers in process through aws-lambda-go's handler, so payloads and errors
// take the same JSON path as in AWS: an error's errorType is its Go type name.
func Invoker(handlers map[string]any) invoke.Invoker {
	hs := map[string]lambda.Handler{}
	for name, h := range handlers {
		// Safe for concurrent Map items (aws-lambda-go's own wrapper recycles its result).
		hs[name] = locallambda.NewHandler(h)
	}
	return invoke.InvokerFunc(func(ctx context.Context, fn string, payload []byte) ([]byte, error) {
		h, ok := hs[fn]
		if !ok {
			return nil, &invoke.FunctionError{Type: "ResourceNotFoundException", Message: "no function " + fn}
		}
		out, err := h.Invoke(ctx, payload)
		if err != nil {
			t := reflect.TypeOf(err)
			if t.Kind() == reflect.Pointer {
				t = t.Elem()
			}
			return nil, &invoke.FunctionError{Type: t.Name(), Message: err.Error()}
		}
		return out, nil
	})
}

// RunMachine runs the deployment's state machine `name` (its ASL file, placeholders
// substituted with the function names) on the local interpreter with inv, and returns how it
// ended.
func RunMachine(t testing.TB, name string, input any, inv invoke.Invoker) states.Result {
	t.Helper()
	def := MachineDefinition(t, name)
	m, err := states.Parse(def)
	if err != nil {
		t.Fatalf("parse %s: %v", name, err)
	}
	in, err := json.Marshal(input)
	if err != nil {
		t.Fatal(err)
	}
	return m.Run(context.Background(), in, states.Options{
		Tasks:     &states.Integrations{Lambda: inv},
		Execution: states.ExecutionInfo{ID: "arn:aws:states:us-east-1:111122223333:execution:" + name + ":" + t.Name(), Name: t.Name(), StateMachineName: name},
	})
}

// MachineDefinition is the deployment's definition of the state machine name, its
// placeholders filled with their own names and each function's ARN with the function's name
// (what Invoker dispatches on).
func MachineDefinition(t testing.TB, name string) []byte {
	t.Helper()
	sm, ok := infra.Description().StateMachineNamed(name)
	if !ok {
		t.Fatalf("no state machine %s in the deployment", name)
	}
	raw, err := infra.ASL(sm)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, p := range infra.Placeholders(raw) {
		vars[p] = p
	}
	for _, fn := range sm.Functions {
		vars["Fn_"+fn] = fn
	}
	def, err := infra.Substitute(raw, vars)
	if err != nil {
		t.Fatal(err)
	}
	return def
}
