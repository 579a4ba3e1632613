package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/benchfmt"
)

// Settings of BenchmarkBootstraps.
const (
	// coldStartRuns is how many times each measured bootstrap is started; the figure is
	// the median.
	coldStartRuns = 7
	// coldStartTimeout bounds one start, from exec to the first response.
	coldStartTimeout = 2 * time.Minute
	// runtimeAPIPrefix is the Lambda Runtime API's path prefix.
	runtimeAPIPrefix = "/2018-06-01/runtime"
	// The console's functions, as infra/deploy_console.go names them.
	fnConsoleAPI        = "console-api"
	fnConsoleAuthorizer = "console-authorizer"
)

// moduleRoot returns the keyline module's root directory (where scripts/ is).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if m, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.Contains(m, []byte("module github.com/keyline/keyline\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("the keyline module's root (go.mod) was not found")
		}
		dir = parent
	}
}

// buildFunctions builds the named functions (all without names) with
// scripts/build-functions.sh for goarch into dir; it returns each bootstrap's path by name.
func buildFunctions(ctx context.Context, dir, goarch string, names ...string) (map[string]string, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "build-functions.sh"), names...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "KEYLINE_FUNCTIONS_DIR="+dir, "KEYLINE_FUNCTIONS_GOARCH="+goarch)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("scripts/build-functions.sh (%s): %w\n%s", goarch, err, out)
	}
	if len(names) == 0 {
		for _, f := range infra.Description().Functions {
			names = append(names, f.Name)
		}
	}
	paths := map[string]string{}
	for _, n := range names {
		p := filepath.Join(dir, n, "bootstrap")
		if _, err := os.Stat(p); err != nil {
			return nil, fmt.Errorf("bootstrap of %s: %w", n, err)
		}
		paths[n] = p
	}
	return paths, nil
}

// runtimeAPI is a minimal Lambda Runtime API (the part a Go bootstrap uses): GET
// .../invocation/next hands out the one event, POST .../invocation/{id}/response and
// .../error and .../init/error record the answer and when it arrived.
type runtimeAPI struct {
	event   []byte
	answers chan runtimeAnswer
}

type runtimeAnswer struct {
	at    time.Time
	body  []byte
	isErr bool
	init  bool // an init error: the function could not start
}

func (rt *runtimeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	switch {
	case r.Method == http.MethodGet && path == runtimeAPIPrefix+"/invocation/next":
		w.Header().Set("Lambda-Runtime-Aws-Request-Id", "cold-start")
		w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(coldStartTimeout).UnixMilli(), 10))
		w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:cold-start")
		_, _ = w.Write(rt.event)
	case r.Method == http.MethodPost && strings.HasPrefix(path, runtimeAPIPrefix+"/"):
		at := time.Now()
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		isErr := !strings.HasSuffix(path, "/response")
		select {
		case rt.answers <- runtimeAnswer{at: at, body: b, isErr: isErr, init: strings.HasSuffix(path, "/init/error")}:
		default: // one answer per start is read; a second one would be a bug the first reveals
		}
	default:
		http.NotFound(w, r)
	}
}

// coldStartEvent is an event a function answers on the bench deployment, and the check of
// its answer.
type coldStartEvent struct {
	event []byte
	check func(answer []byte) error
	// refusal: the event is empty ({}) and the function's handled refusal of it (its input
	// error, posted to .../error) counts as its first response; a panic or an init error does not.
	refusal bool
}

// refusalEvent is the event of a function coldStartEvents has no prepared event for.
var refusalEvent = coldStartEvent{event: []byte(`{}`), refusal: true, check: func(a []byte) error {
	var fe struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
		StackTrace   []any  `json:"stackTrace"`
	}
	if err := json.Unmarshal(a, &fe); err != nil || fe.ErrorType == "" || len(fe.StackTrace) > 0 {
		return fmt.Errorf("the empty event got %.300s, want a handled error (no panic)", a)
	}
	return nil
}}

// coldStartEvents returns the events of the functions whose cold start can be measured.
func coldStartEvents(e *benchEnv) (map[string]coldStartEvent, error) {
	root, err := moduleRoot()
	if err != nil {
		return nil, err
	}
	sample := func(name string) ([]byte, error) { return os.ReadFile(filepath.Join(root, "events", name)) }
	anyJSON := func(a []byte) error {
		if !json.Valid(a) {
			return fmt.Errorf("not JSON: %.200s", a)
		}
		return nil
	}
	out := map[string]coldStartEvent{}
	for fn, file := range map[string]string{
		infra.FnKeyEvent: "kms-disable-key.json", infra.FnKeyHealth: "schedule-key-health.json",
		infra.FnBackupListDue: "backuplistdue.json", infra.FnDrillPlan: "drillplan.json",
	} {
		ev, err := sample(file)
		if err != nil {
			return nil, err
		}
		out[fn] = coldStartEvent{event: ev, check: anyJSON}
	}
	api, err := json.Marshal(events.APIGatewayProxyRequest{HTTPMethod: http.MethodGet, Path: "/v1/apps",
		QueryStringParameters: map[string]string{"limit": "1"},
		Headers:               map[string]string{"Authorization": "Bearer " + e.st.OperatorToken}})
	if err != nil {
		return nil, err
	}
	out[fnConsoleAPI] = coldStartEvent{event: api, check: func(a []byte) error {
		var res events.APIGatewayProxyResponse
		if err := json.Unmarshal(a, &res); err != nil || res.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /v1/apps?limit=1 answered %.300s (%v), want status 200", a, err)
		}
		return nil
	}}
	authz, err := json.Marshal(events.APIGatewayCustomAuthorizerRequest{Type: "TOKEN", AuthorizationToken: "Bearer " + e.st.OperatorToken,
		MethodArn: "arn:aws:execute-api:us-east-1:000000000000:bench/prod/GET/v1/apps"})
	if err != nil {
		return nil, err
	}
	out[fnConsoleAuthorizer] = coldStartEvent{event: authz, check: func(a []byte) error {
		if !bytes.Contains(a, []byte(`"Allow"`)) {
			return fmt.Errorf("the operator token got %.300s, want an Allow policy", a)
		}
		return nil
	}}
	return out, nil
}

