package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/benchfmt"
)

func TestRunFormatsAndChecks(t *testing.T) {
	dir := t.TempDir()
	exp := filepath.Join(dir, "expected.txt")
	if err := os.WriteFile(exp, []byte("seal_MBps\nx_vs_y_ratio\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	notes := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notes, []byte("x_vs_y_ratio both sides upload 64 MiB\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := "BenchmarkSeal 1 5 ns/op 1234.5 seal_MBps\nBenchmarkXY 1 9 ns/op 1.5 x_vs_y_ratio 1.1 x_vs_y_ratio_spread\nPASS\n"
	var out strings.Builder
	if err := run([]string{"-expected", exp, "-notes", notes}, strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := "bench seal_MBps 1234.5 MB/s\nbench x_vs_y_ratio 1.5 ratio\n# x_vs_y_ratio: both sides upload 64 MiB\nbench x_vs_y_ratio_spread 1.1 ratio\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}

	// The same list with a figure the run lacks: an error, the lines still printed.
	out.Reset()
	err := run([]string{"-expected", exp}, strings.NewReader("BenchmarkSeal 1 5 ns/op 1234.5 seal_MBps\n"), &out)
	if !errors.Is(err, benchfmt.ErrFigures) || !strings.Contains(err.Error(), "x_vs_y_ratio was not reported") {
		t.Fatalf("want a missing-figure error, got %v", err)
	}
	if out.String() != "bench seal_MBps 1234.5 MB/s\n" {
		t.Fatalf("got %q", out.String())
	}
	// ... which -partial accepts.
	if err := run([]string{"-expected", exp, "-partial"}, strings.NewReader("BenchmarkSeal 1 5 ns/op 1234.5 seal_MBps\n"), &strings.Builder{}); err != nil {
		t.Fatalf("-partial: %v", err)
	}
	if err := run(nil, strings.NewReader(""), &strings.Builder{}); err == nil {
		t.Fatal("want an error without -expected")
	}
}
