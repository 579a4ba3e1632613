package states

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
)

func TestWaitForTaskToken(t *testing.T) {
	tokens := NewTaskTokens()
	got := make(chan string, 1)
	runner := TaskRunnerFunc(func(ctx context.Context, res string, params json.RawMessage, tc TaskContext) (json.RawMessage, error) {
		var p struct {
			Token string `json:"token"`
		}
		_ = json.Unmarshal(params, &p)
		if p.Token != tc.TaskToken || p.Token == "" {
			return nil, errors.New("the token is not in the parameters")
		}
		got <- p.Token
		return json.RawMessage(`{"queued":true}`), nil
	})
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke.waitForTaskToken","HeartbeatSeconds":30,
	  "Parameters":{"FunctionName":"f","token.$":"$$.Task.Token"},"ResultPath":"$.answer","End":true}}}`
	fc := clocktest.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	done := make(chan Result, 1)
	var events []string
	go func() {
		done <- run(t, def, `{"k":1}`, Options{Clock: fc, Tasks: runner, TaskTokens: tokens, OnEvent: func(e Event) { events = append(events, e.Type) }})
	}()
	tok := <-got
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	if err := tokens.SendHeartbeat(tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return fc.Waiters() == 2 })
	fc.Advance(20 * time.Second) // the first heartbeat window has been replaced
	if err := tokens.SendSuccess(tok, json.RawMessage(`{"approved":true}`)); err != nil {
		t.Fatal(err)
	}
	wantOutput(t, <-done, `{"k":1,"answer":{"approved":true}}`)
	if err := tokens.SendSuccess(tok, json.RawMessage(`{}`)); !errors.Is(err, ErrTaskTokenUnknown) {
		t.Fatalf("second answer: %v", err)
	}
	if events[4] != "TaskSubmitted" || events[5] != "TaskSucceeded" {
		t.Fatalf("events %v", events)
	}

	// failure and heartbeat timeout
	go func() { done <- run(t, def, `{}`, Options{Clock: fc, Tasks: runner, TaskTokens: tokens}) }()
	tok = <-got
	if err := tokens.SendFailure(tok, "Rejected", "no"); err != nil {
		t.Fatal(err)
	}
	wantFailure(t, <-done, "Rejected", "no")
	fc2 := clocktest.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	go func() { done <- run(t, def, `{}`, Options{Clock: fc2, Tasks: runner, TaskTokens: tokens}) }()
	<-got
	waitFor(t, func() bool { return fc2.Waiters() == 1 })
	fc2.Advance(30 * time.Second)
	if res := <-done; res.Error != ErrHeartbeatTimeout {
		t.Fatalf("got %+v", res)
	}
}
