package states

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/states/jsonpath"
)

// Execution statuses, as AWS names them.
const (
	StatusRunning   = "RUNNING"
	StatusSucceeded = "SUCCEEDED"
	StatusFailed    = "FAILED"
	StatusTimedOut  = "TIMED_OUT"
	StatusAborted   = "ABORTED"
)

// Error names defined by the States Language.
const (
	ErrALL                        = "States.ALL"
	ErrTaskFailed                 = "States.TaskFailed"
	ErrRuntime                    = "States.Runtime"
	ErrTimeout                    = "States.Timeout"
	ErrHeartbeatTimeout           = "States.HeartbeatTimeout"
	ErrDataLimitExceeded          = "States.DataLimitExceeded"
	ErrBranchFailed               = "States.BranchFailed"
	ErrNoChoiceMatched            = "States.NoChoiceMatched"
	ErrResultPathMatchFailure     = "States.ResultPathMatchFailure"
	ErrParameterPathFailure       = "States.ParameterPathFailure"
	ErrIntrinsicFailure           = "States.IntrinsicFailure"
	ErrItemReaderFailed           = "States.ItemReaderFailed"
	ErrExceedToleratedFailure     = "States.ExceedToleratedFailureThreshold"
	ErrPermissions                = "States.Permissions"
	errAbortedName                = "States.Aborted"
	defaultDistributedConcurrency = 40
)

// MaxHistoryEvents is the hard quota on a Standard execution's history. AWS waits for
// event 24,999's successor: when event 25,000 is ExecutionSucceeded the execution
// succeeds, otherwise event 25,000 is an ExecutionFailed with HistoryLimitCause and the
// execution stops there. Distributed Map child executions have histories of their own.
const MaxHistoryEvents = 25000

// HistoryLimitCause is the cause AWS gives an execution stopped by MaxHistoryEvents
// (error States.Runtime).
const HistoryLimitCause = "The execution reached the maximum number of history events (25000)."

// errHistoryLimit cancels an execution that reached MaxHistoryEvents.
var errHistoryLimit = errors.New("execution reached the history quota")

// ExecutionInfo is what the context object ($$) tells about the execution.
type ExecutionInfo struct {
	ID               string // execution ARN
	Name             string
	RoleArn          string
	StateMachineID   string // state machine ARN
	StateMachineName string
	StartTime        time.Time
	RedriveCount     int
}

// Event is one history event, shaped as in GetExecutionHistory.
type Event struct {
	ID              int64          `json:"id"`
	PreviousEventID int64          `json:"previousEventId"`
	Timestamp       time.Time      `json:"timestamp"`
	Type            string         `json:"type"`
	DetailsKey      string         `json:"detailsKey,omitempty"` // e.g. "stateEnteredEventDetails"
	Details         map[string]any `json:"details,omitempty"`
}

// Checkpoint is the point an interrupted execution resumes from: the next top-level state to
// run and its input.
type Checkpoint struct {
	Next        string          `json:"next"`
	Input       json.RawMessage `json:"input"`
	LastEventID int64           `json:"lastEventId"`
}

// Result is how an execution ended.
type Result struct {
	Status string          `json:"status"`
	Output json.RawMessage `json:"output,omitempty"`
	Error  string          `json:"error,omitempty"`
	Cause  string          `json:"cause,omitempty"`
}

// Options configure an execution. Every field is optional.
type Options struct {
	// Clock drives Wait states, retries and timeouts (default: the real clock).
	Clock clock.Clock
	// Tasks runs Task state resources; without it a Task state fails with States.Runtime.
	Tasks TaskRunner
	// Items reads Distributed Map ItemReader sources (S3).
	Items ItemSource
	// TaskTokens serves ".waitForTaskToken" tasks; without it such tasks fail with States.Runtime.
	TaskTokens *TaskTokens
	// OnEvent receives each history event, in order. It must not block for long.
	OnEvent func(Event)
	// OnCheckpoint is called after each completed top-level state.
	OnCheckpoint func(Checkpoint)
	// Execution fills the context object.
	Execution ExecutionInfo
	// MaxChildConcurrency bounds Distributed Map children (default 40).
	MaxChildConcurrency int
	// Logger receives debug logs (default: discard).
	Logger *slog.Logger
}

