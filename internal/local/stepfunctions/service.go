// Package stepfunctions serves the AWS Step Functions API (AWS JSON 1.0) over keyline's own
// States Language interpreter (internal/local/states). Executions persist under a data directory and
// resume from their last completed state after a restart.
package stepfunctions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/invoke"
	"github.com/keyline/keyline/internal/local/states"
)

// Sentinel errors; API errors wrap them and carry their AWS error code.
var (
	ErrStateMachineDoesNotExist = errors.New("state machine does not exist")
	ErrExecutionDoesNotExist    = errors.New("execution does not exist")
	ErrExecutionAlreadyExists   = errors.New("execution already exists")
	ErrInvalidExecutionInput    = errors.New("invalid execution input")
	ErrInvalidDefinition        = errors.New("invalid definition")
	ErrInvalidName              = errors.New("invalid name")
	ErrInvalidArn               = errors.New("invalid ARN")
	ErrStateMachineExists       = errors.New("state machine already exists")
	ErrValidation               = errors.New("validation error")
	ErrClosed                   = errors.New("service closed")
)

// APIError is an error answered to API callers as {"__type": Code, "message": Message}.
type APIError struct {
	Code    string
	Message string
	Err     error
}

func (e *APIError) Error() string { return e.Code + ": " + e.Message }
func (e *APIError) Unwrap() error { return e.Err }

func apiErr(code string, sentinel error, format string, a ...any) *APIError {
	return &APIError{Code: code, Message: fmt.Sprintf(format, a...), Err: sentinel}
}

// Options configure a Service.
type Options struct {
	// Dir holds persisted state machines and executions; empty keeps everything in memory.
	Dir string
	// Clock drives Wait states, retries and timestamps (default: real clock).
	Clock clock.Clock
	// TaskRunner runs Task states. When nil, a states.Integrations is built from Invoker, Events
	// and DynamoDB, with nested executions served by this Service.
	TaskRunner states.TaskRunner
	Invoker    invoke.Invoker
	Events     states.EventPutter
	DynamoDB   states.DynamoDBCaller
	// Items reads Distributed Map ItemReader sources.
	Items states.ItemSource
	// Logger receives structured logs (default: discard).
	Logger *slog.Logger
	// Region and Account shape ARNs (defaults us-east-1, 000000000000).
	Region, Account string
	// MaxConcurrentExecutions bounds executions running at once (0: no bound). Executions over the
	// bound wait, RUNNING, for a slot. Nested executions started by a Task do not count.
	MaxConcurrentExecutions int
	// Faults may crash the process at a state transition (nil: never).
	Faults *fault.Injector
}

type stateMachine struct {
	Arn          string    `json:"arn"`
	Name         string    `json:"name"`
	Definition   string    `json:"definition"`
	RoleArn      string    `json:"roleArn"`
	Type         string    `json:"type"`
	CreationDate time.Time `json:"creationDate"`
	machine      *states.Machine
}

type execution struct {
	Arn             string             `json:"arn"`
	StateMachineArn string             `json:"stateMachineArn"`
	Name            string             `json:"name"`
	Definition      string             `json:"definition"`
	RoleArn         string             `json:"roleArn"`
	Input           string             `json:"input"`
	Status          string             `json:"status"`
	Output          string             `json:"output,omitempty"`
	Error           string             `json:"error,omitempty"`
	Cause           string             `json:"cause,omitempty"`
	StartDate       time.Time          `json:"startDate"`
	StopDate        time.Time          `json:"stopDate,omitzero"`
	Nested          bool               `json:"nested,omitempty"`
	Checkpoint      *states.Checkpoint `json:"checkpoint,omitempty"`
	Events          []states.Event     `json:"events"`
	mu              sync.Mutex         `json:"-"`
	done            chan struct{}      `json:"-"`
	cancel          context.CancelFunc `json:"-"`
	stopRequested   bool               `json:"-"`
	stopError       string             `json:"-"`
	stopCause       string             `json:"-"`
}

