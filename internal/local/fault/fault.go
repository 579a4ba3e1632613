// Package fault injects faults into the local runtime, set per service and operation:
// errors by kind (throttling in the service's own shape, 5xx, timeouts), added latency,
// CloudTrail events dropped, duplicated, delayed and reordered on their way to the event
// bus, a Lambda handler crash at its start, its end or a random point, and a crash of the
// whole process at a chosen state transition of a state machine.
//
// Every decision is drawn from math/rand/v2 generators seeded with Config.Seed, one
// generator per decision point (service and operation, CloudTrail, function, transition),
// so that a seed replays the same schedule for the same sequence of calls at each point,
// whatever the interleaving between points.
//
// A Config is read from a JSON file (Load, `keyline local --faults FILE`) or built in Go;
// New turns it into an Injector that the endpoint, the Lambda registry, the Step Functions
// service and the CloudTrail sink consult.
package fault

import (
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Kinds of injected fault, as counted and logged.
const (
	KindThrottle     = "throttle"
	KindServerError  = "5xx"
	KindTimeout      = "timeout"
	KindLatency      = "latency"
	KindDrop         = "cloudtrail-drop"
	KindDuplicate    = "cloudtrail-duplicate"
	KindDelay        = "cloudtrail-delay"
	KindReorder      = "cloudtrail-reorder"
	KindLambdaCrash  = "lambda-crash"
	KindProcessCrash = "process-crash"
)

// Points of a Lambda handler crash.
const (
	PointStart  = "start"  // before the handler runs: nothing it would do is done
	PointEnd    = "end"    // after it ran: its work is done, its answer lost
	PointRandom = "random" // at a random moment while it runs (its context is cancelled then)
)

// ServiceLambda is the Lambda service's name in rules (its in-process Invoke path consults them too).
const ServiceLambda = "lambda"

// Any matches every service, operation, function or state machine.
const Any = "*"

// Defaults.
const (
	// DefaultTimeoutAfter is how long a request held by a timeout fault waits before its
	// connection is dropped unanswered.
	DefaultTimeoutAfter = 200 * time.Millisecond
	// DefaultCloudTrailDelay is how long a delayed CloudTrail event is held.
	DefaultCloudTrailDelay = 2 * time.Second
	// DefaultReorderWindow bounds how long a reordered event waits for the next one to overtake it.
	DefaultReorderWindow = 3 * time.Second
	// DefaultCrashWindow bounds the random point of a Lambda crash.
	DefaultCrashWindow = 500 * time.Millisecond
	// CrashExitCode is the exit status of a process crashed by a fault.
	CrashExitCode = 75
	// NoFaultHeader exempts a request from faults (an observer such as the invariant checker
	// must see the system, not perturb it).
	NoFaultHeader = "X-Keyline-No-Fault"
)

// ErrConfig is wrapped by the errors about a fault configuration.
var ErrConfig = errors.New("fault: invalid configuration")

// Duration is a time.Duration that reads and writes as "250ms" in JSON.
type Duration time.Duration

// MarshalJSON writes d as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a Go duration string ("2s") or a number of milliseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = Duration(v)
		return nil
	}
	var ms float64
	if err := json.Unmarshal(b, &ms); err != nil {
		return fmt.Errorf("duration: want a string such as \"250ms\" or milliseconds, got %s", b)
	}
	*d = Duration(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// Rule sets the faults of the requests to one service and operation. Rates are
// probabilities per request in [0,1]; their sum must not exceed 1.
type Rule struct {
	// Service is the SigV4 service name (kms, s3, dynamodb, events, states, lambda, sts) or "*".
	Service string `json:"service"`
	// Operation is the API operation (Decrypt, PutItem, GetObject, …) or "*" (the default).
	Operation string `json:"operation,omitempty"`
	// Throttle answers the service's throttling error (ThrottlingException, SlowDown, …).
	Throttle float64 `json:"throttle,omitempty"`
	// ServerError answers a 500 in the service's shape.
	ServerError float64 `json:"5xx,omitempty"`
	// Timeout holds the request for TimeoutAfter, then drops its connection unanswered.
	Timeout float64 `json:"timeout,omitempty"`
	// Latency is added to every request the rule matches, plus up to LatencyJitter more.
	Latency       Duration `json:"latency,omitempty"`
	LatencyJitter Duration `json:"latencyJitter,omitempty"`
}

// CloudTrail sets the faults of the CloudTrail events on their way from KMS to the bus.
type CloudTrail struct {
	// Events limits the faults to these event names (empty: every event).
	Events    []string `json:"events,omitempty"`
	Drop      float64  `json:"drop,omitempty"`
	Duplicate float64  `json:"duplicate,omitempty"`
	Delay     float64  `json:"delay,omitempty"`
	// DelayBy is how long a delayed event is held (default 2s).
	DelayBy Duration `json:"delayBy,omitempty"`
	// Reorder holds an event until the next one has been delivered (at most ReorderWindow).
	Reorder       float64  `json:"reorder,omitempty"`
	ReorderWindow Duration `json:"reorderWindow,omitempty"`
}

// LambdaCrash crashes a function's invocations: with probability Rate, or exactly the
// Nth invocation (1-based) when Nth is set.
type LambdaCrash struct {
	Function string  `json:"function"`
	Rate     float64 `json:"rate,omitempty"`
	Nth      int     `json:"nth,omitempty"`
	// Point is start, end or random (default random).
	Point string `json:"point,omitempty"`
	// Window bounds a random point (default 500ms).
	Window Duration `json:"window,omitempty"`
}

// ProcessCrash crashes the whole process when an execution of Machine moves to State,
// the Nth time (1-based, default 1) that transition happens in this process, before the
// transition is saved: the state that just finished runs again when the execution resumes.
type ProcessCrash struct {
	Machine string `json:"machine"`
	State   string `json:"state"`
	Nth     int    `json:"nth,omitempty"`
}

// Config is a fault schedule.
type Config struct {
	Seed         uint64         `json:"seed"`
	Rules        []Rule         `json:"rules,omitempty"`
	TimeoutAfter Duration       `json:"timeoutAfter,omitempty"`
	CloudTrail   CloudTrail     `json:"cloudTrail,omitempty"`
	Lambda       []LambdaCrash  `json:"lambda,omitempty"`
	Crash        []ProcessCrash `json:"crash,omitempty"`
}

// Load reads a Config from a JSON file.
func Load(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return Parse(b)
}

// Parse reads a Config from JSON, refusing unknown fields, and validates it.
func Parse(b []byte) (Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c, c.Validate()
}

// ParseCrashAt reads "machine:state[:n]" (a --crash-at flag).
func ParseCrashAt(s string) (ProcessCrash, error) {
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return ProcessCrash{}, fmt.Errorf("%w: --crash-at %q: want machine:state[:n]", ErrConfig, s)
	}
	pc := ProcessCrash{Machine: parts[0], State: parts[1], Nth: 1}
	if len(parts) == 3 {
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 {
			return ProcessCrash{}, fmt.Errorf("%w: --crash-at %q: n must be a positive integer", ErrConfig, s)
		}
		pc.Nth = n
	}
	return pc, nil
}

