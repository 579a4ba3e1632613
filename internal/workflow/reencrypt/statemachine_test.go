package reencrypt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/handlers"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/local/functions"
	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/states"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// s3Items is the interpreter's ItemReader source on the S3 client.
type s3Items struct{ c *s3.Client }

func (s s3Items) ListObjectsV2(ctx context.Context, bucket, prefix string) ([]states.S3Object, error) {
	var out []states.S3Object
	p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			out = append(out, states.S3Object{Key: aws.ToString(o.Key), Size: aws.ToInt64(o.Size), ETag: aws.ToString(o.ETag), LastModified: aws.ToTime(o.LastModified)})
		}
	}
	return out, nil
}

func (s s3Items) GetObject(context.Context, string, string) ([]byte, error) {
	return nil, fmt.Errorf("not used")
}

// machine runs the deployed "reencrypt" definition on the local interpreter, its Lambda
// tasks served by the key plane's handlers as functions.Build makes them (SDK clients from
// the environment, as in Lambda). before runs ahead of each invocation (nil: nothing).
type machine struct {
	e      *env
	m      *states.Machine
	mu     sync.Mutex
	hs     map[string]lambda.Handler
	calls  map[string]int
	before func(fn string)
}

func newMachine(t *testing.T, e *env) *machine {
	t.Helper()
	_, kmsURL := testenv.KMS(t)
	t.Setenv("AWS_ENDPOINT_URL_DYNAMODB", testenv.DynamoDBEndpoint(t))
	t.Setenv("AWS_ENDPOINT_URL_KMS", kmsURL)
	t.Setenv("AWS_ENDPOINT_URL_S3", e.s3.URL)
	t.Setenv("AWS_REGION", testenv.DynamoDBRegion)
	t.Setenv("AWS_ACCESS_KEY_ID", "keyline") // DynamoDB Local keeps tables per access key
	t.Setenv("AWS_SECRET_ACCESS_KEY", "keyline")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_CONFIG_FILE", "/dev/null")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")

	sm, ok := infra.Description().StateMachineNamed(infra.SMReencrypt)
	if !ok {
		t.Fatal("no reencrypt state machine in the deployment")
	}
	def, err := infra.ASL(sm)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"DataBucket": bucket}
	for _, fn := range sm.Functions {
		vars["Fn_"+fn] = "arn:aws:lambda:us-east-1:111122223333:function:" + fn
	}
	def, err = infra.Substitute(def, vars)
	if err != nil {
		t.Fatal(err)
	}
	m, err := states.Parse(def)
	if err != nil {
		t.Fatalf("parse reencrypt.asl.json: %v", err)
	}
	settings := map[string]string{infra.EnvTableName: e.table, infra.EnvDataBucket: bucket, infra.EnvProviderKeyARN: e.provider,
		"KEYLINE_S3_PATH_STYLE": "true"}
	mc := &machine{e: e, m: m, hs: map[string]lambda.Handler{}, calls: map[string]int{}}
	for _, fn := range sm.Functions {
		h, err := functions.Build(e.ctx, fn, func(ctx context.Context) (handlers.Deps, error) {
			cfg, err := config.LoadDefaultConfig(ctx)
			return handlers.Deps{AWS: cfg, Env: func(k string) string { return settings[k] }, Logger: slog.Default(), Clock: e.clk}, err
		})
		if err != nil {
			t.Fatalf("build %s: %v", fn, err)
		}
		mc.hs[fn] = lambda.NewHandler(h)
	}
	return mc
}