// stateError is a failure travelling up the state tree.
type stateError struct {
	Error, Cause       string
	hasError, hasCause bool
}

func newErr(name, cause string) *stateError {
	return &stateError{Error: name, Cause: cause, hasError: true, hasCause: cause != ""}
}

func (e *stateError) object() map[string]any {
	o := map[string]any{}
	if e.hasError {
		o["Error"] = e.Error
	}
	if e.hasCause {
		o["Cause"] = e.Cause
	}
	return o
}

type execution struct {
	m      *Machine
	opts   Options
	clk    clock.Clock
	mu     sync.Mutex
	lastID int64
	input  any
	execO  map[string]any
	smO    map[string]any
	log    *slog.Logger
	quiet  bool // suppress events (distributed map children)
	// cancel stops the execution (set by finish); histFull is set once event
	// MaxHistoryEvents was written as the quota's ExecutionFailed.
	cancel   context.CancelCauseFunc
	histFull bool
}

func newExecution(m *Machine, opts Options, input any, lastID int64) *execution {
	e := &execution{m: m, opts: opts, clk: opts.Clock, input: input, lastID: lastID, log: opts.Logger}
	if e.clk == nil {
		e.clk = clock.Real()
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	info := opts.Execution
	start := info.StartTime
	if start.IsZero() {
		start = e.clk.Now()
	}
	e.execO = map[string]any{
		"Id": info.ID, "Input": input, "StartTime": formatTime(start), "Name": info.Name,
		"RoleArn": info.RoleArn, "RedriveCount": intValue(int64(info.RedriveCount)),
	}
	e.smO = map[string]any{"Id": info.StateMachineID, "Name": info.StateMachineName}
	return e
}

// maxSeconds bounds every wait (about 31 years), keeping durations from overflowing.
const maxSeconds = 1 << 30

// seconds converts a count of seconds to a Duration, bounded by maxSeconds.
func seconds(n int64) time.Duration {
	return time.Duration(max(0, min(n, maxSeconds))) * time.Second
}

func formatTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// recording reports whether events are observed (so their details are worth building).
func (e *execution) recording() bool { return !e.quiet && e.opts.OnEvent != nil }

func (e *execution) emit(typ, key string, details map[string]any) int64 {
	if e.quiet {
		return 0
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.histFull {
		// The history is closed: nothing more is written after the quota's failure.
		return e.lastID
	}
	if e.lastID+1 >= MaxHistoryEvents && typ != "ExecutionSucceeded" {
		// Event 25,000 can only be the success of the execution; anything else makes it
		// the quota's ExecutionFailed, and the execution stops.
		e.histFull = true
		typ, key = "ExecutionFailed", "executionFailedEventDetails"
		details = map[string]any{"error": ErrRuntime, "cause": HistoryLimitCause}
		if e.cancel != nil {
			e.cancel(errHistoryLimit)
		}
	}
	e.lastID++
	if e.opts.OnEvent == nil {
		return e.lastID
	}
	ev := Event{ID: e.lastID, PreviousEventID: e.lastID - 1, Timestamp: e.clk.Now(), Type: typ, DetailsKey: key, Details: details}
	e.opts.OnEvent(ev)
	return ev.ID
}

// historyFull reports whether the execution was stopped by the history quota.
func (e *execution) historyFull() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.histFull
}

func (e *execution) ctxObject(state string, entered time.Time, extra map[string]any) map[string]any {
	o := map[string]any{
		"Execution":    e.execO,
		"StateMachine": e.smO,
		"State":        map[string]any{"Name": state, "EnteredTime": formatTime(entered)},
	}
	for k, v := range extra {
		o[k] = v
	}
	return o
}

// Run executes the machine on input (JSON text; empty means {}).
func (m *Machine) Run(ctx context.Context, input []byte, opts Options) Result {
	if len(input) == 0 {
		input = []byte("{}")
	}
	in, err := decodeJSON(input)
	if err != nil {
		return Result{Status: StatusFailed, Error: ErrRuntime, Cause: "The execution input is not valid JSON: " + err.Error()}
	}
	e := newExecution(m, opts, in, 0)
	e.emit("ExecutionStarted", "executionStartedEventDetails", map[string]any{
		"input": string(input), "inputDetails": map[string]any{"truncated": false}, "roleArn": opts.Execution.RoleArn})
	return e.finish(ctx, m.StartAt, in)
}

// Resume continues an execution from a checkpoint. execInput is the original execution input
// (for $$.Execution.Input).
func (m *Machine) Resume(ctx context.Context, cp Checkpoint, execInput []byte, opts Options) Result {
	if _, ok := m.States[cp.Next]; !ok {
		return Result{Status: StatusFailed, Error: ErrRuntime, Cause: fmt.Sprintf("cannot resume: state %q does not exist", cp.Next)}
	}
	in, err := decodeJSON(cp.Input)
	if err != nil {
		return Result{Status: StatusFailed, Error: ErrRuntime, Cause: "cannot resume: checkpoint input is not valid JSON"}
	}
	var ein any = map[string]any{}
	if len(execInput) > 0 {
		if v, err := decodeJSON(execInput); err == nil {
			ein = v
		}
	}
	e := newExecution(m, opts, ein, cp.LastEventID)
	return e.finish(ctx, cp.Next, in)
}

var errTimedOut = errors.New("execution timed out")

func (e *execution) finish(ctx context.Context, start string, in any) Result {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	e.mu.Lock()
	e.cancel = cancel
	e.mu.Unlock()
	if e.m.TimeoutSeconds > 0 {
		timer := e.clk.After(seconds(e.m.TimeoutSeconds))
		go func() {
			select {
			case <-timer:
				cancel(errTimedOut)
			case <-ctx.Done():
			}
		}()
	}
	out, serr := e.runMachine(ctx, e.m, start, in, true)
	if serr == nil && !e.historyFull() {
		b := encodeJSON(out)
		e.emit("ExecutionSucceeded", "executionSucceededEventDetails", map[string]any{"output": string(b), "outputDetails": map[string]any{"truncated": false}})
		if !e.historyFull() {
			return Result{Status: StatusSucceeded, Output: b}
		}
	}
	if e.historyFull() {
		return Result{Status: StatusFailed, Error: ErrRuntime, Cause: HistoryLimitCause}
	}
	if ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), errTimedOut) {
			e.emit("ExecutionTimedOut", "executionTimedOutEventDetails", map[string]any{"error": ErrTimeout, "cause": ""})
			return Result{Status: StatusTimedOut, Error: ErrTimeout}
		}
		if serr.Error == errAbortedName {
			e.emit("ExecutionAborted", "executionAbortedEventDetails", map[string]any{})
			return Result{Status: StatusAborted}
		}
	}
	d := map[string]any{}
	if serr.hasError {
		d["error"] = serr.Error
	}
	if serr.hasCause {
		d["cause"] = serr.Cause
	}
	e.emit("ExecutionFailed", "executionFailedEventDetails", d)
	return Result{Status: StatusFailed, Error: serr.Error, Cause: serr.Cause}
}