func rate(name string, v float64) error {
	if v < 0 || v > 1 {
		return fmt.Errorf("%w: %s rate %v is not in [0,1]", ErrConfig, name, v)
	}
	return nil
}

// Validate reports the first problem of c.
func (c Config) Validate() error {
	for i, r := range c.Rules {
		if r.Service == "" {
			return fmt.Errorf("%w: rule %d names no service (use \"*\" for all)", ErrConfig, i)
		}
		for n, v := range map[string]float64{"throttle": r.Throttle, "5xx": r.ServerError, "timeout": r.Timeout} {
			if err := rate(fmt.Sprintf("rule %d %s", i, n), v); err != nil {
				return err
			}
		}
		if s := r.Throttle + r.ServerError + r.Timeout; s > 1 {
			return fmt.Errorf("%w: rule %d: error rates add up to %v > 1", ErrConfig, i, s)
		}
		if r.Latency < 0 || r.LatencyJitter < 0 {
			return fmt.Errorf("%w: rule %d: negative latency", ErrConfig, i)
		}
	}
	ct := c.CloudTrail
	for n, v := range map[string]float64{"drop": ct.Drop, "duplicate": ct.Duplicate, "delay": ct.Delay, "reorder": ct.Reorder} {
		if err := rate("cloudTrail "+n, v); err != nil {
			return err
		}
	}
	if s := ct.Drop + ct.Duplicate + ct.Delay + ct.Reorder; s > 1 {
		return fmt.Errorf("%w: cloudTrail rates add up to %v > 1", ErrConfig, s)
	}
	for i, l := range c.Lambda {
		if l.Function == "" {
			return fmt.Errorf("%w: lambda crash %d names no function (use \"*\" for all)", ErrConfig, i)
		}
		if err := rate(fmt.Sprintf("lambda crash %d", i), l.Rate); err != nil {
			return err
		}
		switch l.Point {
		case "", PointStart, PointEnd, PointRandom:
		default:
			return fmt.Errorf("%w: lambda crash %d: point %q: want start, end or random", ErrConfig, i, l.Point)
		}
		if l.Nth < 0 {
			return fmt.Errorf("%w: lambda crash %d: nth must not be negative", ErrConfig, i)
		}
	}
	for i, pc := range c.Crash {
		if pc.Machine == "" || pc.State == "" {
			return fmt.Errorf("%w: process crash %d needs a machine and a state", ErrConfig, i)
		}
		if pc.Nth < 0 {
			return fmt.Errorf("%w: process crash %d: nth must not be negative", ErrConfig, i)
		}
	}
	return nil
}

