// Package soak drives a local deployment for a while the way its users and its customers'
// keys would, all at once, under injected faults and process crashes, and checks the
// invariants of DESIGN §7 throughout and at the end.
//
// The deployment runs as a separate `keyline local` process on its own data directory, with a
// fault schedule (internal/local/fault) seeded from the soak's seed: about FaultRate of all
// AWS calls fail (throttling, 5xx, timeouts), CloudTrail events are lost, repeated, delayed
// and reordered, handlers crash, and the whole process crashes at chosen state transitions
// and is restarted on the same data directory. Meanwhile workers write and read objects,
// back up (on demand and as the schedule would), re-encrypt, revoke and reactivate keys,
// restore, run drills and try other orgs' apps; every call is recorded
// (invariants.Recorder). A checker collects snapshots (invariants.Collect) and checks them
// with the history; a violation that a snapshot shows is confirmed on a second snapshot
// (a snapshot is not atomic). At the end the soak settles (key health, executions done),
// reads every object back and checks once more, with KMS's own key states.
package soak

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyline/keyline/internal/invariants"
	"github.com/keyline/keyline/internal/local/fault"
)

// Defaults of Options.
const (
	DefaultDuration  = 3 * time.Minute
	DefaultApps      = 50
	DefaultOrgs      = 5
	DefaultFaultRate = 0.10
	DefaultCrashes   = 2
	DefaultWorkers   = 12
	// DefaultCheckEvery is how often the invariants are checked while the soak runs.
	DefaultCheckEvery = 15 * time.Second
	// DefaultArtifact is where the violations' timeline is written.
	DefaultArtifact = ".artifacts/soak.json"
	// settleTimeout bounds each wait for running executions at the end.
	settleTimeout = 45 * time.Second
	// maxCloudTrailFaults bounds the share of CloudTrail events faulted.
	maxCloudTrailFaults = 0.6
)

// crashPoints are the state transitions the process crashes at, in turn: after the objects
// moved (the Map runs again), after a backup page, after a restore ran, after Begin.
var crashPoints = []string{"reencrypt:Commit", "backup:More", "restore:Finish", "reencrypt:ReencryptObjects"}

// ErrViolated is returned by Run when an invariant was violated.
var ErrViolated = errors.New("soak: invariants violated")

// Options configure Run.
type Options struct {
	// Binary is the keyline executable that runs `keyline local` (default: this executable).
	Binary string
	// Duration is how long the workload runs (default 3 minutes).
	Duration time.Duration
	// Seed seeds the workload and the fault schedule (0: a random seed, printed).
	Seed uint64
	// Apps and Orgs size the tenants (defaults 50 apps over 5 orgs).
	Apps, Orgs int
	// FaultRate is the share of AWS calls that fail (default 10%).
	FaultRate float64
	// Crashes is how many process crashes to inject (default 2).
	Crashes int
	// Workers is the number of concurrent clients (default 6).
	Workers int
	// CheckEvery is the interval of the checks while the workload runs.
	CheckEvery time.Duration
	// DataDir is the deployment's data directory (default: a new temporary one, removed
	// after a clean run).
	DataDir string
	// Artifact is where the result and the violations' timeline are written.
	Artifact string
	// Out receives progress and the result lines.
	Out io.Writer
	// Logger receives the driver's logs (default: discard).
	Logger *slog.Logger
}

