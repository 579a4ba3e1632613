package lambda_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/lambda"
)

// TestSynchronousPayloadQuotas: a request over 6 MB is refused before the handler runs
// (RequestTooLargeException), a response over 6 MB fails the invocation as
// Function.ResponseSizeTooLarge, and payloads at the limits pass.
func TestSynchronousPayloadQuotas(t *testing.T) {
	r := lambda.New(lambda.Options{})
	ran := 0
	r.Register("echo-size", func(_ context.Context, n int) (string, error) {
		ran++
		return strings.Repeat("x", n), nil
	})
	ctx := context.Background()
	// A JSON string of n bytes plus its two quotes.
	okOut := invoke.MaxSyncResponseBytes - 2
	if out, err := r.Invoke(ctx, "echo-size", []byte(itoa(okOut))); err != nil || len(out) != invoke.MaxSyncResponseBytes {
		t.Fatalf("response at the quota: %d bytes, %v", len(out), err)
	}
	_, err := r.Invoke(ctx, "echo-size", []byte(itoa(okOut+1)))
	fe, ok := invoke.AsFunctionError(err)
	if !ok || fe.Type != invoke.ResponseTooLargeType {
		t.Fatalf("response over the quota: %v, want %s", err, invoke.ResponseTooLargeType)
	}

	// Request: a number padded with spaces is still valid JSON.
	pad := func(n int) []byte { return append([]byte("1"), []byte(strings.Repeat(" ", n-1))...) }
	before := ran
	if _, err := r.Invoke(ctx, "echo-size", pad(invoke.MaxSyncRequestBytes)); err != nil {
		t.Fatalf("request at the quota: %v", err)
	}
	_, err = r.Invoke(ctx, "echo-size", pad(invoke.MaxSyncRequestBytes+1))
	if !errors.Is(err, invoke.ErrRequestTooLarge) {
		t.Fatalf("request over the quota: %v, want %v", err, invoke.ErrRequestTooLarge)
	}
	if ran != before+1 {
		t.Fatalf("the handler ran %d times, want once (the oversized request must not run it)", ran-before)
	}
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
