package revocation_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// BenchmarkHandleDisableKey100Apps measures the key-event function's domain path, from a
// DisableKey event to 100 apps on the key deactivated (the key item's write) and their
// notifications started, on DynamoDB Local (the figures of 1 and 100,000 apps are
// BenchmarkKeyState's, in internal/local/stack).
func BenchmarkHandleDisableKey100Apps(b *testing.B) {
	const apps = 100
	ctx := context.Background()
	ddb := testenv.DynamoDB(b)
	store := lineage.New(ddb, testenv.NewTable(b, ddb), lineage.Options{})
	kc, _ := testenv.KMS(b)
	kp := keys.NewKMS(kc, keys.Options{})
	svc, err := revocation.New(revocation.Config{Store: store, Keys: kp, Emitter: &audittest.Recorder{}, Clock: clock.Real()})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := store.CreateOrg(ctx, lineage.Org{ID: "org-b", Name: "Bench", Accounts: []string{"111122223333"}}); err != nil {
		b.Fatal(err)
	}
	wrapped := make([]byte, 184) // the lineage store keeps the wrapped key as bytes; no KMS call needed here
	_, _ = rand.Read(wrapped)
	var total time.Duration
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		key := fmt.Sprintf("arn:aws:kms:us-east-1:111122223333:key/%08d-0000-4000-8000-%012d", i, i)
		for a := range apps {
			id := fmt.Sprintf("bench-%d-%03d", i, a)
			if _, err := store.CreateApp(ctx, lineage.App{ID: id, OrgID: "org-b", KeyModel: lineage.KeyModelCMK}, key, wrapped, lineage.Cause{}); err != nil {
				b.Fatal(err)
			}
		}
		raw := event(&testing.T{}, "kms-disable-key.json", key, fmt.Sprintf("bench-ev-%d", i), time.Now())
		b.StartTimer()
		start := time.Now()
		res, err := svc.HandleCloudTrail(ctx, raw)
		total += time.Since(start)
		if err != nil || !res.Changed {
			b.Fatalf("revocation: %+v, err %v", res, err)
		}
	}
	b.ReportMetric(float64(total)/float64(time.Millisecond)/float64(b.N), "revoke_handler_100_apps_ms")
}