// coldStart starts bin as Lambda would, against a Runtime API that hands it ev, and
// returns the time from exec to the first response the process posts.
func coldStart(ctx context.Context, e *benchEnv, name, bin string, ev coldStartEvent) (time.Duration, error) {
	rt := &runtimeAPI{event: ev.event, answers: make(chan runtimeAnswer, 1)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	srv := &http.Server{Handler: rt, ReadHeaderTimeout: coldStartTimeout}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	fn, _ := infra.Description().Function(name)
	env := append(os.Environ(),
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(), "AWS_LAMBDA_FUNCTION_NAME="+name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE="+strconv.Itoa(fn.MemoryMB),
		"AWS_ENDPOINT_URL="+e.st.Endpoint, "AWS_REGION="+localRegion,
		"AWS_ACCESS_KEY_ID="+localAccessKey, "AWS_SECRET_ACCESS_KEY=keyline-local-secret",
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required", "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required")
	for k, v := range e.st.state.Functions[name] {
		env = append(env, k+"="+v) // the deployment's settings last: they win
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	exited := make(chan error, 1)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
	}()
	select {
	case a := <-rt.answers:
		if a.isErr != ev.refusal || a.init {
			return 0, fmt.Errorf("%s answered %s (error: %v, init error: %v)\n%s", name, a.body, a.isErr, a.init, lastLines(logs.String(), 10))
		}
		if err := ev.check(a.body); err != nil {
			return 0, fmt.Errorf("%s: %w", name, err)
		}
		return a.at.Sub(start), nil
	case err := <-exited:
		exited <- err // for the deferred wait
		return 0, fmt.Errorf("%s exited before answering (%v):\n%s", name, err, lastLines(logs.String(), 10))
	case <-time.After(coldStartTimeout):
		return 0, fmt.Errorf("%s did not answer within %v:\n%s", name, coldStartTimeout, lastLines(logs.String(), 10))
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// BenchmarkBootstraps reports each Lambda bootstrap's size as deployed
// (bootstrap_<name>_MiB: built for linux/arm64 by scripts/build-functions.sh), and the cold
// start of the largest and the smallest (cold_start_<name>_ms): each built for this machine
// with the same script and flags, started coldStartRuns times as a process against a local
// Lambda Runtime API with an event it answers on the bench deployment; the figure is the
// median time from exec to the first response posted.
func BenchmarkBootstraps(b *testing.B) {
	e := sharedBench(b)
	ctx := context.Background()
	evs, err := coldStartEvents(e)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		arm, err := buildFunctions(ctx, filepath.Join(b.TempDir(), "arm64"), "arm64")
		if err != nil {
			b.Fatal(err)
		}
		sizes := map[string]int64{}
		var names []string
		for n, p := range arm {
			fi, err := os.Stat(p)
			if err != nil {
				b.Fatal(err)
			}
			sizes[n] = fi.Size()
			names = append(names, n)
		}
		// By size, then name, so that equal sizes pick the same functions every run.
		slices.SortFunc(names, func(x, y string) int {
			if sizes[x] != sizes[y] {
				return int(sizes[x] - sizes[y])
			}
			return strings.Compare(x, y)
		})
		smallest, largest := names[0], names[len(names)-1]
		host, err := buildFunctions(ctx, filepath.Join(b.TempDir(), runtime.GOARCH), runtime.GOARCH, largest, smallest)
		if err != nil {
			b.Fatal(err)
		}
		cold := map[string][]time.Duration{}
		for _, n := range []string{largest, smallest} {
			ev, ok := evs[n]
			if !ok {
				ev = refusalEvent
			}
			for range coldStartRuns {
				d, err := coldStart(ctx, e, n, host[n], ev)
				if err != nil {
					b.Fatal(err)
				}
				cold[n] = append(cold[n], d)
			}
		}
		if i < b.N-1 {
			continue
		}
		for _, n := range names {
			b.ReportMetric(float64(sizes[n])/(1<<20), "bootstrap_"+n+"_MiB")
		}
		for _, n := range []string{largest, smallest} {
			ds := cold[n]
			slices.Sort(ds)
			figure := "cold_start_" + n + "_ms"
			b.ReportMetric(float64(ds[len(ds)/2])/float64(time.Millisecond), figure)
			role := map[bool]string{true: "largest", false: "smallest"}[n == largest]
			answer := "its first response to a prepared event"
			if _, ok := evs[n]; !ok {
				answer = "its handled refusal of an empty event (no event prepared for it in coldStartEvents)"
			}
			if err := benchfmt.Note(b, figure, "the %s bootstrap (%.2f MiB for linux/arm64); a linux/%s build started as a process against a local Lambda Runtime API with the deployment's settings, from exec to %s: median of %d starts (fastest %.1f ms, slowest %.1f ms)",
				role, float64(sizes[n])/(1<<20), runtime.GOARCH, answer, len(ds), float64(ds[0])/float64(time.Millisecond), float64(ds[len(ds)-1])/float64(time.Millisecond)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
