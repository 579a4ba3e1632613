package fault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
)

func mustNew(t *testing.T, c Config, opts Options) *Injector {
	t.Helper()
	in, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// schedule is the sequence of decisions for n calls at a few points.
func schedule(in *Injector, n int) []string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, in.Request("kms", "Decrypt").Kind, in.Request("s3", "PutObject").Kind,
			in.CloudTrailEvent("DisableKey").Kind, in.Invocation("backup-upload").Point)
	}
	return out
}

func mixed(seed uint64) Config {
	return Config{
		Seed:       seed,
		Rules:      []Rule{{Service: Any, Throttle: 0.1, ServerError: 0.1, Timeout: 0.05}},
		CloudTrail: CloudTrail{Drop: 0.1, Duplicate: 0.1, Delay: 0.1, Reorder: 0.1},
		Lambda:     []LambdaCrash{{Function: Any, Rate: 0.1}},
	}
}

// A seed replays the same schedule; another seed gives another one.
func TestSeedReplaysTheSchedule(t *testing.T) {
	a := schedule(mustNew(t, mixed(7), Options{}), 200)
	b := schedule(mustNew(t, mixed(7), Options{}), 200)
	c := schedule(mustNew(t, mixed(8), Options{}), 200)
	if strings.Join(a, ",") != strings.Join(b, ",") {
		t.Fatal("the same seed gave two schedules")
	}
	if strings.Join(a, ",") == strings.Join(c, ",") {
		t.Fatal("two seeds gave the same schedule")
	}
}

// Decisions at one point do not depend on how many calls other points saw (concurrency
// between services does not change a service's schedule).
func TestPointsAreIndependent(t *testing.T) {
	in1 := mustNew(t, mixed(3), Options{})
	in2 := mustNew(t, mixed(3), Options{})
	for i := 0; i < 50; i++ {
		in2.Request("s3", "GetObject")
	}
	for i := 0; i < 100; i++ {
		if a, b := in1.Request("kms", "Encrypt").Kind, in2.Request("kms", "Encrypt").Kind; a != b {
			t.Fatalf("call %d: %q vs %q", i, a, b)
		}
	}
}

// Every kind happens at about its rate, and is counted and logged.
func TestRatesCountsAndLog(t *testing.T) {
	var log bytes.Buffer
	in := mustNew(t, mixed(1), Options{Log: &log})
	const n = 4000
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		seen[in.Request("dynamodb", "PutItem").Kind]++
		seen[in.CloudTrailEvent("DisableKey").Kind]++
		seen[in.Invocation("f").Point]++
	}
	want := map[string]float64{KindThrottle: 0.1, KindServerError: 0.1, KindTimeout: 0.05,
		KindDrop: 0.1, KindDuplicate: 0.1, KindDelay: 0.1, KindReorder: 0.1, PointRandom: 0.1}
	for k, r := range want {
		got := float64(seen[k]) / n
		if got < r*0.7 || got > r*1.3 {
			t.Errorf("%s: rate %.3f, want about %.3f", k, got, r)
		}
	}
	counts, total := in.Counts()
	lines := strings.Count(log.String(), "\n")
	if total == 0 || lines != total || counts[KindThrottle] != seen[KindThrottle] {
		t.Fatalf("total %d, log lines %d, throttles counted %d seen %d", total, lines, counts[KindThrottle], seen[KindThrottle])
	}
	var rec Record
	if err := json.Unmarshal([]byte(strings.SplitN(log.String(), "\n", 2)[0]), &rec); err != nil || rec.Kind == "" || rec.Time.IsZero() {
		t.Fatalf("log line: %v %+v", err, rec)
	}
}

// The first matching rule decides; an operation rule can exempt an operation from a wildcard.
func TestFirstRuleDecides(t *testing.T) {
	in := mustNew(t, Config{Rules: []Rule{
		{Service: "kms", Operation: "GenerateDataKey"},
		{Service: "kms", Throttle: 1},
	}}, Options{})
	if k := in.Request("kms", "GenerateDataKey").Kind; k != "" {
		t.Fatalf("exempt operation got %q", k)
	}
	if k := in.Request("kms", "Decrypt").Kind; k != KindThrottle {
		t.Fatalf("Decrypt got %q, want throttle", k)
	}
	if k := in.Request("s3", "GetObject").Kind; k != "" {
		t.Fatalf("unmatched service got %q", k)
	}
}

