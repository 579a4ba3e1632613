package console_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/testenv/logsink"
)

// report is one call of the revocation path.
type report struct {
	keyARN, cause string
	err           error
}

// recordingReporter stands in for the revocation path (B2): it records each report and
// answers with fail.
type recordingReporter struct {
	mu      sync.Mutex
	reports []report
	fail    error
}

func (r *recordingReporter) ReportRevoked(_ context.Context, keyARN, cause string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reports = append(r.reports, report{keyARN, cause, err})
	return r.fail
}

// take returns the reports made since the last take.
func (r *recordingReporter) take() []report {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.reports
	r.reports = nil
	return out
}

func (r *recordingReporter) failWith(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail = err
}

// faultyKMS answers Decrypt under chosen keys with an error code, as KMS does when it
// throttles or fails; every other call goes to the local KMS.
type faultyKMS struct {
	keys.KMSAPI
	mu    sync.Mutex
	codes map[string]string
}

func (f *faultyKMS) set(keyARN, code string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.codes[keyARN] = code
}

func (f *faultyKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	f.mu.Lock()
	code := f.codes[aws.ToString(in.KeyId)]
	f.mu.Unlock()
	if code != "" {
		return nil, &smithy.GenericAPIError{Code: code, Message: "injected " + code, Fault: smithy.FaultServer}
	}
	return f.KMSAPI.Decrypt(ctx, in, optFns...)
}

// B2: a request that meets a customer key's revoked-class KMS error (the console's object
// path) reports it to the revocation path with the key's ARN and the cause "console" before
// it answers 409 KeyUnusable, and a failed report changes no answer. The provider key, a
// transient KMS error and an ordinary conflict report nothing, and their answers stay what
// they were. Each request here surely meets KMS: the console's data-key cache holds a data key
// only once this process unwrapped it, and no request before the failing one unwrapped the
// key in question (the app's first write, or an object sealed by another process).
func TestRevokedCustomerKeyIsReported(t *testing.T) {
	rec := &recordingReporter{}
	faults := &faultyKMS{codes: map[string]string{}}
	logs := &logsink.Buffer{}
	e := setup(t, setupHooks{
		kms: func(k keys.KMSAPI) keys.KMSAPI { faults.KMSAPI = k; return faults },
		options: func(o *console.Options) {
			o.Revocations = rec
			o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(testWriter{t}, logs), nil))
		},
	})
	ctx := context.Background()
	acme := e.org("acme")
	newApp := func(id string) string {
		t.Helper()
		key := testenv.NewKMSKey(t, e.kms)
		e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": id, "orgId": "acme", "keyModel": "cmk", "keyArn": key}))
		return key
	}
	disable := func(key string) {
		t.Helper()
		if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
			t.Fatal(err)
		}
	}
	// keyUnusable checks the answer to a request that met the customer's refusing key: 409
	// KeyUnusable, naming nothing of the key (B10).
	keyUnusable := func(what string, r resp, key string) {
		t.Helper()
		if r.status != http.StatusConflict || r.errorCode(t) != "KeyUnusable" {
			t.Fatalf("%s: %d %s, want 409 KeyUnusable", what, r.status, r.body)
		}
		if body := string(r.body); strings.Contains(body, key) || strings.Contains(body, "Exception") {
			t.Fatalf("%s: the answer reveals the key: %s", what, body)
		}
	}
	reportedOnce := func(what, key string) {
		t.Helper()
		got := rec.take()
		if len(got) != 1 || got[0].keyARN != key || got[0].cause != console.RevocationCause || !errors.Is(got[0].err, keys.ErrRevoked) {
			t.Fatalf("%s: reports %+v, want one of %s with cause %q and a revoked-class error", what, got, key, console.RevocationCause)
		}
	}
	nothingReported := func(what string) {
		t.Helper()
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("%s reported %+v", what, got)
		}
	}

	// A write: the app's first, so its data key is unwrapped through KMS.
	writeKey := newApp("w")
	disable(writeKey)
	keyUnusable("a write under a disabled key", e.do("PUT", "/v1/apps/w/objects/a.txt", acme, "x"), writeKey)
	reportedOnce("a write under a disabled key", writeKey)

	// A read of an object another process sealed: this console never unwrapped its data key.
	readKey := newApp("r")
	elsewhere, err := objects.NewS3(objects.Config{S3: e.s3, Bucket: "data", Lineage: e.store,
		Keys: keys.NewKMS(e.kms, keys.Options{}), ProviderKeyARN: e.providerKey})
	if err != nil {
		t.Fatal(err)
	}
	defer elsewhere.Close()
	if _, err := elsewhere.Put(ctx, "r", objects.ScopeCMK, "a.txt", strings.NewReader("sealed elsewhere")); err != nil {
		t.Fatal(err)
	}
	disable(readKey)
	keyUnusable("a read under a disabled key", e.do("GET", "/v1/apps/r/objects/a.txt", acme, nil), readKey)
	reportedOnce("a read under a disabled key", readKey)

	// A failed report is logged with the request id and changes nothing in the answer.
	rec.failWith(errors.New("the revocation path is unavailable"))
	req, _ := http.NewRequest("PUT", e.url+"/v1/apps/w/objects/b.txt", strings.NewReader("x"))
	req.Header.Set("Authorization", "Bearer "+acme)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	keyUnusable("a write whose report failed", resp{res.StatusCode, body}, writeKey)
	reportedOnce("a write whose report failed", writeKey)
	reqID := res.Header.Get("X-Request-Id")
	var failed string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "reporting a revoked customer key failed") {
			failed = line
		}
	}
	if reqID == "" || !strings.Contains(failed, "requestId="+reqID) || !strings.Contains(failed, "the revocation path is unavailable") {
		t.Fatalf("the failed report of request %q is not logged with its id: %q", reqID, failed)
	}
	rec.failWith(nil)

	// An ordinary conflict: the app is deactivated already (its key revoked in the lineage).
	if _, err := e.store.RevokeKey(ctx, writeKey, "DisableKey", lineage.KeyEventRef{ID: "ev-conflict", Time: time.Now()},
		lineage.Cause{EventID: "ev-conflict"}); err != nil {
		t.Fatal(err)
	}
	if r := e.must(409, e.do("PUT", "/v1/apps/w/objects/c.txt", acme, "x")); r.errorCode(t) != "Conflict" {
		t.Fatalf("a write to a deactivated app: %s", r.body)
	}
	nothingReported("a write to a deactivated app")

	// Transient KMS errors (throttling, a KMS 5xx) never feed the revocation path.
	for i, code := range []string{"ThrottlingException", "KMSInternalException"} {
		app := "t" + string(rune('a'+i))
		key := newApp(app)
		faults.set(key, code)
		r := e.do("PUT", "/v1/apps/"+app+"/objects/a.txt", acme, "x")
		if r.status != http.StatusInternalServerError || r.errorCode(t) != "InternalError" {
			t.Fatalf("a write meeting %s: %d %s, want 500 InternalError", code, r.status, r.body)
		}
		nothingReported("a write meeting " + code)
	}

	// The provider key is keyline's own: its refusal is keyline's failure, not the customer's.
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "m", "orgId": "acme", "keyModel": "managed"}))
	disable(e.providerKey) // before the app's first write creates its managed-scope data key
	if r := e.do("PUT", "/v1/apps/m/objects/a.txt", acme, "x"); r.status != http.StatusInternalServerError || r.errorCode(t) != "InternalError" {
		t.Fatalf("a write under the disabled provider key: %d %s, want 500 InternalError", r.status, r.body)
	}
	nothingReported("a write under the disabled provider key")
}
