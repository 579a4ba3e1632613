package revocation_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// keyEvent is one Disable or Enable of the test key.
type keyEvent struct {
	id      string
	disable bool
	at      time.Time
}

// later reports whether a is after b in the order every replica applies (eventTime, then id).
func later(a, b keyEvent) bool {
	if !a.at.Equal(b.at) {
		return a.at.After(b.at)
	}
	return a.id > b.id
}

// playEvents drives n interleaved Disable/Enable events of one key through ten concurrent
// handlers (svc), in random order, each delivered one to three times, each delivery after
// a random delay; it returns the event that is last by eventTime. Half the events share
// their second with another (CloudTrail's resolution), so ties are ordered by event id.
func playEvents(t *testing.T, e *env, svc *revocation.Service, key string, n int, rng *rand.Rand) keyEvent {
	t.Helper()
	base := e.clk.Now().Add(-time.Hour)
	events := make([]keyEvent, n)
	var last keyEvent
	for i := range events {
		events[i] = keyEvent{id: fmt.Sprintf("ev-%08x", rng.Uint32()), disable: rng.IntN(2) == 0,
			at: base.Add(time.Duration(i/2) * time.Second)}
		if i == 0 || later(events[i], last) {
			last = events[i]
		}
	}
	var deliveries []keyEvent
	for _, ev := range events {
		for range 1 + rng.IntN(3) {
			deliveries = append(deliveries, ev)
		}
	}
	rng.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	delays := make([]time.Duration, len(deliveries))
	for i := range delays {
		delays[i] = time.Duration(rng.IntN(2000)) * time.Microsecond
	}
	const handlers = 10
	work := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, len(deliveries))
	for range handlers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ev := deliveries[i]
				timer := time.NewTimer(delays[i])
				<-timer.C
				name := "kms-enable-key.json"
				if ev.disable {
					name = "kms-disable-key.json"
				}
				if _, err := svc.HandleCloudTrail(e.ctx, event(t, name, key, ev.id, ev.at)); err != nil {
					errs <- fmt.Errorf("event %s: %w", ev.id, err)
				}
			}
		}()
	}
	for i := range deliveries {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return last
}

// checkFinal reports how the key and its apps differ from the state of event last.
func checkFinal(e *env, key string, apps []string, last keyEvent) error {
	want, wantApp := lineage.KeyUsable, lineage.AppActive
	if last.disable {
		want, wantApp = lineage.KeyRevoked, lineage.AppDeactivated
	}
	k, err := e.store.GetKey(e.ctx, key)
	if err != nil {
		return err
	}
	if k.State != want {
		return fmt.Errorf("key is %s, but the last event by eventTime (%s at %s, disable=%v) leaves it %s", k.State, last.id, last.at.Format(time.RFC3339), last.disable, want)
	}
	for _, id := range apps {
		a, err := e.store.GetApp(e.ctx, id)
		if err != nil {
			return err
		}
		if a.Status != wantApp {
			return fmt.Errorf("app %s is %s, want %s", id, a.Status, wantApp)
		}
	}
	return nil
}

// TestInterleavedKeyEventsEndInTheLastEventsState: 200 interleaved Disable/Enable events
// for one key, through ten concurrent handlers, in random order, duplicated and delayed:
// the final state is the state of the last event by eventTime, every time (run it with
// -race -count=20).
func TestInterleavedKeyEventsEndInTheLastEventsState(t *testing.T) {
	e := newEnv(t)
	key := e.newKey() // enabled in KMS throughout: every EnableKey passes its test round trip
	apps := []string{"o1", "o2", "o3"}
	for _, id := range apps {
		e.app(id, key)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	last := playEvents(t, e, e.svc, key, 200, rand.New(rand.NewPCG(seed, 7)))
	if err := checkFinal(e, key, apps, last); err != nil {
		t.Fatal(err)
	}
	// The key's trail holds one entry per change; each change sent at most one per-key event
	// (none when a newer change superseded it before its notifications ran).
	entries, err := e.store.ListKeyAudit(e.ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	revoked := e.rec.Count(audit.DetailKeyRevoked)
	reactivated := e.rec.Count(audit.DetailKeyReactivated)
	changes := 0
	for _, en := range entries {
		if en.Action == lineage.ActionKeyRevoked || en.Action == lineage.ActionKeyReactivated {
			changes++
		}
	}
	if changes == 0 || revoked+reactivated > changes || revoked+reactivated == 0 {
		t.Fatalf("%d changes on the key's trail, %d Key Revoked + %d Key Reactivated events", changes, revoked, reactivated)
	}
}

// arrivalOrder is the broken variant of the key item's order: it orders events by when
// they are applied, not by their eventTime (what the previous code effectively did).
type arrivalOrder struct {
	*lineage.Store
	n atomic.Int64
}

func (a *arrivalOrder) ref(ev lineage.KeyEventRef) lineage.KeyEventRef {
	return lineage.KeyEventRef{ID: ev.ID, Time: time.Unix(0, a.n.Add(1))}
}

func (a *arrivalOrder) RevokeKey(ctx context.Context, arn, cause string, ev lineage.KeyEventRef, by lineage.Cause) (lineage.KeyChangeResult, error) {
	return a.Store.RevokeKey(ctx, arn, cause, a.ref(ev), by)
}

func (a *arrivalOrder) ReactivateKey(ctx context.Context, arn string, w time.Duration, ev lineage.KeyEventRef, by lineage.Cause) (lineage.KeyChangeResult, error) {
	return a.Store.ReactivateKey(ctx, arn, w, a.ref(ev), by)
}

// TestInterleavedKeyEventsCheckFailsOnArrivalOrder: the check above fails against the
// broken variant that orders events on arrival: within a few rounds the last event to
// arrive is not the last by eventTime and leaves the key in the wrong state.
func TestInterleavedKeyEventsCheckFailsOnArrivalOrder(t *testing.T) {
	e := newEnv(t)
	broken, err := revocation.New(revocation.Config{Store: &arrivalOrder{Store: e.store}, Keys: e.keys, Emitter: e.pump, Clock: e.clk})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 11))
	for round := range 20 {
		key := e.newKey()
		id := fmt.Sprint("r", round)
		e.app(id, key)
		last := playEvents(t, e, broken, key, 20, rng)
		if err := checkFinal(e, key, []string{id}, last); err != nil {
			t.Logf("round %d: the check caught the broken order: %v", round, err)
			return
		}
	}
	t.Fatal("20 rounds of events ordered on arrival all ended in the last event's state: the check cannot tell the orders apart")
}
