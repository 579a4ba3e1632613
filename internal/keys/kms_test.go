package keys_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/keys/keystest"
	"github.com/keyline/keyline/internal/testenv"
)

// fast retries so tests do not wait.
var fastOpts = keys.Options{MaxAttempts: 4, BaseDelay: time.Millisecond, MaxDelay: 4 * time.Millisecond}

func newKey(t *testing.T) (*kms.Client, string) {
	t.Helper()
	c, _ := testenv.KMS(t)
	return c, testenv.NewKMSKey(t, c)
}

func wantClass(t *testing.T, err error, sentinel error, code string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("err = %v, want %v", err, sentinel)
	}
	var ke *keys.KeyError
	if !errors.As(err, &ke) {
		t.Fatalf("err %T is not a *KeyError", err)
	}
	if code != "" && ke.Code != code {
		t.Fatalf("code = %q, want %q (err %v)", ke.Code, code, err)
	}
}

func TestKMSEnabledRoundTrip(t *testing.T) {
	ctx := context.Background()
	c, arn := newKey(t)
	p := keys.NewKMS(c, fastOpts)
	encCtx := keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeData)
	dk, err := p.GenerateDataKey(ctx, arn, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if len(dk.Plaintext()) != 32 || len(dk.Wrapped) == 0 || dk.KeyARN != arn || dk.EncryptionContext["keyline:app"] != "app-1" {
		t.Fatalf("bad data key %v (%d-byte plaintext)", dk, len(dk.Plaintext()))
	}
	back, err := p.Decrypt(ctx, arn, dk.Wrapped, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back.Plaintext(), dk.Plaintext()) {
		t.Fatal("Decrypt returned another key")
	}
	if err := p.Check(ctx, "org-1", arn); err != nil {
		t.Fatalf("Check of an enabled key: %v", err)
	}
	// The context is bound: another org, app, generation or purpose cannot unwrap it.
	for _, other := range []map[string]string{
		keys.EncryptionContext("org-2", "app-1", 1, keys.PurposeData),
		keys.EncryptionContext("org-1", "app-2", 1, keys.PurposeData),
		keys.EncryptionContext("org-1", "app-1", 2, keys.PurposeData),
		keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeBackup),
	} {
		_, err := p.Decrypt(ctx, arn, dk.Wrapped, other)
		wantClass(t, err, keys.ErrBadRequest, "InvalidCiphertextException")
	}
	// A different key cannot unwrap it either (local-kms says InvalidCiphertext where AWS says
	// IncorrectKey; both are bad requests, not revocations).
	other := testenv.NewKMSKey(t, c)
	_, err = p.Decrypt(ctx, other, dk.Wrapped, encCtx)
	wantClass(t, err, keys.ErrBadRequest, "")
	// Missing arguments are refused before any call.
	_, err = p.GenerateDataKey(ctx, arn, nil)
	wantClass(t, err, keys.ErrBadRequest, "MissingEncryptionContext")
	_, err = p.Decrypt(ctx, "", dk.Wrapped, encCtx)
	wantClass(t, err, keys.ErrBadRequest, "MissingKeyId")
}

