package drill_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/drill"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	*objectstest.Env
	b      *backup.Backups
	d      *drill.Drills
	events *audittest.Recorder
}

func newFixture(t *testing.T, perApp int) *fixture {
	e := objectstest.New(t)
	f := &fixture{Env: e, events: &audittest.Recorder{}}
	var err error
	f.b, err = backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Events: f.events, PartSize: 5 << 20, Concurrency: 2, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	f.d, err = drill.New(drill.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		PerApp: perApp, Events: f.events, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.d.Close)
	e.Org(t, "org1")
	return f
}

func data(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (f *fixture) backupOf(t *testing.T, appID, exec string) string {
	t.Helper()
	return objectstest.Backup(t, f.b, appID, exec)
}

func audits(t *testing.T, f *fixture, app, action string) []lineage.AuditEntry {
	t.Helper()
	all, err := f.Store.ListAudit(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	var out []lineage.AuditEntry
	for _, a := range all {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}

func TestDrillPassesAndCleansUp(t *testing.T) {
	f := newFixture(t, 1)
	f.CMKApp(t, "org1", "app1")
	f.ManagedApp(t, "org1", "app2")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 2000))
	f.Put(t, "app1", objects.ScopeCMK, "big", data(t, 6<<20))
	f.Put(t, "app1", objects.ScopeManaged, "m", []byte("m"))
	f.Put(t, "app2", objects.ScopeManaged, "x", data(t, 100))
	f.backupOf(t, "app1", "exec-1")
	f.Put(t, "app1", objects.ScopeCMK, "later", []byte("newer data"))
	newest := f.backupOf(t, "app1", "exec-2")
	b2 := f.backupOf(t, "app2", "exec-3")
	ctx := context.Background()
	plan, err := f.d.Plan(ctx, drill.PlanInput{ExecutionArn: "drill-exec-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Items) != 2 {
		t.Fatalf("plan %+v: want the newest backup of each app", plan)
	}
	want := map[string]string{"app1": newest, "app2": b2}
	for _, it := range plan.Items {
		if want[it.AppID] != it.BackupID {
			t.Fatalf("planned %s/%s, want %s", it.AppID, it.BackupID, want[it.AppID])
		}
		oc, err := f.d.Run(ctx, it)
		if err != nil || oc.Status != drill.StatusPassed {
			t.Fatalf("drill of %s: %+v %v", it.AppID, oc, err)
		}
	}
	if left := f.KeysUnder(t, objectstest.DataBucket, "drills/"); len(left) != 0 {
		t.Fatalf("scratch copies left: %v", left)
	}
	if n := len(audits(t, f, "app1", drill.ActionDrillPassed)); n != 1 {
		t.Fatalf("%d drill.passed entries for app1", n)
	}
	if f.events.Count(audit.DetailDrillFailed) != 0 {
		t.Fatal("a passing drill emitted a failure")
	}
	// The app's own data is untouched.
	if got := f.Get(t, "app1", objects.ScopeCMK, "later"); string(got) != "newer data" {
		t.Fatalf("app data changed: %q", got)
	}
}

func TestDrillDetectsCorruptedBackup(t *testing.T) {
	f := newFixture(t, 2)
	f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 300_000))
	id := f.backupOf(t, "app1", "exec-1")
	key := backup.ObjectKey("app1", id)
	raw := f.Raw(t, objectstest.BackupBucket, key)
	bad := bytes.Clone(raw)
	bad[len(bad)/2] ^= 0x80
	f.PutRaw(t, objectstest.BackupBucket, key, bad)
	ctx := context.Background()
	plan, err := f.d.Plan(ctx, drill.PlanInput{ExecutionArn: "drill-exec-2"})
	if err != nil || len(plan.Items) != 1 {
		t.Fatalf("plan %+v %v", plan, err)
	}
	oc, err := f.d.Run(ctx, plan.Items[0])
	if err != nil || oc.Status != drill.StatusFailed || oc.Reason == "" {
		t.Fatalf("drill of a corrupted backup: %+v %v", oc, err)
	}
	if f.events.Count(audit.DetailDrillFailed) != 1 {
		t.Fatalf("events %+v", f.events.Events())
	}
	if n := len(audits(t, f, "app1", drill.ActionDrillFailed)); n != 1 {
		t.Fatalf("%d drill.failed entries", n)
	}
	if left := f.KeysUnder(t, objectstest.DataBucket, "drills/"); len(left) != 0 {
		t.Fatalf("scratch copies left: %v", left)
	}
}

func TestDrillSkipsUnrestorableBackups(t *testing.T) {
	f := newFixture(t, 1)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	id := f.backupOf(t, "app1", "exec-1")
	ctx := context.Background()
	if _, err := f.Store.RevokeKey(ctx, keyARN, "DisableKey", lineage.KeyEventRef{ID: "e", Time: time.Now()}, lineage.Cause{EventID: "e"}); err != nil {
		t.Fatal(err)
	}
	plan, err := f.d.Plan(ctx, drill.PlanInput{ExecutionArn: "drill-exec-3"})
	if err != nil || len(plan.Items) != 0 {
		t.Fatalf("plan %+v %v: a revoked backup must not be drilled", plan, err)
	}
	oc, err := f.d.Run(ctx, drill.Target{DrillID: "d", AppID: "app1", BackupID: id, ExecutionArn: "x"})
	if err != nil || oc.Status != drill.StatusSkipped {
		t.Fatalf("run on a revoked backup: %+v %v", oc, err)
	}
}