// runMachine runs states from start until the machine ends.
func (e *execution) runMachine(ctx context.Context, m *Machine, start string, in any, top bool) (any, *stateError) {
	name := start
	for steps := 0; ; steps++ {
		if ctx.Err() != nil {
			return nil, newErr(errAbortedName, "")
		}
		st := m.States[name]
		if st == nil {
			return nil, newErr(ErrRuntime, fmt.Sprintf("state %q does not exist", name))
		}
		out, next, serr := e.runState(ctx, st, in)
		if serr != nil {
			return nil, serr
		}
		if next == "" {
			return out, nil
		}
		if top && e.opts.OnCheckpoint != nil {
			e.mu.Lock()
			last := e.lastID
			e.mu.Unlock()
			e.opts.OnCheckpoint(Checkpoint{Next: next, Input: encodeJSON(out), LastEventID: last})
		}
		name, in = next, out
	}
}

// stateRun carries what one state's run needs.
type stateRun struct {
	e       *execution
	st      *State
	raw     any
	entered int64
	ctxObj  map[string]any // built on first use by ctx()
	at      time.Time
	extra   map[string]any
	started bool // a Parallel/Map state emitted its Started event
}

// ctxFor returns the context object when template t reads it, nil otherwise.
func (r *stateRun) ctxFor(t tmpl) map[string]any {
	if templateUsesCtx(t) {
		return r.ctx()
	}
	return nil
}

