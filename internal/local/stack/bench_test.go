package stack

// The `make bench` figures of issue 5 that need the whole local deployment, and the test
// that guards one of them (kms_calls_per_backup). One stack serves every benchmark and
// test of this file set (bench_*_test.go), started once per test binary.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/local/endpoint"
)

// benchEnv is the shared local deployment with a KMS call recorder in front of its KMS.
type benchEnv struct {
	st   *Stack
	dir  string
	kms  *kmsRecorder
	op   *api.Client // operator
	org  *api.Client // the org's token
	orgs string      // the org every benchmark app belongs to
}

var (
	benchOnce sync.Once
	benchVal  *benchEnv
	benchErr  error
)

// TestMain stops the shared deployment (if one was started) and removes its data
// directory, which holds the gigabyte of the backup benchmark.
func TestMain(m *testing.M) {
	code := m.Run()
	if benchVal != nil {
		benchVal.st.Close()
		_ = os.RemoveAll(benchVal.dir)
	}
	os.Exit(code)
}

// sharedBench starts (once) the deployment the benchmarks share.
func sharedBench(tb testing.TB) *benchEnv {
	tb.Helper()
	benchOnce.Do(func() { benchVal, benchErr = startBench(context.Background()) })
	if benchErr != nil {
		tb.Fatalf("starting the local deployment: %v", benchErr)
	}
	return benchVal
}

func startBench(ctx context.Context) (*benchEnv, error) {
	dir, err := os.MkdirTemp("", "keyline-bench-*")
	if err != nil {
		return nil, err
	}
	// Errors are logged (a benchmark that fails on a 5xx shows its cause in .local/bench.txt);
	// KEYLINE_BENCH_LOG=1 logs everything.
	level := slog.LevelError
	if os.Getenv("KEYLINE_BENCH_LOG") != "" {
		level = slog.LevelInfo
	}
	// DynamoDB Local keeps its tables in memory, as in `make test`: the figures measure
	// keyline, not the host's fsync (on disk, the 100,000 apps of BenchmarkKeyState take
	// over an hour to write on a small machine).
	st, err := Start(ctx, Options{
		DataDir: dir, Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", Seed: SeedNone, DynamoDBInMemory: true,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
	})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	e := &benchEnv{st: st, dir: dir, kms: &kmsRecorder{next: st.KMS}}
	// Every KMS request of every client of the stack (in-process functions, the console,
	// `keyline invoke` subprocesses) reaches the endpoint's router: record them there.
	st.router.Register(endpoint.ServiceKMS, e.kms)
	e.op = &api.Client{Base: st.Console, Token: st.OperatorToken, HTTP: &http.Client{Timeout: 10 * time.Minute}}
	e.orgs = fmt.Sprintf("bench-%d", time.Now().UnixNano()%1e9)
	if err := e.op.Expect(ctx, 201, "POST", "/v1/orgs", map[string]any{"orgId": e.orgs, "name": "Bench", "accounts": []string{CustomerAccount}}, nil); err != nil {
		st.Close()
		return nil, err
	}
	var tok struct{ Token string }
	if err := e.op.Expect(ctx, 201, "POST", "/v1/orgs/"+e.orgs+"/tokens", map[string]string{}, &tok); err != nil {
		st.Close()
		return nil, err
	}
	e.org = e.op.As(tok.Token)
	return e, nil
}

// newKey creates a customer key in the customer's account, with keyline's key policy for
// the bench org, through the endpoint.
func (e *benchEnv) newKey(ctx context.Context, what string) (string, error) {
	return e.st.CreateCustomerKey(ctx, CustomerAccount, e.orgs, "keyline bench: "+what, false)
}

// newCMKApp creates a CMK app on a fresh key through the console.
func (e *benchEnv) newCMKApp(ctx context.Context, prefix string) (app, key string, err error) {
	if key, err = e.newKey(ctx, prefix); err != nil {
		return "", "", err
	}
	app = fmt.Sprintf("%s-%d", prefix, time.Now().UnixNano()%1e12)
	err = e.org.Expect(ctx, 201, "POST", "/v1/apps", map[string]string{"appId": app, "orgId": e.orgs, "keyModel": "cmk", "keyArn": key}, nil)
	return app, key, err
}

// kmsCall is one KMS request as the endpoint received it.
type kmsCall struct {
	Op      string
	KeyID   string
	Context map[string]string
	At      time.Time
}

// kmsRecorder records every KMS request (operation, key, encryption context) and passes
// it on unchanged.
type kmsRecorder struct {
	next  http.Handler
	mu    sync.Mutex
	calls []kmsCall
}

