// Package audittest records audit events in memory for tests: an audit.Emitter that keeps
// what it is given.
package audittest

import (
	"context"
	"sync"

	"github.com/keyline/keyline/internal/audit"
)

var _ audit.Emitter = (*Recorder)(nil)

// Recorder is an Emitter that keeps the events it is given, in order.
type Recorder struct {
	mu     sync.Mutex
	events []audit.Event
}

// Emit implements audit.Emitter: it refuses invalid events as the real emitters do.
func (r *Recorder) Emit(_ context.Context, events ...audit.Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, events...)
	return nil
}

// Events returns a copy of the events emitted so far.
func (r *Recorder) Events() []audit.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Event(nil), r.events...)
}

// Count returns how many events of the given detail type were emitted.
func (r *Recorder) Count(detailType string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, e := range r.events {
		if e.DetailType == detailType {
			n++
		}
	}
	return n
}

// Reset forgets the events emitted so far.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = nil
}
