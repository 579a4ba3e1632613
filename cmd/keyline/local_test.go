package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestLocalUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := cmdLocal(context.Background(), []string{"--seed"}, &out, &errb); code != 2 || out.Len() != 0 {
		t.Fatalf("bad flags: exit %d, stdout %q", code, out.String())
	}
	errb.Reset()
	if code := cmdLocal(context.Background(), []string{"--help"}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "--console-addr") {
		t.Fatalf("--help: exit %d, stderr %q", code, errb.String())
	}
}