// ctx returns the state's context object ($$), building it on first use.
func (r *stateRun) ctx() map[string]any {
	if r.ctxObj == nil {
		r.ctxObj = r.e.ctxObject(r.st.Name, r.at, r.extra)
	}
	return r.ctxObj
}

func (r *stateRun) runtime(msg string) *stateError {
	return newErr(ErrRuntime, fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). %s", r.st.Name, r.entered, msg))
}

func (r *stateRun) dataLimit() *stateError {
	return newErr(ErrDataLimitExceeded, fmt.Sprintf("The state/task '%s' returned a result with a size exceeding the maximum number of bytes service limit.", r.st.Name))
}

func (e *execution) runState(ctx context.Context, st *State, raw any) (any, string, *stateError) {
	now := e.clk.Now()
	var id int64
	if e.recording() {
		id = e.emit(st.Type+"StateEntered", "stateEnteredEventDetails", map[string]any{"name": st.Name, "input": string(encodeJSON(raw)), "inputDetails": map[string]any{"truncated": false}})
	} else {
		id = e.emit(st.Type+"StateEntered", "", nil)
	}
	r := &stateRun{e: e, st: st, raw: raw, entered: id, at: now}
	var (
		out  any
		next string
		serr *stateError
	)
	switch st.Type {
	case "Pass":
		out, serr = r.pass()
		next = st.Next
	case "Succeed":
		out, serr = r.succeed()
	case "Fail":
		serr = r.fail()
	case "Choice":
		out, next, serr = r.choice()
	case "Wait":
		out, serr = r.wait(ctx)
		next = st.Next
	case "Task", "Parallel", "Map":
		return r.withRetry(ctx)
	default:
		serr = r.runtime("unsupported state type " + st.Type)
	}
	if serr != nil {
		return nil, "", serr
	}
	e.exited(st, out)
	return out, next, nil
}

func (e *execution) exited(st *State, out any) {
	if !e.recording() {
		e.emit(st.Type+"StateExited", "", nil)
		return
	}
	e.emit(st.Type+"StateExited", "stateExitedEventDetails", map[string]any{"name": st.Name, "output": string(encodeJSON(out)), "outputDetails": map[string]any{"truncated": false}})
}

// ---- data flow ----

func (r *stateRun) inputPath() (any, *stateError) {
	p := r.st.InputPath
	if p.null {
		return map[string]any{}, nil
	}
	if p.e == nil {
		return r.raw, nil
	}
	v, err := p.e.eval(r.raw, r.ctx())
	if err != nil {
		return nil, r.pathErr(p.src, err)
	}
	return v, nil
}

func (r *stateRun) pathErr(src string, err error) *stateError {
	var nf *jsonpath.NotFoundError
	if errors.As(err, &nf) {
		return r.runtime(fmt.Sprintf("Invalid path '%s' : No results for path: %s", src, nf.Path))
	}
	return r.runtime(fmt.Sprintf("Invalid path '%s' : %v", src, err))
}

