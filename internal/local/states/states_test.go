package states

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/local/invoke"
)

func run(t *testing.T, def, input string, opts Options) Result {
	t.Helper()
	m, err := Parse([]byte(def))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if opts.Clock == nil {
		opts.Clock = &instantClock{t: testInfo.StartTime}
	}
	if opts.Execution.ID == "" {
		opts.Execution = testInfo
	}
	return m.Run(context.Background(), []byte(input), opts)
}

func wantOutput(t *testing.T, res Result, want string) {
	t.Helper()
	if res.Status != StatusSucceeded {
		t.Fatalf("status %s, error %q cause %q", res.Status, res.Error, res.Cause)
	}
	if err := matchJSON("", mustJSON(want), mustJSON(string(res.Output)), nil); err != nil {
		t.Fatalf("output %s: %v", res.Output, err)
	}
}

func wantFailure(t *testing.T, res Result, errName, causePart string) {
	t.Helper()
	if res.Status != StatusFailed || res.Error != errName || !strings.Contains(res.Cause, causePart) {
		t.Fatalf("got %s %q %q, want FAILED %q (cause containing %q)", res.Status, res.Error, res.Cause, errName, causePart)
	}
}

func TestParseListsEveryProblem(t *testing.T) {
	_, err := Parse([]byte(`{"StartAt":"Nope","States":{
		"A":{"Type":"Pass","Next":"Missing"},
		"B":{"Type":"Bogus"},
		"C":{"Type":"Choice","Choices":[{"Variable":"x","StringEquals":1,"Next":"A"}]},
		"D":{"Type":"Pass","End":true,"InputPath":"$[","Parameters":{"a.$":"States.Nope()"}}}}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || !errors.Is(err, ErrInvalidDefinition) {
		t.Fatalf("want *ValidationError, got %v", err)
	}
	for _, want := range []string{"StartAt", "Missing", "Bogus", "not a valid JSONPath", "must be a string", "InputPath", "unknown function"} {
		if !strings.Contains(ve.Error(), want) {
			t.Errorf("problems do not mention %q: %v", want, ve.Problems)
		}
	}
	if len(ve.Problems) < 6 {
		t.Errorf("want every problem listed, got %d: %v", len(ve.Problems), ve.Problems)
	}
	for _, bad := range []string{``, `[]`, `{"StartAt":"A"}`, `{"StartAt":"A","States":{"A":{"Type":"Pass"}}}`,
		`{"StartAt":"A","States":{"A":{"Type":"Wait","End":true}}}`, `{"StartAt":"A","States":{"A":{"Type":"Task","End":true}}}`} {
		if _, err := Parse([]byte(bad)); !errors.Is(err, ErrInvalidDefinition) {
			t.Errorf("Parse(%q) = %v, want a validation error", bad, err)
		}
	}
}

func TestPassDataFlow(t *testing.T) {
	def := `{"StartAt":"P","States":{
	  "P":{"Type":"Pass","InputPath":"$.in","Parameters":{"a.$":"$.x","lit":"v","arr":[{"n.$":"$.x"}],"ctx.$":"$$.State.Name","f.$":"States.Format('x={}', $.x)"},"ResultPath":"$.res","Next":"Q"},
	  "Q":{"Type":"Pass","Result":{"k":1},"ResultPath":"$.res.k2","OutputPath":"$.res","End":true}}}`
	res := run(t, def, `{"in":{"x":5}}`, Options{})
	wantOutput(t, res, `{"a":5,"lit":"v","arr":[{"n":5}],"ctx":"P","f":"x=5","k2":{"k":1}}`)
	// null paths
	res = run(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","ResultPath":null,"Result":1,"Next":"Q"},"Q":{"Type":"Pass","OutputPath":null,"End":true}}}`, `{"a":1}`, Options{})
	wantOutput(t, res, `{}`)
	res = run(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","InputPath":"$.nope","End":true}}}`, `{}`, Options{})
	wantFailure(t, res, ErrRuntime, "Invalid path '$.nope' : No results for path: $['nope']")
}

func TestChoiceOperators(t *testing.T) {
	def := `{"StartAt":"C","States":{
	  "C":{"Type":"Choice","Choices":[
	    {"And":[{"Variable":"$.n","NumericGreaterThan":1},{"Variable":"$.n","NumericLessThanEqualsPath":"$.max"}],"Next":"Mid"},
	    {"Not":{"Variable":"$.s","StringMatches":"log-*.txt"},"Next":"NoMatch"},
	    {"Or":[{"Variable":"$.ts","TimestampGreaterThan":"2020-01-01T00:00:00Z"},{"Variable":"$.b","BooleanEquals":true}],"Next":"Late"},
	    {"Variable":"$.missing","IsPresent":false,"Next":"Absent"}],
	   "Default":"Def"},
	  "Mid":{"Type":"Pass","Result":"mid","End":true},
	  "NoMatch":{"Type":"Pass","Result":"nomatch","End":true},
	  "Late":{"Type":"Pass","Result":"late","End":true},
	  "Absent":{"Type":"Pass","Result":"absent","End":true},
	  "Def":{"Type":"Pass","Result":"def","End":true}}}`
	cases := map[string]string{
		`{"n":2,"max":3,"s":"x"}`:                                                           `"mid"`,
		`{"n":5,"max":3,"s":"x"}`:                                                           `"nomatch"`,
		`{"n":5,"max":3,"s":"log-1.txt","ts":"2021-05-01T00:00:00Z"}`:                       `"late"`,
		`{"n":5,"max":3,"s":"log-1.txt","ts":"2019-05-01T00:00:00Z","b":false}`:             `"absent"`,
		`{"n":5,"max":3,"s":"log-1.txt","ts":"2019-05-01T00:00:00Z","b":false,"missing":1}`: `"def"`,
	}
	for in, want := range cases {
		wantOutput(t, run(t, def, in, Options{}), want)
	}
	res := run(t, `{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$.x","IsNull":true,"Next":"E"}]},"E":{"Type":"Succeed"}}}`, `{"x":1}`, Options{})
	wantFailure(t, res, ErrNoChoiceMatched, "")
}

func TestWaitUsesClock(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	fc := clocktest.NewFake(t0)
	def := `{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","Next":"T"},"T":{"Type":"Wait","Timestamp":"2025-01-01T01:00:00Z","End":true}}}`
	done := make(chan Result, 1)
	go func() { done <- run(t, def, `{"s":30}`, Options{Clock: fc}) }()
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	fc.Advance(29 * time.Second)
	select {
	case <-done:
		t.Fatal("Wait ended early")
	default:
	}
	fc.Advance(time.Second)
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	fc.Set(t0.Add(time.Hour))
	wantOutput(t, <-done, `{"s":30}`)
	res := run(t, `{"StartAt":"W","States":{"W":{"Type":"Wait","SecondsPath":"$.s","End":true}}}`, `{"s":-1}`, Options{})
	wantFailure(t, res, ErrRuntime, "references a negative value")
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFailAndSucceed(t *testing.T) {
	res := run(t, `{"StartAt":"F","States":{"F":{"Type":"Fail","ErrorPath":"$.e","CausePath":"States.Format('c-{}', $.c)"}}}`, `{"e":"E1","c":"x"}`, Options{})
	wantFailure(t, res, "E1", "c-x")
	res = run(t, `{"StartAt":"S","States":{"S":{"Type":"Succeed","OutputPath":"$.a"}}}`, `{"a":[1]}`, Options{})
	wantOutput(t, res, `[1]`)
}

func TestParallelAndMap(t *testing.T) {
	def := `{"StartAt":"P","States":{
	  "P":{"Type":"Parallel","Branches":[
	     {"StartAt":"A","States":{"A":{"Type":"Pass","Result":"a","End":true}}},
	     {"StartAt":"M","States":{"M":{"Type":"Map","ItemsPath":"$.items","MaxConcurrency":3,
	        "ItemSelector":{"v.$":"$$.Map.Item.Value","i.$":"$$.Map.Item.Index","k.$":"$.k"},
	        "ItemProcessor":{"StartAt":"X","States":{"X":{"Type":"Pass","End":true}}},"End":true}}}],
	   "ResultSelector":{"first.$":"$[0]","mapped.$":"$[1]"},"End":true}}}`
	res := run(t, def, `{"k":"K","items":[10,20,30,40]}`, Options{})
	wantOutput(t, res, `{"first":"a","mapped":[{"v":10,"i":0,"k":"K"},{"v":20,"i":1,"k":"K"},{"v":30,"i":2,"k":"K"},{"v":40,"i":3,"k":"K"}]}`)

	// tolerated failures
	def = `{"StartAt":"M","States":{"M":{"Type":"Map","ToleratedFailureCount":1,
	  "ItemProcessor":{"StartAt":"C","States":{"C":{"Type":"Choice","Choices":[{"Variable":"$","NumericEquals":2,"Next":"F"}],"Default":"OK"},
	  "F":{"Type":"Fail","Error":"Two"},"OK":{"Type":"Pass","End":true}}},"End":true}}}`
	res = run(t, def, `[1,2,3]`, Options{})
	wantOutput(t, res, `[1,{"Error":"Two"},3]`)
	res = run(t, def, `[2,2,3]`, Options{})
	wantFailure(t, res, ErrExceedToleratedFailure, "threshold")
}

// failingRunner fails the first n calls with err, then echoes its parameters.
type failingRunner struct {
	n     int32
	calls atomic.Int32
	err   error
}

func (f *failingRunner) RunTask(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error) {
	if f.calls.Add(1) <= f.n {
		return nil, f.err
	}
	return params, nil
}

func TestRetryAndCatch(t *testing.T) {
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"f","x.$":"$.x"},
	   "Retry":[{"ErrorEquals":["Custom"],"MaxAttempts":2,"IntervalSeconds":1,"BackoffRate":2,"MaxDelaySeconds":5,"JitterStrategy":"FULL"}],
	   "Catch":[{"ErrorEquals":["States.ALL"],"ResultPath":"$.err","Next":"Caught"}],"ResultSelector":{"x.$":"$.x"},"End":true},
	   "Caught":{"Type":"Pass","End":true}}}`
	fr := &failingRunner{n: 2, err: &TaskError{Name: "Custom", Cause: "boom"}}
	var events []string
	res := run(t, def, `{"x":1}`, Options{Tasks: fr, OnEvent: func(e Event) { events = append(events, e.Type) }})
	wantOutput(t, res, `{"x":1}`)
	if fr.calls.Load() != 3 {
		t.Fatalf("calls = %d, want 3", fr.calls.Load())
	}
	want := "ExecutionStarted TaskStateEntered TaskScheduled TaskStarted TaskFailed TaskScheduled TaskStarted TaskFailed TaskScheduled TaskStarted TaskSucceeded TaskStateExited ExecutionSucceeded"
	if got := strings.Join(events, " "); got != want {
		t.Fatalf("events\n got %s\nwant %s", got, want)
	}
	fr = &failingRunner{n: 5, err: &TaskError{Name: "Custom", Cause: "boom"}}
	res = run(t, def, `{"x":1}`, Options{Tasks: fr})
	wantOutput(t, res, `{"x":1,"err":{"Error":"Custom","Cause":"boom"}}`)
	// a plain error is States.TaskFailed
	fr = &failingRunner{n: 1, err: errors.New("network down")}
	res = run(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::dynamodb:getItem","End":true}}}`, `{}`, Options{Tasks: fr})
	wantFailure(t, res, ErrTaskFailed, "network down")
	// no runner
	res = run(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::dynamodb:getItem","End":true}}}`, `{}`, Options{})
	wantFailure(t, res, ErrRuntime, "no service integrations")
}