// TestKMSKeyStates walks a key through the states local-kms implements. Every refusal is
// revoked-class and made exactly once (never retried).
func TestKMSKeyStates(t *testing.T) {
	ctx := context.Background()
	c, arn := newKey(t)
	proxy := newFaultProxy(t, 0, 0, "")
	pc := kms.NewFromConfig(testenv.KMSConfig(t, proxy.url))
	p := keys.NewKMS(pc, fastOpts)
	encCtx := keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeData)
	dk, err := p.GenerateDataKey(ctx, arn, encCtx)
	if err != nil {
		t.Fatal(err)
	}

	revokedEverywhere := func(state, code string) {
		t.Helper()
		proxy.requests.Store(0)
		_, err := p.GenerateDataKey(ctx, arn, encCtx)
		wantClass(t, err, keys.ErrRevoked, code)
		if n := proxy.requests.Load(); n != 1 {
			t.Fatalf("%s: GenerateDataKey made %d requests, want 1 (revoked must not be retried)", state, n)
		}
		_, err = p.Decrypt(ctx, arn, dk.Wrapped, encCtx)
		wantClass(t, err, keys.ErrRevoked, code)
		err = p.Check(ctx, "org-1", arn)
		wantClass(t, err, keys.ErrRevoked, "KeyState:"+state)
	}

	if _, err := c.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	revokedEverywhere("Disabled", "DisabledException")

	if _, err := c.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if err := p.Check(ctx, "org-1", arn); err != nil {
		t.Fatalf("Check after EnableKey: %v", err)
	}
	back, err := p.Decrypt(ctx, arn, dk.Wrapped, encCtx)
	if err != nil || !bytes.Equal(back.Plaintext(), dk.Plaintext()) {
		t.Fatalf("Decrypt after EnableKey: %v", err)
	}

	if _, err := c.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	revokedEverywhere("PendingDeletion", "KMSInvalidStateException")

	missing := "arn:aws:kms:us-east-1:111122223333:key/00000000-0000-4000-8000-000000000000"
	_, err = p.GenerateDataKey(ctx, missing, encCtx)
	wantClass(t, err, keys.ErrRevoked, "NotFoundException")
	_, err = p.Decrypt(ctx, missing, dk.Wrapped, encCtx)
	wantClass(t, err, keys.ErrRevoked, "NotFoundException")
	err = p.Check(ctx, "org-1", missing)
	wantClass(t, err, keys.ErrRevoked, "NotFoundException")
}

// faultProxy forwards to local-kms after answering the first `fail` requests with an error.
type faultProxy struct {
	url      string
	requests atomic.Int64
	failures atomic.Int64
}

func newFaultProxy(t *testing.T, fail int64, status int, body string) *faultProxy {
	t.Helper()
	_, endpoint := testenv.KMS(t)
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	fp := &faultProxy{}
	fp.failures.Store(fail)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fp.requests.Add(1)
		if fp.failures.Add(-1) >= 0 {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/x-amz-json-1.1")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	fp.url = srv.URL
	return fp
}

func TestKMSTransientRetried(t *testing.T) {
	ctx := context.Background()
	_, arn := newKey(t)
	encCtx := keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeBackup)
	faults := []struct {
		status int
		code   string
	}{
		{400, "ThrottlingException"},
		{400, "LimitExceededException"},
		{500, "KMSInternalException"},
		{503, "DependencyTimeoutException"},
		{502, "SomethingNew"}, // unknown 5xx: transient
	}
	for _, f := range faults {
		t.Run(f.code, func(t *testing.T) {
			// Fails 3 times, then succeeds on the 4th attempt (MaxAttempts 4).
			proxy := newFaultProxy(t, 3, f.status, `{"__type":"`+f.code+`","message":"injected"}`)
			p := keys.NewKMS(kms.NewFromConfig(testenv.KMSConfig(t, proxy.url)), fastOpts)
			dk, err := p.GenerateDataKey(ctx, arn, encCtx)
			if err != nil {
				t.Fatalf("after 3 transient failures: %v", err)
			}
			if n := proxy.requests.Load(); n != 4 {
				t.Fatalf("%d requests, want 4", n)
			}
			dk.Destroy()

			// Fails more often than allowed: a transient error after exactly MaxAttempts.
			proxy.failures.Store(100)
			proxy.requests.Store(0)
			_, err = p.Decrypt(ctx, arn, []byte("x"), encCtx)
			wantClass(t, err, keys.ErrTransient, f.code)
			if n := proxy.requests.Load(); n != 4 {
				t.Fatalf("%d requests, want 4", n)
			}
		})
	}
}