func TestLatency(t *testing.T) {
	in := mustNew(t, Config{Rules: []Rule{{Service: "s3", Latency: Duration(10 * time.Millisecond), LatencyJitter: Duration(5 * time.Millisecond)}}}, Options{})
	for i := 0; i < 20; i++ {
		f := in.Request("s3", "GetObject")
		if f.Kind != "" || f.Latency < 10*time.Millisecond || f.Latency >= 15*time.Millisecond {
			t.Fatalf("fault %+v", f)
		}
	}
}

// A nil Injector injects nothing.
func TestNilInjector(t *testing.T) {
	var in *Injector
	if in.Request("kms", "Decrypt").Kind != "" || in.CloudTrailEvent("DisableKey").Kind != "" || in.Invocation("f").Point != "" {
		t.Fatal("nil injector injected")
	}
	in.Transition("m", "s")
	if _, n := in.Counts(); n != 0 {
		t.Fatal("nil injector counted")
	}
}

func TestLambdaNthAndPoints(t *testing.T) {
	in := mustNew(t, Config{Lambda: []LambdaCrash{{Function: "f", Nth: 3, Point: PointEnd}, {Function: "g", Rate: 1, Point: PointRandom, Window: Duration(time.Millisecond)}}}, Options{})
	for i := 1; i <= 5; i++ {
		p := in.Invocation("f").Point
		if (i == 3) != (p == PointEnd) {
			t.Fatalf("invocation %d of f: %q", i, p)
		}
	}
	if f := in.Invocation("g"); f.Point != PointRandom || f.After >= time.Millisecond {
		t.Fatalf("g: %+v", f)
	}
}

func TestProcessCrashAtTheNthTransition(t *testing.T) {
	var crashed []string
	in := mustNew(t, Config{Crash: []ProcessCrash{{Machine: "reencrypt", State: "Commit", Nth: 2}}},
		Options{Crash: func(m, s string) { crashed = append(crashed, m+"→"+s) }})
	in.Transition("reencrypt", "Commit")
	in.Transition("backup", "Commit")
	in.Transition("reencrypt", "Begin")
	if len(crashed) != 0 {
		t.Fatalf("crashed early: %v", crashed)
	}
	in.Transition("reencrypt", "Commit")
	in.Transition("reencrypt", "Commit")
	if fmt.Sprint(crashed) != "[reencrypt→Commit]" {
		t.Fatalf("crashes: %v", crashed)
	}
	if c, _ := in.Counts(); c[KindProcessCrash] != 1 {
		t.Fatalf("counts %v", c)
	}
}

func TestConfigParsing(t *testing.T) {
	good := `{"seed": 5, "rules": [{"service": "kms", "operation": "Decrypt", "throttle": 0.1, "5xx": 0.1, "timeout": 0.1, "latency": "5ms"}],
	  "timeoutAfter": 150, "cloudTrail": {"drop": 0.2, "delayBy": "1s"}, "lambda": [{"function": "*", "rate": 0.1, "point": "end"}],
	  "crash": [{"machine": "reencrypt", "state": "Commit"}]}`
	c, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Seed != 5 || c.Rules[0].ServerError != 0.1 || time.Duration(c.Rules[0].Latency) != 5*time.Millisecond ||
		time.Duration(c.TimeoutAfter) != 150*time.Millisecond || time.Duration(c.CloudTrail.DelayBy) != time.Second {
		t.Fatalf("parsed %+v", c)
	}
	for _, bad := range []string{
		`{"rules": [{"service": "kms", "throttle": 1.5}]}`,
		`{"rules": [{"service": "kms", "throttle": 0.6, "5xx": 0.6}]}`,
		`{"rules": [{"throttle": 0.1}]}`,
		`{"rules": [{"service": "kms", "latency": "soon"}]}`,
		`{"cloudTrail": {"drop": 0.7, "reorder": 0.7}}`,
		`{"lambda": [{"function": "f", "point": "middle"}]}`,
		`{"crash": [{"machine": "reencrypt"}]}`,
		`{"unknown": 1}`,
	} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", bad, err)
		}
	}
	pc, err := ParseCrashAt("reencrypt:Commit:3")
	if err != nil || pc != (ProcessCrash{Machine: "reencrypt", State: "Commit", Nth: 3}) {
		t.Fatalf("crash-at: %+v %v", pc, err)
	}
	for _, bad := range []string{"reencrypt", "reencrypt:", ":Commit", "a:b:0", "a:b:x", "a:b:1:2"} {
		if _, err := ParseCrashAt(bad); !errors.Is(err, ErrConfig) {
			t.Errorf("crash-at %q: %v", bad, err)
		}
	}
}