type blockingRunner struct{}

func (blockingRunner) RunTask(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestTaskTimeout(t *testing.T) {
	fc := clocktest.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	done := make(chan Result, 1)
	go func() {
		done <- run(t, `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","TimeoutSeconds":10,"End":true}}}`, `{}`, Options{Clock: fc, Tasks: blockingRunner{}})
	}()
	waitFor(t, func() bool { return fc.Waiters() == 1 })
	fc.Advance(10 * time.Second)
	res := <-done
	if res.Status != StatusFailed || res.Error != ErrTimeout {
		t.Fatalf("got %+v, want States.Timeout", res)
	}
}

func TestDataLimit(t *testing.T) {
	big := strings.Repeat("a", MaxPayloadBytes)
	res := run(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"v.$":"$.v"},"End":true}}}`, `{"v":"`+big+`"}`, Options{})
	wantFailure(t, res, ErrDataLimitExceeded, "'P' returned a result with a size exceeding")
}

func TestIntrinsics(t *testing.T) {
	cases := []struct{ expr, input, want string }{
		{`States.Format('a\{\}{}b', $.x)`, `{"x":[1,"s"]}`, `"a{}[1, s]b"`},
		{`States.StringToJson($.s)`, `{"s":"{\"a\":[1]}"}`, `{"a":[1]}`},
		{`States.JsonToString($.o)`, `{"o":{"a":1}}`, `"{\"a\":1}"`},
		{`States.Array(1, 'two', $.x, null, true)`, `{"x":3}`, `[1,"two",3,null,true]`},
		{`States.ArrayPartition(States.ArrayRange(1, 5, 1), 2)`, `{}`, `[[1,2],[3,4],[5]]`},
		{`States.ArrayContains($.a, 2)`, `{"a":[1,2]}`, `true`},
		{`States.ArrayGetItem($.a, 1)`, `{"a":[1,2]}`, `2`},
		{`States.ArrayLength($.a)`, `{"a":[1,2]}`, `2`},
		{`States.ArrayUnique($.a)`, `{"a":[1,2,1,{"x":1},{"x":1}]}`, `[1,2,{"x":1}]`},
		{`States.Base64Decode(States.Base64Encode('hi there'))`, `{}`, `"hi there"`},
		{`States.Hash('input data', 'SHA-1')`, `{}`, `"aaff4a450a104cd177d28d18d74485e8cae074b7"`},
		{`States.JsonMerge($.a, $.b, false)`, `{"a":{"x":1,"y":1},"b":{"y":2}}`, `{"x":1,"y":2}`},
		{`States.MathAdd($.n, -1)`, `{"n":5}`, `4`},
		{`States.StringSplit('a,b;c', ',;')`, `{}`, `["a","b","c"]`},
		{`States.ArrayLength(States.StringSplit(States.UUID(), '-'))`, `{}`, `5`},
	}
	for _, c := range cases {
		def := fmt.Sprintf(`{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"r.$":%q},"OutputPath":"$.r","End":true}}}`, c.expr)
		m, err := Parse([]byte(def))
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		res := m.Run(context.Background(), []byte(c.input), Options{})
		if res.Status != StatusSucceeded {
			t.Errorf("%s: %s %s", c.expr, res.Error, res.Cause)
			continue
		}
		if err := matchJSON("", mustJSON(c.want), mustJSON(string(res.Output)), nil); err != nil {
			t.Errorf("%s: %v (output %s)", c.expr, err, res.Output)
		}
	}
	res := run(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"r.$":"States.MathRandom(1, 3)"},"OutputPath":"$.r","End":true}}}`, `{}`, Options{})
	if s := string(res.Output); s != "1" && s != "2" {
		t.Fatalf("MathRandom(1,3) = %s", s)
	}
	res = run(t, `{"StartAt":"P","States":{"P":{"Type":"Pass","Parameters":{"r.$":"States.ArrayGetItem($.a, 5)"},"End":true}}}`, `{"a":[]}`, Options{})
	wantFailure(t, res, ErrRuntime, "out of bounds")
}