func TestKMSBadRequestNotRetried(t *testing.T) {
	_, arn := newKey(t)
	proxy := newFaultProxy(t, 1, 400, `{"__type":"InvalidCiphertextException","message":"injected"}`)
	p := keys.NewKMS(kms.NewFromConfig(testenv.KMSConfig(t, proxy.url)), fastOpts)
	_, err := p.Decrypt(context.Background(), arn, []byte("x"), map[string]string{"a": "b"})
	wantClass(t, err, keys.ErrBadRequest, "InvalidCiphertextException")
	if n := proxy.requests.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestKMSNetworkErrorTransient(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	p := keys.NewKMS(kms.NewFromConfig(testenv.KMSConfig(t, "http://"+addr)), fastOpts)
	_, err = p.GenerateDataKey(context.Background(), "arn:aws:kms:us-east-1:111122223333:key/x", map[string]string{"a": "b"})
	wantClass(t, err, keys.ErrTransient, "")
	if errors.Is(err, keys.ErrRevoked) {
		t.Fatal("a network error must never look revoked")
	}
}

func TestKMSRetryHonoursContext(t *testing.T) {
	_, arn := newKey(t)
	proxy := newFaultProxy(t, 1<<30, 503, `{"__type":"KMSInternalException","message":"injected"}`)
	p := keys.NewKMS(kms.NewFromConfig(testenv.KMSConfig(t, proxy.url)),
		keys.Options{MaxAttempts: 10, BaseDelay: time.Hour, MaxDelay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.GenerateDataKey(ctx, arn, map[string]string{"a": "b"})
	if time.Since(start) > 10*time.Second {
		t.Fatalf("retry ignored the context (%v)", time.Since(start))
	}
	wantClass(t, err, keys.ErrTransient, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want it to carry DeadlineExceeded", err)
	}
}

func TestClassify(t *testing.T) {
	cases := map[string]keys.Class{
		"DisabledException": keys.ClassRevoked, "KMSInvalidStateException": keys.ClassRevoked,
		"AccessDeniedException": keys.ClassRevoked, "NotFoundException": keys.ClassRevoked,
		"KeyUnavailableException": keys.ClassRevoked,
		"ThrottlingException":     keys.ClassTransient, "LimitExceededException": keys.ClassTransient,
		"KMSInternalException": keys.ClassTransient, "DependencyTimeoutException": keys.ClassTransient,
		"InvalidCiphertextException": keys.ClassBadRequest, "IncorrectKeyException": keys.ClassBadRequest,
		"InvalidKeyUsageException": keys.ClassBadRequest, "ValidationException": keys.ClassBadRequest,
	}
	for code, want := range cases {
		ke := keys.Classify("Decrypt", "arn:k", &smithy.GenericAPIError{Code: code, Message: "m"})
		if ke.Class != want || ke.Code != code || ke.Op != "Decrypt" || ke.KeyARN != "arn:k" {
			t.Errorf("%s: got %+v, want class %s", code, ke, want)
		}
		if !strings.Contains(ke.Error(), code) {
			t.Errorf("%s: message %q lacks the code", code, ke.Error())
		}
	}
	if c := keys.Classify("Decrypt", "k", context.DeadlineExceeded).Class; c != keys.ClassTransient {
		t.Errorf("deadline: %s", c)
	}
}

func TestCounting(t *testing.T) {
	ctx := context.Background()
	c, arn := newKey(t)
	p := keystest.Counting(keys.NewKMS(c, fastOpts))
	encCtx := keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeData)
	dk, err := p.GenerateDataKey(ctx, arn, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := p.Decrypt(ctx, arn, dk.Wrapped, encCtx); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Check(ctx, "org-1", arn); err != nil {
		t.Fatal(err)
	}
	got := p.Counts()
	if got != (keystest.CallCounts{GenerateDataKey: 1, Decrypt: 3, Check: 1}) || got.Total() != 5 {
		t.Fatalf("counts = %+v", got)
	}
	p.Reset()
	if p.Counts().Total() != 0 {
		t.Fatal("Reset did not reset")
	}
}

// TestCheckRunsInTheOrgsContext: the key check is made in the org's encryption context, and a
// check without an org is refused before any KMS call.
func TestCheckRunsInTheOrgsContext(t *testing.T) {
	ctx := context.Background()
	kc, arn := newKey(t)
	p := keys.NewKMS(kc, keys.Options{})
	if err := p.Check(ctx, "", arn); !errors.Is(err, keys.ErrBadRequest) {
		t.Fatalf("Check without an org: %v, want a bad-request error", err)
	}
	if err := p.Check(ctx, "org-1", arn); err != nil {
		t.Fatalf("Check in org-1's context: %v", err)
	}
}