// Record is one injected fault, as logged.
type Record struct {
	Time      time.Time `json:"time"`
	Kind      string    `json:"kind"`
	Service   string    `json:"service,omitempty"`
	Operation string    `json:"operation,omitempty"`
	Detail    string    `json:"detail,omitempty"`
}

// Options configure an Injector.
type Options struct {
	// Log receives one JSON line per injected fault (e.g. a file in the data directory, so
	// that the count survives a process crash). Nil: none.
	Log io.Writer
	// Logger receives a warning per injected fault (default: discard).
	Logger *slog.Logger
	// Crash is called for a process crash (default: exit the process with CrashExitCode,
	// without any clean-up, as a crash would).
	Crash func(machine, state string)
}

// Injector decides the faults. A nil *Injector injects nothing; it is safe for concurrent use.
type Injector struct {
	cfg  Config
	opts Options

	mu     sync.Mutex
	rngs   map[string]*rand.Rand
	calls  map[string]int // decision point → calls seen (Nth)
	counts map[string]int // kind → injected
	total  int
}

// New returns an Injector for c (validated).
func New(c Config, opts Options) (*Injector, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Crash == nil {
		opts.Crash = func(machine, state string) {
			fmt.Fprintf(os.Stderr, "fault: crashing the process at %s → %s\n", machine, state)
			os.Exit(CrashExitCode)
		}
	}
	return &Injector{cfg: c, opts: opts, rngs: map[string]*rand.Rand{}, calls: map[string]int{}, counts: map[string]int{}}, nil
}

// Config returns the injector's configuration.
func (in *Injector) Config() Config {
	if in == nil {
		return Config{}
	}
	return in.cfg
}

// rng returns the generator of one decision point; in.mu is held.
func (in *Injector) rng(point string) *rand.Rand {
	r := in.rngs[point]
	if r == nil {
		h := fnv.New64a()
		_, _ = h.Write([]byte(point))
		r = rand.New(rand.NewPCG(in.cfg.Seed, h.Sum64()))
		in.rngs[point] = r
	}
	return r
}

// record counts and logs one injected fault; in.mu is held.
func (in *Injector) record(rec Record) {
	in.counts[rec.Kind]++
	in.total++
	in.opts.Logger.Warn("fault injected", "kind", rec.Kind, "service", rec.Service, "operation", rec.Operation, "detail", rec.Detail)
	if in.opts.Log != nil {
		rec.Time = time.Now().UTC()
		b, err := json.Marshal(rec)
		if err == nil {
			_, _ = in.opts.Log.Write(append(b, '\n'))
		}
	}
}

