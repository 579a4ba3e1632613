package benchfmt

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const goodRun = `goos: linux
pkg: github.com/keyline/keyline/internal/sealing
BenchmarkSeal256MiB 	       1	 123456 ns/op	  1234.5 seal_MBps	  12 B/op	 268.4 MB/s
BenchmarkOther-2 	       1	 99 ns/op
BenchmarkBackup 	       1	 5 ns/op	  2.5 backup_vs_s3_put_ratio	 1.2 backup_vs_s3_put_ratio_spread	 1 kms_calls_per_backup
BenchmarkBootstraps 	       1	 5 ns/op	  9.5 bootstrap_a_MiB	 30.1 bootstrap_b_MiB	 12 cold_start_a_ms	 20 cold_start_b_ms
BenchmarkRevoke 	       1	 5 ns/op	  12 notify_100000_apps_s
PASS
ok  	github.com/keyline/keyline/internal/sealing	1.2s
`

const goodList = `# figures
seal_MBps
backup_vs_s3_put_ratio   # its spread is implied
kms_calls_per_backup
bootstrap_a_MiB
bootstrap_b_MiB
cold_start_*_ms 2
notify_100000_apps_s
`

func check(t *testing.T, out, list string, partial bool) []string {
	t.Helper()
	run, err := Parse(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := ParseExpected(strings.NewReader(list))
	if err != nil {
		t.Fatal(err)
	}
	return Check(run, exp, partial)
}

func TestGoodRun(t *testing.T) {
	if p := check(t, goodRun, goodList, false); len(p) != 0 {
		t.Fatalf("problems in a good run: %q", p)
	}
	run, _ := Parse(strings.NewReader(goodRun))
	exp, _ := ParseExpected(strings.NewReader(goodList))
	var out strings.Builder
	if err := Format(&out, run, exp, false); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"bench seal_MBps 1234.5 MB/s\n", "bench backup_vs_s3_put_ratio 2.5 ratio\n",
		"bench backup_vs_s3_put_ratio_spread 1.2 ratio\n", "bench kms_calls_per_backup 1 calls\n",
		"bench cold_start_b_ms 20 ms\n", "bench notify_100000_apps_s 12 s\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "MB/s\nbench MB/s") || strings.Contains(out.String(), "B/op") {
		t.Errorf("standard columns printed as figures:\n%s", out.String())
	}
}

// Each broken variant of a good run must be caught, with a message naming what is wrong.
func TestBrokenRuns(t *testing.T) {
	for _, tc := range []struct {
		name, out, list string
		partial         bool
		want            string
	}{
		{name: "missing figure", out: strings.Replace(goodRun, "12 notify_100000_apps_s", "", 1), list: goodList,
			want: "expected figure notify_100000_apps_s was not reported"},
		{name: "expected figure not yet benchmarked", out: goodRun, list: goodList + "revoke_100000_apps_ms\n",
			want: "expected figure revoke_100000_apps_ms was not reported"},
		{name: "unlisted figure", out: goodRun + "BenchmarkNew 1 5 ns/op 3 iam_eval_us\n", list: goodList,
			want: "figure iam_eval_us (BenchmarkNew) is not in the list"},
		{name: "duplicate figure", out: goodRun + "BenchmarkStack 1 5 ns/op 2 kms_calls_per_backup\n", list: goodList,
			want: "kms_calls_per_backup is reported by BenchmarkBackup and by BenchmarkStack"},
		{name: "ratio without spread", out: strings.Replace(goodRun, "1.2 backup_vs_s3_put_ratio_spread", "", 1), list: goodList,
			want: "ratio backup_vs_s3_put_ratio is reported without backup_vs_s3_put_ratio_spread"},
		{name: "spread below one", out: strings.Replace(goodRun, "1.2 backup_vs_s3_put_ratio_spread", "0.5 backup_vs_s3_put_ratio_spread", 1), list: goodList,
			want: "a spread (max/min) is at least 1"},
		{name: "failed benchmark", out: goodRun + "--- FAIL: BenchmarkESDKSeal256MiB\n    esdk_test.go:12: Encrypt: boom\nFAIL\n", list: goodList,
			want: "--- FAIL: BenchmarkESDKSeal256MiB"},
		{name: "failed build", out: goodRun + "FAIL\tgithub.com/keyline/keyline/bench/esdk [build failed]\n", list: goodList,
			want: "FAIL\tgithub.com/keyline/keyline/bench/esdk [build failed]"},
		{name: "skipped benchmark", out: goodRun + "--- SKIP: BenchmarkX\n", list: goodList, want: "--- SKIP: BenchmarkX"},
		{name: "panic", out: goodRun + "panic: runtime error\n", list: goodList, want: "panic: runtime error"},
		{name: "unknown unit", out: goodRun + "BenchmarkY 1 5 ns/op 3 apps_per_key\n", list: goodList,
			want: "reports apps_per_key, whose unit is unknown"},
		{name: "bad value", out: goodRun + "BenchmarkY 1 5 ns/op NaNx y_ms\n", list: goodList, want: `y_ms = "NaNx", not a number`},
		{name: "pattern count", out: strings.Replace(goodRun, "20 cold_start_b_ms", "", 1), list: goodList,
			want: "expected 2 figures matching cold_start_*_ms, got 1"},
		{name: "pattern count in a partial run", out: goodRun + "BenchmarkZ 1 5 ns/op 3 cold_start_c_ms\n", list: goodList, partial: true,
			want: "expected 2 figures matching cold_start_*_ms, got 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := check(t, tc.out, tc.list, tc.partial)
			if !strings.Contains(strings.Join(p, "\n"), tc.want) {
				t.Fatalf("want a problem %q, got %q", tc.want, p)
			}
		})
	}
}

