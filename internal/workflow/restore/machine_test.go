package restore_test

import (
	"context"
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
)

// TestRestoreMachine runs infra/statemachines/restore.asl.json on the local interpreter with
// the real handlers: a restore that succeeds, and one refused by R3 that ends FAILED with the
// restore recorded REFUSED.
func TestRestoreMachine(t *testing.T) {
	f := newFixture(t)
	f.CMKApp(t, "org1", "app1")
	f.ManagedApp(t, "org1", "man")
	payload := data(t, 40_000)
	f.Put(t, "app1", objects.ScopeCMK, "a", payload)
	id := f.backupOf(t, "app1")
	inv := objectstest.Invoker(map[string]any{
		infra.FnRestoreStart: f.r.Start, infra.FnRestoreRun: f.r.Run, infra.FnRestoreFinish: f.r.Finish, infra.FnRestoreFail: f.r.Fail,
	})
	if _, err := f.Source.DeleteAll(context.Background(), "app1"); err != nil {
		t.Fatal(err)
	}
	ok := f.request(t, "app1", "app1", id)
	res := objectstest.RunMachine(t, infra.SMRestore, map[string]string{"appId": ok.AppID, "restoreId": ok.RestoreID,
		"backupId": id, "sourceAppId": "app1", "requestedBy": "alice"}, inv)
	if res.Status != "SUCCEEDED" {
		t.Fatalf("restore execution %+v", res)
	}
	if rec := f.restoreRecord(t, ok); rec.Status != lineage.RestoreSucceeded || rec.Digest == "" {
		t.Fatalf("record %+v", rec)
	}
	if got := f.Get(t, "app1", objects.ScopeCMK, "a"); string(got) != string(payload) {
		t.Fatal("restored data differs")
	}
	bad := f.request(t, "man", "app1", id)
	res = objectstest.RunMachine(t, infra.SMRestore, map[string]string{"appId": bad.AppID, "restoreId": bad.RestoreID,
		"backupId": id, "sourceAppId": "app1", "requestedBy": "alice"}, inv)
	if res.Status != "FAILED" || res.Error != "RestoreFailed" {
		t.Fatalf("refused restore execution %+v", res)
	}
	if rec := f.restoreRecord(t, bad); rec.Status != lineage.RestoreRefused || rec.Reason == "" {
		t.Fatalf("record %+v", rec)
	}
	// The failed cross-app restore names its source (app1), not its target, in the event
	// operators alarm on and in the failure step's output.
	var refused []audit.Event
	for _, ev := range f.events.Events() {
		if ev.DetailType == audit.DetailRestoreRefused {
			refused = append(refused, ev)
		}
	}
	if len(refused) != 1 {
		t.Fatalf("restore-refused events %+v: want one", refused)
	}
	if d, _ := refused[0].Detail.(map[string]any); d["sourceAppId"] != "app1" || d["appId"] != "man" {
		t.Fatalf("restore-refused event %+v: want it to name source app1 and target man", refused[0].Detail)
	}
}
