package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/console"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/provision"
	"github.com/keyline/keyline/internal/secret/filesecret"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/reencrypt"
	"github.com/keyline/keyline/internal/workflow/restore"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const operatorToken = "operator-secret-for-tests-0123456789"

// operatorSecret keeps the tests' operator token in a 0600 file, as the local runtime does.
func operatorSecret(t testing.TB) filesecret.Source {
	t.Helper()
	path := filepath.Join(t.TempDir(), "operator-token")
	return writeOperatorSecret(t, path)
}

func writeOperatorSecret(t testing.TB, path string) filesecret.Source {
	t.Helper()
	if err := os.WriteFile(path, []byte(operatorToken+"\n"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	return filesecret.New(path)
}

// fakeExecutions records started executions: the console's part ends at StartExecution,
// and the state machines themselves are tested end to end elsewhere.
type fakeExecutions struct {
	mu      sync.Mutex
	started map[string]console.Execution
	machine map[string]string
}

// machineInputs are the input types of the state machines the console starts; an input
// with a field the machine's type does not have is refused, as a field nothing reads.
var machineInputs = map[string]func() any{
	"sm-backup":    func() any { return new(backup.ExecutionInput) },
	"sm-reencrypt": func() any { return new(reencrypt.State) }, // a request, or an operator's abort
	"sm-restore":   func() any { return new(restore.Input) },
}

func (f *fakeExecutions) Start(_ context.Context, machine, name string, input []byte) (string, error) {
	newIn, ok := machineInputs[machine]
	if !ok {
		return "", fmt.Errorf("no state machine %s", machine)
	}
	dec := json.NewDecoder(bytes.NewReader(input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(newIn()); err != nil {
		return "", fmt.Errorf("input of %s is not its machine's input type: %w: %s", machine, err, input)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	arn := "arn:aws:states:us-east-1:000000000000:execution:" + machine + ":" + name
	f.started[arn] = console.Execution{Status: "RUNNING", Input: string(input)}
	f.machine[arn] = machine
	return arn, nil
}

func (f *fakeExecutions) Describe(_ context.Context, arn string) (console.Execution, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ex, ok := f.started[arn]
	if !ok {
		return console.Execution{}, fmt.Errorf("no execution %s: %w", arn, console.ErrNoExecution)
	}
	return ex, nil
}

type env struct {
	clock *clocktest.Fake
	t     *testing.T
	url   string
	kms   *kms.Client
	execs *fakeExecutions
	store *lineage.Store
	s3    *s3.Client
	// operatorSecretPath is the 0600 file the operator token is read from.
	operatorSecretPath string
	// providerKey is the provider key's ARN.
	providerKey string
}

// setupHooks change what setup builds: the KMS client the server's key provider calls, and
// the server's options.
type setupHooks struct {
	kms     func(keys.KMSAPI) keys.KMSAPI
	options func(*console.Options)
}

func setup(t *testing.T, hooks ...setupHooks) *env {
	t.Helper()
	ctx := context.Background()
	ddb := testenv.DynamoDB(t)
	table := testenv.NewTable(t, ddb)
	kmsClient, _ := testenv.KMS(t)
	s3env := testenv.S3(t, "data")
	clk := clocktest.NewFake(time.Now())
	store := lineage.New(ddb, table, lineage.Options{Clock: clk})
	var kmsAPI keys.KMSAPI = kmsClient
	for _, h := range hooks {
		if h.kms != nil {
			kmsAPI = h.kms(kmsAPI)
		}
	}
	kp := keys.NewKMS(kmsAPI, keys.Options{})
	providerKey := testenv.NewKMSKey(t, kmsClient)
	src, err := objects.NewS3(objects.Config{S3: s3env.Client, Bucket: "data", Lineage: store, Keys: kp, ProviderKeyARN: providerKey})
	if err != nil {
		t.Fatal(err)
	}
	opSecret := operatorSecret(t)
	tokens, err := console.NewTokens(store, opSecret, clk.Now)
	if err != nil {
		t.Fatal(err)
	}
	execs := &fakeExecutions{started: map[string]console.Execution{}, machine: map[string]string{}}
	reactivations, err := revocation.New(revocation.Config{Store: store, Keys: kp, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	opts := console.Options{
		Store: store, Objects: src, Tokens: tokens, Executions: execs,
		Provision:     &provision.Provisioner{Store: store, Keys: kp, ProviderKeyARN: providerKey},
		Machines:      console.StateMachines{Backup: "sm-backup", Reencrypt: "sm-reencrypt", Restore: "sm-restore"},
		Restores:      console.RestoreRules{Store: store, Keys: kp},
		Reactivations: reactivations,
		Logger:        slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Now:           clk.Now,
	}
	for _, h := range hooks {
		if h.options != nil {
			h.options(&opts)
		}
	}
	srv := console.New(opts)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	_ = ctx
	return &env{t: t, url: hs.URL, kms: kmsClient, execs: execs, store: store, clock: clk, s3: s3env.Client, operatorSecretPath: opSecret.Path(),
		providerKey: providerKey}
}

type resp struct {
	status int
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("answer is not JSON: %v: %s", err, r.body)
	}
}

func (r resp) errorCode(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	r.json(t, &e)
	if e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("error answer without code and message: %s", r.body)
	}
	return e.Error.Code
}

func (e *env) do(method, path, token string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, b}
}

// doQuiet sends a JSON request from any goroutine and returns the status (0 when it failed).
func (e *env) doQuiet(method, path, token string, body any) int {
	j, _ := json.Marshal(body)
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(j))
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

func (e *env) must(want int, r resp) resp {
	e.t.Helper()
	if r.status != want {
		e.t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	return r
}

// org creates an org enrolling the test KMS's account and returns a token for it.
func (e *env) org(id string) string {
	e.t.Helper()
	return e.orgWith(id, map[string]any{"accounts": []string{testenv.KMSAccountID}})
}

// foreignOrg creates an org enrolling an account of its own, derived from its id, in which the
// tests' KMS holds no key (an AWS account belongs to one org), and returns a token for it.
func (e *env) foreignOrg(id string) string {
	e.t.Helper()
	h := fnv.New64a()
	h.Write([]byte(id))
	return e.orgWith(id, map[string]any{"accounts": []string{fmt.Sprintf("9%011d", h.Sum64()%100_000_000_000)}})
}

// orgWith creates an org with the given enrolment fields and returns a token for it.
func (e *env) orgWith(id string, fields map[string]any) string {
	e.t.Helper()
	body := map[string]any{"orgId": id, "name": "Org " + id}
	for k, v := range fields {
		body[k] = v
	}
	e.must(201, e.do("POST", "/v1/orgs", operatorToken, body))
	var tok struct{ Token string }
	e.must(201, e.do("POST", "/v1/orgs/"+id+"/tokens", operatorToken, map[string]string{})).json(e.t, &tok)
	if !strings.HasPrefix(tok.Token, "klo_") {
		e.t.Fatalf("token %q", tok.Token)
	}
	return tok.Token
}

func TestAuthentication(t *testing.T) {
	e := setup(t)
	if got := e.must(401, e.do("GET", "/v1/apps/x", "", nil)).errorCode(t); got != "Unauthorized" {
		t.Fatalf("code %s", got)
	}
	e.must(401, e.do("GET", "/v1/apps/x", "klo_not-a-real-token", nil))
	e.must(401, e.do("GET", "/v1/apps/x", "wrong", nil))
	// The operator's token without the Bearer scheme is not accepted.
	req, _ := http.NewRequest("GET", e.url+"/v1/apps/x", nil)
	req.Header.Set("Authorization", operatorToken)
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != 401 {
		t.Fatalf("a bare token: %v %v", res.StatusCode, err)
	}
	tok := e.org("acme")
	e.must(403, e.do("POST", "/v1/orgs", tok, map[string]string{"orgId": "evil", "name": "x"}))
	e.must(403, e.do("POST", "/v1/orgs/acme/tokens", tok, map[string]string{}))
	e.must(404, e.do("POST", "/v1/orgs/nope/tokens", operatorToken, map[string]string{}))
}

func TestAppLifecycleAndTenantIsolation(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	globex := e.foreignOrg("globex")
	cmkKey := testenv.NewKMSKey(t, e.kms)

	var app struct {
		AppID, OrgID, KeyModel, Status, StatusReason string
		ActiveGeneration                             int
	}
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "shop", "orgId": "acme", "keyModel": "cmk", "keyArn": cmkKey})).json(t, &app)
	if app.AppID != "shop" || app.KeyModel != "cmk" || app.Status != "ACTIVE" || app.ActiveGeneration != 1 {
		t.Fatalf("app %+v", app)
	}
	// An org cannot create apps in another org: the org does not exist for it.
	e.must(404, e.do("POST", "/v1/apps", globex, map[string]string{"appId": "steal", "orgId": "acme", "keyModel": "managed"}))
	e.must(201, e.do("POST", "/v1/apps", globex, map[string]string{"appId": "plant", "orgId": "globex"}))

	// Objects round trip, sealed at rest.
	e.must(201, e.do("PUT", "/v1/apps/shop/objects/orders/1.json", acme, `{"order":1}`))
	got := e.must(200, e.do("GET", "/v1/apps/shop/objects/orders/1.json", acme, nil))
	if string(got.body) != `{"order":1}` {
		t.Fatalf("object %q", got.body)
	}
	e.must(201, e.do("PUT", "/v1/apps/shop/objects/settings", acme, "managed data", "X-Keyline-Scope", "managed"))
	if b := e.must(200, e.do("GET", "/v1/apps/shop/objects/settings", acme, nil, "X-Keyline-Scope", "managed")).body; string(b) != "managed data" {
		t.Fatalf("managed object %q", b)
	}
	e.must(404, e.do("GET", "/v1/apps/shop/objects/missing", acme, nil))
	e.must(400, e.do("PUT", "/v1/apps/shop/objects/x", acme, "x", "X-Keyline-Scope", "public"))
	// A provider-managed app has no CMK scope.
	e.must(422, e.do("PUT", "/v1/apps/plant/objects/x", globex, "x", "X-Keyline-Scope", "cmk"))

	// The lineage.
	var gens []struct {
		Generation int
		KeyArn     string
		State      string
	}
	e.must(200, e.do("GET", "/v1/apps/shop/keys", acme, nil)).json(t, &gens)
	if len(gens) != 1 || gens[0].KeyArn != cmkKey || gens[0].State != "ACTIVE" {
		t.Fatalf("keys %+v", gens)
	}

	// On-demand backup starts the backup machine for this app only.
	var started struct{ ExecutionArn string }
	e.must(202, e.do("POST", "/v1/apps/shop/backups", acme, map[string]string{})).json(t, &started)
	if e.execs.machine[started.ExecutionArn] != "sm-backup" {
		t.Fatalf("backup started %q on %q", started.ExecutionArn, e.execs.machine[started.ExecutionArn])
	}
	var in struct{ AppIDs []string }
	_ = json.Unmarshal([]byte(e.execs.started[started.ExecutionArn].Input), &in)
	if len(in.AppIDs) != 1 || in.AppIDs[0] != "shop" {
		t.Fatalf("backup input %s", e.execs.started[started.ExecutionArn].Input)
	}
	var ex struct{ Status string }
	e.must(200, e.do("GET", "/v1/executions/"+started.ExecutionArn, acme, nil)).json(t, &ex)
	if ex.Status != "RUNNING" {
		t.Fatalf("execution %+v", ex)
	}
	e.must(200, e.do("GET", "/v1/executions/"+started.ExecutionArn, operatorToken, nil))
	// Another org cannot see it.
	e.must(404, e.do("GET", "/v1/executions/"+started.ExecutionArn, globex, nil))
	e.must(404, e.do("GET", "/v1/executions/arn:aws:states:us-east-1:000000000000:execution:x:y", acme, nil))

	// Every app route answers 404 to another org, exactly as for a missing app.
	routes := []struct{ method, path string }{
		{"GET", "/v1/apps/shop"}, {"GET", "/v1/apps/shop/keys"}, {"GET", "/v1/apps/shop/backups"},
		{"POST", "/v1/apps/shop/backups"}, {"POST", "/v1/apps/shop/reencryptions"}, {"POST", "/v1/apps/shop/restores"},
		{"GET", "/v1/apps/shop/audit"}, {"GET", "/v1/apps/shop/objects/orders/1.json"}, {"PUT", "/v1/apps/shop/objects/x"},
	}
	for _, r := range routes {
		other := e.do(r.method, r.path, globex, map[string]string{"keyArn": cmkKey, "backupId": "b"})
		missing := e.do(r.method, strings.Replace(r.path, "shop", "nosuchapp", 1), acme, map[string]string{"keyArn": cmkKey, "backupId": "b"})
		if other.status != 404 || missing.status != 404 {
			t.Errorf("%s %s: other org %d, missing app %d; want 404 for both", r.method, r.path, other.status, missing.status)
		}
	}
	// Restoring another org's backup into one's own app: the source app is not found.
	e.must(404, e.do("POST", "/v1/apps/plant/restores", globex, map[string]string{"backupId": "b", "sourceAppId": "shop"}))

	// Audit: app creation is on the trail, oldest first.
	var audit []lineage.AuditEntry
	e.must(200, e.do("GET", "/v1/apps/shop/audit", acme, nil)).json(t, &audit)
	if len(audit) == 0 || audit[0].Action != lineage.ActionAppCreated {
		t.Fatalf("audit %+v", audit)
	}
	if _, err := e.store.GetApp(ctx, "steal"); err == nil {
		t.Fatal("an org created an app in another org")
	}
}

func TestRefusalsAndBadInput(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	key := testenv.NewKMSKey(t, e.kms)

	bad := []struct {
		name, method, path string
		body               any
		want               int
	}{
		{"cmk without key", "POST", "/v1/apps", map[string]string{"appId": "a1", "orgId": "acme", "keyModel": "cmk"}, 400},
		{"cmk with a non-ARN", "POST", "/v1/apps", map[string]string{"appId": "a1", "orgId": "acme", "keyModel": "cmk", "keyArn": "alias/mine"}, 400},
		{"managed with a key", "POST", "/v1/apps", map[string]string{"appId": "a1", "orgId": "acme", "keyModel": "managed", "keyArn": key}, 400},
		{"unknown model", "POST", "/v1/apps", map[string]string{"appId": "a1", "orgId": "acme", "keyModel": "hsm"}, 400},
		{"bad app id", "POST", "/v1/apps", map[string]string{"appId": "../etc", "orgId": "acme"}, 400},
		{"unknown field", "POST", "/v1/apps", map[string]any{"appId": "a1", "orgId": "acme", "admin": true}, 400},
		{"not json", "POST", "/v1/apps", "{appId:", 400},
		{"trailing data", "POST", "/v1/apps", `{"appId":"a1","orgId":"acme"} {}`, 400},
		{"empty body", "POST", "/v1/apps", "", 400},
		{"array body", "POST", "/v1/apps", "[]", 400},
		{"no route", "GET", "/v1/nothing", nil, 404},
		{"wrong method", "DELETE", "/v1/apps/a1", nil, 404},
		{"execution not an ARN", "GET", "/v1/executions/xyz", nil, 400},
	}
	for _, b := range bad {
		r := e.do(b.method, b.path, acme, b.body)
		if r.status != b.want {
			t.Errorf("%s: status %d, want %d: %s", b.name, r.status, b.want, r.body)
			continue
		}
		r.errorCode(t)
	}
	if _, err := e.store.GetApp(ctx, "a1"); err == nil {
		t.Fatal("bad input created an app")
	}

	// A disabled customer key cannot back a new app (422), and nothing is created.
	if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	// The answer is the generic one: it reveals nothing about the key (B10).
	keyRefused(t, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "a2", "orgId": "acme", "keyModel": "cmk", "keyArn": key}), key)
	if _, err := e.store.GetApp(ctx, "a2"); err == nil {
		t.Fatal("an app was created on a disabled key")
	}

	// Re-encryption: managed apps are refused (R4), bad ARNs are 400, and a CMK app starts.
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "m1", "orgId": "acme"}))
	e.must(422, e.do("POST", "/v1/apps/m1/reencryptions", acme, map[string]string{"keyArn": key}))
	good := testenv.NewKMSKey(t, e.kms)
	next := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "c1", "orgId": "acme", "keyModel": "cmk", "keyArn": good}))
	e.must(400, e.do("POST", "/v1/apps/c1/reencryptions", acme, map[string]string{"keyArn": "nope"}))
	var st struct{ ExecutionArn string }
	e.must(202, e.do("POST", "/v1/apps/c1/reencryptions", acme, map[string]string{"keyArn": next}, "X-Request-Id", "req-1")).json(t, &st)
	if e.execs.machine[st.ExecutionArn] != "sm-reencrypt" {
		t.Fatalf("re-encryption started on %q", e.execs.machine[st.ExecutionArn])
	}

	// Restores: a missing backup is 404; a missing backupId is 400.
	e.must(404, e.do("POST", "/v1/apps/c1/restores", acme, map[string]string{"backupId": "nope"}))
	e.must(400, e.do("POST", "/v1/apps/c1/restores", acme, map[string]string{}))

	// Creating the same app twice with the same settings is idempotent; with others it is 409.
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "m1", "orgId": "acme"}))
	e.must(409, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "m1", "orgId": "acme", "keyModel": "cmk", "keyArn": good}))
}

