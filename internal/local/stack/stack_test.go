package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/local/eventbridge"
	"github.com/keyline/keyline/internal/local/lambda"
	"github.com/keyline/keyline/internal/workflow/keyhealth"
)

// otherCustomerAccount is a customer account that acme did not enrol.
const otherCustomerAccount = "222222222222"

// acmeAccount is acme's own AWS account, where its keys live (the demo seed's org enrols
// CustomerAccount: an account belongs to one org).
const acmeAccount = "123456789012"

// testToken is the operator token the tests start the stack with (so a restart keeps it).
const testToken = "klop_test-operator-token-0123456789abcdef"

func startTestStack(t *testing.T, ctx context.Context, dir, seed string, progress io.Writer, dropCloudTrail *atomic.Bool) *Stack {
	t.Helper()
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelInfo
	}
	st, err := Start(ctx, Options{
		DataDir: dir, Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", Seed: seed, OperatorToken: testToken,
		Logger:         slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level})),
		Progress:       progress,
		CloudTrailDrop: func(string) bool { return dropCloudTrail.Load() },
	})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return st
}

// testWriter sends logs to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// consoleClient is the typed console client with the stack's operator token.
func consoleClient(st *Stack) *api.Client {
	return &api.Client{Base: st.Console, Token: st.OperatorToken, HTTP: &http.Client{Timeout: time.Minute}}
}

