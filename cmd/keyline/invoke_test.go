package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/local/stack"
	"github.com/keyline/keyline/internal/testenv"
)

// TestInvoke runs `keyline invoke` against a running local deployment.
func TestInvoke(t *testing.T) {
	st, err := stack.Start(context.Background(), stack.Options{
		DataDir: t.TempDir(), Addr: "127.0.0.1:0", ConsoleAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatalf("start the local deployment: %v", err)
	}
	t.Cleanup(st.Close)
	testInvoke(t, st)
}

// testInvoke runs `keyline invoke` against the running stack.
func testInvoke(t *testing.T, st *stack.Stack) {
	root := testenv.RepoRoot(t)
	ctx := context.Background()
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := cmdInvoke(ctx, args, &out, &errb)
		return code, out.String(), errb.String()
	}

	t.Setenv("AWS_ENDPOINT_URL", "")
	code, _, stderr := run("keyevent", "--event", filepath.Join(root, "events", "kms-disable-key.json"), "--data-dir", st.DataDir)
	if code != 1 || !strings.Contains(stderr, "AWS_ENDPOINT_URL") {
		t.Fatalf("without AWS_ENDPOINT_URL: exit %d, stderr %q", code, stderr)
	}

	t.Setenv("AWS_ENDPOINT_URL", st.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_PROFILE", "")
	ev := filepath.Join(root, "events", "kms-disable-key.json")
	code, stdout, stderr := run("keyevent", "--event", ev, "--data-dir", st.DataDir)
	if code != 0 {
		t.Fatalf("keyline invoke keyevent: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var res map[string]any
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("result is not JSON: %q", stdout)
	}
	var sample struct {
		Detail struct {
			EventID string `json:"eventID"`
		} `json:"detail"`
	}
	b, _ := os.ReadFile(ev)
	_ = json.Unmarshal(b, &sample)
	if res["eventId"] != sample.Detail.EventID || res["eventName"] != "DisableKey" || res["outcome"] != "refused" {
		t.Fatalf("result %v does not describe the sample event %s", res, sample.Detail.EventID)
	}
	// The sample's account (111122223333) is enrolled by no org of this fresh stack, so the
	// handler, reading the stack's table, refuses the event (B10) and says why.
	if !strings.Contains(fmt.Sprint(res["reason"]), "enrolled") {
		t.Fatalf("refusal %v does not name the missing enrolment", res)
	}
	// Refusing changes nothing: the same event again gets the same answer.
	code, stdout, stderr = run("keyevent", "--event", ev, "--data-dir", st.DataDir)
	if code != 0 || !strings.Contains(stdout, `"outcome":"refused"`) {
		t.Fatalf("second invoke of the same event: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// A function error: its type and message on stdout, exit 1.
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"source":"aws.kms","detail":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = run("keyevent", "--event", bad, "--data-dir", st.DataDir)
	var fe struct {
		Type    string `json:"errorType"`
		Message string `json:"errorMessage"`
	}
	if code != 1 || json.Unmarshal([]byte(stdout), &fe) != nil || fe.Type == "" || fe.Message == "" {
		t.Fatalf("malformed event: exit %d, stdout %q", code, stdout)
	}

	// Unknown function and missing flags are usage errors.
	if code, _, _ := run("nosuchfunction", "--event", ev, "--data-dir", st.DataDir); code != 2 {
		t.Fatalf("unknown function: exit %d, want 2", code)
	}
	if code, _, _ := run("keyevent"); code != 2 {
		t.Fatalf("no --event: exit %d, want 2", code)
	}
}
