package backup_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// TestHourlyScheduleBacksUpEveryHour: an app backed up a few minutes into one hourly run is
// due again at the next run, an hour after that run started (before, "due" compared the time
// since the backup with the full hour, so such an app went every other hour); an extra run
// shortly after a backup finds it not due.
func TestHourlyScheduleBacksUpEveryHour(t *testing.T) {
	f := newFixture(t, 0)
	f.ManagedApp(t, "org1", "hourly")
	f.Put(t, "hourly", objects.ScopeManaged, "a", []byte("x"))
	ctx := context.Background()

	// Run 1 started 3 minutes ago; it reaches the app now.
	run1 := time.Now().Add(-3 * time.Minute)
	listDue := func(exec string, start time.Time) []backup.Item {
		t.Helper()
		out, err := f.b.ListDue(ctx, backup.DueInput{ExecutionArn: exec, StartTime: start.UTC().Format(time.RFC3339Nano)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Items
	}
	items := listDue("exec-hourly-1", run1)
	if len(items) != 1 {
		t.Fatalf("first run: %d due, want 1", len(items))
	}
	if st, err := f.run(t, items[0]); err != nil || st.Status != backup.StatusRecorded {
		t.Fatalf("backup: %+v %v", st, err)
	}
	// An extra run ten minutes later: the app was just backed up.
	if items := listDue("exec-hourly-extra", run1.Add(10*time.Minute)); len(items) != 0 {
		t.Fatalf("extra run 10 minutes later: %d due, want 0", len(items))
	}
	// Run 2, one hour after run 1 started (57 minutes after the backup): due.
	if items := listDue("exec-hourly-2", run1.Add(time.Hour)); len(items) != 1 {
		t.Fatalf("next hourly run: %d due, want 1 (the app would go every other hour)", len(items))
	}
	// The same check against the old rule (due only after a full interval): the app is not
	// due at the next hourly run.
	old, err := backup.New(backup.Config{Store: f.Store, Source: f.Source, Keys: f.Keys, S3: f.S3.Client, Bucket: objectstest.BackupBucket,
		DueSlack: time.Nanosecond, Logger: f.Logger})
	if err != nil {
		t.Fatal(err)
	}
	out, err := old.ListDue(ctx, backup.DueInput{ExecutionArn: "exec-hourly-old", StartTime: run1.Add(time.Hour).UTC().Format(time.RFC3339Nano)})
	if err != nil || len(out.Items) != 0 {
		t.Fatalf("old rule: %+v %v, want nothing due (the defect this test guards against)", out.Items, err)
	}
	// A malformed start time is refused, not guessed.
	if _, err := f.b.ListDue(ctx, backup.DueInput{ExecutionArn: "exec-bad", StartTime: "yesterday"}); err == nil {
		t.Fatal("a malformed startTime was accepted")
	}
}
