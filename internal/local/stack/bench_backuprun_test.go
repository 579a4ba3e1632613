package stack

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/states"
)

// scheduledApps is the number of due apps of the scheduled-run benchmark.
const scheduledApps = 5000

// scheduledObjectBytes is the size of each app's one object.
const scheduledObjectBytes = 1 << 10

// BenchmarkBackupRun5000Apps: 5,000 small provider-managed apps (one 1 KiB object each,
// made through the console) are due; one scheduled run of the backup machine (the schedule's
// input) backs them all up, end to end on the local deployment. Figure: the run's duration.
// It runs before the key-state benchmark (files run in name order), whose 100,000 apps
// the run's listing would otherwise page through.
func BenchmarkBackupRun5000Apps(b *testing.B) {
	e := sharedBench(b)
	ctx := context.Background()
	run := time.Now().UnixNano() % 1e9
	apps := make([]string, scheduledApps)
	for i := range apps {
		apps[i] = fmt.Sprintf("sched-%d-%05d", run, i)
	}
	setup := time.Now()
	err := parallel(ctx, len(apps), setupPar, func(ctx context.Context, i int) error {
		if err := e.org.Expect(ctx, 201, "POST", "/v1/apps", map[string]string{"appId": apps[i], "orgId": e.orgs, "keyModel": "managed"}, nil); err != nil {
			return fmt.Errorf("create %s: %w", apps[i], err)
		}
		return e.putManagedObject(ctx, apps[i], "data", uint64(i), scheduledObjectBytes)
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("setup: %d apps with one %d-byte object each in %s", len(apps), scheduledObjectBytes, time.Since(setup).Round(time.Millisecond))

	b.ResetTimer()
	start := time.Now()
	arn, err := e.st.SFN.StartExecution(ctx, e.st.Machines[infra.SMBackup], "", []byte(`{"requestedBy":"scheduler"}`))
	if err != nil {
		b.Fatal(err)
	}
	d, err := e.st.SFN.WaitExecution(ctx, arn)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	b.StopTimer()
	if d.Status != states.StatusSucceeded {
		b.Fatalf("scheduled run %s: %s %s", d.Status, d.Error, d.Cause)
	}
	var missing atomic.Int64
	err = parallel(ctx, len(apps), setupPar, func(ctx context.Context, i int) error {
		bs, err := e.st.Store.ListBackups(ctx, apps[i])
		if err != nil {
			return err
		}
		if len(bs) != 1 {
			missing.Add(1)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if n := missing.Load(); n > 0 {
		b.Fatalf("%d of %d apps have no backup after the scheduled run", n, len(apps))
	}
	b.ReportMetric(took.Seconds(), "backup_run_5000_apps_s")
}
