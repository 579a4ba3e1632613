// Package clock gives keyline one notion of time that tests and runs can control.
//
// Everything that waits or stamps time (KMS deletion windows, schedules, Wait states,
// leases, reactivation windows) takes a Clock instead of calling time.Now, so tests
// advance time instead of sleeping (clocktest.Fake; Offset for a whole running system).
package clock

import (
	"time"
)

// Clock tells the time and waits for it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives the time once d has passed on this clock.
	After(d time.Duration) <-chan time.Time
}

// Real returns the wall clock.
func Real() Clock { return realClock{} }

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