// Service is the local Step Functions.
type Service struct {
	opts   Options
	clk    clock.Clock
	log    *slog.Logger
	tasks  states.TaskRunner
	tokens *states.TaskTokens
	sem    chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	machines map[string]*stateMachine // by ARN
	execs    map[string]*execution    // by ARN
	closed   bool
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_.\-]{1,80}$`)

// New creates a Service, loads what Dir holds and resumes the executions that were RUNNING.
func New(opts Options) (*Service, error) {
	if opts.Region == "" {
		opts.Region = "us-east-1"
	}
	if opts.Account == "" {
		opts.Account = "000000000000"
	}
	s := &Service{opts: opts, clk: opts.Clock, log: opts.Logger, tokens: states.NewTaskTokens(), machines: map[string]*stateMachine{}, execs: map[string]*execution{}}
	if s.clk == nil {
		s.clk = clock.Real()
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.tasks = opts.TaskRunner
	if s.tasks == nil {
		s.tasks = &states.Integrations{Lambda: opts.Invoker, Events: opts.Events, DynamoDB: opts.DynamoDB, Executions: nestedStarter{s}}
	}
	if opts.MaxConcurrentExecutions > 0 {
		s.sem = make(chan struct{}, opts.MaxConcurrentExecutions)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if opts.Dir != "" {
		if err := s.load(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close stops running executions without closing them: they stay RUNNING on disk and resume
// when a Service is next created on the same Dir.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
	return nil
}

func (s *Service) smArn(name string) string {
	return fmt.Sprintf("arn:aws:states:%s:%s:stateMachine:%s", s.opts.Region, s.opts.Account, name)
}

func (s *Service) execArn(smName, name string) string {
	return fmt.Sprintf("arn:aws:states:%s:%s:execution:%s:%s", s.opts.Region, s.opts.Account, smName, name)
}

// RegisterStateMachine creates the state machine name, or updates its definition and role when
// it exists (for machines described by the deployment). It returns the machine's ARN.
func (s *Service) RegisterStateMachine(name, definition, roleArn string) (string, error) {
	return s.createStateMachine(name, definition, roleArn, true)
}

func (s *Service) createStateMachine(name, definition, roleArn string, update bool) (string, error) {
	if !nameRE.MatchString(name) {
		return "", apiErr("InvalidName", ErrInvalidName, "Invalid Name: '%s'", name)
	}
	m, err := states.Parse([]byte(definition))
	if err != nil {
		var ve *states.ValidationError
		if errors.As(err, &ve) {
			return "", apiErr("InvalidDefinition", ErrInvalidDefinition, "Invalid State Machine Definition: '%s'", strings.Join(ve.Problems, ", "))
		}
		return "", apiErr("InvalidDefinition", ErrInvalidDefinition, "Invalid State Machine Definition: '%v'", err)
	}
	arn := s.smArn(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.machines[arn]; ok {
		if old.Definition == definition && old.RoleArn == roleArn {
			return arn, nil
		}
		if !update {
			return "", apiErr("StateMachineAlreadyExists", ErrStateMachineExists, "State Machine Already Exists: '%s'", arn)
		}
	}
	sm := &stateMachine{Arn: arn, Name: name, Definition: definition, RoleArn: roleArn, Type: "STANDARD", CreationDate: s.clk.Now(), machine: m}
	if old, ok := s.machines[arn]; ok {
		sm.CreationDate = old.CreationDate
	}
	if err := s.saveMachine(sm); err != nil {
		return "", err
	}
	s.machines[arn] = sm
	s.log.Info("state machine registered", "stateMachineArn", arn)
	return arn, nil
}

// StartExecution starts an execution of the state machine arn. An empty name gets a UUID; an
// empty input is {}. Starting again with the same name and input returns the same execution;
// with a different input it fails with ExecutionAlreadyExists.
func (s *Service) StartExecution(ctx context.Context, arn, name string, input []byte) (string, error) {
	return s.startExecution(arn, name, input, false)
}

type nestedStarter struct{ s *Service }

func (n nestedStarter) StartExecution(ctx context.Context, arn, name string, input []byte) (string, error) {
	return n.s.startExecution(arn, name, input, true)
}

func (n nestedStarter) WaitExecution(ctx context.Context, arn string) (states.ExecutionDescription, error) {
	return n.s.WaitExecution(ctx, arn)
}

func (s *Service) startExecution(arn, name string, input []byte, nested bool) (string, error) {
	if len(input) == 0 {
		input = []byte("{}")
	}
	if !json.Valid(input) {
		return "", apiErr("InvalidExecutionInput", ErrInvalidExecutionInput, "Invalid State Machine Execution Input: 'the input is not valid JSON'")
	}
	if len(input) > states.MaxPayloadBytes {
		return "", apiErr("InvalidExecutionInput", ErrInvalidExecutionInput, "Invalid State Machine Execution Input: 'the input exceeds the maximum size of 262144 bytes'")
	}
	if name == "" {
		name = newUUID()
	}
	if !nameRE.MatchString(name) {
		return "", apiErr("InvalidName", ErrInvalidName, "Invalid Name: '%s'", name)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return "", ErrClosed
	}
	sm, ok := s.machines[arn]
	if !ok {
		s.mu.Unlock()
		if !strings.HasPrefix(arn, "arn:") {
			return "", apiErr("InvalidArn", ErrInvalidArn, "Invalid Arn: '%s'", arn)
		}
		return "", apiErr("StateMachineDoesNotExist", ErrStateMachineDoesNotExist, "State Machine Does Not Exist: '%s'", arn)
	}
	earn := s.execArn(sm.Name, name)
	if old, ok := s.execs[earn]; ok {
		s.mu.Unlock()
		if sameJSON(old.Input, string(input)) {
			return earn, nil
		}
		return "", apiErr("ExecutionAlreadyExists", ErrExecutionAlreadyExists, "Execution Already Exists: '%s'", earn)
	}
	x := &execution{Arn: earn, StateMachineArn: arn, Name: name, Definition: sm.Definition, RoleArn: sm.RoleArn,
		Input: string(input), Status: states.StatusRunning, StartDate: s.clk.Now(), Nested: nested, done: make(chan struct{})}
	s.execs[earn] = x
	s.mu.Unlock()
	if err := s.saveExec(x); err != nil {
		s.mu.Lock()
		delete(s.execs, earn)
		s.mu.Unlock()
		return "", err
	}
	s.log.Info("execution started", "executionArn", earn)
	s.launch(x, sm.machine, nil)
	return earn, nil
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return a == b
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func (s *Service) launch(x *execution, m *states.Machine, cp *states.Checkpoint) {
	ctx, cancel := context.WithCancel(s.ctx)
	x.mu.Lock()
	x.cancel = cancel
	x.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer cancel()
		s.run(ctx, x, m, cp)
	}()
}

func (s *Service) run(ctx context.Context, x *execution, m *states.Machine, cp *states.Checkpoint) {
	log := s.log.With("executionArn", x.Arn)
	if s.sem != nil && !x.Nested {
		select {
		case s.sem <- struct{}{}:
			defer func() { <-s.sem }()
		case <-ctx.Done():
			s.finishAborted(x, log)
			return
		}
	}
	smName := x.StateMachineArn[strings.LastIndexByte(x.StateMachineArn, ':')+1:]
	opts := states.Options{
		Clock: s.clk, Tasks: s.tasks, Items: s.opts.Items, Logger: log, TaskTokens: s.tokens,
		Execution: states.ExecutionInfo{ID: x.Arn, Name: x.Name, RoleArn: x.RoleArn, StateMachineID: x.StateMachineArn,
			StateMachineName: smName, StartTime: x.StartDate},
		OnEvent: func(ev states.Event) {
			x.mu.Lock()
			if ev.Type == "ExecutionAborted" {
				ev.Details = map[string]any{}
				if x.stopError != "" {
					ev.Details["error"] = x.stopError
				}
				if x.stopCause != "" {
					ev.Details["cause"] = x.stopCause
				}
			}
			x.Events = append(x.Events, ev)
			x.mu.Unlock()
		},
		OnCheckpoint: func(c states.Checkpoint) {
			// A crash here loses the transition: the state that just ran runs again on resume.
			s.opts.Faults.Transition(smName, c.Next)
			x.mu.Lock()
			x.Checkpoint = &c
			x.mu.Unlock()
			if err := s.saveExec(x); err != nil {
				log.Error("checkpoint not saved", "err", err)
			}
		},
	}
	var res states.Result
	if cp != nil {
		log.Info("execution resumed", "state", cp.Next)
		res = m.Resume(ctx, *cp, []byte(x.Input), opts)
	} else {
		res = m.Run(ctx, []byte(x.Input), opts)
	}
	x.mu.Lock()
	if res.Status == states.StatusAborted && !x.stopRequested {
		// The service is shutting down: leave the execution RUNNING so it resumes later.
		x.mu.Unlock()
		log.Info("execution suspended")
		return
	}
	x.Status = res.Status
	x.Output = string(res.Output)
	x.Error, x.Cause = res.Error, res.Cause
	if res.Status == states.StatusAborted {
		x.Error, x.Cause = x.stopError, x.stopCause
	}
	x.StopDate = s.clk.Now()
	x.Checkpoint = nil
	x.mu.Unlock()
	if err := s.saveExec(x); err != nil {
		log.Error("execution not saved", "err", err)
	}
	log.Info("execution finished", "status", res.Status, "error", res.Error)
	close(x.done)
}

func (s *Service) finishAborted(x *execution, log *slog.Logger) {
	x.mu.Lock()
	stopped := x.stopRequested
	if stopped {
		x.Status = states.StatusAborted
		x.Error, x.Cause = x.stopError, x.stopCause
		x.StopDate = s.clk.Now()
	}
	x.mu.Unlock()
	if stopped {
		_ = s.saveExec(x)
		close(x.done)
	}
}

func (s *Service) getExec(arn string) (*execution, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	x, ok := s.execs[arn]
	if !ok {
		if !strings.HasPrefix(arn, "arn:") {
			return nil, apiErr("InvalidArn", ErrInvalidArn, "Invalid Arn: '%s'", arn)
		}
		return nil, apiErr("ExecutionDoesNotExist", ErrExecutionDoesNotExist, "Execution Does Not Exist: '%s'", arn)
	}
	return x, nil
}

// DescribeExecution returns an execution's current state.
func (s *Service) DescribeExecution(arn string) (states.ExecutionDescription, error) {
	x, err := s.getExec(arn)
	if err != nil {
		return states.ExecutionDescription{}, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	d := states.ExecutionDescription{ExecutionArn: x.Arn, StateMachineArn: x.StateMachineArn, Name: x.Name, Status: x.Status,
		Input: json.RawMessage(x.Input), Error: x.Error, Cause: x.Cause, StartDate: x.StartDate, StopDate: x.StopDate}
	if x.Output != "" {
		d.Output = json.RawMessage(x.Output)
	}
	return d, nil
}

// WaitExecution waits until the execution has finished and describes it.
func (s *Service) WaitExecution(ctx context.Context, arn string) (states.ExecutionDescription, error) {
	x, err := s.getExec(arn)
	if err != nil {
		return states.ExecutionDescription{}, err
	}
	select {
	case <-x.done:
	case <-ctx.Done():
		return states.ExecutionDescription{}, ctx.Err()
	case <-s.ctx.Done():
		return states.ExecutionDescription{}, ErrClosed
	}
	return s.DescribeExecution(arn)
}

// StopExecution aborts a running execution.
func (s *Service) StopExecution(arn, errName, cause string) (time.Time, error) {
	x, err := s.getExec(arn)
	if err != nil {
		return time.Time{}, err
	}
	x.mu.Lock()
	if x.Status != states.StatusRunning {
		x.mu.Unlock()
		return s.clk.Now(), nil
	}
	x.stopRequested = true
	x.stopError, x.stopCause = errName, cause
	cancel := x.cancel
	x.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	select {
	case <-x.done:
	case <-time.After(10 * time.Second):
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.StopDate, nil
}

// SendTaskSuccess completes the ".waitForTaskToken" task waiting on token with output.
func (s *Service) SendTaskSuccess(token string, output []byte) error {
	return tokenErr(s.tokens.SendSuccess(token, output))
}

// SendTaskFailure fails the ".waitForTaskToken" task waiting on token.
func (s *Service) SendTaskFailure(token, errName, cause string) error {
	return tokenErr(s.tokens.SendFailure(token, errName, cause))
}

// SendTaskHeartbeat records a heartbeat for the task waiting on token.
func (s *Service) SendTaskHeartbeat(token string) error {
	return tokenErr(s.tokens.SendHeartbeat(token))
}

func tokenErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, states.ErrInvalidTaskOutput):
		return apiErr("InvalidOutput", ErrValidation, "Invalid Output: '%v'", err)
	case errors.Is(err, states.ErrTaskTokenUnknown):
		return apiErr("TaskDoesNotExist", ErrValidation, "Task Does Not Exist: '%v'", err)
	}
	return err
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// ---- persistence ----

func (s *Service) saveMachine(sm *stateMachine) error {
	if s.opts.Dir == "" {
		return nil
	}
	b, err := json.Marshal(sm)
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.opts.Dir, "statemachines", fileName(sm.Arn)), b)
}

func (s *Service) saveExec(x *execution) error {
	if s.opts.Dir == "" {
		return nil
	}
	x.mu.Lock()
	b, err := json.Marshal(x)
	x.mu.Unlock()
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.opts.Dir, "executions", fileName(x.Arn)), b)
}

func fileName(arn string) string {
	h := sha256.Sum256([]byte(arn))
	return hex.EncodeToString(h[:16]) + ".json"
}

// writeAtomic writes b to path through a synced temporary file and a rename.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("stepfunctions: %w", err)
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("stepfunctions: %w", err)
	}
	tmp := f.Name()
	_, werr := f.Write(b)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("stepfunctions: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("stepfunctions: %w", err)
	}
	return nil
}

func (s *Service) load() error {
	smFiles, _ := filepath.Glob(filepath.Join(s.opts.Dir, "statemachines", "*.json"))
	for _, f := range smFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("stepfunctions: %w", err)
		}
		var sm stateMachine
		if err := json.Unmarshal(b, &sm); err != nil {
			s.log.Error("skipping unreadable state machine file", "file", f, "err", err)
			continue
		}
		m, err := states.Parse([]byte(sm.Definition))
		if err != nil {
			s.log.Error("skipping invalid stored state machine", "stateMachineArn", sm.Arn, "err", err)
			continue
		}
		sm.machine = m
		s.machines[sm.Arn] = &sm
	}
	exFiles, _ := filepath.Glob(filepath.Join(s.opts.Dir, "executions", "*.json"))
	var resume []*execution
	for _, f := range exFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("stepfunctions: %w", err)
		}
		x := &execution{}
		if err := json.Unmarshal(b, x); err != nil {
			s.log.Error("skipping unreadable execution file", "file", f, "err", err)
			continue
		}
		x.done = make(chan struct{})
		if x.Status != states.StatusRunning {
			close(x.done)
		} else {
			resume = append(resume, x)
		}
		s.execs[x.Arn] = x
	}
	sort.Slice(resume, func(i, j int) bool { return resume[i].StartDate.Before(resume[j].StartDate) })
	for _, x := range resume {
		m, err := states.Parse([]byte(x.Definition))
		if err != nil {
			x.Status, x.Error, x.Cause, x.StopDate = states.StatusFailed, states.ErrRuntime, "cannot resume: "+err.Error(), s.clk.Now()
			_ = s.saveExec(x)
			close(x.done)
			continue
		}
		cp := x.Checkpoint
		if cp != nil {
			kept := x.Events[:0]
			for _, ev := range x.Events {
				if ev.ID <= cp.LastEventID {
					kept = append(kept, ev)
				}
			}
			x.Events = kept
		} else {
			x.Events = nil
		}
		s.launch(x, m, cp)
	}
	return nil
}
