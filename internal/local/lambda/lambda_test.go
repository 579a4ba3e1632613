package lambda_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	lambdatypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"
	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/lambda"
)

type in struct {
	Name string `json:"name"`
}

type out struct {
	Greeting  string `json:"greeting"`
	RequestID string `json:"requestId"`
	ARN       string `json:"arn"`
	Deadline  bool   `json:"deadline"`
}

type appError struct{ Code string }

func (e *appError) Error() string { return "app failed: " + e.Code }

func registry() *lambda.Registry {
	r := lambda.New(lambda.Options{})
	r.Register("hello", func(ctx context.Context, e in) (out, error) {
		lc, _ := lambdacontext.FromContext(ctx)
		_, hasDeadline := ctx.Deadline()
		return out{Greeting: "hello " + e.Name, RequestID: lc.AwsRequestID, ARN: lc.InvokedFunctionArn, Deadline: hasDeadline}, nil
	})
	r.Register("plain-error", func(context.Context, in) (out, error) { return out{}, errors.New("boom") })
	r.Register("custom-error", func(context.Context) error { return &appError{Code: "E42"} })
	r.Register("panics", func(context.Context) error { panic("kaboom") })
	r.RegisterFunction(lambda.Function{Name: "slow", Timeout: 50 * time.Millisecond, Handler: func(ctx context.Context) error {
		<-ctx.Done()
		time.Sleep(10 * time.Millisecond)
		return ctx.Err()
	}})
	return r
}

func TestInvokeInProcess(t *testing.T) {
	r := registry()
	ctx := context.Background()
	b, err := r.Invoke(ctx, "hello", []byte(`{"name":"ada"}`))
	if err != nil {
		t.Fatal(err)
	}
	var o out
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	if o.Greeting != "hello ada" || len(o.RequestID) != 36 || o.ARN != "arn:aws:lambda:us-east-1:000000000000:function:hello" || !o.Deadline {
		t.Fatalf("context not passed: %+v", o)
	}
	// By ARN too.
	if _, err := r.Invoke(ctx, "arn:aws:lambda:us-east-1:000000000000:function:hello", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}

	cases := []struct{ fn, typ, msg string }{
		{"plain-error", "errorString", "boom"},
		{"custom-error", "appError", "app failed: E42"},
		{"panics", "string", "kaboom"},
		{"hello", "UnmarshalTypeError", ""}, // a payload that does not fit the handler's type, as in AWS
	}
	for _, c := range cases {
		payload := []byte(`{}`)
		if c.typ == "UnmarshalTypeError" {
			payload = []byte(`{"name": 5}`)
		}
		_, err := r.Invoke(ctx, c.fn, payload)
		fe, ok := invoke.AsFunctionError(err)
		if !ok || fe.Type != c.typ || (c.msg != "" && fe.Message != c.msg) {
			t.Errorf("%s: got %v, want %s %q", c.fn, err, c.typ, c.msg)
		}
	}

	_, err = r.Invoke(ctx, "slow", []byte(`{}`))
	fe, ok := invoke.AsFunctionError(err)
	if !ok || fe.Type != "Sandbox.Timedout" || !strings.Contains(fe.Message, "Task timed out after") {
		t.Fatalf("timeout: %v", err)
	}

	_, err = r.Invoke(ctx, "missing", []byte(`{}`))
	var nf *lambda.NotFoundError
	if !errors.Is(err, lambda.ErrFunctionNotFound) || !errors.As(err, &nf) ||
		err.Error() != "ResourceNotFoundException: Function not found: arn:aws:lambda:us-east-1:000000000000:function:missing" {
		t.Fatalf("unknown function: %v", err)
	}
}

func TestReservedConcurrency(t *testing.T) {
	r := lambda.New(lambda.Options{})
	release := make(chan struct{})
	started := make(chan struct{})
	r.RegisterFunction(lambda.Function{Name: "one", ReservedConcurrency: 1, Handler: func(ctx context.Context) error {
		close(started)
		<-release
		return nil
	}})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if _, err := r.Invoke(context.Background(), "one", []byte(`{}`)); err != nil {
			t.Errorf("first invocation: %v", err)
		}
	}()
	<-started
	_, err := r.Invoke(context.Background(), "one", []byte(`{}`))
	if !errors.Is(err, lambda.ErrTooManyRequests) {
		t.Fatalf("second concurrent invocation: %v", err)
	}
	close(release)
	wg.Wait()
}

func TestInvokeAPIWithSDKClient(t *testing.T) {
	srv := httptest.NewServer(registry())
	t.Cleanup(srv.Close)
	c := awslambda.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(srv.URL),
	})
	ctx := context.Background()
	res, err := c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("hello"), Payload: []byte(`{"name":"bob"}`)})
	if err != nil {
		t.Fatal(err)
	}
	var o out
	if err := json.Unmarshal(res.Payload, &o); err != nil || o.Greeting != "hello bob" || res.StatusCode != 200 || res.FunctionError != nil {
		t.Fatalf("Invoke: %v %s", err, res.Payload)
	}
	res, err = c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("arn:aws:lambda:us-east-1:000000000000:function:custom-error"), Payload: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	var fe invoke.FunctionError
	if res.FunctionError == nil || *res.FunctionError != "Unhandled" || json.Unmarshal(res.Payload, &fe) != nil ||
		fe.Type != "appError" || fe.Message != "app failed: E42" {
		t.Fatalf("function error: %v %s", res.FunctionError, res.Payload)
	}
	_, err = c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("missing"), Payload: []byte(`{}`)})
	var rnf *lambdatypes.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("missing function: %v", err)
	}
	_, err = c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("hello"), Payload: []byte(`{not json`)})
	var irc *lambdatypes.InvalidRequestContentException
	if !errors.As(err, &irc) {
		t.Fatalf("bad payload: %v", err)
	}
	ev, err := c.Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("hello"), InvocationType: lambdatypes.InvocationTypeEvent, Payload: []byte(`{}`)})
	if err != nil || ev.StatusCode != 202 {
		t.Fatalf("Event invocation: %v", err)
	}
}