func TestLambdaIntegration(t *testing.T) {
	var gotFn string
	var gotPayload string
	inv := invoke.InvokerFunc(func(ctx context.Context, fn string, payload []byte) ([]byte, error) {
		gotFn, gotPayload = fn, string(payload)
		if strings.Contains(string(payload), "fail") {
			return nil, &invoke.FunctionError{Type: "BadThing", Message: "it failed"}
		}
		return []byte(`{"ok":true}`), nil
	})
	tasks := &Integrations{Lambda: inv}
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","Parameters":{"FunctionName":"arn:aws:lambda:us-east-1:111111111111:function:seal","Payload.$":"$"},"End":true}}}`
	res := run(t, def, `{"a":1}`, Options{Tasks: tasks})
	if res.Status != StatusSucceeded || gotFn != "seal" || gotPayload != `{"a":1}` {
		t.Fatalf("res %+v fn %q payload %q", res, gotFn, gotPayload)
	}
	var out map[string]any
	_ = json.Unmarshal(res.Output, &out)
	for _, k := range []string{"ExecutedVersion", "Payload", "SdkHttpMetadata", "SdkResponseMetadata", "StatusCode"} {
		if _, ok := out[k]; !ok {
			t.Errorf("lambda:invoke result lacks %s: %s", k, res.Output)
		}
	}
	if p, _ := out["Payload"].(map[string]any); p["ok"] != true {
		t.Errorf("Payload = %v", out["Payload"])
	}
	res = run(t, def, `{"a":"fail"}`, Options{Tasks: tasks})
	wantFailure(t, res, "BadThing", `"errorMessage":"it failed","errorType":"BadThing"`)
	// plain function ARN: the result is the payload
	def = `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:lambda:us-east-1:111111111111:function:open","End":true}}}`
	var events []string
	res = run(t, def, `{"a":1}`, Options{Tasks: tasks, OnEvent: func(e Event) { events = append(events, e.Type) }})
	wantOutput(t, res, `{"ok":true}`)
	if gotFn != "open" || !strings.Contains(strings.Join(events, " "), "LambdaFunctionScheduled LambdaFunctionStarted LambdaFunctionSucceeded") {
		t.Fatalf("fn %q events %v", gotFn, events)
	}
}

