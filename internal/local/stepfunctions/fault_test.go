package stepfunctions

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/lambda"
	"github.com/keyline/keyline/internal/local/states"
)

// faultDef retries the Lambda service's transient errors and catches a crashed handler.
const faultDef = `{"StartAt":"Step1","States":{
 "Step1":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"work","Payload.$":"$"},"ResultSelector":{"n.$":"$.Payload"},
   "Retry":[{"ErrorEquals":["Lambda.TooManyRequestsException","Lambda.ServiceException"],"IntervalSeconds":1,"MaxAttempts":20,"BackoffRate":1}],
   "Catch":[{"ErrorEquals":["Runtime.ExitError"],"ResultPath":"$.crash","Next":"Crashed"}],"Next":"Step2"},
 "Step2":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"work","Payload.$":"$"},"ResultSelector":{"n.$":"$.Payload"},
   "Retry":[{"ErrorEquals":["Lambda.TooManyRequestsException","Lambda.ServiceException"],"IntervalSeconds":1,"MaxAttempts":20,"BackoffRate":1}],
   "Catch":[{"ErrorEquals":["Runtime.ExitError"],"ResultPath":"$.crash","Next":"Crashed"}],"End":true},
 "Crashed":{"Type":"Pass","Result":"crashed","ResultPath":"$.outcome","End":true}}}`

// runWithFaults runs faultDef once with the faults of cfg, driving the retry intervals on a
// fake clock, and returns the result, the handler's runs and the injector.
func runWithFaults(t *testing.T, cfg fault.Config) (states.ExecutionDescription, int32, *fault.Injector) {
	t.Helper()
	in, err := fault.New(cfg, fault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clk := clocktest.NewFake(time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC))
	reg := lambda.New(lambda.Options{Faults: in})
	var runs atomic.Int32
	reg.Register("work", func(_ context.Context, _ map[string]any) (int32, error) { return runs.Add(1), nil })
	s := newService(t, Options{Clock: clk, Invoker: reg})
	arn, err := s.RegisterStateMachine("faulty", faultDef, "arn:aws:iam::000000000000:role/r")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := s.StartExecution(context.Background(), arn, "", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	// Retry intervals wait on the fake clock: move it on whenever something waits.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for clk.WaitForWaiter(ctx) == nil {
			clk.Advance(time.Second)
		}
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	d, err := s.WaitExecution(wctx, ex)
	if err != nil {
		t.Fatal(err)
	}
	return d, runs.Load(), in
}

// Step Functions' retries ride out the Lambda service's throttling and 5xx.
func TestStepFunctionsRetriesTransientLambdaFaults(t *testing.T) {
	d, runs, in := runWithFaults(t, fault.Config{Seed: 4, Rules: []fault.Rule{{Service: fault.ServiceLambda, Throttle: 0.4, ServerError: 0.3}}})
	counts, total := in.Counts()
	if d.Status != states.StatusSucceeded || runs != 2 || total == 0 {
		t.Fatalf("status %s (%s %s), handler runs %d, faults %v", d.Status, d.Error, d.Cause, runs, counts)
	}
	t.Logf("succeeded after %d injected faults: %v", total, counts)
}

// A crashed handler is not transient: the Catch takes it, with the runtime's error.
func TestStepFunctionsCatchesACrashedHandler(t *testing.T) {
	d, runs, _ := runWithFaults(t, fault.Config{Lambda: []fault.LambdaCrash{{Function: "work", Nth: 2, Point: fault.PointEnd}}})
	if d.Status != states.StatusSucceeded || !strings.Contains(string(d.Output), "crashed") || !strings.Contains(string(d.Output), lambda.CrashErrorType) || runs != 2 {
		t.Fatalf("status %s, output %s, runs %d", d.Status, d.Output, runs)
	}
}

// A process crash at a transition happens before the transition is saved: the execution
// stays at the state that just ran, and a restarted service runs that state again.
func TestProcessCrashAtATransition(t *testing.T) {
	dir := t.TempDir()
	crashed := make(chan string, 1)
	block := make(chan struct{}) // the "dead" process never moves on
	in, err := fault.New(fault.Config{Crash: []fault.ProcessCrash{{Machine: "faulty", State: "Step2"}}},
		fault.Options{Crash: func(m, s string) { crashed <- m + "→" + s; <-block }})
	if err != nil {
		t.Fatal(err)
	}
	reg := lambda.New(lambda.Options{})
	var runs atomic.Int32
	reg.Register("work", func(_ context.Context, _ map[string]any) (int32, error) { return runs.Add(1), nil })
	s1, err := New(Options{Dir: dir, Invoker: reg, Faults: in})
	if err != nil {
		t.Fatal(err)
	}
	arn, err := s1.RegisterStateMachine("faulty", faultDef, "arn:aws:iam::000000000000:role/r")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := s1.StartExecution(context.Background(), arn, "", []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-crashed:
		if at != "faulty→Step2" {
			t.Fatalf("crashed at %s", at)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no crash")
	}
	// What the dead process left on disk: the execution RUNNING, not yet moved to Step2.
	s2, err := New(Options{Dir: dir, Invoker: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d, err := s2.WaitExecution(ctx, ex)
	if err != nil {
		t.Fatal(err)
	}
	// Step1 ran before the crash and again after it (at-least-once), then Step2.
	if d.Status != states.StatusSucceeded || runs.Load() != 3 {
		t.Fatalf("after restart: %s, handler runs %d", d.Status, runs.Load())
	}
	close(block)
	s1.Close()
}