// sink records what reaches the bus.
type sink struct {
	mu  sync.Mutex
	got []string
	ch  chan string
}

func newSink() *sink { return &sink{ch: make(chan string, 100)} }

func (s *sink) publish(_ context.Context, b []byte) error {
	s.mu.Lock()
	s.got = append(s.got, string(b))
	s.mu.Unlock()
	s.ch <- string(b)
	return nil
}

func (s *sink) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func (s *sink) next(t *testing.T) string {
	t.Helper()
	select {
	case v := <-s.ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no event delivered")
		return ""
	}
}

func onlyKind(kind string) CloudTrail {
	ct := CloudTrail{}
	switch kind {
	case KindDrop:
		ct.Drop = 1
	case KindDuplicate:
		ct.Duplicate = 1
	case KindDelay:
		ct.Delay, ct.DelayBy = 1, Duration(time.Minute)
	case KindReorder:
		ct.Reorder, ct.ReorderWindow = 1, Duration(time.Minute)
	}
	ct.Events = []string{"DisableKey"} // EnableKey passes untouched
	return ct
}

func TestCloudTrailDropAndDuplicate(t *testing.T) {
	ctx := context.Background()
	s := newSink()
	p := mustNew(t, Config{CloudTrail: onlyKind(KindDrop)}, Options{}).CloudTrail(s.publish, nil)
	defer p.Close()
	_ = p.Publish(ctx, "DisableKey", []byte("a"))
	_ = p.Publish(ctx, "EnableKey", []byte("b"))
	if got := s.seen(); fmt.Sprint(got) != "[b]" {
		t.Fatalf("drop: %v", got)
	}
	s = newSink()
	p2 := mustNew(t, Config{CloudTrail: onlyKind(KindDuplicate)}, Options{}).CloudTrail(s.publish, nil)
	defer p2.Close()
	_ = p2.Publish(ctx, "DisableKey", []byte("a"))
	if got := s.seen(); fmt.Sprint(got) != "[a a]" {
		t.Fatalf("duplicate: %v", got)
	}
}

func TestCloudTrailDelay(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newSink()
	p := mustNew(t, Config{CloudTrail: onlyKind(KindDelay)}, Options{}).CloudTrail(s.publish, clk)
	defer p.Close()
	_ = p.Publish(ctx, "DisableKey", []byte("late"))
	_ = p.Publish(ctx, "EnableKey", []byte("now"))
	if got := s.next(t); got != "now" {
		t.Fatalf("first delivered %q", got)
	}
	clk.Advance(time.Minute)
	if got := s.next(t); got != "late" {
		t.Fatalf("then %q", got)
	}
}

// A reordered event is overtaken by the next one; alone, it is released when its window ends.
func TestCloudTrailReorder(t *testing.T) {
	ctx := context.Background()
	clk := clocktest.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newSink()
	p := mustNew(t, Config{CloudTrail: onlyKind(KindReorder)}, Options{}).CloudTrail(s.publish, clk)
	defer p.Close()
	_ = p.Publish(ctx, "DisableKey", []byte("first"))
	_ = p.Publish(ctx, "EnableKey", []byte("second"))
	if got := s.seen(); fmt.Sprint(got) != "[second first]" {
		t.Fatalf("reorder: %v", got)
	}
	_ = p.Publish(ctx, "DisableKey", []byte("alone"))
	if got := s.seen(); len(got) != 2 {
		t.Fatalf("released early: %v", got)
	}
	clk.Advance(time.Minute)
	for _, want := range []string{"second", "first", "alone"} { // every delivery, in order
		if got := s.next(t); got != want {
			t.Fatalf("delivered %q, want %q", got, want)
		}
	}
	if got := s.seen(); len(got) != 3 {
		t.Fatalf("delivered %v", got)
	}
}