type memItems struct{ objs map[string][]byte }

func (m memItems) ListObjectsV2(ctx context.Context, bucket, prefix string) ([]S3Object, error) {
	var out []S3Object
	for k, v := range m.objs {
		if strings.HasPrefix(k, prefix) {
			out = append(out, S3Object{Key: k, Size: int64(len(v)), ETag: "e"})
		}
	}
	return out, nil
}

func (m memItems) GetObject(ctx context.Context, bucket, key string) ([]byte, error) {
	b, ok := m.objs[key]
	if !ok {
		return nil, errors.New("NoSuchKey")
	}
	return b, nil
}

// countingRunner counts concurrent calls.
type countingRunner struct {
	mu        sync.Mutex
	cur, peak int
}

func (c *countingRunner) RunTask(ctx context.Context, resource string, params json.RawMessage, tc TaskContext) (json.RawMessage, error) {
	c.mu.Lock()
	c.cur++
	c.peak = max(c.peak, c.cur)
	c.mu.Unlock()
	time.Sleep(time.Millisecond)
	c.mu.Lock()
	c.cur--
	c.mu.Unlock()
	return params, nil
}

func TestDistributedMap(t *testing.T) {
	items := memItems{objs: map[string][]byte{"in/list.json": []byte(`[1,2,3,4,5]`), "in/a": nil, "in/b": nil}}
	def := `{"StartAt":"M","States":{"M":{"Type":"Map","MaxConcurrency":2,
	  "ItemReader":{"Resource":"arn:aws:states:::s3:getObject","ReaderConfig":{"InputType":"JSON"},"Parameters":{"Bucket":"b","Key.$":"$.key"}},
	  "ItemBatcher":{"MaxItemsPerBatch":2,"BatchInput":{"tag":"t"}},
	  "ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED","ExecutionType":"STANDARD"},"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","End":true}}},
	  "End":true}}}`
	cr := &countingRunner{}
	res := run(t, def, `{"key":"in/list.json"}`, Options{Items: items, Tasks: cr})
	wantOutput(t, res, `[{"Items":[1,2],"BatchInput":{"tag":"t"}},{"Items":[3,4],"BatchInput":{"tag":"t"}},{"Items":[5],"BatchInput":{"tag":"t"}}]`)
	if cr.peak > 2 {
		t.Fatalf("peak concurrency %d > MaxConcurrency 2", cr.peak)
	}
	def = `{"StartAt":"M","States":{"M":{"Type":"Map",
	  "ItemReader":{"Resource":"arn:aws:states:::s3:listObjectsV2","Parameters":{"Bucket":"b","Prefix":"in/"}},
	  "ItemSelector":{"k.$":"$$.Map.Item.Value.Key"},
	  "ItemProcessor":{"ProcessorConfig":{"Mode":"DISTRIBUTED"},"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}},
	  "ResultSelector":{"n.$":"States.ArrayLength($)"},"End":true}}}`
	wantOutput(t, run(t, def, `{}`, Options{Items: items}), `{"n":3}`)
	wantFailure(t, run(t, def, `{}`, Options{}), ErrItemReaderFailed, "")
}