func TestRestoreRefusedByRules(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	cmkKey := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "src", "orgId": "acme", "keyModel": "cmk", "keyArn": cmkKey}))
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "flat", "orgId": "acme"}))
	// A backup recorded under generation 1 of the CMK app.
	if _, err := e.store.AcquireBackupLease(ctx, "src", "test", 60e9); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RecordBackup(ctx, lineage.Backup{AppID: "src", ID: "b1", Generation: 1, KeyARN: cmkKey, ObjectKey: "backups/src/b1.klb", Digest: "00"}, "test", lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	var list []struct {
		BackupID   string
		Restorable bool
	}
	e.must(200, e.do("GET", "/v1/apps/src/backups", acme, nil)).json(t, &list)
	if len(list) != 1 || !list[0].Restorable {
		t.Fatalf("backups %+v", list)
	}
	// R3: a CMK backup never restores into a provider-managed app.
	r := e.must(422, e.do("POST", "/v1/apps/flat/restores", acme, map[string]string{"backupId": "b1", "sourceAppId": "src"}))
	if r.errorCode(t) != "TargetNotCMK" {
		t.Fatal(string(r.body))
	}
	// R7: the key is disabled now: refused with a reason naming it.
	if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(cmkKey)}); err != nil {
		t.Fatal(err)
	}
	r = e.do("POST", "/v1/apps/src/restores", acme, map[string]string{"backupId": "b1"})
	if r.status != 409 && r.status != 422 {
		t.Fatalf("restore under a disabled key: %d %s", r.status, r.body)
	}
	if len(e.execs.started) != 0 {
		t.Fatalf("a refused restore started an execution: %v", e.execs.started)
	}
	// With the key back, the restore starts and is recorded PENDING with its execution.
	if _, err := e.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(cmkKey)}); err != nil {
		t.Fatal(err)
	}
	var st struct{ ExecutionArn, RestoreID string }
	e.must(202, e.do("POST", "/v1/apps/src/restores", acme, map[string]string{"backupId": "b1"})).json(t, &st)
	rs, err := e.store.GetRestore(ctx, "src", st.RestoreID)
	if err != nil || rs.Status != lineage.RestorePending || rs.ExecutionArn != st.ExecutionArn {
		t.Fatalf("restore %+v, %v", rs, err)
	}
}

