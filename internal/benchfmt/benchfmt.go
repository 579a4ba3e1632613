// Package benchfmt defines keyline's benchmark figures: how a benchmark reports one
// (b.ReportMetric with the figure's name as the unit, its unit taken from the name's
// suffix), how a ratio is measured (the median of at least MinPairs alternating pairs, with
// its spread), and how `make bench` turns `go test -bench` output into figure lines,
//
//	bench <name> <value> <unit>
//
// checked against the list of expected figures (bench/expected.txt): a missing, unexpected
// or duplicated figure, a failed or skipped benchmark, a ratio without its spread or a
// metric whose unit is unknown is an error, never a line left out.
package benchfmt

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
)

// SpreadSuffix ends the name of a ratio's spread: <ratio>_spread is max/min of its pairs.
const SpreadSuffix = "_spread"

// suffixes maps a figure name's ending to the unit printed after its value (first match wins).
var suffixes = []struct{ suffix, unit string }{
	{SpreadSuffix, "ratio"}, {"_ratio", "ratio"},
	{"_MBps", "MB/s"}, {"_per_s", "1/s"}, {"_ms", "ms"}, {"_us", "us"}, {"_ns", "ns"}, {"_s", "s"},
	{"_MiB", "MiB"}, {"_per_backup", "calls"}, {"_count", "count"},
}

// standardUnits are the columns `go test -bench` prints by itself; they are not figures.
var standardUnits = map[string]bool{"ns/op": true, "B/op": true, "allocs/op": true, "MB/s": true}

// UnitFor returns the unit of a figure name, and false if the name is not a figure.
func UnitFor(name string) (string, bool) {
	for _, s := range suffixes {
		if strings.HasSuffix(name, s.suffix) && len(name) > len(s.suffix) {
			return s.unit, true
		}
	}
	return "", false
}

// Figure is one measured value.
type Figure struct {
	Name      string
	Value     float64
	Unit      string
	Benchmark string // the benchmark that reported it
}

// Line is the figure as `make bench` prints it.
func (f Figure) Line() string {
	return fmt.Sprintf("bench %s %s %s", f.Name, strconv.FormatFloat(f.Value, 'f', -1, 64), f.Unit)
}

// Run is what one `go test -bench` output holds.
type Run struct {
	Figures []Figure
	Notes   map[string][]string // figure name → what its sides do differently
	// Problems are failures found in the output: failed, skipped or panicking benchmarks
	// and packages, metrics with an unknown unit, malformed values, duplicate figures.
	Problems []string
}

// Parse reads `go test -bench` output (any number of packages and modules).
func Parse(r io.Reader) (*Run, error) {
	run := &Run{Notes: map[string][]string{}}
	seen := map[string]string{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "--- FAIL"), strings.HasPrefix(trimmed, "--- SKIP"),
			strings.HasPrefix(line, "FAIL"), strings.HasPrefix(line, "panic:"):
			run.Problems = append(run.Problems, trimmed)
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // a benchmark's name printed alone (its logs follow), not a result line
		}
		// Benchmark-N  iterations  value unit  value unit ...
		for i := 2; i+1 < len(f); i += 2 {
			name := f[i+1]
			if standardUnits[name] {
				continue
			}
			unit, ok := UnitFor(name)
			if !ok {
				run.Problems = append(run.Problems, fmt.Sprintf("%s reports %s, whose unit is unknown (name it with one of the suffixes of benchfmt.UnitFor)", f[0], name))
				continue
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				run.Problems = append(run.Problems, fmt.Sprintf("%s reports %s = %q, not a number", f[0], name, f[i]))
				continue
			}
			if prev, dup := seen[name]; dup {
				run.Problems = append(run.Problems, fmt.Sprintf("figure %s is reported by %s and by %s: every figure needs its own name", name, prev, f[0]))
				continue
			}
			seen[name] = f[0]
			run.Figures = append(run.Figures, Figure{Name: name, Value: v, Unit: unit, Benchmark: f[0]})
		}
	}
	return run, sc.Err()
}

// ParseNotes adds the notes of a notes file (see Note) to run.
func (run *Run) ParseNotes(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		name, text, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.TrimSpace(text) == "" {
			run.Problems = append(run.Problems, fmt.Sprintf("malformed note %q", sc.Text()))
			continue
		}
		run.Notes[name] = append(run.Notes[name], strings.TrimSpace(text))
	}
	return sc.Err()
}

// Expected is the list of figures `make bench` must print, one entry a line of
// bench/expected.txt: a figure name, or a pattern (path.Match syntax) followed by the exact
// number of figures it must match, for figures whose name is a measured outcome (e.g.
// `cold_start_*_ms 2`, the largest and the smallest bootstrap). A ratio's spread is implied
// by the ratio. Blank lines and lines from # on are ignored.
type Expected struct {
	Names    []string
	Patterns []Pattern
}

// Pattern is an expected-figure pattern with the number of figures it matches.
type Pattern struct {
	Glob  string
	Count int
}