// Invoke runs a handler the way the Lambda runtime does: a returned error becomes a
// FunctionError whose type is the error's Go type name.
func (mc *machine) Invoke(ctx context.Context, fn string, payload []byte) ([]byte, error) {
	mc.mu.Lock()
	h, ok := mc.hs[fn]
	mc.calls[fn]++
	before := mc.before
	mc.mu.Unlock()
	if !ok {
		return nil, &invoke.FunctionError{Type: "ResourceNotFoundException", Message: "no function " + fn}
	}
	if before != nil {
		before(fn)
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
}

func (mc *machine) run(appID, keyARN string) states.Result {
	in, _ := json.Marshal(map[string]string{"appId": appID, "keyArn": keyARN, "requestedBy": "alice@example.com", "requestId": "req-sm"})
	return mc.m.Run(mc.e.ctx, in, states.Options{
		Tasks:     &states.Integrations{Lambda: mc},
		Items:     s3Items{mc.e.s3.Client},
		Execution: states.ExecutionInfo{ID: "arn:aws:states:us-east-1:111122223333:execution:reencrypt:" + appID, Name: appID},
	})
}

func TestStateMachineReencrypts(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	managedBefore := e.raw("apps/app1/managed/")
	mc := newMachine(t, e)

	res := mc.run("app1", e.k2)
	if res.Status != states.StatusSucceeded {
		t.Fatalf("execution %s: %s: %s", res.Status, res.Error, res.Cause)
	}
	var out struct {
		Status            string `json:"status"`
		ActiveGeneration  int    `json:"activeGeneration"`
		RetiredGeneration int    `json:"retiredGeneration"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil || out.Status != "ACTIVE" || out.ActiveGeneration != 2 || out.RetiredGeneration != 1 {
		t.Fatalf("output %s", res.Output)
	}
	for k, g := range e.readAll(e.newSource(), "app1") {
		if g != 2 {
			t.Errorf("%s at generation %d", k, g)
		}
	}
	for k, b := range e.raw("apps/app1/managed/") {
		if string(b) != string(managedBefore[k]) {
			t.Errorf("managed-scope %s changed", k)
		}
	}
	if e.genState("app1", 1) != lineage.GenRetired || e.genState("app1", 2) != lineage.GenActive {
		t.Errorf("generations 1 %s, 2 %s", e.genState("app1", 1), e.genState("app1", 2))
	}
	if mc.calls[infra.FnReencryptBatch] != 1 || mc.calls[infra.FnReencryptAbort] != 0 {
		t.Errorf("calls %v (8 objects fit one batch of 50)", mc.calls)
	}
	audits, _ := e.store.ListAudit(e.ctx, "app1")
	found := false
	for _, a := range audits {
		if a.Action == lineage.ActionReencryptCommitted && strings.HasSuffix(a.Cause.ExecutionArn, ":reencrypt:app1") && a.Cause.RequestID == "req-sm" {
			found = true
		}
	}
	if !found {
		t.Errorf("no commit audit entry naming the execution and request: %+v", audits)
	}

	// Refused: the same key again. The execution fails with the step's error; nothing changes.
	res = mc.run("app1", e.k2)
	if res.Status != states.StatusFailed || res.Error != "Refused" {
		t.Fatalf("same key: %s %s %s", res.Status, res.Error, res.Cause)
	}
	if a := e.app1("app1"); a.Status != lineage.AppActive || a.LatestGeneration != 2 {
		t.Errorf("app changed by a refused request: %+v", a)
	}
}

func TestStateMachineAbortsWhenNewKeyRevoked(t *testing.T) {
	e := newEnv(t)
	e.app("app1", lineage.KeyModelCMK)
	mc := newMachine(t, e)
	var once sync.Once
	mc.before = func(fn string) {
		if fn != infra.FnReencryptBatch {
			return
		}
		once.Do(func() {
			// B8: the customer disables the new key as the objects start to move, and the
			// CloudTrail event arrives.
			e.setKey(e.k2, false)
			if _, err := e.rev.RevokeKey(e.ctx, e.k2, "DisableKey", lineage.Cause{EventID: "ev-k2", Actor: "cloudtrail"}); err != nil {
				t.Errorf("revoke: %v", err)
			}
		})
	}
	res := mc.run("app1", e.k2)
	if res.Status != states.StatusFailed || res.Error != "ReencryptionAborted" {
		t.Fatalf("execution %s %s %s", res.Status, res.Error, res.Cause)
	}
	a := e.app1("app1")
	if a.Status != lineage.AppActive || a.ActiveGeneration != 1 || a.PendingGeneration != 0 {
		t.Fatalf("app %+v, want ACTIVE on generation 1", a)
	}
	if e.genState("app1", 1) != lineage.GenActive || e.genState("app1", 2) != lineage.GenRetired {
		t.Errorf("generations 1 %s, 2 %s", e.genState("app1", 1), e.genState("app1", 2))
	}
	for k, g := range e.readAll(e.newSource(), "app1") {
		if g != 1 {
			t.Errorf("%s at generation %d", k, g)
		}
	}
}

// TestBeginWaitsALeaseLife: Begin's retries on a held backup lease last, at their shortest
// (no jitter may shorten them), at least a lease's life, so a crashed backup delays a
// re-encryption but never fails it; and Begin has a Catch into Abort, so a failure after its
// write never leaves the app REENCRYPTING (I7).
func TestBeginWaitsALeaseLife(t *testing.T) {
	sm, ok := infra.Description().StateMachineNamed(infra.SMReencrypt)
	if !ok {
		t.Fatal("no reencrypt state machine in the deployment")
	}
	def, err := infra.ASL(sm)
	if err != nil {
		t.Fatal(err)
	}
	var asl struct {
		States map[string]struct {
			Retry []struct {
				ErrorEquals     []string
				IntervalSeconds float64
				MaxAttempts     int
				BackoffRate     float64
				MaxDelaySeconds float64
				JitterStrategy  string
			}
			Catch []struct {
				ErrorEquals []string
				Next        string
			}
		}
	}
	if err := json.Unmarshal([]byte(def), &asl); err != nil {
		t.Fatal(err)
	}
	begin := asl.States["Begin"]
	var total time.Duration
	found := false
	for _, r := range begin.Retry {
		if !slices.Contains(r.ErrorEquals, "LeaseHeld") {
			continue
		}
		found = true
		if r.JitterStrategy == "FULL" {
			t.Error("the LeaseHeld retrier has full jitter, which may end it long before the lease does")
		}
		d := r.IntervalSeconds
		for range r.MaxAttempts {
			w := d
			if r.MaxDelaySeconds > 0 && w > r.MaxDelaySeconds {
				w = r.MaxDelaySeconds
			}
			total += time.Duration(w * float64(time.Second))
			d *= max(r.BackoffRate, 1)
		}
	}
	if !found {
		t.Fatal("Begin has no LeaseHeld retrier")
	}
	if total < backup.DefaultLeaseTTL {
		t.Errorf("Begin retries a held lease for %v, less than a lease's life (%v)", total, backup.DefaultLeaseTTL)
	}
	caught := false
	for _, c := range begin.Catch {
		if slices.Contains(c.ErrorEquals, "States.ALL") && c.Next == "Abort" {
			caught = true
		}
	}
	if !caught {
		t.Error("Begin has no Catch into Abort: a failure after its write would leave the app REENCRYPTING")
	}
}
