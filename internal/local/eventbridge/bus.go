// Package eventbridge is keyline's local Amazon EventBridge: event buses,
// rules with event patterns or schedules, Lambda and Step Functions targets,
// EventBridge-Scheduler-style schedules, and the EventBridge JSON API
// (X-Amz-Target: AWSEvents.<Op>) as an http.Handler that real SDK clients use.
//
// Delivery is asynchronous and at-least-once: a failed target is retried with
// exponential backoff on the bus's clock, then dead-lettered (DeadLetters).
// Drain waits until every accepted event has been delivered or dead-lettered,
// so tests never sleep. Per-source delivery delay and loss can be set to test
// code that must not rely on an event arriving.
package eventbridge

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/eventpattern"
	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/schedule"
)

// Typed errors, each mapped to the AWS error of the same meaning.
var (
	// ErrValidation is AWS's ValidationException.
	ErrValidation = errors.New("ValidationException")
	// ErrNotFound is AWS's ResourceNotFoundException.
	ErrNotFound = errors.New("ResourceNotFoundException")
	// ErrAlreadyExists is AWS's ResourceAlreadyExistsException.
	ErrAlreadyExists = errors.New("ResourceAlreadyExistsException")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("event bus closed")
)

// DefaultBusName is the event bus every account has.
const DefaultBusName = "default"

// Options configures a Bus. Zero values take the defaults noted.
type Options struct {
	Clock          clock.Clock    // default clock.Real()
	Invoker        invoke.Invoker // runs Lambda targets (arn:aws:lambda:…:function:NAME)
	StartExecution func(ctx context.Context, stateMachineArn string, input []byte) error
	Logger         *slog.Logger // default: discard
	Region         string       // default us-east-1
	Account        string       // default 000000000000
	StateFile      string       // if set, rules, targets and schedules persist here as JSON

	MaxAttempts int           // deliveries per target before dead-lettering; default 4
	RetryBase   time.Duration // first retry delay, doubled each time; default 1s
	RetryMax    time.Duration // longest retry delay; default 1m
	Concurrency int           // targets invoked at once; default 8
}

// Event is an event as a producer puts it on a bus. Empty fields take
// EventBridge's defaults: a new ID, the clock's time, the bus's account and
// region, the default bus, `{}` as detail.
type Event struct {
	ID           string
	Source       string
	DetailType   string
	Detail       json.RawMessage
	Resources    []string
	Time         time.Time
	Account      string
	Region       string
	EventBusName string
}

// Envelope is the event as EventBridge delivers it to targets.
type Envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// RuleInput describes a rule to create or replace.
type RuleInput struct {
	Name               string
	EventBusName       string // default "default"
	EventPattern       string // one of EventPattern and ScheduleExpression is required
	ScheduleExpression string
	State              string // ENABLED (default) or DISABLED
	Description        string
}

// Rule is a rule as stored.
type Rule struct {
	Name               string   `json:"name"`
	Arn                string   `json:"arn"`
	EventBusName       string   `json:"eventBusName"`
	EventPattern       string   `json:"eventPattern,omitempty"`
	ScheduleExpression string   `json:"scheduleExpression,omitempty"`
	State              string   `json:"state"`
	Description        string   `json:"description,omitempty"`
	Targets            []Target `json:"targets,omitempty"`
}

// Target is where a rule sends matching events.
type Target struct {
	ID        string `json:"id"`
	Arn       string `json:"arn"`
	Input     string `json:"input,omitempty"`     // constant JSON sent instead of the event
	InputPath string `json:"inputPath,omitempty"` // $.a.b: the part of the event to send
}

// ScheduleInfo is an EventBridge-Scheduler-style schedule as stored.
type ScheduleInfo struct {
	Name       string    `json:"name"`
	Expression string    `json:"expression"`
	Timezone   string    `json:"timezone,omitempty"`
	TargetArn  string    `json:"targetArn"`
	Input      string    `json:"input,omitempty"`
	Next       time.Time `json:"next,omitzero"`
}

