package lineage_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/keyline/keyline/internal/lineage"
)

// BenchmarkRevokeApps measures RevokeKey of a key with 200 apps (plus 20 on another) per
// iteration, one write whatever the apps; the apps are created outside the timer.
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
		r, err := s.RevokeKey(ctx, key, "DisableKey", lineage.KeyEventRef{ID: fmt.Sprint("ev-", i), Time: t0}, lineage.Cause{})
		if err != nil {
			b.Fatal(err)
		}
		if !r.Changed {
			b.Fatalf("revocation %d changed nothing", i)
		}
	}
}
