package stepfunctions

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func call(t *testing.T, url, op, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("X-Amz-Target", "AWSStepFunctions."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s: body %q is not JSON", op, b)
	}
	return resp.StatusCode, out
}

func TestHandlerErrors(t *testing.T) {
	dir := t.TempDir()
	s := newService(t, Options{Dir: dir})
	srv := httptest.NewServer(s)
	defer srv.Close()
	cases := []struct{ op, body, code string }{
		{"CreateStateMachine", `{"name":"x","roleArn":"r"}`, "ValidationException"},
		{"CreateStateMachine", `{"name":"bad name!","definition":"{}","roleArn":"r"}`, "InvalidName"},
		{"CreateStateMachine", `{"name":"x","definition":"not json","roleArn":"r"}`, "InvalidDefinition"},
		{"CreateStateMachine", `[1`, "SerializationException"},
		{"DescribeStateMachine", `{"stateMachineArn":"nope"}`, "InvalidArn"},
		{"StartExecution", `{}`, "ValidationException"},
		{"DescribeExecution", `{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:a:b"}`, "ExecutionDoesNotExist"},
		{"GetExecutionHistory", `{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:a:b"}`, "ExecutionDoesNotExist"},
		{"ListExecutions", `{"stateMachineArn":"arn:aws:states:us-east-1:000000000000:stateMachine:a"}`, "StateMachineDoesNotExist"},
		{"StopExecution", `{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:a:b"}`, "ExecutionDoesNotExist"},
		{"DeleteEverything", `{}`, "UnknownOperationException"},
	}
	for _, c := range cases {
		status, out := call(t, srv.URL, c.op, c.body)
		if status != http.StatusBadRequest || out["__type"] != c.code || out["message"] == "" {
			t.Errorf("%s %s: %d %v, want 400 %s", c.op, c.body, status, out, c.code)
		}
	}
	status, out := call(t, srv.URL, "CreateStateMachine", `{"name":"m","definition":"{\"StartAt\":\"P\",\"States\":{\"P\":{\"Type\":\"Pass\",\"End\":true}}}","roleArn":"r"}`)
	if status != 200 || out["stateMachineArn"] == nil {
		t.Fatalf("%d %v", status, out)
	}
	status, out = call(t, srv.URL, "CreateStateMachine", `{"name":"m","definition":"{\"StartAt\":\"Q\",\"States\":{\"Q\":{\"Type\":\"Pass\",\"End\":true}}}","roleArn":"r"}`)
	if status != 400 || out["__type"] != "StateMachineAlreadyExists" {
		t.Fatalf("%d %v", status, out)
	}
	status, out = call(t, srv.URL, "GetExecutionHistory", `{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:m:x","nextToken":"zzz"}`)
	if status != 400 {
		t.Fatalf("%d %v", status, out)
	}
	// persisted atomically: one file per machine, no temporary files left
	files, _ := filepath.Glob(filepath.Join(dir, "statemachines", "*"))
	if len(files) != 1 || strings.Contains(filepath.Base(files[0]), ".tmp") {
		t.Fatalf("files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil || !json.Valid(b) {
		t.Fatalf("stored machine: %v %q", err, b)
	}
}
