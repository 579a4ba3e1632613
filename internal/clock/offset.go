package clock

import (
	"sync"
	"time"
)

// Offset is a real clock that can be jumped forward: Now is the wall clock plus an offset,
// and After fires when its time is reached either by waiting or by a jump. A whole system
// runs on it in real time (retries, Wait states, schedules), while a test or the demo
// skips days (a deletion window, a reactivation window) with Advance.
type Offset struct {
	mu      sync.Mutex
	offset  time.Duration
	waiters map[*offsetWaiter]struct{}
}

type offsetWaiter struct {
	at    time.Time
	ch    chan time.Time
	timer *time.Timer
	once  sync.Once
}

// NewOffset returns an Offset clock with no offset.
func NewOffset() *Offset { return &Offset{waiters: map[*offsetWaiter]struct{}{}} }

// Now returns the wall clock plus the offset.
func (o *Offset) Now() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	return time.Now().Add(o.offset)
}

// After fires once d has passed on this clock.
func (o *Offset) After(d time.Duration) <-chan time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	w := &offsetWaiter{at: time.Now().Add(o.offset + d), ch: make(chan time.Time, 1)}
	if d <= 0 {
		w.ch <- w.at
		return w.ch
	}
	o.waiters[w] = struct{}{}
	w.timer = time.AfterFunc(d, func() { o.fire(w) })
	return w.ch
}

func (o *Offset) fire(w *offsetWaiter) {
	o.mu.Lock()
	delete(o.waiters, w)
	now := time.Now().Add(o.offset)
	o.mu.Unlock()
	w.once.Do(func() {
		w.timer.Stop()
		w.ch <- now
	})
}

// Advance jumps the clock forward by d and fires every waiter that is now due.
func (o *Offset) Advance(d time.Duration) {
	o.mu.Lock()
	if d > 0 {
		o.offset += d
	}
	now := time.Now().Add(o.offset)
	var due []*offsetWaiter
	for w := range o.waiters {
		if !w.at.After(now) {
			due = append(due, w)
		}
	}
	o.mu.Unlock()
	for _, w := range due {
		o.fire(w)
	}
}