func (k *kmsRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 2<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		KeyID             string            `json:"KeyId"`
		EncryptionContext map[string]string `json:"EncryptionContext"`
	}
	_ = json.Unmarshal(body, &req)
	op := r.Header.Get("X-Amz-Target")
	if i := strings.LastIndexByte(op, '.'); i >= 0 {
		op = op[i+1:]
	}
	k.mu.Lock()
	k.calls = append(k.calls, kmsCall{Op: op, KeyID: req.KeyID, Context: req.EncryptionContext, At: time.Now()})
	k.mu.Unlock()
	k.next.ServeHTTP(w, r)
}

// mark returns a position to pass to since.
func (k *kmsRecorder) mark() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.calls)
}

// forApp returns the calls after mark made for the app: those with the app's encryption
// context, and those naming the app's key (keyARN) with no app in their context.
func (k *kmsRecorder) forApp(mark int, appID, keyARN string) []kmsCall {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []kmsCall
	for _, c := range k.calls[mark:] {
		app, hasApp := c.Context[keys.ContextKeyApp]
		if app == appID || (!hasApp && keyARN != "" && c.KeyID == keyARN) {
			out = append(out, c)
		}
	}
	return out
}

func describeCalls(calls []kmsCall) string {
	var parts []string
	for _, c := range calls {
		parts = append(parts, fmt.Sprintf("%s(ctx %v)", c.Op, c.Context))
	}
	return strings.Join(parts, ", ")
}

// parallel runs fn(i) for i in [0,n) with at most par at once; the first error wins.
func parallel(ctx context.Context, n, par int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range min(par, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if first == nil && ctx.Err() != nil {
		first = ctx.Err()
	}
	return first
}

// backupOnce runs an on-demand backup of the app through the console and waits for it:
// POST /v1/apps/{id}/backups, then the execution until it ends.
func (e *benchEnv) backupOnce(ctx context.Context, app string, poll time.Duration) (time.Duration, error) {
	start := time.Now()
	arn, err := e.org.Start(ctx, "/v1/apps/"+app+"/backups", map[string]string{})
	if err != nil {
		return 0, err
	}
	c := *e.org
	c.Poll = poll
	ex, err := c.Wait(ctx, arn)
	if err != nil {
		return 0, err
	}
	if ex.Status != api.StatusSucceeded {
		return 0, fmt.Errorf("backup execution %s ended %s: %s: %s", arn, ex.Status, ex.Error, ex.Cause)
	}
	// The per-app result must be a recorded backup, not a skip.
	if !strings.Contains(string(ex.Output), `"RECORDED"`) {
		return 0, fmt.Errorf("backup execution %s succeeded without recording the backup: %s", arn, ex.Output)
	}
	return time.Since(start), nil
}

// TestKMSCallsPerBackup guards kms_calls_per_backup: one backup of a small CMK app, end
// to end through the console and the backup state machine, makes exactly one KMS call
// (the backup's GenerateDataKey), counted at the endpoint.
func TestKMSCallsPerBackup(t *testing.T) {
	e := sharedBench(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	app, key, err := e.newCMKApp(ctx, "kmscount")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		body := strings.Repeat(fmt.Sprintf("object %d;", i), 500)
		if err := e.org.Expect(ctx, 201, "PUT", fmt.Sprintf("/v1/apps/%s/objects/obj-%d", app, i), body, nil, "X-Keyline-Scope", "cmk"); err != nil {
			t.Fatal(err)
		}
	}
	mark := e.kms.mark()
	if _, err := e.backupOnce(ctx, app, 50*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	calls := e.kms.forApp(mark, app, key)
	if len(calls) != 1 || calls[0].Op != "GenerateDataKey" {
		t.Fatalf("one backup made %d KMS calls for the app, want exactly 1 GenerateDataKey: %s", len(calls), describeCalls(calls))
	}
	if calls[0].Context[keys.ContextKeyPurpose] != string(keys.PurposeBackup) {
		t.Errorf("the backup's data key has context %v, want purpose %s", calls[0].Context, keys.PurposeBackup)
	}
	var bs []api.Backup
	if err := e.org.Expect(ctx, 200, "GET", "/v1/apps/"+app+"/backups", nil, &bs); err != nil {
		t.Fatal(err)
	}
	if len(bs) != 1 || bs[0].SizeBytes <= 0 {
		t.Fatalf("backups after one backup: %+v", bs)
	}
}
