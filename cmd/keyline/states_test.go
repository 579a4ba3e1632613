package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runStates(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errs bytes.Buffer
	code := cmdStates(context.Background(), args, &out, &errs)
	return code, out.String(), errs.String()
}

func statesTestFile(t *testing.T, name, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestStatesValidate(t *testing.T) {
	good := statesTestFile(t, "good.json", `{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}`)
	code, out, errs := runStates(t, "validate", "--definition", "file://"+good)
	if code != 0 || out != "" || errs != "" {
		t.Fatalf("valid: code %d out %q err %q", code, out, errs)
	}
	bad := statesTestFile(t, "bad.json", `{"StartAt":"X","States":{"P":{"Type":"Pass","Next":"Q"}}}`)
	code, out, errs = runStates(t, "validate", "--definition", "file://"+bad)
	if code != 2 || out != "" || !strings.Contains(errs, `state "X" does not exist`) || !strings.Contains(errs, `state "Q" does not exist`) {
		t.Fatalf("invalid: code %d out %q err %q", code, out, errs)
	}
	if code, _, _ := runStates(t, "validate", "--definition", "file://"+filepath.Join(t.TempDir(), "missing")); code != 2 {
		t.Fatalf("missing file: code %d", code)
	}
	if code, _, errs := runStates(t, "--help"); code != 0 || !strings.Contains(errs, "usage") {
		t.Fatalf("help: %d %q", code, errs)
	}
	if code, _, _ := runStates(t, "bogus"); code != 2 {
		t.Fatalf("unknown subcommand: %d", code)
	}
}

func TestStatesRun(t *testing.T) {
	def := statesTestFile(t, "def.json", `{"StartAt":"C","States":{
	  "C":{"Type":"Choice","Choices":[{"Variable":"$.n","NumericGreaterThan":1,"Next":"Big"}],"Default":"Small"},
	  "Big":{"Type":"Pass","Parameters":{"size":"big","n.$":"$.n"},"End":true},
	  "Small":{"Type":"Fail","Error":"TooSmall","Cause":"n must exceed 1"}}}`)
	code, out, errs := runStates(t, "run", "--definition", "file://"+def, "--input", `{"n":5}`)
	if code != 0 || errs != "" {
		t.Fatalf("code %d err %q", code, errs)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil || strings.Count(strings.TrimSpace(out), "\n") != 0 {
		t.Fatalf("not one JSON object: %q", out)
	}
	if got["status"] != "SUCCEEDED" || got["output"].(map[string]any)["size"] != "big" {
		t.Fatalf("got %v", got)
	}
	in := statesTestFile(t, "in.json", `{"n":0}`)
	code, out, _ = runStates(t, "run", "--definition", "file://"+def, "--input", "file://"+in)
	if code != 0 || strings.TrimSpace(out) != `{"cause":"n must exceed 1","error":"TooSmall","status":"FAILED"}` {
		t.Fatalf("code %d out %q", code, out)
	}
	task := statesTestFile(t, "task.json", `{"StartAt":"T","States":{"T":{"Type":"Task","Resource":"arn:aws:states:::lambda:invoke","End":true}}}`)
	code, out, _ = runStates(t, "run", "--definition", "file://"+task)
	if code != 0 || !strings.Contains(out, `"status":"FAILED"`) || !strings.Contains(out, "States.Runtime") {
		t.Fatalf("task: code %d out %q", code, out)
	}
	bad := statesTestFile(t, "bad.json", `{"StartAt":"P"}`)
	code, out, _ = runStates(t, "run", "--definition", "file://"+bad)
	if code != 2 || out != "" {
		t.Fatalf("invalid definition: code %d out %q", code, out)
	}
	if code, _, _ := runStates(t, "run", "--definition", "file://"+def, "--input", "{bad"); code != 2 {
		t.Fatalf("bad input: code %d", code)
	}
}
