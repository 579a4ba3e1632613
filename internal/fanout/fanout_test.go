package fanout_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/keyline/keyline/internal/fanout"
)

var errOdd = errors.New("odd")

func TestEachRunsEveryItemWithinTheLimit(t *testing.T) {
	const limit = 3
	items := make([]int, 50)
	for i := range items {
		items[i] = i
	}
	var running, peak, ran atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, len(items))
	done := make(chan error, 1)
	go func() {
		done <- fanout.Each(context.Background(), limit, items, func(_ context.Context, i int) error {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			started <- struct{}{}
			<-release
			running.Add(-1)
			ran.Add(1)
			if i%2 == 1 {
				return fmt.Errorf("item %d: %w", i, errOdd)
			}
			return nil
		})
	}()
	// Exactly limit calls start before any returns.
	for range limit {
		<-started
	}
	select {
	case <-started:
		t.Fatal("more than the limit started at once")
	default:
	}
	close(release)
	err := <-done
	if ran.Load() != int64(len(items)) || peak.Load() > limit {
		t.Fatalf("ran %d of %d, peak %d (limit %d)", ran.Load(), len(items), peak.Load(), limit)
	}
	// Every failure is in the result, not only the first.
	if !errors.Is(err, errOdd) {
		t.Fatalf("error %v does not wrap the items' errors", err)
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != len(items)/2 {
		t.Fatalf("error %v: want the %d failures joined", err, len(items)/2)
	}
}

func TestEachStopsStartingWhenTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var ran atomic.Int64
	err := fanout.Each(ctx, 1, []int{1, 2, 3, 4}, func(_ context.Context, i int) error {
		ran.Add(1)
		if i == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || ran.Load() != 2 {
		t.Fatalf("after cancel: ran %d, error %v", ran.Load(), err)
	}
	if err := fanout.Each(context.Background(), 4, []int{}, func(context.Context, int) error { return errOdd }); err != nil {
		t.Fatalf("no items: %v", err)
	}
}
