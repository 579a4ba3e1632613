package lineage_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
)

func TestZZPar(t *testing.T) {
	client := testenv.DynamoDB(t)
	table := testenv.NewTable(t, client)
	ctx := context.Background()
	round := 0
	for _, cfg := range [][2]int{{1, 32}, {25, 4}, {1, 32}, {25, 4}, {1, 4}, {25, 32}} {
		s := lineage.New(client, table, lineage.Options{RevokeBatch: cfg[0], Parallelism: cfg[1]})
		if round == 0 {
			mustOrg(t, s, "bench")
		}
		round++
		key := fmt.Sprintf("k-%d", round)
		mustApps(t, s, "bench", fmt.Sprintf("r%d", round), key, 200)
		start := time.Now()
		if _, err := s.RevokeKey(ctx, key, "x", lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
		t.Logf("batch %d par %d: %v per app", cfg[0], cfg[1], time.Since(start)/200)
	}
}
