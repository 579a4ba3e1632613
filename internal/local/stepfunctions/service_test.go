package stepfunctions

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/local/invoke"
)

func newClient(t *testing.T, s *Service) *sfn.Client {
	t.Helper()
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return sfn.New(sfn.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	})
}

func newService(t *testing.T, opts Options) *Service {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func waitStatus(t *testing.T, c *sfn.Client, arn string, want types.ExecutionStatus) *sfn.DescribeExecutionOutput {
	t.Helper()
	var out *sfn.DescribeExecutionOutput
	waitFor(t, func() bool {
		var err error
		out, err = c.DescribeExecution(context.Background(), &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			t.Fatal(err)
		}
		return out.Status == want
	})
	return out
}

const waitDef = `{"StartAt":"A","States":{
  "A":{"Type":"Pass","Result":"a","ResultPath":"$.a","Next":"W"},
  "W":{"Type":"Wait","Seconds":60,"Next":"B"},
  "B":{"Type":"Pass","Parameters":{"a.$":"$.a","in.$":"$$.Execution.Input.n"},"End":true}}}`

func TestStateMachinesAPI(t *testing.T) {
	ctx := context.Background()
	s := newService(t, Options{})
	c := newClient(t, s)
	out, err := c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("sm1"), Definition: aws.String(waitDef), RoleArn: aws.String("arn:aws:iam::000000000000:role/r")})
	if err != nil {
		t.Fatal(err)
	}
	if *out.StateMachineArn != "arn:aws:states:us-east-1:000000000000:stateMachine:sm1" {
		t.Fatalf("arn %s", *out.StateMachineArn)
	}
	d, err := c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: out.StateMachineArn})
	if err != nil || *d.Definition != waitDef || *d.Name != "sm1" || d.Status != types.StateMachineStatusActive {
		t.Fatalf("describe: %v %+v", err, d)
	}
	_, err = c.CreateStateMachine(ctx, &sfn.CreateStateMachineInput{Name: aws.String("bad"), Definition: aws.String(`{"StartAt":"X","States":{}}`), RoleArn: aws.String("r")})
	if apiCode(err) != "InvalidDefinition" || !strings.Contains(err.Error(), "StartAt") {
		t.Fatalf("want InvalidDefinition listing the problem, got %v", err)
	}
	_, err = c.DescribeStateMachine(ctx, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:000000000000:stateMachine:nope")})
	var dne *types.StateMachineDoesNotExist
	if !errors.As(err, &dne) {
		t.Fatalf("want StateMachineDoesNotExist, got %v", err)
	}
	if _, err := s.RegisterStateMachine("sm2", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`, "r"); err != nil {
		t.Fatal(err)
	}
	l, err := c.ListStateMachines(ctx, &sfn.ListStateMachinesInput{MaxResults: 1})
	if err != nil || len(l.StateMachines) != 1 || l.NextToken == nil {
		t.Fatalf("list page 1: %v %+v", err, l)
	}
	l2, err := c.ListStateMachines(ctx, &sfn.ListStateMachinesInput{MaxResults: 1, NextToken: l.NextToken})
	if err != nil || len(l2.StateMachines) != 1 || *l2.StateMachines[0].Name != "sm2" || l2.NextToken != nil {
		t.Fatalf("list page 2: %v %+v", err, l2)
	}
}

func TestExecutionsAPI(t *testing.T) {
	ctx := context.Background()
	fc := clocktest.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	s := newService(t, Options{Clock: fc})
	c := newClient(t, s)
	smArn, err := s.RegisterStateMachine("waiter", waitDef, "arn:aws:iam::000000000000:role/r")
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn), Name: aws.String("run-1"), Input: aws.String(`{"n":7}`)})
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn), Name: aws.String("run-1"), Input: aws.String(`{ "n": 7 }`)})
	if err != nil || *again.ExecutionArn != *st.ExecutionArn {
		t.Fatalf("same name and input must return the same execution: %v", err)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn), Name: aws.String("run-1"), Input: aws.String(`{"n":8}`)})
	var exists *types.ExecutionAlreadyExists
	if !errors.As(err, &exists) {
		t.Fatalf("want ExecutionAlreadyExists, got %v", err)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn), Input: aws.String(`{nope`)})
	var bad *types.InvalidExecutionInput
	if !errors.As(err, &bad) {
		t.Fatalf("want InvalidExecutionInput, got %v", err)
	}
	_, err = c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn + "x")})
	if apiCode(err) != "StateMachineDoesNotExist" {
		t.Fatalf("want StateMachineDoesNotExist, got %v", err)
	}
	_, err = c.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(*st.ExecutionArn + "x")})
	var edne *types.ExecutionDoesNotExist
	if !errors.As(err, &edne) {
		t.Fatalf("want ExecutionDoesNotExist, got %v", err)
	}
	// second execution, to be stopped
	st2, err := c.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(smArn), Name: aws.String("run-2")})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return fc.Waiters() == 2 })
	running, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(smArn), StatusFilter: types.ExecutionStatusRunning})
	if err != nil || len(running.Executions) != 2 {
		t.Fatalf("running: %v %+v", err, running)
	}
	if _, err := c.StopExecution(ctx, &sfn.StopExecutionInput{ExecutionArn: st2.ExecutionArn, Error: aws.String("Stopped"), Cause: aws.String("by test")}); err != nil {
		t.Fatal(err)
	}
	d2 := waitStatus(t, c, *st2.ExecutionArn, types.ExecutionStatusAborted)
	if aws.ToString(d2.Error) != "Stopped" {
		t.Fatalf("aborted execution error %q", aws.ToString(d2.Error))
	}
	fc.Advance(60 * time.Second)
	d := waitStatus(t, c, *st.ExecutionArn, types.ExecutionStatusSucceeded)
	if *d.Output != `{"a":"a","in":7}` || *d.Input != `{"n":7}` || d.StopDate == nil {
		t.Fatalf("describe: %+v", d)
	}
	// paged history
	var typesSeen []string
	var token *string
	for {
		h, err := c.GetExecutionHistory(ctx, &sfn.GetExecutionHistoryInput{ExecutionArn: st.ExecutionArn, MaxResults: 3, NextToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range h.Events {
			typesSeen = append(typesSeen, string(e.Type))
			if e.Type == types.HistoryEventTypePassStateEntered && e.StateEnteredEventDetails == nil {
				t.Fatal("PassStateEntered without stateEnteredEventDetails")
			}
			if e.Type == types.HistoryEventTypeExecutionSucceeded && aws.ToString(e.ExecutionSucceededEventDetails.Output) != `{"a":"a","in":7}` {
				t.Fatalf("ExecutionSucceeded details %+v", e.ExecutionSucceededEventDetails)
			}
		}
		if token = h.NextToken; token == nil {
			break
		}
	}
	want := "ExecutionStarted PassStateEntered PassStateExited WaitStateEntered WaitStateExited PassStateEntered PassStateExited ExecutionSucceeded"
	if got := strings.Join(typesSeen, " "); got != want {
		t.Fatalf("history\n got %s\nwant %s", got, want)
	}
	done, err := c.ListExecutions(ctx, &sfn.ListExecutionsInput{StateMachineArn: aws.String(smArn), StatusFilter: types.ExecutionStatusSucceeded})
	if err != nil || len(done.Executions) != 1 || *done.Executions[0].Name != "run-1" {
		t.Fatalf("succeeded: %v %+v", err, done)
	}
}

func TestResumeAfterRestart(t *testing.T) {
	dir := t.TempDir()
	var calls atomic.Int32
	inv := invoke.InvokerFunc(func(ctx context.Context, fn string, payload []byte) ([]byte, error) {
		calls.Add(1)
		return []byte(`{"sealed":true}`), nil
	})
	def := `{"StartAt":"Seal","States":{
	  "Seal":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"seal","Payload.$":"$"},"ResultSelector":{"r.$":"$.Payload"},"ResultPath":"$.seal","Next":"Hold"},
	  "Hold":{"Type":"Wait","Seconds":3600,"Next":"Done"},
	  "Done":{"Type":"Pass","End":true}}}`
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	fc := clocktest.NewFake(t0)
	s1, err := New(Options{Dir: dir, Clock: fc, Invoker: inv})
	if err != nil {
		t.Fatal(err)
	}
	smArn, err := s1.RegisterStateMachine("holder", def, "r")
	if err != nil {
		t.Fatal(err)
	}
	arn, err := s1.StartExecution(context.Background(), smArn, "e1", []byte(`{"k":1}`))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	s1.Close() // "restart"
	if d, _ := s1.DescribeExecution(arn); d.Status != "RUNNING" {
		t.Fatalf("after shutdown the execution must stay RUNNING, got %s", d.Status)
	}
	fc2 := clocktest.NewFake(t0.Add(time.Minute))
	s2 := newService(t, Options{Dir: dir, Clock: fc2, Invoker: inv})
	c := newClient(t, s2)
	waitFor(t, func() bool { return fc2.Waiters() == 1 })
	fc2.Advance(time.Hour)
	d := waitStatus(t, c, arn, types.ExecutionStatusSucceeded)
	if *d.Output != `{"k":1,"seal":{"r":{"sealed":true}}}` {
		t.Fatalf("output %s", *d.Output)
	}
	if calls.Load() != 1 {
		t.Fatalf("the completed Task ran %d times; resume must start after it", calls.Load())
	}
	h, err := c.GetExecutionHistory(context.Background(), &sfn.GetExecutionHistoryInput{ExecutionArn: aws.String(arn), MaxResults: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range h.Events {
		if e.Id != int64(i+1) {
			t.Fatalf("event ids not contiguous after resume: %d at %d", e.Id, i)
		}
	}
	if h.Events[0].Type != types.HistoryEventTypeExecutionStarted || h.Events[len(h.Events)-1].Type != types.HistoryEventTypeExecutionSucceeded {
		t.Fatalf("history %v", h.Events)
	}
	// restarting again keeps finished executions
	s2.Close()
	s3 := newService(t, Options{Dir: dir})
	if d, err := s3.DescribeExecution(arn); err != nil || d.Status != "SUCCEEDED" {
		t.Fatalf("reloaded: %v %+v", err, d)
	}
}

func TestNestedExecutionAndLambda(t *testing.T) {
	inv := invoke.InvokerFunc(func(ctx context.Context, fn string, payload []byte) ([]byte, error) {
		if fn == "boom" {
			return nil, &invoke.FunctionError{Type: "KeyDisabled", Message: "key is disabled"}
		}
		return payload, nil
	})
	s := newService(t, Options{Invoker: inv, MaxConcurrentExecutions: 1})
	child, err := s.RegisterStateMachine("child", `{"StartAt":"L","States":{"L":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:000000000000:function:echo","End":true}}}`, "r")
	if err != nil {
		t.Fatal(err)
	}
	parentDef := `{"StartAt":"Run","States":{
	  "Run":{"Type":"Task","Resource":"arn:aws:states:::states:startExecution.sync:2","Parameters":{"StateMachineArn":"` + child + `","Input":{"v.$":"$.v"}},"OutputPath":"$.Output","Next":"Boom"},
	  "Boom":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"boom"},"Catch":[{"ErrorEquals":["KeyDisabled"],"ResultPath":"$.err","Next":"Done"}],"End":true},
	  "Done":{"Type":"Pass","End":true}}}`
	parent, err := s.RegisterStateMachine("parent", parentDef, "r")
	if err != nil {
		t.Fatal(err)
	}
	arn, err := s.StartExecution(context.Background(), parent, "", []byte(`{"v":3}`))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d, err := s.WaitExecution(ctx, arn)
	if err != nil || d.Status != "SUCCEEDED" {
		t.Fatalf("%v %+v", err, d)
	}
	var out map[string]any
	if err := json.Unmarshal(d.Output, &out); err != nil {
		t.Fatal(err)
	}
	if out["v"] != 3.0 {
		t.Fatalf("output %s", d.Output)
	}
	e, _ := out["err"].(map[string]any)
	if e["Error"] != "KeyDisabled" || !strings.Contains(e["Cause"].(string), `"errorMessage":"key is disabled"`) {
		t.Fatalf("caught error %v", out["err"])
	}
}

func TestSendTaskSuccessAPI(t *testing.T) {
	ctx := context.Background()
	tokens := make(chan string, 1)
	inv := invoke.InvokerFunc(func(ctx context.Context, fn string, payload []byte) ([]byte, error) {
		var p struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(payload, &p)
		tokens <- p.Token
		return []byte(`null`), nil
	})
	s := newService(t, Options{Invoker: inv})
	c := newClient(t, s)
	smArn, err := s.RegisterStateMachine("approve", `{"StartAt":"Ask","States":{"Ask":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken",
	  "Parameters":{"FunctionName":"ask","Payload":{"token.$":"$$.Task.Token"}},"End":true}}}`, "r")
	if err != nil {
		t.Fatal(err)
	}
	arn, err := s.StartExecution(ctx, smArn, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := <-tokens
	if _, err := c.SendTaskHeartbeat(ctx, &sfn.SendTaskHeartbeatInput{TaskToken: aws.String(tok)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(tok), Output: aws.String(`{nope`)})
	var io *types.InvalidOutput
	if !errors.As(err, &io) {
		t.Fatalf("want InvalidOutput, got %v", err)
	}
	if _, err := c.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(tok), Output: aws.String(`{"ok":1}`)}); err != nil {
		t.Fatal(err)
	}
	d := waitStatus(t, c, arn, types.ExecutionStatusSucceeded)
	if *d.Output != `{"ok":1}` {
		t.Fatalf("output %s", *d.Output)
	}
	_, err = c.SendTaskFailure(ctx, &sfn.SendTaskFailureInput{TaskToken: aws.String(tok)})
	var tdne *types.TaskDoesNotExist
	if !errors.As(err, &tdne) {
		t.Fatalf("want TaskDoesNotExist, got %v", err)
	}
}

func TestMaxConcurrentExecutions(t *testing.T) {
	fc := clocktest.NewFake(time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC))
	s := newService(t, Options{Clock: fc, MaxConcurrentExecutions: 1})
	smArn, err := s.RegisterStateMachine("w", `{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":10,"End":true}}}`, "r")
	if err != nil {
		t.Fatal(err)
	}
	a1, _ := s.StartExecution(context.Background(), smArn, "one", nil)
	a2, _ := s.StartExecution(context.Background(), smArn, "two", nil)
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	time.Sleep(20 * time.Millisecond)
	if fc.Waiters() != 1 {
		t.Fatalf("%d executions waiting at once, want 1", fc.Waiters())
	}
	fc.Advance(10 * time.Second)
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	fc.Advance(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, a := range []string{a1, a2} {
		if d, err := s.WaitExecution(ctx, a); err != nil || d.Status != "SUCCEEDED" {
			t.Fatalf("%s: %v %+v", a, err, d)
		}
	}
}
