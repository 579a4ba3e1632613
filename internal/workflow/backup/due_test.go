package backup_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/lineage"
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

// TestHourlyScheduleOverHours plays an hourly schedule for several hours on a fake clock: each
// run lists the due apps at its start and reaches them a while later (one a minute in, one
// twenty minutes in), as a run working through many apps does. Every app is backed up at
// every run. The every-other-hour variant ("due" only a full interval after the last backup)
// fails the same check.
func TestHourlyScheduleOverHours(t *testing.T) {
	const (
		runs     = 6
		interval = time.Hour
	)
	// How long after its run's start each app is reached.
	reachedAfter := map[string]time.Duration{"early": time.Minute, "late": 20 * time.Minute}
	f := newFixture(t, 0)
	// play runs the schedule over its own apps (tag-early, tag-late) and counts their backups.
	play := func(t *testing.T, dueSlack time.Duration, tag string) map[string]int {
		t.Helper()
		ctx := context.Background()
		for app := range reachedAfter {
			f.ManagedApp(t, "org1", tag+"-"+app)
			f.Put(t, tag+"-"+app, objects.ScopeManaged, "a", []byte(app))
		}
		// Runs start on the hour, the first one an hour from now.
		clk := clocktest.NewFake(time.Now().Truncate(interval).Add(interval))
		store := lineage.New(f.DDB, f.Table, lineage.Options{Clock: clk, Logger: f.Logger})
		b, err := backup.New(backup.Config{Store: store, Source: f.Source, Keys: f.Keys, S3: f.S3.Client, Bucket: objectstest.BackupBucket,
			Interval: interval, DueSlack: dueSlack, Clock: clk, Logger: f.Logger})
		if err != nil {
			t.Fatal(err)
		}
		backedUp := map[string]int{}
		for run := range runs {
			start := clk.Now()
			exec := fmt.Sprintf("arn:aws:states:us-east-1:000000000000:execution:backup:%s-%d", tag, run)
			out, err := b.ListDue(ctx, backup.DueInput{ExecutionArn: exec, StartTime: start.UTC().Format(time.RFC3339Nano)})
			if err != nil {
				t.Fatal(err)
			}
			var due []backup.Item
			for _, it := range out.Items {
				if strings.HasPrefix(it.AppID, tag+"-") {
					due = append(due, it)
				}
			}
			after := func(it backup.Item) time.Duration { return reachedAfter[strings.TrimPrefix(it.AppID, tag+"-")] }
			slices.SortFunc(due, func(x, y backup.Item) int { return cmp.Compare(after(x), after(y)) })
			for _, it := range due {
				clk.Set(start.Add(after(it)))
				st, err := b.Lease(ctx, it)
				if err == nil {
					st, err = b.Upload(ctx, st)
				}
				if err == nil {
					st, err = b.Record(ctx, st)
				}
				if err != nil || st.Status != backup.StatusRecorded {
					t.Fatalf("run %d, app %s: %+v %v", run, it.AppID, st, err)
				}
				backedUp[strings.TrimPrefix(it.AppID, tag+"-")]++
			}
			clk.Set(start.Add(interval))
		}
		return backedUp
	}
	// The deployed rule: due once Interval - DueSlack (the default, half the interval) passed.
	got := play(t, 0, "hourly")
	for app := range reachedAfter {
		if got[app] != runs {
			t.Errorf("app %s backed up %d times in %d hourly runs, want every run", app, got[app], runs)
		}
	}
	// The every-other-hour variant: the same check catches it.
	old := play(t, time.Nanosecond, "every-other-hour")
	for app := range reachedAfter {
		if old[app] == runs {
			t.Errorf("the every-other-hour variant backed app %s up at every run: the check cannot catch it", app)
		}
	}
	t.Logf("backups in %d hourly runs: deployed rule %v, every-other-hour variant %v", runs, got, old)
}