func TestPartialRun(t *testing.T) {
	if p := check(t, "BenchmarkSeal256MiB 1 5 ns/op 1234.5 seal_MBps\n", goodList, true); len(p) != 0 {
		t.Fatalf("a partial run: %q", p)
	}
}

func TestNotes(t *testing.T) {
	run, _ := Parse(strings.NewReader(goodRun))
	if err := run.ParseNotes(strings.NewReader("seal_MBps fixed key, no KMS\n\nnope_ms about nothing\nbroken\n")); err != nil {
		t.Fatal(err)
	}
	exp, _ := ParseExpected(strings.NewReader(goodList))
	var out strings.Builder
	err := Format(&out, run, exp, false)
	if !strings.Contains(out.String(), "bench seal_MBps 1234.5 MB/s\n# seal_MBps: fixed key, no KMS\nbench") {
		t.Fatalf("note not after its figure:\n%s", out.String())
	}
	if !errors.Is(err, ErrFigures) || !strings.Contains(err.Error(), "a note names nope_ms") || !strings.Contains(err.Error(), `malformed note "broken"`) {
		t.Fatalf("want errors for a note on an unknown figure and a malformed note, got %v", err)
	}
}

func TestParseExpectedRejects(t *testing.T) {
	for _, list := range []string{"a_ms\na_ms\n", "nounit\n", "x_ratio_spread\n", "cold_*_ms\n", "cold_*_ms 0\n", "a_ms 2\n", "cold_[_ms 1\n"} {
		if _, err := ParseExpected(strings.NewReader(list)); err == nil {
			t.Errorf("ParseExpected(%q): want an error", list)
		}
	}
}

// The repository's own list parses, and names no figure twice.
func TestRepositoryList(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "..", "bench", "expected.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	exp, err := ParseExpected(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Names) == 0 {
		t.Fatal("bench/expected.txt lists no figure")
	}
}

type metrics map[string]float64

func (m metrics) ReportMetric(v float64, unit string) { m[unit] = v }

func TestPairs(t *testing.T) {
	var order []string
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	num := func(_ context.Context, i int) (time.Duration, error) {
		order = append(order, "n")
		if i == WarmupPair {
			return ms(1000), nil // a cold first call: counted, it would move the median and the spread
		}
		return ms(20 + 10*i), nil
	}
	den := func(_ context.Context, i int) (time.Duration, error) { order = append(order, "d"); return ms(10), nil }
	r, err := Pairs(context.Background(), "x_vs_y_ratio", 1, num, den) // raised to MinPairs
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ""); got != "nd"+"ndd"+"nnd"+"dnn"+"d" { // the warm-up pair, then alternating order, 5 pairs
		t.Fatalf("order %s", got)
	}
	m := metrics{}
	if err := r.Report(m); err != nil {
		t.Fatal(err)
	}
	// ratios 2, 3, 4, 5, 6: median 4, spread 3.
	if m["x_vs_y_ratio"] != 4 || m["x_vs_y_ratio_spread"] != 3 {
		t.Fatalf("reported %v", m)
	}
	short := &Ratio{Name: "x_vs_y_ratio", Ratios: []float64{1, 2}}
	if err := short.Report(metrics{}); !errors.Is(err, ErrTooFewPairs) {
		t.Fatalf("two pairs: want ErrTooFewPairs, got %v", err)
	}
	if err := (&Ratio{Name: "x_vs_y", Ratios: []float64{1, 1, 1, 1, 1}}).Report(metrics{}); err == nil {
		t.Fatal("want an error for a ratio name without _ratio")
	}
	even := &Ratio{Ratios: []float64{4, 1, 3, 2}}
	if even.Median() != 2.5 || even.Spread() != 4 {
		t.Fatalf("median %v spread %v", even.Median(), even.Spread())
	}
	boom := errors.New("boom")
	if _, err := Pairs(context.Background(), "x_ratio", 5, num, func(context.Context, int) (time.Duration, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("want the side's error, got %v", err)
	}
	if _, err := Pairs(context.Background(), "x_ratio", 5, num, func(context.Context, int) (time.Duration, error) { return 0, nil }); err == nil {
		t.Fatal("want an error for a zero duration")
	}
}

type logs []string

func (l *logs) Logf(format string, args ...any) { *l = append(*l, format) }

func TestNote(t *testing.T) {
	var l logs
	t.Setenv(NotesEnv, "")
	if err := Note(&l, "seal_MBps", "a\n  b"); err != nil || len(l) != 1 {
		t.Fatalf("without %s a note is logged: %v %v", NotesEnv, l, err)
	}
	path := filepath.Join(t.TempDir(), "notes")
	t.Setenv(NotesEnv, path)
	if err := Note(&l, "seal_MBps", "fixed %s,\n no KMS", "key"); err != nil {
		t.Fatal(err)
	}
	if err := Note(&l, "open_MBps", "same"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "seal_MBps fixed key, no KMS\nopen_MBps same\n" {
		t.Fatalf("notes file: %q", b)
	}
}