// testWriter sends the console's logs to the test log, so a failure shows why.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Past the reactivation window only the operator brings an app back (B1), and only once
// its key passes the test round trip.
func TestOperatorReactivation(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	key := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "late", "orgId": "acme", "keyModel": "cmk", "keyArn": key}))
	// Not deactivated: nothing to reactivate.
	e.must(409, e.do("POST", "/v1/apps/late/reactivations", operatorToken, map[string]string{}))
	if _, err := e.kms.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.RevokeKey(ctx, key, "DisableKey", lineage.KeyEventRef{ID: "ev-1", Time: time.Now()}, lineage.Cause{EventID: "ev-1"}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(11 * 24 * time.Hour)
	if _, err := e.store.ReactivateKey(ctx, key, 10*24*time.Hour, lineage.KeyEventRef{ID: "ev-2", Time: time.Now()}, lineage.Cause{EventID: "ev-2"}); err != nil {
		t.Fatal(err)
	}
	var app struct{ Status string }
	e.must(200, e.do("GET", "/v1/apps/late", acme, nil)).json(t, &app)
	if app.Status != "DEACTIVATED" {
		t.Fatalf("past the window the app is %s, want it to wait for the operator", app.Status)
	}
	// Orgs cannot decide it; the key must work first.
	e.must(403, e.do("POST", "/v1/apps/late/reactivations", acme, map[string]string{}))
	e.must(422, e.do("POST", "/v1/apps/late/reactivations", operatorToken, map[string]string{}))
	if _, err := e.kms.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(key)}); err != nil {
		t.Fatal(err)
	}
	e.must(200, e.do("POST", "/v1/apps/late/reactivations", operatorToken, map[string]string{})).json(t, &app)
	if app.Status != "ACTIVE" {
		t.Fatalf("after the operator's reactivation the app is %s", app.Status)
	}
	e.must(404, e.do("POST", "/v1/apps/nosuch/reactivations", operatorToken, map[string]string{}))
}

