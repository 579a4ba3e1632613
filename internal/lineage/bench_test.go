package lineage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/keyline/keyline/internal/lineage"
)

// BenchmarkRevokeApps measures RevokeKey over 200 apps on one key (plus 20 on another) per
// iteration; the apps are created outside the timer.
func BenchmarkRevokeApps(b *testing.B) {
	const apps = 200
	e := newEnv(b, lineage.Options{})
	s := e.store
	ctx := context.Background()
	mustOrg(b, s, "bench")
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		key := fmt.Sprintf("arn:aws:kms:us-east-1:111122223333:key/bench-%d", i)
		mustApps(b, s, "bench", fmt.Sprintf("r%d", i), key, apps)
		mustApps(b, s, "bench", fmt.Sprintf("k%d", i), keyB, 20)
		b.StartTimer()
		affected, err := s.RevokeKey(ctx, key, "DisableKey", lineage.Cause{EventID: fmt.Sprint("ev-", i)})
		if err != nil {
			b.Fatal(err)
		}
		if len(affected) != apps {
			b.Fatalf("revoked %d apps, want %d", len(affected), apps)
		}
	}
}
