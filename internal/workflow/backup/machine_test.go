package backup_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
)

func (f *fixture) invoker() map[string]any {
	return map[string]any{
		infra.FnBackupListDue: f.b.ListDue, infra.FnBackupLease: f.b.Lease, infra.FnBackupUpload: f.b.Upload,
		infra.FnBackupRecord: f.b.Record, infra.FnBackupFail: f.b.Fail,
	}
}

// TestBackupMachine runs infra/statemachines/backup.asl.json on the local interpreter with the
// real handlers: one app backed up, one skipped while re-encrypting (R5), one whose key was
// disabled fails through the Catch path, and the execution itself succeeds.
func TestBackupMachine(t *testing.T) {
	f := newFixture(t, 0)
	f.CMKApp(t, "org1", "ok")
	f.CMKApp(t, "org1", "reenc")
	revoked := f.CMKApp(t, "org1", "revoked")
	for _, a := range []string{"ok", "reenc", "revoked"} {
		f.Put(t, a, objects.ScopeCMK, "a", data(t, 2048))
	}
	ctx := context.Background()
	newKey := f.CMKApp(t, "org1", "spare")
	wrapped, err := objects.NewGenerationKey(ctx, f.Keys, "org1", "reenc", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.BeginReencrypt(ctx, "reenc", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(revoked)}); err != nil {
		t.Fatal(err)
	}
	res := objectstest.RunMachine(t, infra.SMBackup, map[string]any{"appIds": []string{"ok", "reenc", "revoked"}, "requestedBy": "tester"},
		objectstest.Invoker(f.invoker()))
	if res.Status != "SUCCEEDED" {
		t.Fatalf("execution %+v", res)
	}
	var out struct {
		Results []backup.Step `json:"results"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
	got := map[string]string{}
	for _, r := range out.Results {
		got[r.AppID] = r.Status
	}
	want := map[string]string{"ok": backup.StatusRecorded, "reenc": backup.StatusSkipped, "revoked": backup.StatusFailed}
	for a, s := range want {
		if got[a] != s {
			t.Fatalf("results %s: want %v", res.Output, want)
		}
	}
	if len(f.rep.Calls()) != 1 {
		t.Fatalf("revocation reports %v", f.rep.Calls())
	}
	// Scheduled run: "ok" was just backed up; the others are still due (their skip/failure is
	// recorded again), and "spare" (never backed up) is due.
	res = objectstest.RunMachine(t, infra.SMBackup, map[string]any{"requestedBy": "scheduler"}, objectstest.Invoker(f.invoker()))
	if res.Status != "SUCCEEDED" {
		t.Fatalf("scheduled execution %+v", res)
	}
	out.Results = nil
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	for _, r := range out.Results {
		if r.AppID == "ok" {
			t.Fatalf("an app backed up moments ago was due again: %s", res.Output)
		}
	}
	if len(out.Results) != 3 {
		t.Fatalf("scheduled results %s", res.Output)
	}
}

// TestBackupMachinePages lists one app per page: the machine loops until every app is done.
func TestBackupMachinePages(t *testing.T) {
	f := newFixture(t, 0)
	b, err := backup.New(backup.Config{Store: f.Store, Source: f.Source, Keys: f.Keys, S3: f.S3.Client, Bucket: objectstest.BackupBucket,
		PageSize: 1, PartSize: 5 << 20, Logger: f.Logger})
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
	for _, a := range []string{"p1", "p2", "p3"} {
		f.ManagedApp(t, "org1", a)
		f.Put(t, a, objects.ScopeManaged, "x", []byte(a))
	}
	res := objectstest.RunMachine(t, infra.SMBackup, map[string]any{"requestedBy": "scheduler"}, objectstest.Invoker(f.invoker()))
	if res.Status != "SUCCEEDED" {
		t.Fatalf("execution %+v", res)
	}
	for _, a := range []string{"p1", "p2", "p3"} {
		bs, err := f.Store.ListBackups(context.Background(), a)
		if err != nil || len(bs) != 1 {
			t.Fatalf("%s: backups %+v %v", a, bs, err)
		}
	}
}