// GET /v1/apps lists the apps the caller may see: the operator all of them or one org's,
// an org its own only, page by page with a `next` cursor.
func TestListApps(t *testing.T) {
	e := setup(t)
	acme := e.org("acme")
	globex := e.foreignOrg("globex")
	e.foreignOrg("empty")
	for _, id := range []string{"a1", "a2", "a3"} {
		e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": id, "orgId": "acme"}))
	}
	e.must(201, e.do("POST", "/v1/apps", globex, map[string]string{"appId": "g1", "orgId": "globex"}))

	type page struct {
		Items []struct{ AppID, OrgID, KeyModel, Status string }
		Next  string
	}
	ids := func(p page) []string {
		var out []string
		for _, a := range p.Items {
			out = append(out, a.OrgID+"/"+a.AppID)
		}
		return out
	}
	// all pages of a listing, following `next`
	all := func(token, query string, limit int) []string {
		t.Helper()
		var out []string
		cursor := ""
		for i := 0; ; i++ {
			if i > 10 {
				t.Fatalf("listing %q never ends", query)
			}
			q := fmt.Sprintf("/v1/apps?limit=%d%s", limit, query)
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			var p page
			e.must(200, e.do("GET", q, token, nil)).json(t, &p)
			if len(p.Items) > limit {
				t.Fatalf("page of %d items with limit %d", len(p.Items), limit)
			}
			out = append(out, ids(p)...)
			if p.Next == "" {
				return out
			}
			cursor = p.Next
		}
	}
	same := func(what string, got []string, want ...string) {
		t.Helper()
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("%s: %v, want %v", what, got, want)
		}
	}

	// The operator: every app (ordered by org, then app), or one org's.
	same("operator, all", all(operatorToken, "", 100), "acme/a1", "acme/a2", "acme/a3", "globex/g1")
	same("operator, all, pages of 2", all(operatorToken, "", 2), "acme/a1", "acme/a2", "acme/a3", "globex/g1")
	same("operator, globex", all(operatorToken, "&orgId=globex", 100), "globex/g1")
	same("operator, empty org", all(operatorToken, "&orgId=empty", 100))
	var first page
	e.must(200, e.do("GET", "/v1/apps?orgId=acme&limit=2", operatorToken, nil)).json(t, &first)
	if len(first.Items) != 2 || first.Next == "" {
		t.Fatalf("first page of 2: %+v", first)
	}

	// An org: its own apps only, with or without naming itself; never another org's.
	same("acme", all(acme, "", 100), "acme/a1", "acme/a2", "acme/a3")
	same("acme, pages of 1", all(acme, "&orgId=acme", 1), "acme/a1", "acme/a2", "acme/a3")
	same("globex", all(globex, "", 100), "globex/g1")
	if code := e.must(404, e.do("GET", "/v1/apps?orgId=acme", globex, nil)).errorCode(t); code != "NotFound" {
		t.Fatalf("another org's listing: %s", code)
	}
	// Another org's cursor does not open its listing either.
	r := e.do("GET", "/v1/apps?cursor="+first.Next, globex, nil)
	if r.status != 400 {
		t.Fatalf("globex with acme's cursor: %d %s", r.status, r.body)
	}
	r.errorCode(t)

	// Bad input is a 400 with a reason; no token is a 401.
	for _, q := range []string{"?limit=0", "?limit=101", "?limit=x", "?orgId=../x", "?cursor=%21%21not-a-cursor"} {
		r := e.do("GET", "/v1/apps"+q, operatorToken, nil)
		if r.status != 400 {
			t.Errorf("GET /v1/apps%s: %d, want 400: %s", q, r.status, r.body)
			continue
		}
		r.errorCode(t)
	}
	e.must(401, e.do("GET", "/v1/apps", "", nil))
}