// ParseExpected reads an expected-figures list.
func ParseExpected(r io.Reader) (*Expected, error) {
	e := &Expected{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if seen[f[0]] {
			return nil, fmt.Errorf("line %d: %s is listed twice", n, f[0])
		}
		seen[f[0]] = true
		if _, ok := UnitFor(f[0]); !ok {
			return nil, fmt.Errorf("line %d: %s has no known unit suffix", n, f[0])
		}
		if strings.HasSuffix(f[0], SpreadSuffix) {
			return nil, fmt.Errorf("line %d: %s: a spread is implied by its ratio, list the ratio", n, f[0])
		}
		isGlob := strings.ContainsAny(f[0], "*?[")
		switch {
		case isGlob && len(f) == 2:
			c, err := strconv.Atoi(f[1])
			if err != nil || c < 1 {
				return nil, fmt.Errorf("line %d: %s: want a count of at least 1, got %q", n, f[0], f[1])
			}
			if _, err := path.Match(f[0], ""); err != nil {
				return nil, fmt.Errorf("line %d: %s: %w", n, f[0], err)
			}
			e.Patterns = append(e.Patterns, Pattern{Glob: f[0], Count: c})
		case !isGlob && len(f) == 1:
			e.Names = append(e.Names, f[0])
		default:
			return nil, fmt.Errorf("line %d: want a figure name, or a pattern and a count: %q", n, sc.Text())
		}
	}
	return e, sc.Err()
}

// Check compares a run with the expected figures and returns every problem: those found
// while parsing, expected figures that are missing (unless partial, for a run of a subset
// of the benchmarks), figures nobody listed, ratios without a spread or a spread below 1,
// and notes about figures that were not reported.
func Check(run *Run, exp *Expected, partial bool) []string {
	problems := slices.Clone(run.Problems)
	have := map[string]Figure{}
	for _, f := range run.Figures {
		have[f.Name] = f
	}
	listed := map[string]bool{}
	for _, n := range exp.Names {
		listed[n] = true
		if _, ok := have[n]; !ok && !partial {
			problems = append(problems, fmt.Sprintf("expected figure %s was not reported (its benchmark is missing or did not report it)", n))
		}
	}
	for _, p := range exp.Patterns {
		var got []string
		for _, f := range run.Figures {
			if ok, _ := path.Match(p.Glob, f.Name); ok && !listed[f.Name] {
				got = append(got, f.Name)
			}
		}
		for _, g := range got {
			listed[g] = true
		}
		if len(got) != p.Count && (!partial || len(got) > p.Count) {
			problems = append(problems, fmt.Sprintf("expected %d figures matching %s, got %d %v", p.Count, p.Glob, len(got), got))
		}
	}
	for _, f := range run.Figures {
		base, isSpread := strings.CutSuffix(f.Name, SpreadSuffix)
		switch {
		case isSpread:
			if _, ok := have[base]; !ok || !strings.HasSuffix(base, "_ratio") {
				problems = append(problems, fmt.Sprintf("%s is reported without its ratio %s", f.Name, base))
			}
			if f.Value < 1 {
				problems = append(problems, fmt.Sprintf("%s = %v: a spread (max/min) is at least 1", f.Name, f.Value))
			}
			continue
		case f.Unit == "ratio":
			if _, ok := have[f.Name+SpreadSuffix]; !ok {
				problems = append(problems, fmt.Sprintf("ratio %s is reported without %s%s: measure it with benchfmt.Pairs (the median of at least %d alternating pairs)", f.Name, f.Name, SpreadSuffix, MinPairs))
			}
		}
		if !listed[f.Name] {
			problems = append(problems, fmt.Sprintf("figure %s (%s) is not in the list of expected figures: add it to bench/expected.txt", f.Name, f.Benchmark))
		}
	}
	for name := range run.Notes {
		if _, ok := have[name]; !ok {
			problems = append(problems, fmt.Sprintf("a note names %s, which no benchmark reported", name))
		}
	}
	slices.Sort(problems[len(run.Problems):])
	return problems
}

// ErrFigures is wrapped by Format's error when the run has problems.
var ErrFigures = errors.New("benchmark figures are incomplete or wrong")

// Format writes the figure lines of run (each followed by its notes, `# <name>: <text>`),
// and returns an error wrapping ErrFigures that lists every problem Check finds; the lines
// are written either way, so a failing run still shows what it measured.
func Format(w io.Writer, run *Run, exp *Expected, partial bool) error {
	for _, f := range run.Figures {
		if _, err := fmt.Fprintln(w, f.Line()); err != nil {
			return err
		}
		for _, n := range run.Notes[f.Name] {
			if _, err := fmt.Fprintf(w, "# %s: %s\n", f.Name, n); err != nil {
				return err
			}
		}
	}
	if p := Check(run, exp, partial); len(p) > 0 {
		return fmt.Errorf("%w:\n  %s", ErrFigures, strings.Join(p, "\n  "))
	}
	return nil
}
