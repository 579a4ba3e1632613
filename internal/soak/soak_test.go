package soak

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyline/keyline/internal/local/fault"
)

// The fault schedule is valid and its request faults add up to the rate asked for.
func TestFaultConfig(t *testing.T) {
	for _, rate := range []float64{0.01, DefaultFaultRate, 0.5} {
		c := faultConfig(7, rate)
		if err := c.Validate(); err != nil {
			t.Fatalf("rate %v: %v", rate, err)
		}
		r := c.Rules[0]
		if got := r.Throttle + r.ServerError + r.Timeout; math.Abs(got-rate) > 1e-9 {
			t.Fatalf("rate %v: rules add up to %v", rate, got)
		}
	}
}

// Crashes cycle through the crash points and stop when none are left.
func TestCrashArgs(t *testing.T) {
	d := &driver{}
	d.crashesLeft.Store(2)
	if got := d.crashArgs(); got != crashPoints[0]+":1" {
		t.Fatalf("first: %q", got)
	}
	d.crashes.Add(1)
	d.crashesLeft.Add(-1)
	if got := d.crashArgs(); got != crashPoints[1]+":1" {
		t.Fatalf("second: %q", got)
	}
	d.crashes.Add(1)
	d.crashesLeft.Add(-1)
	if got := d.crashArgs(); got != "" {
		t.Fatalf("none left: %q", got)
	}
	if _, err := fault.ParseCrashAt(crashPoints[3] + ":1"); err != nil {
		t.Fatal(err)
	}
}

// The fault log written across restarts is counted by kind.
func TestCountFaults(t *testing.T) {
	p := filepath.Join(t.TempDir(), "faults.jsonl")
	log := `{"kind":"throttle","service":"kms"}
{"kind":"5xx","service":"s3"}
{"kind":"throttle","service":"dynamodb"}
`
	if err := os.WriteFile(p, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	n, kinds := countFaults(p)
	if n != 3 || kinds["throttle"] != 2 || kinds["5xx"] != 1 {
		t.Fatalf("counted %d %v", n, kinds)
	}
	if n, _ := countFaults(filepath.Join(t.TempDir(), "none")); n != 0 {
		t.Fatalf("missing log counted %d", n)
	}
}