// DeadLetter is a delivery that failed every attempt.
type DeadLetter struct {
	EventID   string
	Rule      string // rule name, or "schedule/<name>"
	TargetArn string
	Payload   []byte
	Attempts  int
	Err       string
	Time      time.Time
}

type ruleState struct {
	Rule
	pattern *eventpattern.Pattern
	sched   schedule.Schedule
	next    time.Time
}

type scheduleState struct {
	ScheduleInfo
	sched schedule.Schedule
	loc   *time.Location
}

// Bus is a local EventBridge. It is safe for concurrent use.
type Bus struct {
	opts  Options
	clock clock.Clock
	log   *slog.Logger

	ctx    context.Context // cancelled by Close: stops deliveries and the scheduler
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup

	mu        sync.Mutex
	buses     map[string]bool
	rules     map[string]map[string]*ruleState // bus → name → rule
	schedules map[string]*scheduleState
	pending   int
	running   bool
	changed   chan struct{} // closed and replaced on every change Drain waits for
	wake      chan struct{}
	dead      []DeadLetter
	dropped   int
	delays    map[string]time.Duration
	dropProb  map[string]float64
	dropHook  func(Event) bool
	closed    bool
}

// New returns a Bus. If Options.StateFile names a file that cannot be read,
// the error is logged and the bus starts empty; use Open to get the error.
func New(opts Options) *Bus {
	b, err := Open(opts)
	if err != nil {
		b.log.Error("eventbridge: state not loaded", "file", opts.StateFile, "err", err)
	}
	return b
}

// Open returns a Bus with the rules, targets and schedules of
// Options.StateFile, if it exists.
func Open(opts Options) (*Bus, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "000000000000"
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 4
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = time.Second
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = time.Minute
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Bus{
		opts: opts, clock: opts.Clock, log: opts.Logger,
		ctx: ctx, cancel: cancel,
		sem:       make(chan struct{}, opts.Concurrency),
		buses:     map[string]bool{DefaultBusName: true},
		rules:     map[string]map[string]*ruleState{DefaultBusName: {}},
		schedules: map[string]*scheduleState{},
		changed:   make(chan struct{}),
		wake:      make(chan struct{}, 1),
		delays:    map[string]time.Duration{},
		dropProb:  map[string]float64{},
	}
	if opts.StateFile != "" {
		if err := b.load(); err != nil {
			return b, err
		}
	}
	return b, nil
}

func validationf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrValidation, fmt.Sprintf(format, args...))
}

// Message returns the AWS message of an error from this package (the text
// after the error code).
func Message(err error) string {
	s := err.Error()
	for _, code := range []error{ErrValidation, ErrNotFound, ErrAlreadyExists} {
		if errors.Is(err, code) {
			return strings.TrimPrefix(s, code.Error()+": ")
		}
	}
	return s
}

var nameRE = regexp.MustCompile(`^[\.\-_A-Za-z0-9]{1,64}$`)

func (b *Bus) busName(name string) string {
	if name == "" {
		return DefaultBusName
	}
	// An event bus ARN names its bus after "event-bus/".
	if i := strings.LastIndex(name, ":event-bus/"); strings.HasPrefix(name, "arn:") && i >= 0 {
		return name[i+len(":event-bus/"):]
	}
	return name
}

// BusArn returns the ARN of an event bus.
func (b *Bus) BusArn(bus string) string {
	return fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", b.opts.Region, b.opts.Account, b.busName(bus))
}

func (b *Bus) ruleArn(bus, name string) string {
	if bus == DefaultBusName {
		return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s", b.opts.Region, b.opts.Account, name)
	}
	return fmt.Sprintf("arn:aws:events:%s:%s:rule/%s/%s", b.opts.Region, b.opts.Account, bus, name)
}

