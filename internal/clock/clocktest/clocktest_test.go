package clocktest

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestFakeFiresOnlyWhenAdvanced(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(t0)
	ch := f.After(time.Hour)
	select {
	case <-ch:
		t.Fatal("fired before the clock moved")
	default:
	}
	f.Advance(59 * time.Minute)
	select {
	case <-ch:
		t.Fatal("fired early")
	default:
	}
	f.Advance(time.Minute)
	if got := <-ch; !got.Equal(t0.Add(time.Hour)) {
		t.Fatalf("fired at %v", got)
	}
	if f.Waiters() != 0 {
		t.Fatalf("%d waiters left", f.Waiters())
	}
	f.Set(t0) // never backwards
	if !f.Now().Equal(t0.Add(time.Hour)) {
		t.Fatalf("clock went backwards to %v", f.Now())
	}
}

func TestFakeWaitForWaiter(t *testing.T) {
	f := NewFake(time.Unix(0, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := f.WaitForWaiter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("no waiter, cancelled: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- f.WaitForWaiter(context.Background()) }()
	ch := f.After(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Second)
	<-ch
}