func (r *stateRun) outputPath(v any) (any, *stateError) {
	p := r.st.OutputPath
	if p.null {
		return map[string]any{}, nil
	}
	if p.e == nil {
		return v, nil
	}
	out, err := p.e.eval(v, r.ctx())
	if err != nil {
		return nil, r.pathErr(p.src, err)
	}
	return out, nil
}

func (r *stateRun) resultPath(p optPath, raw, result any) (any, *stateError) {
	if p.null {
		return raw, nil
	}
	if p.e == nil {
		return result, nil
	}
	pe := p.e.(*pathExpr)
	out, err := setPath(raw, pe.p.Segments(), result)
	if err != nil {
		return nil, newErr(ErrResultPathMatchFailure, fmt.Sprintf("An error occurred while executing the state '%s' (entered at the event id #%d). Unable to apply ResultPath '%s' to input '%s': %v", r.st.Name, r.entered, p.src, encodeString(raw), err))
	}
	return out, nil
}

// template evaluates a payload template against in.
func (r *stateRun) template(t tmpl, in any, ctxObj map[string]any) (any, *stateError) {
	switch x := t.(type) {
	case tmplObject:
		o := make(map[string]any, len(x.fields))
		for _, f := range x.fields {
			if f.e != nil {
				v, err := f.e.eval(in, ctxObj)
				if err != nil {
					if errors.Is(err, jsonpath.ErrNotFound) {
						return nil, r.runtime(fmt.Sprintf("The JSONPath '%s' specified for the field '%s' could not be found in the input '%s'", f.path, f.src, encodeString(in)))
					}
					return nil, r.runtime(fmt.Sprintf("The function '%s' specified for the field '%s' could not be evaluated: %v", f.path, f.src, err))
				}
				o[f.key] = v
				continue
			}
			v, serr := r.template(f.val, in, ctxObj)
			if serr != nil {
				return nil, serr
			}
			o[f.key] = v
		}
		return o, nil
	case tmplArray:
		a := make([]any, len(x.items))
		for i, it := range x.items {
			v, serr := r.template(it, in, ctxObj)
			if serr != nil {
				return nil, serr
			}
			a[i] = v
		}
		return a, nil
	case tmplLiteral:
		return x.v, nil
	}
	return nil, nil
}

// effectiveInput applies InputPath and Parameters.
func (r *stateRun) effectiveInput() (any, *stateError) {
	in, serr := r.inputPath()
	if serr != nil {
		return nil, serr
	}
	if r.st.Parameters != nil {
		return r.template(r.st.Parameters, in, r.ctxFor(r.st.Parameters))
	}
	return in, nil
}

// finishResult applies ResultSelector, ResultPath and OutputPath to a state's result.
func (r *stateRun) finishResult(result any) (any, *stateError) {
	if r.st.ResultSelector != nil {
		v, serr := r.template(r.st.ResultSelector, result, r.ctxFor(r.st.ResultSelector))
		if serr != nil {
			return nil, serr
		}
		result = v
	}
	if tooLarge(result) {
		return nil, r.dataLimit()
	}
	v, serr := r.resultPath(r.st.ResultPath, r.raw, result)
	if serr != nil {
		return nil, serr
	}
	out, serr := r.outputPath(v)
	if serr != nil {
		return nil, serr
	}
	if tooLarge(out) {
		return nil, r.dataLimit()
	}
	return out, nil
}

// ---- simple states ----

func (r *stateRun) pass() (any, *stateError) {
	in, serr := r.effectiveInput()
	if serr != nil {
		return nil, serr
	}
	result := in
	if r.st.hasResult {
		result = r.st.Result
	}
	return r.finishResult(result)
}

func (r *stateRun) succeed() (any, *stateError) {
	in, serr := r.inputPath()
	if serr != nil {
		return nil, serr
	}
	return r.outputPath(in)
}