// CreateEventBus adds a custom event bus.
func (b *Bus) CreateEventBus(name string) (string, error) {
	if !nameRE.MatchString(name) || strings.Contains(name, "/") {
		return "", validationf("Event bus name %q is not valid.", name)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buses[name] {
		return "", fmt.Errorf("%w: Event bus %s already exists.", ErrAlreadyExists, name)
	}
	b.buses[name] = true
	b.rules[name] = map[string]*ruleState{}
	if err := b.saveLocked(); err != nil {
		return "", err
	}
	return b.BusArn(name), nil
}

// DescribeEventBus returns the ARN of an existing bus.
func (b *Bus) DescribeEventBus(name string) (string, error) {
	name = b.busName(name)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.buses[name] {
		return "", fmt.Errorf("%w: Event bus %s does not exist.", ErrNotFound, name)
	}
	return b.BusArn(name), nil
}

// PutRule creates or replaces a rule (keeping its targets) and returns its ARN.
func (b *Bus) PutRule(ctx context.Context, in RuleInput) (string, error) {
	if !nameRE.MatchString(in.Name) {
		return "", validationf("1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", in.Name)
	}
	bus := b.busName(in.EventBusName)
	if in.EventPattern == "" && in.ScheduleExpression == "" {
		return "", validationf("Parameter(s) EventPattern or ScheduleExpression must be specified.")
	}
	state := in.State
	if state == "" {
		state = "ENABLED"
	}
	if state != "ENABLED" && state != "DISABLED" {
		return "", validationf("1 validation error detected: Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", state)
	}
	rs := &ruleState{Rule: Rule{Name: in.Name, EventBusName: bus, EventPattern: in.EventPattern,
		ScheduleExpression: in.ScheduleExpression, State: state, Description: in.Description}}
	if in.EventPattern != "" {
		p, err := eventpattern.Compile([]byte(in.EventPattern))
		if err != nil {
			return "", err
		}
		rs.pattern = p
	}
	if in.ScheduleExpression != "" {
		if bus != DefaultBusName {
			return "", validationf("ScheduleExpression is supported only on the default event bus.")
		}
		s, err := parseRuleSchedule(in.ScheduleExpression)
		if err != nil {
			return "", err
		}
		rs.sched = s
		rs.next = s.Next(b.clock.Now(), time.UTC)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.buses[bus] {
		return "", fmt.Errorf("%w: Event bus %s does not exist.", ErrNotFound, bus)
	}
	rs.Arn = b.ruleArn(bus, in.Name)
	if old := b.rules[bus][in.Name]; old != nil {
		rs.Targets = old.Targets
	}
	b.rules[bus][in.Name] = rs
	if err := b.saveLocked(); err != nil {
		return "", err
	}
	b.wakeScheduler()
	b.log.DebugContext(ctx, "eventbridge: rule put", "bus", bus, "rule", in.Name)
	return rs.Arn, nil
}

// parseRuleSchedule accepts the cron and rate expressions of scheduled rules.
func parseRuleSchedule(expr string) (schedule.Schedule, error) {
	s, err := schedule.Parse(expr)
	if err != nil || strings.HasPrefix(strings.TrimSpace(expr), "at(") {
		return nil, validationf("Parameter ScheduleExpression is not valid.")
	}
	return s, nil
}

func (b *Bus) ruleLocked(bus, name string) (*ruleState, error) {
	if !b.buses[bus] {
		return nil, fmt.Errorf("%w: Event bus %s does not exist.", ErrNotFound, bus)
	}
	r := b.rules[bus][name]
	if r == nil {
		return nil, fmt.Errorf("%w: Rule %s does not exist on EventBus %s.", ErrNotFound, name, bus)
	}
	return r, nil
}

// DescribeRule returns a rule and its targets.
func (b *Bus) DescribeRule(bus, name string) (Rule, error) {
	bus = b.busName(bus)
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.ruleLocked(bus, name)
	if err != nil {
		return Rule{}, err
	}
	out := r.Rule
	out.Targets = append([]Target(nil), r.Targets...)
	return out, nil
}

// ListRules returns a bus's rules whose names start with prefix, by name.
func (b *Bus) ListRules(bus, prefix string) ([]Rule, error) {
	bus = b.busName(bus)
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.buses[bus] {
		return nil, fmt.Errorf("%w: Event bus %s does not exist.", ErrNotFound, bus)
	}
	var out []Rule
	for name, r := range b.rules[bus] {
		if strings.HasPrefix(name, prefix) {
			rule := r.Rule
			rule.Targets = nil
			out = append(out, rule)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// DeleteRule deletes a rule. A rule with targets is refused unless force is set.
// Deleting a rule that does not exist succeeds, as in AWS.
func (b *Bus) DeleteRule(ctx context.Context, bus, name string, force bool) error {
	bus = b.busName(bus)
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.rules[bus][name]
	if r == nil {
		return nil
	}
	if len(r.Targets) > 0 && !force {
		return validationf("Rule can't be deleted since it has targets.")
	}
	delete(b.rules[bus], name)
	b.log.DebugContext(ctx, "eventbridge: rule deleted", "bus", bus, "rule", name)
	return b.saveLocked()
}

// PutTargets adds or replaces (by ID) targets of a rule.
func (b *Bus) PutTargets(ctx context.Context, bus, rule string, targets []Target) error {
	bus = b.busName(bus)
	if len(targets) == 0 || len(targets) > 10 {
		return validationf("1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	for _, t := range targets {
		if t.ID == "" || len(t.ID) > 64 || !nameRE.MatchString(t.ID) {
			return validationf("Target Id %q is not valid.", t.ID)
		}
		if !strings.HasPrefix(t.Arn, "arn:") {
			return validationf("Parameter %s is not valid.", t.Arn)
		}
		if t.Input != "" && t.InputPath != "" {
			return validationf("Only one of Input, InputPath, or InputTransformer must be provided for target %s.", t.ID)
		}
		if t.Input != "" && !json.Valid([]byte(t.Input)) {
			return validationf("Input for target %s is not valid JSON.", t.ID)
		}
		if t.InputPath != "" {
			if _, err := parsePath(t.InputPath); err != nil {
				return validationf("InputPath for target %s is invalid.", t.ID)
			}
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.ruleLocked(bus, rule)
	if err != nil {
		return err
	}
	merged := append([]Target(nil), r.Targets...)
	for _, t := range targets {
		replaced := false
		for i := range merged {
			if merged[i].ID == t.ID {
				merged[i], replaced = t, true
			}
		}
		if !replaced {
			merged = append(merged, t)
		}
	}
	r.Targets = merged
	b.log.DebugContext(ctx, "eventbridge: targets put", "bus", bus, "rule", rule, "count", len(targets))
	return b.saveLocked()
}

// RemoveTargets removes targets of a rule by ID; unknown IDs are ignored.
func (b *Bus) RemoveTargets(ctx context.Context, bus, rule string, ids []string) error {
	bus = b.busName(bus)
	b.mu.Lock()
	defer b.mu.Unlock()
	r, err := b.ruleLocked(bus, rule)
	if err != nil {
		return err
	}
	drop := map[string]bool{}
	for _, id := range ids {
		drop[id] = true
	}
	kept := r.Targets[:0:0]
	for _, t := range r.Targets {
		if !drop[t.ID] {
			kept = append(kept, t)
		}
	}
	r.Targets = kept
	b.log.DebugContext(ctx, "eventbridge: targets removed", "bus", bus, "rule", rule)
	return b.saveLocked()
}

// ListTargetsByRule returns a rule's targets.
func (b *Bus) ListTargetsByRule(bus, rule string) ([]Target, error) {
	r, err := b.DescribeRule(bus, rule)
	return r.Targets, err
}

// SetDeliveryDelay delays delivery of every event from source by d on the bus's clock.
func (b *Bus) SetDeliveryDelay(source string, d time.Duration) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.delays[source] = d
}

// SetDropProbability makes events from source vanish with probability p (0–1).
func (b *Bus) SetDropProbability(source string, p float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropProb[source] = p
}

// SetDropHook installs a function that drops the events it returns true for
// (nil removes it).
func (b *Bus) SetDropHook(h func(Event) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.dropHook = h
}

// Dropped returns how many events were dropped by the loss settings.
func (b *Bus) Dropped() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// DeadLetters returns the deliveries that failed every attempt.
func (b *Bus) DeadLetters() []DeadLetter {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]DeadLetter(nil), b.dead...)
}

// Publish puts an event on its bus for in-process producers (such as the local
// KMS layer's CloudTrail events). Unlike PutEvents it accepts aws.* sources.
func (b *Bus) Publish(ctx context.Context, ev Event) error {
	_, err := b.publish(ctx, ev)
	return err
}

// PublishEnvelope publishes an event given as EventBridge's JSON envelope
// (version, id, detail-type, source, account, time, region, resources,
// detail), such as a marshalled CloudTrail event, on the named bus.
func (b *Bus) PublishEnvelope(ctx context.Context, busName string, envelope []byte) error {
	var env Envelope
	if err := json.Unmarshal(envelope, &env); err != nil {
		return validationf("Event is not a valid envelope: %v", err)
	}
	ev := Event{ID: env.ID, Source: env.Source, DetailType: env.DetailType, Detail: env.Detail,
		Resources: env.Resources, Account: env.Account, Region: env.Region, EventBusName: busName}
	if env.Time != "" {
		t, err := time.Parse(time.RFC3339, env.Time)
		if err != nil {
			return validationf("Event time %q is not RFC 3339.", env.Time)
		}
		ev.Time = t
	}
	return b.Publish(ctx, ev)
}

// publish validates, envelopes, matches and enqueues an event; it returns its ID.
func (b *Bus) publish(ctx context.Context, ev Event) (string, error) {
	if ev.Source == "" {
		return "", validationf("Parameter Source is not valid. Reason: Source is a required argument.")
	}
	if ev.DetailType == "" {
		return "", validationf("Parameter DetailType is not valid. Reason: DetailType is a required argument.")
	}
	detail := ev.Detail
	if len(detail) == 0 {
		detail = json.RawMessage("{}")
	}
	if !isJSONObject(detail) {
		return "", validationf("Detail is malformed.")
	}
	if ev.ID == "" {
		ev.ID = newID()
	}
	if ev.Time.IsZero() {
		ev.Time = b.clock.Now()
	}
	if ev.Account == "" {
		ev.Account = b.opts.Account
	}
	if ev.Region == "" {
		ev.Region = b.opts.Region
	}
	ev.EventBusName = b.busName(ev.EventBusName)
	resources := ev.Resources
	if resources == nil {
		resources = []string{}
	}
	env := Envelope{Version: "0", ID: ev.ID, DetailType: ev.DetailType, Source: ev.Source,
		Account: ev.Account, Time: ev.Time.UTC().Format("2006-01-02T15:04:05Z"), Region: ev.Region,
		Resources: resources, Detail: detail}
	raw, err := json.Marshal(env)
	if err != nil {
		return "", validationf("Detail is malformed.")
	}
	parsed, err := eventpattern.ParseEvent(raw)
	if err != nil {
		return "", validationf("Detail is malformed.")
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return "", ErrClosed
	}
	if !b.buses[ev.EventBusName] {
		return "", fmt.Errorf("%w: Event bus %s does not exist.", ErrNotFound, ev.EventBusName)
	}
	if b.dropped0(ev) {
		b.dropped++
		b.log.DebugContext(ctx, "eventbridge: event dropped", "id", ev.ID, "source", ev.Source)
		return ev.ID, nil
	}
	delay := b.delays[ev.Source]
	for _, r := range b.rules[ev.EventBusName] {
		if r.State != "ENABLED" || r.pattern == nil || !r.pattern.MatchParsed(parsed) {
			continue
		}
		for _, t := range r.Targets {
			b.enqueueLocked(delivery{eventID: ev.ID, rule: r.Name, target: t, event: raw, delay: delay})
		}
	}
	return ev.ID, nil
}

// dropped0 decides whether the loss settings drop ev. Caller holds b.mu.
func (b *Bus) dropped0(ev Event) bool {
	if b.dropHook != nil && b.dropHook(ev) {
		return true
	}
	p := b.dropProb[ev.Source]
	return p > 0 && rand.Float64() < p
}

func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

// newID returns a random UUID (version 4).
func newID() string {
	var u [16]byte
	if _, err := crand.Read(u[:]); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