// B9: from the moment a revocation is applied, a deactivated app's CMK data is refused with
// 409 on reads and writes, although this process still holds the data key in its cache and
// KMS itself still works (only the lineage knows of the revocation); managed-scope data of
// the same app keeps working. The operator's abort route answers 409 when nothing runs.
func TestRevokedKeyCutsAccess(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	key := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "cut", "orgId": "acme", "keyModel": "cmk", "keyArn": key}))
	e.must(201, e.do("PUT", "/v1/apps/cut/objects/a.txt", acme, "secret"))
	e.must(201, e.do("PUT", "/v1/apps/cut/objects/m.txt", acme, "plain", "X-Keyline-Scope", "managed"))
	if r := e.must(200, e.do("GET", "/v1/apps/cut/objects/a.txt", acme, nil)); string(r.body) != "secret" {
		t.Fatalf("before the revocation: %q", r.body)
	}
	e.must(403, e.do("POST", "/v1/apps/cut/reencryptions/abort", acme, map[string]string{"reason": "x"}))
	e.must(409, e.do("POST", "/v1/apps/cut/reencryptions/abort", operatorToken, map[string]string{"reason": "nothing runs"}))
	if _, err := e.store.RevokeKey(ctx, key, "DisableKey", lineage.KeyEventRef{ID: "ev-b9", Time: time.Now()}, lineage.Cause{EventID: "ev-b9"}); err != nil {
		t.Fatal(err)
	}
	r := e.must(409, e.do("GET", "/v1/apps/cut/objects/a.txt", acme, nil))
	if strings.Contains(string(r.body), "secret") {
		t.Fatal("the refusal carries the plaintext")
	}
	e.must(409, e.do("PUT", "/v1/apps/cut/objects/b.txt", acme, "more"))
	e.must(409, e.do("GET", "/v1/apps/cut/objects/a.txt", operatorToken, nil))
	if r := e.must(200, e.do("GET", "/v1/apps/cut/objects/m.txt", acme, nil, "X-Keyline-Scope", "managed")); string(r.body) != "plain" {
		t.Fatalf("managed scope after the revocation: %q", r.body)
	}
}