func (r *stateRun) fail() *stateError {
	se := &stateError{Error: r.st.Error, Cause: r.st.Cause, hasError: r.st.hasError, hasCause: r.st.hasCause}
	eval := func(e expr, field string) (string, bool, *stateError) {
		v, err := e.eval(r.raw, r.ctx())
		if err != nil {
			if errors.Is(err, jsonpath.ErrNotFound) {
				return "", false, r.runtime(fmt.Sprintf("The JSONPath '%s' specified for the field '%s' could not be found in the input '%s'", e.String(), field, encodeString(r.raw)))
			}
			return "", false, r.runtime(fmt.Sprintf("The function '%s' specified for the field '%s' could not be evaluated: %v", e.String(), field, err))
		}
		if s, ok := v.(string); ok {
			return s, true, nil
		}
		return encodeString(v), true, nil
	}
	if r.st.ErrorPath != nil {
		s, ok, serr := eval(r.st.ErrorPath, "ErrorPath")
		if serr != nil {
			return serr
		}
		se.Error, se.hasError = s, ok
	}
	if r.st.CausePath != nil {
		s, ok, serr := eval(r.st.CausePath, "CausePath")
		if serr != nil {
			return serr
		}
		se.Cause, se.hasCause = s, ok
	}
	return se
}

func (r *stateRun) choice() (any, string, *stateError) {
	in, serr := r.inputPath()
	if serr != nil {
		return nil, "", serr
	}
	next := ""
	var co map[string]any
	if r.st.choicesCtx {
		co = r.ctx()
	}
	for _, rule := range r.st.Choices {
		ok, err := rule.eval(in, co)
		if err != nil {
			return nil, "", r.runtime(err.Error())
		}
		if ok {
			next = rule.Next
			break
		}
	}
	if next == "" {
		next = r.st.Default
	}
	if next == "" {
		return nil, "", newErr(ErrNoChoiceMatched, fmt.Sprintf("No Matches! (state '%s')", r.st.Name))
	}
	out, serr := r.outputPath(in)
	return out, next, serr
}

func (r *stateRun) wait(ctx context.Context) (any, *stateError) {
	in, serr := r.inputPath()
	if serr != nil {
		return nil, serr
	}
	var d time.Duration
	st := r.st
	switch {
	case st.Seconds != nil:
		d = seconds(*st.Seconds)
	case st.SecondsPath != nil:
		v, err := st.SecondsPath.eval(in, r.ctx())
		if err != nil {
			return nil, r.pathErr(st.SecondsPath.String(), err)
		}
		n, ok := toInt(v)
		if !ok {
			return nil, r.runtime(fmt.Sprintf("The SecondsPath parameter cannot be parsed as a long value: %s == %s", st.SecondsPath.String(), encodeString(v)))
		}
		if n < 0 {
			return nil, r.runtime(fmt.Sprintf("The SecondsPath parameter references a negative value: %s == %s", st.SecondsPath.String(), encodeString(v)))
		}
		d = seconds(n)
	case st.Timestamp != "" || st.TimestampPath != nil:
		ts := st.Timestamp
		if st.TimestampPath != nil {
			v, err := st.TimestampPath.eval(in, r.ctx())
			if err != nil {
				return nil, r.pathErr(st.TimestampPath.String(), err)
			}
			s, ok := v.(string)
			if _, err := parseTimestamp(s); !ok || err != nil {
				return nil, r.runtime(fmt.Sprintf("The TimestampPath parameter does not reference a valid ISO-8601 extended offset date-time format string: %s == %s", st.TimestampPath.String(), encodeString(v)))
			}
			ts = s
		}
		t, _ := parseTimestamp(ts)
		d = t.Sub(r.e.clk.Now())
	}
	if d > 0 {
		select {
		case <-r.e.clk.After(d):
		case <-ctx.Done():
			return nil, newErr(errAbortedName, "")
		}
	}
	return r.outputPath(in)
}

// ---- retry and catch ----

