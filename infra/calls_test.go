package infra_test

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/drill"
	"github.com/keyline/keyline/internal/workflow/restore"
)

// kmsCall is one KMS request the code made: its action, key and encryption context.
type kmsCall struct {
	Path    string // which code path made it
	Action  string
	KeyARN  string
	Context map[string]string
}

// recordingKMS forwards every call to the real (local) KMS and records what was sent.
type recordingKMS struct {
	c *kms.Client

	mu    sync.Mutex
	path  string
	calls []kmsCall
}

var _ keys.KMSAPI = (*recordingKMS)(nil)

func (r *recordingKMS) record(action string, keyID *string, encCtx map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	arn := ""
	if keyID != nil {
		arn = *keyID
	}
	r.calls = append(r.calls, kmsCall{Path: r.path, Action: action, KeyARN: arn, Context: maps.Clone(encCtx)})
}

func (r *recordingKMS) setPath(p string) {
	r.mu.Lock()
	r.path = p
	r.mu.Unlock()
}

func (r *recordingKMS) GenerateDataKey(ctx context.Context, in *kms.GenerateDataKeyInput, optFns ...func(*kms.Options)) (*kms.GenerateDataKeyOutput, error) {
	r.record("kms:GenerateDataKey", in.KeyId, in.EncryptionContext)
	return r.c.GenerateDataKey(ctx, in, optFns...)
}

func (r *recordingKMS) Decrypt(ctx context.Context, in *kms.DecryptInput, optFns ...func(*kms.Options)) (*kms.DecryptOutput, error) {
	r.record("kms:Decrypt", in.KeyId, in.EncryptionContext)
	return r.c.Decrypt(ctx, in, optFns...)
}

func (r *recordingKMS) DescribeKey(ctx context.Context, in *kms.DescribeKeyInput, optFns ...func(*kms.Options)) (*kms.DescribeKeyOutput, error) {
	r.record("kms:DescribeKey", in.KeyId, nil)
	return r.c.DescribeKey(ctx, in, optFns...)
}

