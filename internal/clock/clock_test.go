package clock

import (
	"testing"
	"time"
)

func TestOffsetJumpsAndFires(t *testing.T) {
	o := NewOffset()
	before := time.Now()
	ch := o.After(240 * time.Hour)
	o.Advance(241 * time.Hour)
	select {
	case at := <-ch:
		if at.Sub(before) < 241*time.Hour {
			t.Fatalf("fired at %v, less than the jump after %v", at, before)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a jump past the deadline did not fire the waiter")
	}
	if d := o.Now().Sub(time.Now()); d < 241*time.Hour-time.Second || d > 241*time.Hour+time.Second {
		t.Fatalf("offset %v", d)
	}
	// Waiting in real time works too.
	select {
	case <-o.After(10 * time.Millisecond):
	case <-time.After(5 * time.Second):
		t.Fatal("a short wait never fired")
	}
}

// WaitForWaiter blocks until something waits on the clock, and gives up with its context.