// TestMachineInputCheckCatches shows the fake refusing an input with a field its machine
// does not read (the console used to send the backup machine a requestId nothing read).
func TestMachineInputCheckCatches(t *testing.T) {
	f := &fakeExecutions{started: map[string]console.Execution{}, machine: map[string]string{}}
	if _, err := f.Start(context.Background(), "sm-backup", "x", []byte(`{"appIds":["a"],"requestedBy":"op","requestId":"r"}`)); err == nil {
		t.Error("an unread field passed")
	}
	if _, err := f.Start(context.Background(), "sm-backup", "x", []byte(`{"appIds":["a"],"requestedBy":"op"}`)); err != nil {
		t.Errorf("the backup machine's own input: %v", err)
	}
}

// GET objects streams the plaintext: nothing is staged on disk (here the temporary directory
// does not even exist), a multi-segment object arrives whole, and damage at rest past the
// first chunk cuts the response, so the client sees an error and never a short object.
func TestGetObjectStreamsWithoutSpooling(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	acme := e.org("acme")
	key := testenv.NewKMSKey(t, e.kms)
	e.must(201, e.do("POST", "/v1/apps", acme, map[string]string{"appId": "big", "orgId": "acme", "keyModel": "cmk", "keyArn": key}))
	data := make([]byte, 3<<20+123)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	e.must(201, e.do("PUT", "/v1/apps/big/objects/blob.bin", acme, data))
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "absent"))

	get := func() (int, []byte, error) {
		req, _ := http.NewRequest("GET", e.url+"/v1/apps/big/objects/blob.bin", nil)
		req.Header.Set("Authorization", "Bearer "+acme)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		return res.StatusCode, b, err
	}
	status, body, err := get()
	if status != 200 || err != nil || !bytes.Equal(body, data) {
		t.Fatalf("streamed GET: status %d, %d of %d bytes, read error %v: %.200s", status, len(body), len(data), err, body)
	}

	list, err := e.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("data")})
	if err != nil {
		t.Fatal(err)
	}
	var stored string
	for _, o := range list.Contents {
		if strings.Contains(aws.ToString(o.Key), "blob.bin") {
			stored = aws.ToString(o.Key)
		}
	}
	if stored == "" {
		t.Fatal("the object is not at rest")
	}
	out, err := e.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: aws.String(stored)})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	sealed[len(sealed)-100] ^= 0x01 // in the last segment, well past the first chunk
	if _, err := e.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(stored), Body: bytes.NewReader(sealed)}); err != nil {
		t.Fatal(err)
	}
	status, body, err = get()
	if status >= 500 {
		t.Fatalf("damaged object: status %d", status)
	}
	if status == 200 && err == nil {
		t.Fatalf("damaged object served as complete: %d bytes, no error", len(body))
	}
	if len(body) >= len(data) {
		t.Fatalf("damaged object: %d bytes delivered, the whole object is %d", len(body), len(data))
	}
}
