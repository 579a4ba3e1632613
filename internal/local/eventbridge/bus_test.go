package eventbridge

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/local/invoke"
)

// recorder is a Lambda invoker that records payloads and fails on demand.
type recorder struct {
	mu    sync.Mutex
	calls map[string][][]byte
	fail  map[string]int // function → failures left (-1: always)
}

func newRecorder() *recorder {
	return &recorder{calls: map[string][][]byte{}, fail: map[string]int{}}
}

func (r *recorder) Invoke(_ context.Context, fn string, payload []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[fn] = append(r.calls[fn], append([]byte(nil), payload...))
	if n := r.fail[fn]; n != 0 {
		if n > 0 {
			r.fail[fn] = n - 1
		}
		return nil, &invoke.FunctionError{Type: "Boom", Message: "target failed"}
	}
	return []byte(`null`), nil
}

func (r *recorder) got(fn string) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.calls[fn]...)
}

func lambdaArn(fn string) string { return "arn:aws:lambda:us-east-1:000000000000:function:" + fn }

func drain(t *testing.T, b *Bus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

func newBus(t *testing.T, opts Options) *Bus {
	t.Helper()
	b, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

const kmsRevokePattern = `{"source":["aws.kms"],"detail-type":["AWS API Call via CloudTrail"],"detail":{"eventName":["DisableKey","ScheduleKeyDeletion"],"errorCode":[{"exists":false}]}}`

func TestPublishEnvelopeAndTargets(t *testing.T) {
	rec := newRecorder()
	var mu sync.Mutex
	var started []string
	t0 := time.Date(2026, 2, 3, 4, 5, 6, 0, time.UTC)
	b := newBus(t, Options{Clock: clocktest.NewFake(t0), Invoker: rec, Region: "eu-west-1", Account: "111122223333",
		StartExecution: func(_ context.Context, arn string, input []byte) error {
			mu.Lock()
			defer mu.Unlock()
			started = append(started, arn+" "+string(input))
			return nil
		}})
	ctx := context.Background()
	arn, err := b.PutRule(ctx, RuleInput{Name: "revoke", EventPattern: kmsRevokePattern})
	if err != nil || arn != "arn:aws:events:eu-west-1:111122223333:rule/revoke" {
		t.Fatalf("PutRule: %q %v", arn, err)
	}
	sm := "arn:aws:states:eu-west-1:111122223333:stateMachine:revoke"
	if err := b.PutTargets(ctx, "", "revoke", []Target{
		{ID: "fn", Arn: lambdaArn("revoker")},
		{ID: "sm", Arn: sm, InputPath: "$.detail"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, Event{ID: "ev-1", Source: "aws.kms", DetailType: "AWS API Call via CloudTrail",
		Detail: json.RawMessage(`{"eventName":"DisableKey"}`)}); err != nil {
		t.Fatal(err)
	}
	// Not matching: has errorCode.
	if err := b.Publish(ctx, Event{Source: "aws.kms", DetailType: "AWS API Call via CloudTrail",
		Detail: json.RawMessage(`{"eventName":"DisableKey","errorCode":"AccessDenied"}`)}); err != nil {
		t.Fatal(err)
	}
	drain(t, b)
	calls := rec.got("revoker")
	if len(calls) != 1 {
		t.Fatalf("lambda calls: %d", len(calls))
	}
	want := `{"version":"0","id":"ev-1","detail-type":"AWS API Call via CloudTrail","source":"aws.kms","account":"111122223333","time":"2026-02-03T04:05:06Z","region":"eu-west-1","resources":[],"detail":{"eventName":"DisableKey"}}`
	if string(calls[0]) != want {
		t.Fatalf("envelope\n got %s\nwant %s", calls[0], want)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(started) != 1 || started[0] != sm+` {"eventName":"DisableKey"}` {
		t.Fatalf("state machine: %q", started)
	}
}

func TestPublishValidation(t *testing.T) {
	b := newBus(t, Options{})
	ctx := context.Background()
	for _, ev := range []Event{
		{DetailType: "x"},
		{Source: "x"},
		{Source: "x", DetailType: "x", Detail: json.RawMessage(`[1]`)},
		{Source: "x", DetailType: "x", Detail: json.RawMessage(`{`)},
	} {
		if err := b.Publish(ctx, ev); !errors.Is(err, ErrValidation) {
			t.Errorf("%+v: %v", ev, err)
		}
	}
	if err := b.Publish(ctx, Event{Source: "x", DetailType: "x", EventBusName: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown bus: %v", err)
	}
}

func TestRetryThenDeadLetter(t *testing.T) {
	rec := newRecorder()
	rec.fail["flaky"] = 2
	rec.fail["broken"] = -1
	b := newBus(t, Options{Invoker: rec, MaxAttempts: 4, RetryBase: time.Millisecond, RetryMax: 4 * time.Millisecond})
	ctx := context.Background()
	if _, err := b.PutRule(ctx, RuleInput{Name: "r", EventPattern: `{"source":["app"]}`}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTargets(ctx, "", "r", []Target{{ID: "a", Arn: lambdaArn("flaky")}, {ID: "b", Arn: lambdaArn("broken")},
		{ID: "c", Arn: "arn:aws:sqs:us-east-1:000000000000:queue"}}); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, Event{ID: "e", Source: "app", DetailType: "t"}); err != nil {
		t.Fatal(err)
	}
	drain(t, b)
	if n := len(rec.got("flaky")); n != 3 {
		t.Errorf("flaky attempts = %d, want 3", n)
	}
	if n := len(rec.got("broken")); n != 4 {
		t.Errorf("broken attempts = %d, want 4", n)
	}
	dead := b.DeadLetters()
	if len(dead) != 2 {
		t.Fatalf("dead letters: %+v", dead)
	}
	byArn := map[string]DeadLetter{}
	for _, d := range dead {
		byArn[d.TargetArn] = d
	}
	if d := byArn[lambdaArn("broken")]; d.Attempts != 4 || d.EventID != "e" || !strings.Contains(d.Err, "target failed") {
		t.Errorf("broken: %+v", d)
	}
	if d := byArn["arn:aws:sqs:us-east-1:000000000000:queue"]; d.Attempts != 1 {
		t.Errorf("unsupported target retried: %+v", d)
	}
}

func TestDeliveryDelayAndLoss(t *testing.T) {
	rec := newRecorder()
	fake := clocktest.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := newBus(t, Options{Clock: fake, Invoker: rec})
	ctx := context.Background()
	if _, err := b.PutRule(ctx, RuleInput{Name: "all", EventPattern: `{"source":[{"prefix":""}]}`}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTargets(ctx, "", "all", []Target{{ID: "fn", Arn: lambdaArn("fn")}}); err != nil {
		t.Fatal(err)
	}
	b.SetDeliveryDelay("aws.kms", 5*time.Minute)
	if err := b.Publish(ctx, Event{Source: "aws.kms", DetailType: "t"}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := b.Drain(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("drain before the delay passed: %v", err)
	}
	if n := len(rec.got("fn")); n != 0 {
		t.Fatalf("delivered before its delay: %d", n)
	}
	for fake.Waiters() == 0 {
		time.Sleep(time.Millisecond) // wait for the delivery goroutine to start waiting on the clock
	}
	fake.Advance(5 * time.Minute)
	drain(t, b)
	if n := len(rec.got("fn")); n != 1 {
		t.Fatalf("after the delay: %d deliveries", n)
	}

	b.SetDropProbability("lossy", 1)
	b.SetDropHook(func(ev Event) bool { return ev.DetailType == "drop-me" })
	for _, ev := range []Event{{Source: "lossy", DetailType: "t"}, {Source: "app", DetailType: "drop-me"}, {Source: "app", DetailType: "keep"}} {
		if err := b.Publish(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, b)
	if b.Dropped() != 2 || len(rec.got("fn")) != 2 {
		t.Fatalf("dropped %d, delivered %d", b.Dropped(), len(rec.got("fn")))
	}
}

func TestSchedulesFireOnTheClock(t *testing.T) {
	rec := newRecorder()
	t0 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	fake := clocktest.NewFake(t0)
	b := newBus(t, Options{Clock: fake, Invoker: rec})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := b.PutSchedule("every5", "rate(5 minutes)", "", lambdaArn("tick"), []byte(`{"k":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.PutSchedule("berlin9", "cron(0 9 * * ? *)", "Europe/Berlin", lambdaArn("morning"), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.PutSchedule("once", "at(2026-03-01T00:30:00)", "", lambdaArn("once"), nil); err != nil {
		t.Fatal(err)
	}
	ruleArn, err := b.PutRule(ctx, RuleInput{Name: "hourly", ScheduleExpression: "rate(1 hour)"})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutTargets(ctx, "", "hourly", []Target{{ID: "h", Arn: lambdaArn("hourly")}}); err != nil {
		t.Fatal(err)
	}
	b.Start(ctx)

	fake.Advance(5 * time.Minute)
	drain(t, b)
	if got := rec.got("tick"); len(got) != 1 || string(got[0]) != `{"k":1}` {
		t.Fatalf("after 5m: %q", got)
	}
	for i := 0; i < 11; i++ { // to 01:00 UTC, one slot at a time
		fake.Advance(5 * time.Minute)
		drain(t, b)
	}
	if n := len(rec.got("tick")); n != 12 {
		t.Fatalf("after 1h: %d ticks, want 12", n)
	}
	if n := len(rec.got("once")); n != 1 {
		t.Fatalf("one-time schedule fired %d times", n)
	}
	hourly := rec.got("hourly")
	if len(hourly) != 1 {
		t.Fatalf("scheduled rule fired %d times", len(hourly))
	}
	var env Envelope
	if err := json.Unmarshal(hourly[0], &env); err != nil {
		t.Fatal(err)
	}
	if env.Source != "aws.events" || env.DetailType != "Scheduled Event" || len(env.Resources) != 1 ||
		env.Resources[0] != ruleArn || env.Time != "2026-03-01T01:00:00Z" || string(env.Detail) != "{}" {
		t.Fatalf("scheduled event: %+v", env)
	}
	if n := len(rec.got("morning")); n != 0 {
		t.Fatalf("09:00 Berlin fired early")
	}
	ticks := len(rec.got("tick"))
	fake.Set(time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)) // 09:00 CET
	drain(t, b)
	if got := rec.got("morning"); len(got) != 1 || string(got[0]) != "{}" {
		t.Fatalf("09:00 Berlin: %q", got)
	}
	// A jump of seven hours missed 84 five-minute slots: they coalesce into one firing
	// (no backfill), so a clock jump cannot start a storm of runs.
	if n := len(rec.got("tick")) - ticks; n != 1 {
		t.Fatalf("after a 7h jump the 5-minute schedule fired %d times, want 1", n)
	}
	if n := len(rec.got("once")); n != 1 {
		t.Fatalf("one-time schedule fired again")
	}
	for _, s := range b.ListSchedules() {
		if s.Name == "once" && !s.Next.IsZero() {
			t.Fatalf("one-time schedule still has a next firing: %v", s.Next)
		}
	}
	if err := b.PutSchedule("bad", "cron(0 9 * * * *)", "", lambdaArn("x"), nil); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad expression: %v", err)
	}
	if err := b.PutSchedule("badtz", "rate(1 day)", "Mars/Base", lambdaArn("x"), nil); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad zone: %v", err)
	}
}

func TestStatePersists(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.json")
	ctx := context.Background()
	b1, err := Open(Options{StateFile: file})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b1.CreateEventBus("audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.PutRule(ctx, RuleInput{Name: "r", EventBusName: "audit", EventPattern: `{"source":["keyline"]}`}); err != nil {
		t.Fatal(err)
	}
	if err := b1.PutTargets(ctx, "audit", "r", []Target{{ID: "t", Arn: lambdaArn("audit")}}); err != nil {
		t.Fatal(err)
	}
	if err := b1.PutSchedule("nightly", "cron(0 2 * * ? *)", "UTC", lambdaArn("backup"), []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	b1.Close()

	rec := newRecorder()
	b2 := newBus(t, Options{StateFile: file, Invoker: rec})
	r, err := b2.DescribeRule("audit", "r")
	if err != nil || len(r.Targets) != 1 || r.EventPattern != `{"source":["keyline"]}` {
		t.Fatalf("rule after restart: %+v %v", r, err)
	}
	if s := b2.ListSchedules(); len(s) != 1 || s[0].Name != "nightly" || s[0].Input != `{"a":1}` {
		t.Fatalf("schedules after restart: %+v", s)
	}
	if err := b2.Publish(ctx, Event{Source: "keyline", DetailType: "x", EventBusName: "audit"}); err != nil {
		t.Fatal(err)
	}
	drain(t, b2)
	if n := len(rec.got("audit")); n != 1 {
		t.Fatalf("delivered %d after restart", n)
	}
}

func TestRuleManagement(t *testing.T) {
	b := newBus(t, Options{})
	ctx := context.Background()
	if _, err := b.PutRule(ctx, RuleInput{Name: "bad name!", EventPattern: `{"a":["b"]}`}); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad name: %v", err)
	}
	if _, err := b.PutRule(ctx, RuleInput{Name: "r"}); !errors.Is(err, ErrValidation) {
		t.Fatalf("no pattern: %v", err)
	}
	if _, err := b.PutRule(ctx, RuleInput{Name: "r", ScheduleExpression: "rate(1 minutes)"}); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad rate: %v", err)
	}
	if _, err := b.PutRule(ctx, RuleInput{Name: "r", EventPattern: `{"a":"b"}`}); err == nil || !strings.Contains(err.Error(), "Event pattern is not valid") {
		t.Fatalf("bad pattern: %v", err)
	}
	if err := b.PutTargets(ctx, "", "missing", []Target{{ID: "t", Arn: lambdaArn("x")}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("targets of a missing rule: %v", err)
	}
	if _, err := b.PutRule(ctx, RuleInput{Name: "r", EventPattern: `{"a":["b"]}`, State: "DISABLED"}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTargets(ctx, "", "r", []Target{{ID: "t", Arn: lambdaArn("x"), Input: "{bad"}}); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad input: %v", err)
	}
	if err := b.PutTargets(ctx, "", "r", []Target{{ID: "t", Arn: lambdaArn("x")}}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRule(ctx, "", "r", false); !errors.Is(err, ErrValidation) {
		t.Fatalf("delete with targets: %v", err)
	}
	if err := b.RemoveTargets(ctx, "", "r", []string{"t"}); err != nil {
		t.Fatal(err)
	}
	if err := b.DeleteRule(ctx, "", "r", false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DescribeRule("", "r"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted rule: %v", err)
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := newBus(t, Options{RetryBase: time.Second, RetryMax: 5 * time.Second})
	want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := b.backoff(i + 1); got != w {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w)
		}
	}
}

func TestOpenRefusesACorruptStateFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "events.json")
	if err := os.WriteFile(file, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open(Options{StateFile: file})
	if err == nil {
		t.Fatal("corrupt state file accepted")
	}
	b.Close()
}

func TestPublishEnvelopeRoundTrip(t *testing.T) {
	rec := newRecorder()
	b := newBus(t, Options{Invoker: rec})
	ctx := context.Background()
	if _, err := b.PutRule(ctx, RuleInput{Name: "revoke", EventPattern: kmsRevokePattern}); err != nil {
		t.Fatal(err)
	}
	if err := b.PutTargets(ctx, "", "revoke", []Target{{ID: "fn", Arn: lambdaArn("revoker")}}); err != nil {
		t.Fatal(err)
	}
	in := `{"version":"0","id":"abc","detail-type":"AWS API Call via CloudTrail","source":"aws.kms","account":"123456789012","time":"2026-04-05T06:07:08Z","region":"us-west-2","resources":[],"detail":{"eventName":"ScheduleKeyDeletion","requestParameters":{"keyId":"k"}}}`
	if err := b.PublishEnvelope(ctx, "", []byte(in)); err != nil {
		t.Fatal(err)
	}
	drain(t, b)
	if got := rec.got("revoker"); len(got) != 1 || string(got[0]) != in {
		t.Fatalf("delivered %q", got)
	}
	if err := b.PublishEnvelope(ctx, "", []byte(`{"source":"x","detail-type":"y","time":"yesterday"}`)); !errors.Is(err, ErrValidation) {
		t.Fatalf("bad time: %v", err)
	}
}
