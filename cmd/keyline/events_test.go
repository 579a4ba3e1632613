package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runEvents(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdEvents(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestEventsTestEventPattern(t *testing.T) {
	event := `{"id":"1","source":"aws.kms","detail-type":"AWS API Call via CloudTrail","account":"111122223333",
		"region":"us-east-1","time":"2026-01-01T00:00:00Z","resources":[],"detail":{"eventName":"DisableKey"}}`
	dir := t.TempDir()
	evFile := filepath.Join(dir, "event.json")
	if err := os.WriteFile(evFile, []byte(event), 0o600); err != nil {
		t.Fatal(err)
	}
	patFile := filepath.Join(dir, "pattern.json")
	if err := os.WriteFile(patFile, []byte(`{"detail":{"eventName":[{"prefix":"Disable"}]}}`), 0o600); err != nil {
		t.Fatal(err)
	}

	code, out, errs := runEvents(t, "test-event-pattern", "--event-pattern", `{"source":["aws.kms"]}`, "--event", event)
	if code != 0 || out != "{\"Result\": true}\n" || errs != "" {
		t.Fatalf("match: code %d out %q err %q", code, out, errs)
	}
	code, out, _ = runEvents(t, "test-event-pattern", "--event-pattern", `{"source":["aws.s3"]}`, "--event", event)
	if code != 0 || out != "{\"Result\": false}\n" {
		t.Fatalf("no match: code %d out %q", code, out)
	}
	code, out, _ = runEvents(t, "test-event-pattern", "--event-pattern", "file://"+patFile, "--event", "file://"+evFile)
	if code != 0 || out != "{\"Result\": true}\n" {
		t.Fatalf("files: code %d out %q", code, out)
	}
	code, out, errs = runEvents(t, "test-event-pattern", "--event-pattern", `{"source":"aws.kms"}`, "--event", event)
	if code != 2 || out != "" || errs != "InvalidEventPatternException: Event pattern is not valid. Reason: \"source\" must be an object or an array\n" {
		t.Fatalf("invalid: code %d out %q err %q", code, out, errs)
	}
	code, out, errs = runEvents(t, "test-event-pattern", "--event-pattern", `{"source":["x"]}`, "--event", `"plain"`)
	if code != 2 || out != "" || !strings.Contains(errs, "Parameter Event is not valid.") {
		t.Fatalf("bad event: code %d out %q err %q", code, out, errs)
	}
	code, out, errs = runEvents(t, "test-event-pattern", "--event-pattern", `{"source":["x"]}`, "--event", `{"source":"x"}`)
	if code != 2 || out != "" || !strings.Contains(errs, "Parameter Event is not valid.") {
		t.Fatalf("event without envelope fields: code %d out %q err %q", code, out, errs)
	}
	code, out, errs = runEvents(t, "test-event-pattern", "--event-pattern", "file://"+filepath.Join(dir, "missing"), "--event", event)
	if code != 2 || out != "" || errs == "" {
		t.Fatalf("missing file: code %d out %q err %q", code, out, errs)
	}
	code, out, _ = runEvents(t, "test-event-pattern", "--event", event)
	if code != 2 || out != "" {
		t.Fatalf("missing flag: code %d out %q", code, out)
	}
	for _, help := range [][]string{{"--help"}, {"test-event-pattern", "--help"}} {
		code, out, errs = runEvents(t, help...)
		if code != 0 || out != "" || !strings.Contains(errs, "test-event-pattern") {
			t.Fatalf("%v: code %d out %q err %q", help, code, out, errs)
		}
	}
	if code, _, _ = runEvents(t, "nope"); code != 2 {
		t.Fatalf("unknown subcommand: code %d", code)
	}
}
