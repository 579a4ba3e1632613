package main

import (
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	in := `goos: linux
BenchmarkSeal256MiB 	       1	 123456 ns/op	  1234.5 seal_MBps	  12 B/op
BenchmarkOther-2 	       1	 99 ns/op
BenchmarkRevoke 	       1	 5 ns/op	  870 revoke_100_apps_ms	 1.25 revoke_10000_vs_floor_ratio
PASS
`
	var out strings.Builder
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	want := "bench seal_MBps 1234.5 MB/s\nbench revoke_100_apps_ms 870 ms\nbench revoke_10000_vs_floor_ratio 1.25 ratio\n"
	if out.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRunRejectsBadValue(t *testing.T) {
	if err := run(strings.NewReader("BenchmarkX 1 abc seal_MBps\n"), &strings.Builder{}); err == nil {
		t.Fatal("want an error for a non-numeric value")
	}
}