func (o *Options) defaults() error {
	if o.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("soak: the keyline executable: %w", err)
		}
		o.Binary = exe
	}
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		for _, x := range b {
			o.Seed = o.Seed<<8 | uint64(x)
		}
		if o.Seed == 0 {
			o.Seed = 1
		}
	}
	if o.Apps <= 0 {
		o.Apps = DefaultApps
	}
	if o.Orgs <= 0 {
		o.Orgs = DefaultOrgs
	}
	if o.Orgs > o.Apps {
		o.Orgs = o.Apps
	}
	if o.FaultRate < 0 || o.FaultRate > 0.5 {
		return fmt.Errorf("soak: fault rate %v: want 0 to 0.5", o.FaultRate)
	}
	if o.FaultRate == 0 {
		o.FaultRate = DefaultFaultRate
	}
	if o.Crashes < 0 {
		o.Crashes = 0
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.CheckEvery <= 0 {
		o.CheckEvery = DefaultCheckEvery
	}
	if o.Artifact == "" {
		o.Artifact = DefaultArtifact
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Result is the outcome of a soak.
type Result struct {
	Seed       uint64                 `json:"seed"`
	Duration   string                 `json:"duration"`
	Faults     int                    `json:"faultsInjected"`
	FaultKinds map[string]int         `json:"faultKinds"`
	Crashes    int                    `json:"crashes"`
	Operations int                    `json:"operations"`
	Checks     int                    `json:"checks"`
	Checked    int                    `json:"invariantsChecked"`
	Violations []invariants.Violation `json:"violations"`
	Timeline   []Timeline             `json:"timeline,omitempty"`
	DataDir    string                 `json:"dataDir"`
}

// Timeline is what happened to the app of one violation: the recorded operations and the
// app's audit trail, in time order.
type Timeline struct {
	Violation invariants.Violation `json:"violation"`
	SeenAt    time.Time            `json:"seenAt"`
	Events    []TimelineEvent      `json:"events"`
}

// TimelineEvent is one line of a Timeline.
type TimelineEvent struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"` // client, audit, fault, crash
	What   string    `json:"what"`
}

// faultConfig is the fault schedule of the deployment: rate spread over throttling, 5xx and
// timeouts on every service, plus CloudTrail faults and handler crashes.
func faultConfig(seed uint64, rate float64) fault.Config {
	// CloudTrail events take three times the rate (at most 60% of them) spread over the kinds.
	ct := math.Min(3*rate, maxCloudTrailFaults)
	return fault.Config{
		Seed:         seed,
		TimeoutAfter: fault.Duration(100 * time.Millisecond),
		Rules: []fault.Rule{{Service: fault.Any, Throttle: rate * 0.4, ServerError: rate * 0.3, Timeout: rate * 0.3,
			LatencyJitter: fault.Duration(5 * time.Millisecond)}},
		CloudTrail: fault.CloudTrail{Drop: ct / 6, Duplicate: ct / 3, Delay: ct / 3, DelayBy: fault.Duration(2 * time.Second), Reorder: ct / 6,
			ReorderWindow: fault.Duration(3 * time.Second)},
		Lambda: []fault.LambdaCrash{{Function: fault.Any, Rate: rate / 10, Point: fault.PointRandom, Window: fault.Duration(300 * time.Millisecond)}},
	}
}

// Run runs the soak and returns its result; the error wraps ErrViolated when an invariant
// was violated.
func Run(ctx context.Context, o Options) (Result, error) {
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	res := Result{Seed: o.Seed, Duration: o.Duration.String()}
	tmp := o.DataDir == ""
	if tmp {
		d, err := os.MkdirTemp("", "keyline-soak-")
		if err != nil {
			return res, err
		}
		o.DataDir = d
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return res, err
	}
	res.DataDir = o.DataDir
	fmt.Fprintf(o.Out, "soak: seed %d, %v, %d apps over %d orgs, %.0f%% faults, %d crashes, data in %s\n",
		o.Seed, o.Duration, o.Apps, o.Orgs, o.FaultRate*100, o.Crashes, o.DataDir)

	fc, err := json.MarshalIndent(faultConfig(o.Seed, o.FaultRate), "", "  ")
	if err != nil {
		return res, err
	}
	faultsFile := filepath.Join(o.DataDir, "soak-faults.json")
	if err := os.WriteFile(faultsFile, fc, 0o600); err != nil {
		return res, err
	}
	var tok [32]byte
	_, _ = rand.Read(tok[:])
	ch, err := newChild(o.Binary, o.DataDir, faultsFile, hex.EncodeToString(tok[:]))
	if err != nil {
		return res, err
	}
	d := &driver{o: o, ch: ch, rec: invariants.NewRecorder(), rng: mrand.New(mrand.NewPCG(o.Seed, 1)),
		seen: map[string]invariants.Violation{}}
	d.crashesLeft.Store(int32(o.Crashes))
	runCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	if err := ch.start(runCtx, d.crashArgs()); err != nil {
		return res, err
	}
	defer ch.stop()
	fmt.Fprintf(o.Out, "soak: keyline local serves (endpoint %s, console %s)\n", ch.addr, ch.consoleAddr)
	monitorDone := make(chan struct{})
	go func() {
		defer close(monitorDone)
		d.monitor(runCtx, cancel)
	}()

	if err := d.connect(runCtx); err != nil {
		return res, err
	}
	if err := d.setup(runCtx); err != nil {
		return res, fmt.Errorf("soak: setup: %w", err)
	}
	fmt.Fprintf(o.Out, "soak: %d orgs, %d apps, %d keys ready; running the workload\n", len(d.orgs), len(d.apps), d.keyCount())

	wctx, wcancel := context.WithTimeout(runCtx, o.Duration)
	var wg sync.WaitGroup
	for i := 0; i < o.Workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d.worker(wctx, i)
		}(i)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.checkLoop(wctx, runCtx)
	}()
	wg.Wait()
	wcancel()
	if err := context.Cause(runCtx); err != nil {
		return d.finish(res), err
	}

	fmt.Fprintf(o.Out, "soak: workload done (%d operations recorded); settling (key health, running executions), then reading everything back\n", d.rec.Len())
	if err := d.settle(runCtx); err != nil {
		if context.Cause(runCtx) != nil {
			return d.finish(res), context.Cause(runCtx)
		}
		// Executions still running are the final check's to judge (I7); go on.
		d.event("settle", err.Error())
		fmt.Fprintf(o.Out, "soak: not settled: %v; checking as it is\n", err)
	}
	if err := d.readBack(runCtx); err != nil {
		return d.finish(res), fmt.Errorf("soak: read back: %w", err)
	}
	if err := d.check(runCtx, true); err != nil {
		return d.finish(res), fmt.Errorf("soak: final check: %w", err)
	}
	d.stopping.Store(true)
	ch.stop()
	cancel(nil)
	<-monitorDone
	res = d.finish(res)
	if err := writeArtifact(o.Artifact, res); err != nil {
		return res, err
	}
	fmt.Fprintf(o.Out, "faults injected: %d\n", res.Faults)
	fmt.Fprintf(o.Out, "crashes: %d\n", res.Crashes)
	fmt.Fprintf(o.Out, "invariants: %d checked, %d violated\n", res.Checked, len(res.Violations))
	if len(res.Violations) > 0 {
		for _, v := range res.Violations {
			fmt.Fprintf(o.Out, "violated: %s\n", v)
		}
		fmt.Fprintf(o.Out, "timeline: %s (seed %d reruns this schedule: SOAK_SEED=%d)\n", o.Artifact, o.Seed, o.Seed)
		return res, fmt.Errorf("%w: %d", ErrViolated, len(res.Violations))
	}
	if tmp {
		_ = os.RemoveAll(o.DataDir)
	}
	return res, nil
}