// TestStack runs the whole local deployment: a backup and a restore through the console
// API and the state machines, a KMS DisableKey whose CloudTrail event reaches the
// key-event function through the bus, `keyline invoke`, and a restart on the same data.
func TestStack(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	var drop atomic.Bool
	st := startTestStack(t, ctx, dir, SeedNone, nil, &drop)
	defer func() { st.Close() }()

	// The deployment is on the endpoint: every machine, and every function.
	sfnc := sfn.NewFromConfig(st.AWSConfig())
	for _, m := range infra.Description().StateMachines {
		if _, err := sfnc.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(st.Machines[m.Name])}); err != nil {
			t.Fatalf("state machine %s: %v", m.Name, err)
		}
	}
	if got, want := len(st.Lambda.Names()), len(infra.Description().Functions); got != want {
		t.Errorf("%d functions registered (%v), the deployment has %d", got, st.Lambda.Names(), want)
	}

	cfg := st.AWSConfig()
	// Any credentials and region see the same tables, as in one AWS account (-sharedDb).
	other := cfg.Copy()
	other.Region = "eu-west-3"
	other.Credentials = credentials.NewStaticCredentialsProvider("SOMEONEELSE", "secret", "")
	tables, err := awsddb.NewFromConfig(other).ListTables(ctx, &awsddb.ListTablesInput{})
	if err != nil || !slices.Contains(tables.TableNames, st.TableName()) {
		t.Fatalf("another caller's view of DynamoDB: %v, %v; want %s", tables, err, st.TableName())
	}
	// acme's keys live in acme's account, with keyline's key policy for acme; acme manages
	// them with its own credentials.
	kmsc := awskms.NewFromConfig(st.CustomerAWSConfig(acmeAccount))
	keyARN, err := st.CreateCustomerKey(ctx, acmeAccount, "acme", "acme's key", false)
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	c := consoleClient(st)

	original := bytes.Repeat([]byte("keyline local stack test\n"), 400)
	var backupID string
	t.Run("backup and restore through the console", func(t *testing.T) {
		if err := c.CreateOrg(ctx, api.CreateOrg{OrgID: "acme", Name: "Acme", Accounts: []string{acmeAccount}}); err != nil {
			t.Fatal(err)
		}
		app, err := c.CreateApp(ctx, api.CreateApp{AppID: "acme-1", OrgID: "acme", KeyModel: "cmk", KeyARN: keyARN})
		if err != nil {
			t.Fatal(err)
		}
		if app.Status != string(lineage.AppActive) || app.ActiveGeneration != 1 {
			t.Fatalf("new app: %+v", app)
		}
		if err := c.PutObject(ctx, "acme-1", "cmk", "docs/a.txt", original); err != nil {
			t.Fatal(err)
		}

		// The object is sealed at rest: its plaintext is nowhere in the data bucket.
		s3c := s3Client(cfg)
		obj, err := s3c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(st.DataBucket()), Key: aws.String("apps/acme-1/cmk/docs/a.txt")})
		if err != nil {
			t.Fatalf("the object is not in the data bucket: %v", err)
		}
		raw, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if bytes.Contains(raw, []byte("keyline local stack test")) {
			t.Fatal("the object is stored in plaintext")
		}

		if ex, err := c.Run(ctx, "/v1/apps/acme-1/backups", struct{}{}); err != nil {
			t.Fatalf("backup execution: %v (%+v)", err, ex)
		}
		backups, err := c.Backups(ctx, "acme-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(backups) != 1 || !backups[0].Restorable || backups[0].KeyArn != keyARN || backups[0].Generation != 1 || backups[0].SizeBytes <= 0 {
			t.Fatalf("backups after one backup: %+v", backups)
		}
		backupID = backups[0].BackupID

		// Change the object, restore the backup, and read the original back.
		if err := c.PutObject(ctx, "acme-1", "cmk", "docs/a.txt", []byte("changed")); err != nil {
			t.Fatal(err)
		}
		if ex, err := c.Run(ctx, "/v1/apps/acme-1/restores", api.Restore{BackupID: backupID}); err != nil {
			t.Fatalf("restore execution: %v (%+v)", err, ex)
		}
		got, err := c.GetObject(ctx, "acme-1", "cmk", "docs/a.txt")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, original) {
			t.Fatalf("after the restore the object is %q…, want the backed-up content", got[:min(len(got), 40)])
		}
	})
	if t.Failed() {
		return
	}

	t.Run("a key without keyline's key policy is refused with what the customer must add", func(t *testing.T) {
		bare, err := st.CreateCustomerKey(ctx, acmeAccount, "acme", "acme's key, keyline not admitted", true)
		if err != nil {
			t.Fatal(err)
		}
		create := func(app, key string, want int) api.Answer {
			t.Helper()
			a, err := c.Do(ctx, http.MethodPost, "/v1/apps", api.CreateApp{AppID: app, OrgID: "acme", KeyModel: "cmk", KeyARN: key})
			if err != nil {
				t.Fatal(err)
			}
			if a.Status != want {
				t.Fatalf("create %s on %s answered %d, want %d: %s", app, key, a.Status, want, a.Message())
			}
			return a
		}
		refused := create("acme-bare", bare, http.StatusUnprocessableEntity)
		const wantCmd = "`keyline key-policy --org acme --account " + KeylineAccount + "`"
		if refused.Code() != "KeyRefused" || !strings.Contains(refused.Message(), wantCmd) {
			t.Fatalf("refusal %s does not name %s", refused.Message(), wantCmd)
		}
		// It reveals nothing about the key: a key that does not exist, and one in an account
		// the org did not enrol, get the very same answer.
		missing := create("acme-missing", "arn:aws:kms:us-east-1:"+acmeAccount+":key/00000000-0000-4000-8000-000000000000", http.StatusUnprocessableEntity)
		elsewhere, err := st.CreateCustomerKey(ctx, otherCustomerAccount, "acme", "a key in an account acme did not enrol", false)
		if err != nil {
			t.Fatal(err)
		}
		notEnrolled := create("acme-elsewhere", elsewhere, http.StatusUnprocessableEntity)
		for _, a := range []api.Answer{missing, notEnrolled} {
			if !bytes.Equal(a.Body, refused.Body) {
				t.Fatalf("answers differ by key: %s and %s", a.Body, refused.Body)
			}
		}
		if strings.Contains(string(refused.Body), bare) || strings.Contains(string(refused.Body), "Exception") {
			t.Fatalf("the refusal reveals something about the key: %s", refused.Body)
		}
		// Nothing was created.
		if err := c.Expect(ctx, http.StatusNotFound, http.MethodGet, "/v1/apps/acme-bare", nil, nil); err != nil {
			t.Fatal(err)
		}
		// The customer adds what it was told to: the app is created.
		pol, err := CustomerKeyPolicy(acmeAccount, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kmsc.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: aws.String(bare), PolicyName: aws.String("default"), Policy: aws.String(pol)}); err != nil {
			t.Fatalf("the customer's PutKeyPolicy: %v", err)
		}
		create("acme-bare", bare, http.StatusCreated)
	})

	t.Run("a denied AWS call of the console is answered as what it is, never as an internal error", func(t *testing.T) {
		// The customer's doing: their key policy stops admitting keyline. A conflict that
		// says what the customer must fix, not a 5xx.
		locked, err := st.CreateCustomerKey(ctx, acmeAccount, "acme", "acme's key it will lock keyline out of", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateApp(ctx, api.CreateApp{AppID: "acme-locked", OrgID: "acme", KeyModel: "cmk", KeyARN: locked}); err != nil {
			t.Fatal(err)
		}
		setKeyPolicy := func(policy string) {
			t.Helper()
			if _, err := kmsc.PutKeyPolicy(ctx, &awskms.PutKeyPolicyInput{KeyId: aws.String(locked), PolicyName: aws.String("default"), Policy: aws.String(policy)}); err != nil {
				t.Fatalf("the customer's PutKeyPolicy: %v", err)
			}
		}
		setKeyPolicy(`{"Version":"2012-10-17","Statement":[{"Sid":"AccountOnly","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + acmeAccount + `:root"},"Action":"kms:*","Resource":"*"}]}`)
		a, err := c.Do(ctx, http.MethodPut, "/v1/apps/acme-locked/objects/docs/x", []byte("x"), "X-Keyline-Scope", "cmk")
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != http.StatusConflict || a.Code() != "KeyUnusable" || !strings.Contains(a.Message(), "`keyline key-policy --org ORG --account "+KeylineAccount+"`") ||
			strings.Contains(a.Message(), locked) {
			t.Fatalf("a write under a key whose policy no longer admits keyline answered %d %s", a.Status, a.Message())
		}
		// No CloudTrail event follows a key-policy change: the console's own request fed the
		// revocation path (B2), which confirmed the refusal with its own DescribeKey under
		// the console's role before the answer went out (the app's first write, so its data
		// key was unwrapped through KMS, not taken from a cache).
		if app, err := c.App(ctx, "acme-locked"); err != nil || app.Status != string(lineage.AppDeactivated) {
			t.Fatalf("after the console met the locked key the app is %+v (%v), want %s", app, err, lineage.AppDeactivated)
		}
		audit, err := c.Audit(ctx, "acme-locked")
		if err != nil {
			t.Fatal(err)
		}
		if i := slices.IndexFunc(audit, func(e api.AuditEntry) bool { return e.Action == lineage.ActionKeyRevoked }); i < 0 || audit[i].Actor != "console" {
			t.Fatalf("the console's revocation is not audited with the console as its cause: %+v", audit)
		}
		pol, err := CustomerKeyPolicy(acmeAccount, "acme")
		if err != nil {
			t.Fatal(err)
		}
		setKeyPolicy(pol)
		// The key works again: the key-health check finds it usable and reactivates the app
		// (within the window, B1).
		if out, err := st.Lambda.Invoke(ctx, infra.FnKeyHealth, []byte(`{}`)); err != nil {
			t.Fatalf("key health: %v (%s)", err, out)
		}
		if err := st.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		if app, err := c.App(ctx, "acme-locked"); err != nil || app.Status != string(lineage.AppActive) {
			t.Fatalf("after the customer restored keyline's statements and key health ran, the app is %+v (%v)", app, err)
		}
		if err := c.PutObject(ctx, "acme-locked", "cmk", "docs/x", []byte("x")); err != nil {
			t.Fatalf("after the customer restored keyline's statements: %v", err)
		}

		// keyline's doing: its console role may not start executions. A 5xx, saying what the
		// operator must fix.
		withRolePolicies(t, st, func(fn string, d *infra.PolicyDocument) {
			if fn != infra.FnConsoleAPI {
				return
			}
			var kept []infra.Statement
			for _, st := range d.Statement {
				st.Action = slices.DeleteFunc(slices.Clone(st.Action), func(a string) bool { return a == "states:StartExecution" })
				if len(st.Action) > 0 {
					kept = append(kept, st)
				}
			}
			d.Statement = kept
		})
		a, err = c.Do(ctx, http.MethodPost, "/v1/apps/acme-locked/backups", struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != http.StatusInternalServerError || a.Code() != "Misconfigured" ||
			!strings.Contains(a.Message(), "states:StartExecution") || !strings.Contains(a.Message(), "console-api role") {
			t.Fatalf("a backup the console's role may not start answered %d %s", a.Status, a.Message())
		}
	})
	if t.Failed() {
		return
	}
	if err := c.Expect(ctx, http.StatusAccepted, http.MethodPost, "/v1/apps/acme-locked/backups", struct{}{}, nil); err != nil {
		t.Fatalf("with the contract's role policies back: %v", err)
	}

	t.Run("customer KMS events reach keyline's customer bus through its policy", func(t *testing.T) {
		// A probe on the customer bus sees what arrives there.
		arrived := make(chan string, 8)
		st.Lambda.RegisterFunction(lambda.Function{Name: "forward-probe", Handler: func(_ context.Context, ev struct {
			ID string `json:"id"`
		}) error {
			arrived <- ev.ID
			return nil
		}})
		if _, err := st.Bus.PutRule(ctx, eventbridge.RuleInput{Name: "forward-probe", EventBusName: localCustomerBus,
			EventPattern: `{"detail":{"eventName":["TagResource"]}}`}); err != nil {
			t.Fatal(err)
		}
		if err := st.Bus.PutTargets(ctx, localCustomerBus, "forward-probe", []eventbridge.Target{{ID: "probe", Arn: st.Lambda.ARN("forward-probe")}}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := st.Bus.DeleteRule(ctx, localCustomerBus, "forward-probe", true); err != nil {
				t.Error(err)
			}
		}()
		event := func(id, account, source string) []byte {
			t.Helper()
			b, err := json.Marshal(map[string]any{"version": "0", "id": id, "detail-type": "AWS API Call via CloudTrail", "source": source,
				"account": account, "time": "2026-12-01T10:00:00Z", "region": "us-east-1", "resources": []string{},
				"detail": map[string]any{"eventSource": "kms.amazonaws.com", "eventName": "TagResource", "recipientAccountId": account}})
			if err != nil {
				t.Fatal(err)
			}
			return b
		}
		for _, refused := range []struct{ id, account, source, why string }{
			{"fwd-not-enrolled", otherCustomerAccount, "aws.kms", "an account no org enrolled"},
			{"fwd-other-source", acmeAccount, "acme.app", "an enrolled account, not a KMS event"},
		} {
			if err := st.forwardCustomerEvent(ctx, event(refused.id, refused.account, refused.source)); !errors.Is(err, ErrForwardDenied) ||
				!strings.Contains(err.Error(), "AccessDeniedException") {
				t.Fatalf("%s: forward answered %v, want AccessDeniedException (%v)", refused.why, err, ErrForwardDenied)
			}
		}
		if err := st.forwardCustomerEvent(ctx, event("fwd-admitted", acmeAccount, "aws.kms")); err != nil {
			t.Fatalf("acme's KMS event was refused: %v", err)
		}
		// The refusal is the bus policy's: once an org enrols the other account, its event
		// is admitted too.
		if err := c.CreateOrg(ctx, api.CreateOrg{OrgID: "globex", Name: "Globex", Accounts: []string{otherCustomerAccount}}); err != nil {
			t.Fatal(err)
		}
		if err := st.forwardCustomerEvent(ctx, event("fwd-enrolled-later", otherCustomerAccount, "aws.kms")); err != nil {
			t.Fatalf("the newly enrolled account's KMS event was refused: %v", err)
		}
		if err := st.Bus.Drain(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		for len(arrived) > 0 {
			got = append(got, <-arrived)
		}
		slices.Sort(got)
		if want := []string{"fwd-admitted", "fwd-enrolled-later"}; !slices.Equal(got, want) {
			t.Fatalf("events on the customer bus: %v, want %v", got, want)
		}
	})

	t.Run("DisableKey reaches the key-event function through CloudTrail and the bus", func(t *testing.T) {
		if _, err := kmsc.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
			t.Fatalf("DisableKey: %v", err)
		}
		if err := st.WaitIdle(ctx); err != nil {
			t.Fatalf("WaitIdle: %v", err)
		}
		app, err := c.App(ctx, "acme-1")
		if err != nil {
			t.Fatal(err)
		}
		if app.Status != string(lineage.AppDeactivated) {
			t.Fatalf("after DisableKey the app is %q, want %s", app.Status, lineage.AppDeactivated)
		}
		backups, err := c.Backups(ctx, "acme-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(backups) != 1 || backups[0].Restorable || backups[0].Reason == "" {
			t.Fatalf("after DisableKey the backup should be unrestorable with a reason: %+v", backups)
		}
		if dl := st.Bus.DeadLetters(); len(dl) != 0 {
			t.Fatalf("dead letters: %+v", dl)
		}
	})

	t.Run("a lost CloudTrail event is caught by the key-health function", func(t *testing.T) {
		arn, err := st.CreateCustomerKey(ctx, acmeAccount, "acme", "acme's second key", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateApp(ctx, api.CreateApp{AppID: "acme-2", OrgID: "acme", KeyModel: "cmk", KeyARN: arn}); err != nil {
			t.Fatal(err)
		}
		drop.Store(true)
		_, err = kmsc.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)})
		drop.Store(false)
		if err != nil {
			t.Fatalf("DisableKey: %v", err)
		}
		if err := st.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		app, err := c.App(ctx, "acme-2")
		if err != nil {
			t.Fatal(err)
		}
		if app.Status != string(lineage.AppActive) {
			t.Fatalf("the CloudTrail event was dropped, yet the app is %s", app.Status)
		}
		// The key-health schedule's target, run through the Lambda registry.
		if out, err := st.Lambda.Invoke(ctx, infra.FnKeyHealth, []byte(`{}`)); err != nil {
			t.Fatalf("key health: %v (%s)", err, out)
		}
		app, err = c.App(ctx, "acme-2")
		if err != nil {
			t.Fatal(err)
		}
		if app.Status != string(lineage.AppDeactivated) {
			t.Fatalf("after the key-health check the app is %s, want %s", app.Status, lineage.AppDeactivated)
		}
	})

	t.Run("key health reports a re-encryption left without a running execution", func(t *testing.T) {
		kARN, err := st.CreateCustomerKey(ctx, acmeAccount, "acme", "acme's stuck key", false)
		if err != nil {
			t.Fatal(err)
		}
		nextARN, err := st.CreateCustomerKey(ctx, acmeAccount, "acme", "acme's next key", false)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.CreateApp(ctx, api.CreateApp{AppID: "acme-stuck", OrgID: "acme", KeyModel: "cmk", KeyARN: kARN}); err != nil {
			t.Fatal(err)
		}
		// Begin landed for an execution that is gone (a crashed deployment, a deleted
		// execution history): the app is REENCRYPTING with nothing running.
		ghost := strings.Replace(st.Machines[infra.SMReencrypt], ":stateMachine:", ":execution:", 1) + ":ghost"
		if _, err := st.Store.BeginReencrypt(ctx, "acme-stuck", 2, nextARN, []byte("never opened"),
			lineage.Cause{ExecutionArn: ghost, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		health := func() keyhealth.Report {
			t.Helper()
			out, err := st.Lambda.Invoke(ctx, infra.FnKeyHealth, []byte(`{}`))
			if err != nil {
				t.Fatalf("key health: %v (%s)", err, out)
			}
			var rep keyhealth.Report
			if err := json.Unmarshal(out, &rep); err != nil {
				t.Fatalf("key health report %s: %v", out, err)
			}
			return rep
		}
		rep := health()
		if len(rep.StuckReencryptions) != 1 || rep.StuckReencryptions[0].AppID != "acme-stuck" ||
			rep.StuckReencryptions[0].ExecutionArn != ghost || rep.StuckReencryptions[0].ExecutionStatus != "NOT_FOUND" {
			t.Fatalf("key health reported %+v, want acme-stuck's re-encryption without its execution", rep.StuckReencryptions)
		}
		// The operator's abort brings it to a defined state; key health then reports nothing.
		if err := c.Expect(ctx, http.StatusAccepted, http.MethodPost, "/v1/apps/acme-stuck/reencryptions/abort", map[string]string{"reason": "stuck"}, nil); err != nil {
			t.Fatal(err)
		}
		if err := st.WaitIdle(ctx); err != nil {
			t.Fatal(err)
		}
		app, err := c.App(ctx, "acme-stuck")
		if err != nil {
			t.Fatal(err)
		}
		if app.Status != string(lineage.AppActive) {
			t.Fatalf("after the operator's abort the app is %s", app.Status)
		}
		if rep := health(); len(rep.StuckReencryptions) != 0 {
			t.Fatalf("after the abort key health still reports %+v", rep.StuckReencryptions)
		}
	})

	t.Run("demo seed", func(t *testing.T) {
		var progress bytes.Buffer
		size := SeedSize{SmallObjects: 24, LargeObjects: 1, LargeBytes: 1 << 20, Concurrency: 4}
		if err := st.seedDemo(ctx, size, &progress); err != nil {
			t.Fatalf("seed: %v\n%s", err, progress.String())
		}
		if !strings.Contains(progress.String(), "25/25 objects") {
			t.Fatalf("seed progress: %s", progress.String())
		}
		if err := st.WaitIdle(ctx); err != nil {
			t.Fatalf("WaitIdle: %v", err)
		}
		s3c := s3Client(st.AWSConfig())
		for app, wantObjects := range map[string]int{demoManagedApp: 9, demoCMKApp1: 8, demoCMKApp2: 8} {
			v, err := c.App(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			if v.OrgID != demoOrg || v.Status != string(lineage.AppActive) {
				t.Fatalf("seeded app %s: %+v", app, v)
			}
			out, err := s3c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(st.DataBucket()), Prefix: aws.String("apps/" + app + "/")})
			if err != nil || len(out.Contents) != wantObjects {
				t.Fatalf("seeded app %s has %d objects (err %v), want %d", app, len(out.Contents), err, wantObjects)
			}
			backups, err := c.Backups(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			if len(backups) != 1 || !backups[0].Restorable {
				t.Fatalf("seeded app %s backups: %+v", app, backups)
			}
		}
		// The two CMK apps are on their own customer keys, the managed one on the provider key.
		keyOf := func(app string) string {
			gens, err := c.Keys(ctx, app)
			if err != nil {
				t.Fatal(err)
			}
			if len(gens) != 1 {
				t.Fatalf("app %s lineage: %+v", app, gens)
			}
			return gens[0].KeyArn
		}
		k0, k1, k2 := keyOf(demoManagedApp), keyOf(demoCMKApp1), keyOf(demoCMKApp2)
		if k0 != st.ProviderKeyARN() || k1 == k2 || k1 == k0 || k2 == k0 {
			t.Fatalf("seeded keys: managed %s, cmk %s and %s (provider %s)", k0, k1, k2, st.ProviderKeyARN())
		}
		progress.Reset()
		if err := st.seedDemo(ctx, size, &progress); err != nil || !strings.Contains(progress.String(), "nothing to do") {
			t.Fatalf("second seed: %v, %s", err, progress.String())
		}
	})

	t.Run("restart keeps the state", func(t *testing.T) {
		st.Close()
		var progress bytes.Buffer
		st = startTestStack(t, ctx, dir, SeedDemo, &progress, &drop)
		if !strings.Contains(progress.String(), "nothing to do") {
			t.Fatalf("a restart with --seed demo seeded again: %s", progress.String())
		}
		c = consoleClient(st)
		demo, err := c.App(ctx, demoCMKApp1)
		if err != nil {
			t.Fatal(err)
		}
		if demo.OrgID != demoOrg {
			t.Fatalf("after a restart the demo app is %+v", demo)
		}
		app, err := c.App(ctx, "acme-1")
		if err != nil {
			t.Fatal(err)
		}
		if app.OrgID != "acme" || app.Status != string(lineage.AppDeactivated) {
			t.Fatalf("after a restart the app is %+v", app)
		}
		backups, err := c.Backups(ctx, "acme-1")
		if err != nil {
			t.Fatal(err)
		}
		if len(backups) != 1 || backups[0].BackupID != backupID {
			t.Fatalf("after a restart the backups are %+v, want %s", backups, backupID)
		}
		d, err := awskms.NewFromConfig(st.CustomerAWSConfig(acmeAccount)).DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(keyARN)})
		if err != nil || d.KeyMetadata.KeyState != kmstypes.KeyStateDisabled {
			t.Fatalf("after a restart the key: %v %v", d, err)
		}
		prev, err := readStackState(dir)
		if err != nil || prev.ProviderKeyARN != st.ProviderKeyARN() {
			t.Fatalf("provider key not kept: %v %v", prev.ProviderKeyARN, err)
		}
		// The rule is still wired: EnableKey reactivates the app (B1).
		if _, err := awskms.NewFromConfig(st.CustomerAWSConfig(acmeAccount)).EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
			t.Fatalf("EnableKey: %v", err)
		}
		if err := st.WaitIdle(ctx); err != nil {
			t.Fatalf("WaitIdle: %v", err)
		}
		app, err = c.App(ctx, "acme-1")
		if err != nil {
			t.Fatal(err)
		}
		if app.Status != string(lineage.AppActive) {
			t.Fatalf("after EnableKey the app is %q, want %s", app.Status, lineage.AppActive)
		}
	})
}

func TestStartStackRefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	for _, o := range []Options{
		{DataDir: t.TempDir(), Addr: "0.0.0.0:0", ConsoleAddr: "127.0.0.1:0"},
		{DataDir: t.TempDir(), Addr: "127.0.0.1:0", ConsoleAddr: "192.0.2.1:8080"},
		{DataDir: t.TempDir(), Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", Seed: "lots"},
		{DataDir: t.TempDir(), Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0", OperatorToken: "too-short-to-be-a-secret"},
	} {
		if st, err := Start(ctx, o); err == nil {
			st.Close()
			t.Fatalf("Start(%+v) succeeded", o)
		} else if !strings.Contains(err.Error(), ErrOptions.Error()) {
			t.Fatalf("Start(%+v): %v, want %v", o, err, ErrOptions)
		}
	}
}

// withRolePolicies replaces the functions' role policies with the contract's, edited, until
// the test ends.
func withRolePolicies(t *testing.T, st *Stack, edit func(fn string, d *infra.PolicyDocument)) {
	t.Helper()
	docs, err := st.Policies()
	if err != nil {
		t.Fatal(err)
	}
	raw := func(edit func(string, *infra.PolicyDocument)) map[string]json.RawMessage {
		out := make(map[string]json.RawMessage, len(docs))
		for fn, d := range docs {
			d.Statement = slices.Clone(d.Statement)
			if edit != nil {
				edit(fn, &d)
			}
			b, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			out[fn] = b
		}
		return out
	}
	if err := st.policies.setRolePolicies(raw(edit)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := st.policies.setRolePolicies(raw(nil)); err != nil {
			t.Error(err)
		}
	})
}