func TestCheckpointAndResume(t *testing.T) {
	def := `{"StartAt":"A","States":{
	  "A":{"Type":"Pass","Result":1,"ResultPath":"$.a","Next":"B"},
	  "B":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","ResultPath":"$.b","Next":"C"},
	  "C":{"Type":"Pass","Parameters":{"sum.$":"States.MathAdd($.a, $.b.v)","in.$":"$$.Execution.Input"},"End":true}}}`
	m, err := Parse([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	var cps []Checkpoint
	ctx, cancel := context.WithCancel(context.Background())
	stop := TaskRunnerFunc(func(ctx2 context.Context, r string, p json.RawMessage, tc TaskContext) (json.RawMessage, error) {
		cancel() // the process "dies" while B runs
		<-ctx2.Done()
		return nil, ctx2.Err()
	})
	res := m.Run(ctx, []byte(`{"x":1}`), Options{Tasks: stop, Execution: testInfo, OnCheckpoint: func(c Checkpoint) { cps = append(cps, c) }})
	if res.Status != StatusAborted || len(cps) != 1 || cps[0].Next != "B" {
		t.Fatalf("res %+v checkpoints %+v", res, cps)
	}
	var ids []int64
	ok := TaskRunnerFunc(func(ctx context.Context, r string, p json.RawMessage, tc TaskContext) (json.RawMessage, error) {
		return json.RawMessage(`{"v":41}`), nil
	})
	res = m.Resume(context.Background(), cps[0], []byte(`{"x":1}`), Options{Tasks: ok, Execution: testInfo, OnEvent: func(e Event) { ids = append(ids, e.ID) }})
	wantOutput(t, res, `{"sum":42,"in":{"x":1}}`)
	if ids[0] != cps[0].LastEventID+1 {
		t.Fatalf("resumed event ids %v do not continue after %d", ids, cps[0].LastEventID)
	}
}

func TestExecutionTimeout(t *testing.T) {
	fc := clocktest.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	done := make(chan Result, 1)
	go func() {
		done <- run(t, `{"StartAt":"W","TimeoutSeconds":5,"States":{"W":{"Type":"Wait","Seconds":60,"End":true}}}`, `{}`, Options{Clock: fc})
	}()
	waitFor(t, func() bool { return fc.Waiters() == 2 })
	fc.Advance(5 * time.Second)
	if res := <-done; res.Status != StatusTimedOut {
		t.Fatalf("got %+v", res)
	}
}

func TestRetryBackoffUsesClock(t *testing.T) {
	fc := clocktest.NewFake(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	fr := &failingRunner{n: 3, err: &TaskError{Name: "Busy"}}
	def := `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke",
	  "Retry":[{"ErrorEquals":["States.TaskFailed"],"IntervalSeconds":2,"BackoffRate":3,"MaxDelaySeconds":10,"MaxAttempts":3}],"End":true}}}`
	done := make(chan Result, 1)
	go func() { done <- run(t, def, `{"a":1}`, Options{Clock: fc, Tasks: fr}) }()
	for i, d := range []time.Duration{2 * time.Second, 6 * time.Second, 10 * time.Second} {
		waitFor(t, func() bool { return fc.Waiters() == 1 })
		fc.Advance(d - time.Millisecond)
		if fc.Waiters() != 1 || fr.calls.Load() != int32(i+1) {
			t.Fatalf("retry %d came before its %v delay", i+1, d)
		}
		fc.Advance(time.Millisecond)
	}
	wantOutput(t, <-done, `{"a":1}`)
	if fr.calls.Load() != 4 {
		t.Fatalf("calls %d", fr.calls.Load())
	}
}