// monitor restarts the deployment after each injected crash; any other exit ends the soak.
func (d *driver) monitor(ctx context.Context, cancel context.CancelCauseFunc) {
	for {
		var code int
		select {
		case code = <-d.ch.wait():
		case <-ctx.Done():
			return
		}
		if d.stopping.Load() {
			return
		}
		d.ch.down()
		if !isCrash(code) {
			cancel(fmt.Errorf("soak: keyline local exited with %d (not an injected crash); see %s", code, d.ch.log.Name()))
			return
		}
		n := d.crashes.Add(1)
		d.crashesLeft.Add(-1)
		d.event("crash", fmt.Sprintf("process crash %d (exit %d); restarting on the same data directory", n, code))
		fmt.Fprintf(d.o.Out, "soak: process crash %d injected; restarting keyline local on the same data directory\n", n)
		if err := d.ch.start(ctx, d.crashArgs()); err != nil {
			cancel(fmt.Errorf("soak: restart after crash %d: %w", n, err))
			return
		}
		fmt.Fprintf(d.o.Out, "soak: keyline local serves again after crash %d\n", n)
	}
}

// crashArgs is the --crash-at of the next start: every crash point while crashes are left.
func (d *driver) crashArgs() string {
	if d.crashesLeft.Load() <= 0 {
		return ""
	}
	i := int(d.crashes.Load()) % len(crashPoints)
	return crashPoints[i] + ":1"
}

// event records a driver event for the timelines.
func (d *driver) event(source, what string) {
	d.evMu.Lock()
	d.events = append(d.events, TimelineEvent{Time: time.Now().UTC(), Source: source, What: what})
	d.evMu.Unlock()
}

// finish fills the result's counts.
func (d *driver) finish(res Result) Result {
	res.Crashes = int(d.crashes.Load())
	res.Faults, res.FaultKinds = countFaults(filepath.Join(d.o.DataDir, "faults.jsonl"))
	res.Operations = d.rec.Len()
	d.vMu.Lock()
	res.Checks, res.Checked = d.checks, d.checked
	keys := make([]string, 0, len(d.seen))
	for k := range d.seen {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	res.Violations = res.Violations[:0]
	for _, k := range keys {
		res.Violations = append(res.Violations, d.seen[k])
	}
	res.Timeline = append([]Timeline(nil), d.timelines...)
	d.vMu.Unlock()
	return res
}

func countFaults(path string) (int, map[string]int) {
	kinds := map[string]int{}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, kinds
	}
	n := 0
	dec := json.NewDecoder(bytesReader(b))
	for {
		var r fault.Record
		if err := dec.Decode(&r); err != nil {
			break
		}
		kinds[r.Kind]++
		n++
	}
	return n, kinds
}

func writeArtifact(path string, res Result) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("soak: artifact: %w", err)
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("soak: artifact: %w", err)
	}
	return nil
}

// driver is one soak's state.
type driver struct {
	o   Options
	ch  *child
	rec *invariants.Recorder

	rngMu sync.Mutex
	rng   *mrand.Rand

	crashes     atomic.Int32
	crashesLeft atomic.Int32
	stopping    atomic.Bool

	clients
	orgs []*org
	apps []*app

	evMu   sync.Mutex
	events []TimelineEvent

	vMu       sync.Mutex
	checks    int
	checked   int
	seen      map[string]invariants.Violation
	timelines []Timeline
}