func errorMatches(list []string, name string) bool {
	if name == errAbortedName {
		return false
	}
	for _, e := range list {
		if e == name && name != ErrRuntime {
			return true
		}
		switch e {
		case ErrALL:
			if name != ErrRuntime && name != ErrDataLimitExceeded {
				return true
			}
		case ErrTaskFailed:
			if name != ErrRuntime && name != ErrDataLimitExceeded && name != ErrTimeout && name != ErrHeartbeatTimeout &&
				name != ErrBranchFailed && name != ErrNoChoiceMatched && name != ErrResultPathMatchFailure &&
				name != ErrParameterPathFailure && name != ErrIntrinsicFailure && name != ErrItemReaderFailed && name != ErrExceedToleratedFailure {
				return true
			}
		}
	}
	return false
}

func (r *stateRun) withRetry(ctx context.Context) (any, string, *stateError) {
	st := r.st
	attempts := make([]int, len(st.Retry))
	for {
		var (
			out  any
			serr *stateError
		)
		switch st.Type {
		case "Task":
			out, serr = r.task(ctx)
		case "Parallel":
			out, serr = r.parallel(ctx)
		case "Map":
			out, serr = r.mapState(ctx)
		}
		if serr == nil {
			r.e.exited(st, out)
			return out, st.Next, nil
		}
		if serr.Error == errAbortedName || ctx.Err() != nil {
			return nil, "", newErr(errAbortedName, "")
		}
		retried := false
		if serr.hasError {
			for i, rt := range st.Retry {
				if !errorMatches(rt.ErrorEquals, serr.Error) {
					continue
				}
				if attempts[i] < rt.MaxAttempts {
					delay := rt.IntervalSeconds * math.Pow(rt.BackoffRate, float64(attempts[i]))
					if rt.MaxDelaySeconds > 0 && delay > rt.MaxDelaySeconds {
						delay = rt.MaxDelaySeconds
					}
					if rt.JitterFull {
						delay = mrand.Float64() * delay
					}
					delay = math.Min(delay, maxSeconds)
					attempts[i]++
					if delay > 0 {
						select {
						case <-r.e.clk.After(time.Duration(delay * float64(time.Second))):
						case <-ctx.Done():
							return nil, "", newErr(errAbortedName, "")
						}
					}
					retried = true
				}
				break
			}
		}
		if retried {
			continue
		}
		if r.started {
			r.e.emit(st.Type+"StateFailed", "", nil)
		}
		if serr.hasError {
			for _, c := range st.Catch {
				if !errorMatches(c.ErrorEquals, serr.Error) {
					continue
				}
				out, perr := r.resultPath(c.ResultPath, r.raw, serr.object())
				if perr != nil {
					return nil, "", perr
				}
				r.e.exited(st, out)
				return out, c.Next, nil
			}
		}
		return nil, "", serr
	}
}

// ---- Parallel ----

func (r *stateRun) parallel(ctx context.Context) (any, *stateError) {
	in, serr := r.effectiveInput()
	if serr != nil {
		return nil, serr
	}
	r.e.emit("ParallelStateStarted", "", nil)
	r.started = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]any, len(r.st.Branches))
	errs := make([]*stateError, len(r.st.Branches))
	var first struct {
		sync.Mutex
		idx int
	}
	first.idx = -1
	var wg sync.WaitGroup
	for i, b := range r.st.Branches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, serr := r.e.runMachine(ctx, b, b.StartAt, in, false)
			results[i], errs[i] = out, serr
			if serr != nil && serr.Error != errAbortedName {
				first.Lock()
				if first.idx < 0 {
					first.idx = i
				}
				first.Unlock()
				cancel()
			}
		}()
	}
	wg.Wait()
	if first.idx >= 0 {
		return nil, errs[first.idx]
	}
	for _, se := range errs {
		if se != nil {
			return nil, se
		}
	}
	r.e.emit("ParallelStateSucceeded", "", nil)
	return r.finishResult(results)
}
