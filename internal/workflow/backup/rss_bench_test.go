package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/backup"
)

// lambdaRuntime is a minimal AWS Lambda runtime API: it hands out one event per invocation and
// collects the response or error.
type lambdaRuntime struct {
	events chan []byte
	result chan runtimeResult
}

type runtimeResult struct {
	body  []byte
	isErr bool
}

func (rt *lambdaRuntime) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/runtime/invocation/next"):
		select {
		case ev := <-rt.events:
			w.Header().Set("Lambda-Runtime-Aws-Request-Id", fmt.Sprintf("req-%d", time.Now().UnixNano()))
			w.Header().Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(time.Now().Add(15*time.Minute).UnixMilli(), 10))
			w.Header().Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:111122223333:function:backupupload")
			_, _ = w.Write(ev)
		case <-r.Context().Done():
		}
	case r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/runtime/invocation/"):
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rt.result <- runtimeResult{body: b, isErr: strings.HasSuffix(r.URL.Path, "/error")}
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/runtime/init/error"):
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusAccepted)
		rt.result <- runtimeResult{body: b, isErr: true}
	default:
		http.NotFound(w, r)
	}
}

// BenchmarkBackupUploadProcessRSS runs the backupupload function as its own process, as in
// AWS (functions/backupupload on a Lambda runtime API), backing up an app of
// KEYLINE_BENCH_BACKUP_MIB MiB (default 256) in 16 MiB objects, and reports the process's peak
// RSS as backup_<size>_peak_rss_MiB, e.g. backup_1GiB_peak_rss_MiB with
// KEYLINE_BENCH_BACKUP_MIB=1024 (the endpoints run in this process and do not count).
func BenchmarkBackupUploadProcessRSS(b *testing.B) {
	mib := 256
	if v := os.Getenv("KEYLINE_BENCH_BACKUP_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("KEYLINE_BENCH_BACKUP_MIB=%q", v)
		}
		mib = n
	}
	root := testenv.RepoRoot(b)
	bin := filepath.Join(b.TempDir(), "backupupload")
	build := exec.Command("go", "build", "-o", bin, "./functions/backupupload")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build functions/backupupload: %v\n%s", err, out)
	}
	e := objectstest.New(b)
	bk, err := backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket, Logger: e.Logger})
	if err != nil {
		b.Fatal(err)
	}
	e.Org(b, "org1")
	e.CMKApp(b, "org1", "big")
	const obj = 16 << 20
	chunk := make([]byte, obj)
	for i := range mib * (1 << 20) / obj {
		copy(chunk, fmt.Sprintf("object %d ", i))
		e.Put(b, "big", objects.ScopeCMK, fmt.Sprintf("obj-%04d", i), chunk)
	}
	_, kmsURL := testenv.KMS(b)
	bus := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = w.Write([]byte(`{"FailedEntryCount":0,"Entries":[{"EventId":"e"}]}`))
	}))
	defer bus.Close()
	fn, _ := infra.Description().Function(infra.FnBackupUpload)
	rt := &lambdaRuntime{events: make(chan []byte, 1), result: make(chan runtimeResult, 1)}
	api := httptest.NewServer(rt)
	defer api.Close()
	env := append(os.Environ(),
		"AWS_LAMBDA_RUNTIME_API="+strings.TrimPrefix(api.URL, "http://"),
		"AWS_REGION=us-east-1", "AWS_ACCESS_KEY_ID=keyline", "AWS_SECRET_ACCESS_KEY=keyline", // DynamoDB Local keys tables by access key
		"AWS_ENDPOINT_URL_S3="+e.S3.URL, "AWS_ENDPOINT_URL_DYNAMODB="+testenv.DynamoDBEndpoint(b),
		"AWS_ENDPOINT_URL_KMS="+kmsURL, "AWS_ENDPOINT_URL_EVENTBRIDGE="+bus.URL,
		"AWS_REQUEST_CHECKSUM_CALCULATION=when_required", "AWS_RESPONSE_CHECKSUM_VALIDATION=when_required",
		infra.EnvTableName+"="+e.Table, infra.EnvDataBucket+"="+objectstest.DataBucket, infra.EnvBackupBucket+"="+objectstest.BackupBucket,
		infra.EnvEventBusName+"=bus", infra.EnvProviderKeyARN+"="+e.ProviderKey, "KEYLINE_S3_PATH_STYLE=true")
	for k, v := range fn.Env {
		env = append(env, k+"="+v)
	}
	// KEYLINE_BENCH_FUNCTION_ENV overrides the function's settings, e.g.
	// "KEYLINE_PART_SIZE_MIB=8,KEYLINE_UPLOAD_CONCURRENCY=3" (the last value of a name wins).
	if v := os.Getenv("KEYLINE_BENCH_FUNCTION_ENV"); v != "" {
		env = append(env, strings.Split(v, ",")...)
	}
	var peak int64
	var lastLogs string
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		in := backup.DueInput{ExecutionArn: fmt.Sprintf("rss-%d", i)}
		in.Input.AppIDs = []string{"big"}
		due, err := bk.ListDue(context.Background(), in)
		if err != nil {
			b.Fatal(err)
		}
		st, err := bk.Lease(context.Background(), due.Items[0])
		if err != nil {
			b.Fatal(err)
		}
		ev, _ := json.Marshal(st)
		rt.events <- ev
		cmd := exec.Command(bin)
		cmd.Env = env
		var logs bytes.Buffer
		cmd.Stdout, cmd.Stderr = &logs, &logs
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var res runtimeResult
		select {
		case res = <-rt.result:
		case <-time.After(10 * time.Minute):
			_ = cmd.Process.Kill()
			b.Fatalf("no answer from the function; logs:\n%s", logs.String())
		}
		total += time.Since(start)
		// VmHWM is the peak RSS of the process's own memory. (rusage's ru_maxrss is not: Linux
		// folds the parent's RSS into it across the vfork+exec that starts the child.)
		hwm, herr := vmHWM(cmd.Process.Pid)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		lastLogs = logs.String()
		if res.isErr {
			b.Fatalf("function error %s; logs:\n%s", res.body, logs.String())
		}
		var out backup.Step
		if err := json.Unmarshal(res.body, &out); err != nil || out.Status != backup.StatusUploaded {
			b.Fatalf("function answered %s (%v)", res.body, err)
		}
		if rec, err := bk.Record(context.Background(), out); err != nil || rec.Status != backup.StatusRecorded {
			b.Fatalf("record: %+v %v", rec, err)
		}
		if herr != nil {
			b.Fatal(herr)
		}
		peak = max(peak, hwm)
	}
	b.StopTimer()
	label := fmt.Sprintf("%dMiB", mib)
	if mib%1024 == 0 {
		label = fmt.Sprintf("%dGiB", mib/1024)
	}
	b.ReportMetric(float64(peak)/1024, "backup_"+label+"_peak_rss_MiB")
	if os.Getenv("KEYLINE_BENCH_SHOW_LOGS") != "" {
		b.Log(lastLogs)
	}
	b.ReportMetric(float64(mib)*(1<<20)/(total.Seconds()/float64(b.N))/1e6, "backup_"+label+"_MBps")
}

// vmHWM reads a process's peak resident set size in KiB from /proc/<pid>/status.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read the function's peak RSS: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