// recordedCalls runs the real data-plane code paths that use KMS with context — app
// creation, CMK- and managed-scope writes and reads, a backup, a restore, a restore drill
// and a key check — on DynamoDB Local, local-kms and gofakes3, and returns every KMS call
// they made.
func recordedCalls(t *testing.T) (calls []kmsCall, providerKey, customerKey string) {
	t.Helper()
	ctx := context.Background()
	e := objectstest.New(t)
	rec := &recordingKMS{c: e.KMS}
	kp := keys.NewKMS(rec, keys.Options{MaxAttempts: 2, Logger: e.Logger})
	src, err := objects.NewS3(objects.Config{S3: e.S3.Client, Bucket: objectstest.DataBucket, Lineage: e.Store,
		Keys: kp, ProviderKeyARN: e.ProviderKey, PartSize: 5 << 20, Concurrency: 2, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)

	const org, app = "acme", "app-1"
	e.Org(t, org)
	customerKey = e.CMKApp(t, org, "placeholder") // a customer key local-kms knows
	rec.setPath("create app")
	wrapped, err := objects.NewGenerationKey(ctx, kp, org, app, 1, customerKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateApp(ctx, lineage.App{ID: app, OrgID: org, KeyModel: lineage.KeyModelCMK}, customerKey, wrapped,
		lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	rec.setPath("cmk-scope write")
	if _, err := src.Put(ctx, app, objects.ScopeCMK, "a.txt", bytes.NewReader([]byte("customer data"))); err != nil {
		t.Fatal(err)
	}
	rec.setPath("managed-scope write")
	if _, err := src.Put(ctx, app, objects.ScopeManaged, "b.txt", bytes.NewReader([]byte("provider data"))); err != nil {
		t.Fatal(err)
	}

	rec.setPath("backup")
	b, err := backup.New(backup.Config{Store: e.Store, Source: src, Keys: kp, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Events: audit.Discard{}, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	backupID := objectstest.Backup(t, b, app, "exec-backup")

	rec.setPath("restore")
	rs, err := restore.New(restore.Config{Store: e.Store, Source: src, Keys: kp, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Events: audit.Discard{}, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rs.Close)
	in := restore.Input{AppID: app, RestoreID: "r1", BackupID: backupID, SourceAppID: app, RequestedBy: "alice", ExecutionArn: "exec-restore"}
	st, err := rs.Start(ctx, in)
	if err == nil {
		st, err = rs.Run(ctx, st)
	}
	if err == nil {
		_, err = rs.Finish(ctx, st)
	}
	if err != nil {
		t.Fatalf("restore: %v", err)
	}

	rec.setPath("restore drill")
	d, err := drill.New(drill.Config{Store: e.Store, Source: src, Keys: kp, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Events: audit.Discard{}, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	plan, err := d.Plan(ctx, drill.PlanInput{ExecutionArn: "exec-drill"})
	if err != nil || len(plan.Items) == 0 {
		t.Fatalf("drill plan: %+v %v", plan, err)
	}
	for _, it := range plan.Items {
		if oc, err := d.Run(ctx, it); err != nil || oc.Status != drill.StatusPassed {
			t.Fatalf("drill of %s: %+v %v", it.BackupID, oc, err)
		}
	}

	rec.setPath("key check")
	if err := kp.Check(ctx, org, customerKey); err != nil {
		t.Fatalf("key check: %v", err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	return slices.Clone(rec.calls), e.ProviderKey, customerKey
}

// contextAllowed evaluates the generated encryption-context condition
// (infra.EncryptionContextCondition: ForAllValues:StringEquals on kms:EncryptionContextKeys
// and Null false) for a call's context.
func contextAllowed(cond map[string]map[string]any, encCtx map[string]string) bool {
	if len(encCtx) == 0 {
		return cond["Null"]["kms:EncryptionContextKeys"] != "false"
	}
	allowed, _ := cond["ForAllValues:StringEquals"]["kms:EncryptionContextKeys"].([]string)
	for k := range encCtx {
		if !slices.Contains(allowed, k) {
			return false
		}
	}
	return true
}

func contextKeysOf(c kmsCall) []string {
	out := slices.Collect(maps.Keys(c.Context))
	sort.Strings(out)
	return out
}

// TestKMSCallsWithinDeclaredContextKeys: every KMS call the backup, restore, drill,
// managed-scope and key-check paths really make carries only the declared context keys, so
// the generated policies allow them. Against the policy keyline shipped before (three keys)
// the backup and the managed-scope write are refused: the check can fail.
func TestKMSCallsWithinDeclaredContextKeys(t *testing.T) {
	calls, _, _ := recordedCalls(t)
	paths := map[string]bool{}
	cond := infra.EncryptionContextCondition()
	old := infra.EncryptionContextCondition()
	old["ForAllValues:StringEquals"] = map[string]any{"kms:EncryptionContextKeys": []string{"keyline:app", "keyline:generation", "keyline:purpose"}}
	oldRefused := map[string]bool{}
	for _, c := range calls {
		if c.Action == "kms:DescribeKey" {
			continue
		}
		paths[c.Path] = true
		if !contextAllowed(cond, c.Context) {
			t.Errorf("%s: %s with context keys %v: outside the declared keys %v", c.Path, c.Action, contextKeysOf(c), infra.ContextKeys())
		}
		if !contextAllowed(old, c.Context) {
			oldRefused[c.Path] = true
		}
	}
	for _, p := range []string{"create app", "cmk-scope write", "managed-scope write", "backup", "restore", "restore drill", "key check"} {
		if !paths[p] {
			t.Errorf("no KMS call with a context recorded for %s", p)
		}
	}
	for _, p := range []string{"backup", "managed-scope write"} {
		if !oldRefused[p] {
			t.Errorf("the broken three-key policy allows every call of %s: the check cannot fail", p)
		}
	}
}
