package states

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// countingMachine loops n times (4 history events per round) and then succeeds:
// 1 ExecutionStarted + 4n + SucceedStateEntered/Exited + ExecutionSucceeded = 4n+4 events.
func countingMachine(t *testing.T, n int) *Machine {
	t.Helper()
	m, err := Parse([]byte(fmt.Sprintf(`{"StartAt":"Count","States":{
		"Count":{"Type":"Pass","Parameters":{"n.$":"States.MathAdd($.n, 1)"},"Next":"Loop"},
		"Loop":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericLessThan":%d,"Next":"Count"}],"Default":"Done"},
		"Done":{"Type":"Succeed"}}}`, n)))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func runCounting(t *testing.T, n int) (Result, []Event) {
	t.Helper()
	var events []Event
	opts := Options{Clock: &instantClock{t: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}, Execution: testInfo,
		OnEvent: func(ev Event) { events = append(events, ev) }}
	res := countingMachine(t, n).Run(context.Background(), []byte(`{"n":0}`), opts)
	return res, events
}

// TestHistoryQuotaSucceedsOnTheLastEvent: event 25,000 may be the execution's success.
func TestHistoryQuotaSucceedsOnTheLastEvent(t *testing.T) {
	res, events := runCounting(t, (MaxHistoryEvents-4)/4)
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s (%s: %s), want SUCCEEDED", res.Status, res.Error, res.Cause)
	}
	last := events[len(events)-1]
	if last.ID != MaxHistoryEvents || last.Type != "ExecutionSucceeded" {
		t.Fatalf("last event #%d %s, want #%d ExecutionSucceeded", last.ID, last.Type, MaxHistoryEvents)
	}
}

// TestHistoryQuotaFailsTheExecution: one round more and event 25,000 is the quota's
// ExecutionFailed (States.Runtime), after event 24,999, the last the machine produced.
func TestHistoryQuotaFailsTheExecution(t *testing.T) {
	res, events := runCounting(t, (MaxHistoryEvents-4)/4+1)
	if res.Status != StatusFailed || res.Error != ErrRuntime || res.Cause != HistoryLimitCause {
		t.Fatalf("result %+v, want FAILED %s %q", res, ErrRuntime, HistoryLimitCause)
	}
	if len(events) != MaxHistoryEvents {
		t.Fatalf("%d events, want exactly %d", len(events), MaxHistoryEvents)
	}
	last := events[len(events)-1]
	if last.ID != MaxHistoryEvents || last.PreviousEventID != MaxHistoryEvents-1 || last.Type != "ExecutionFailed" ||
		last.Details["error"] != ErrRuntime || last.Details["cause"] != HistoryLimitCause {
		t.Fatalf("last event %+v, want #%d ExecutionFailed %s", last, MaxHistoryEvents, ErrRuntime)
	}
	if prev := events[len(events)-2]; prev.Type == "ExecutionFailed" {
		t.Fatalf("event #%d is already %s", prev.ID, prev.Type)
	}
}

// TestHistoryQuotaStopsAnEndlessLoop: a loop that never ends is stopped by the quota.
func TestHistoryQuotaStopsAnEndlessLoop(t *testing.T) {
	m, err := Parse([]byte(`{"StartAt":"Spin","States":{
		"Spin":{"Type":"Pass","Next":"Loop"},
		"Loop":{"Type":"Choice","Choices":[{"Variable":"$.spin","BooleanEquals":true,"Next":"Spin"}],"Default":"Done"},
		"Done":{"Type":"Succeed"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	res := m.Run(context.Background(), []byte(`{"spin":true}`), Options{Execution: testInfo})
	if res.Status != StatusFailed || res.Error != ErrRuntime || res.Cause != HistoryLimitCause {
		t.Fatalf("result %+v, want FAILED %s %q", res, ErrRuntime, HistoryLimitCause)
	}
}