// Counts returns how many faults of each kind were injected, and their total.
func (in *Injector) Counts() (map[string]int, int) {
	if in == nil {
		return map[string]int{}, 0
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make(map[string]int, len(in.counts))
	for k, v := range in.counts {
		out[k] = v
	}
	return out, in.total
}

func matches(pattern, name string) bool {
	return pattern == "" || pattern == Any || strings.EqualFold(pattern, name)
}

// RequestFault is what happens to one request.
type RequestFault struct {
	// Kind is KindThrottle, KindServerError, KindTimeout, or "" (served).
	Kind string
	// Latency is added before the request is answered (or held).
	Latency time.Duration
	// TimeoutAfter is how long a timeout holds the request.
	TimeoutAfter time.Duration
}

// Request decides the fault of one request to service's operation. The first rule that
// matches decides.
func (in *Injector) Request(service, operation string) RequestFault {
	if in == nil {
		return RequestFault{}
	}
	for _, r := range in.cfg.Rules {
		if !matches(r.Service, service) || !matches(r.Operation, operation) {
			continue
		}
		in.mu.Lock()
		defer in.mu.Unlock()
		g := in.rng("request/" + service + "/" + operation)
		f := RequestFault{Latency: time.Duration(r.Latency), TimeoutAfter: time.Duration(in.cfg.TimeoutAfter)}
		if f.TimeoutAfter <= 0 {
			f.TimeoutAfter = DefaultTimeoutAfter
		}
		if r.LatencyJitter > 0 {
			f.Latency += time.Duration(g.Int64N(int64(r.LatencyJitter)))
		}
		x := g.Float64()
		switch {
		case x < r.Throttle:
			f.Kind = KindThrottle
		case x < r.Throttle+r.ServerError:
			f.Kind = KindServerError
		case x < r.Throttle+r.ServerError+r.Timeout:
			f.Kind = KindTimeout
		}
		if f.Kind != "" {
			in.record(Record{Kind: f.Kind, Service: service, Operation: operation})
		}
		return f
	}
	return RequestFault{}
}

// CloudTrailFault is what happens to one CloudTrail event.
type CloudTrailFault struct {
	Kind string // KindDrop, KindDuplicate, KindDelay, KindReorder or ""
	// Hold is how long a delayed event is held, or how long a reordered one waits at most.
	Hold time.Duration
}

// CloudTrailEvent decides the fault of one CloudTrail event.
func (in *Injector) CloudTrailEvent(eventName string) CloudTrailFault {
	if in == nil {
		return CloudTrailFault{}
	}
	ct := in.cfg.CloudTrail
	if len(ct.Events) > 0 {
		hit := false
		for _, e := range ct.Events {
			hit = hit || strings.EqualFold(e, eventName)
		}
		if !hit {
			return CloudTrailFault{}
		}
	}
	if ct.Drop+ct.Duplicate+ct.Delay+ct.Reorder == 0 {
		return CloudTrailFault{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	x := in.rng("cloudtrail").Float64()
	var f CloudTrailFault
	switch {
	case x < ct.Drop:
		f.Kind = KindDrop
	case x < ct.Drop+ct.Duplicate:
		f.Kind = KindDuplicate
	case x < ct.Drop+ct.Duplicate+ct.Delay:
		f.Kind, f.Hold = KindDelay, time.Duration(ct.DelayBy)
		if f.Hold <= 0 {
			f.Hold = DefaultCloudTrailDelay
		}
	case x < ct.Drop+ct.Duplicate+ct.Delay+ct.Reorder:
		f.Kind, f.Hold = KindReorder, time.Duration(ct.ReorderWindow)
		if f.Hold <= 0 {
			f.Hold = DefaultReorderWindow
		}
	}
	if f.Kind != "" {
		in.record(Record{Kind: f.Kind, Service: "cloudtrail", Operation: eventName})
	}
	return f
}

// LambdaFault is what happens to one invocation.
type LambdaFault struct {
	// Point is PointStart, PointEnd, PointRandom, or "" (no crash).
	Point string
	// After is when a random crash strikes, counted from the handler's start.
	After time.Duration
}

// Invocation decides whether one invocation of function crashes.
func (in *Injector) Invocation(function string) LambdaFault {
	if in == nil || len(in.cfg.Lambda) == 0 {
		return LambdaFault{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	point := "lambda/" + function
	in.calls[point]++
	n := in.calls[point]
	for _, l := range in.cfg.Lambda {
		if !matches(l.Function, function) {
			continue
		}
		g := in.rng(point)
		crash := l.Nth > 0 && n == l.Nth
		if !crash && l.Rate > 0 {
			crash = g.Float64() < l.Rate
		}
		if !crash {
			continue
		}
		f := LambdaFault{Point: l.Point}
		if f.Point == "" {
			f.Point = PointRandom
		}
		if f.Point == PointRandom {
			w := time.Duration(l.Window)
			if w <= 0 {
				w = DefaultCrashWindow
			}
			f.After = time.Duration(g.Int64N(int64(w)))
		}
		in.record(Record{Kind: KindLambdaCrash, Service: "lambda", Operation: function, Detail: f.Point})
		return f
	}
	return LambdaFault{}
}

// Transition is called when an execution of machine moves to state; it crashes the process
// when a ProcessCrash says so.
func (in *Injector) Transition(machine, state string) {
	if in == nil || len(in.cfg.Crash) == 0 {
		return
	}
	in.mu.Lock()
	point := "transition/" + machine + "/" + state
	in.calls[point]++
	n := in.calls[point]
	crash := false
	for _, pc := range in.cfg.Crash {
		nth := pc.Nth
		if nth == 0 {
			nth = 1
		}
		if matches(pc.Machine, machine) && matches(pc.State, state) && n == nth {
			crash = true
			break
		}
	}
	if crash {
		in.record(Record{Kind: KindProcessCrash, Service: "states", Operation: machine, Detail: state})
	}
	in.mu.Unlock()
	if crash {
		in.opts.Crash(machine, state)
	}
}
