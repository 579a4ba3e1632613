package benchfmt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// MinPairs is the fewest alternating pairs a ratio figure is the median of.
const MinPairs = 5

// ErrTooFewPairs is returned by Ratio.Report when a ratio has fewer than MinPairs pairs.
var ErrTooFewPairs = errors.New("benchfmt: too few pairs for a ratio")

// Reporter is what a ratio is reported to: *testing.B.
type Reporter interface {
	ReportMetric(n float64, unit string)
}

// Ratio is a ratio figure measured as pairs: each pair times both sides one after the other
// in the same run, and the figure is the median of the pairs' ratios, with the spread of those
// ratios (max/min) beside it as <name>_spread.
type Ratio struct {
	Name   string
	Ratios []float64
}

// Median returns the median of the pairs' ratios (the mean of the middle two for an even count).
func (r *Ratio) Median() float64 {
	s := slices.Clone(r.Ratios)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Spread returns the largest pair ratio over the smallest.
func (r *Ratio) Spread() float64 {
	if len(r.Ratios) == 0 {
		return 0
	}
	return slices.Max(r.Ratios) / slices.Min(r.Ratios)
}

// Report reports the median as the figure and the spread as <name>_spread; with fewer than
// MinPairs pairs it reports nothing and returns an error wrapping ErrTooFewPairs.
func (r *Ratio) Report(b Reporter) error {
	if !strings.HasSuffix(r.Name, "_ratio") {
		return fmt.Errorf("benchfmt: ratio figure %q must end in _ratio", r.Name)
	}
	if len(r.Ratios) < MinPairs {
		return fmt.Errorf("%w: %s has %d, want at least %d", ErrTooFewPairs, r.Name, len(r.Ratios), MinPairs)
	}
	b.ReportMetric(r.Median(), r.Name)
	b.ReportMetric(r.Spread(), r.Name+SpreadSuffix)
	return nil
}

// Side is one side of a pair: it does the work once and returns how long the part that
// counts took (setup and checks may run outside the returned duration).
type Side func(ctx context.Context, pair int) (time.Duration, error)

// WarmupPair is the pair index a side is called with for the warm-up pair.
const WarmupPair = -1

// Pairs measures the ratio num/den over n pairs (n is raised to MinPairs): pair i runs num
// then den when i is even, den then num when it is odd, so that a drift of the machine (a
// warming cache, another process starting) weighs on both sides alike. A warm-up pair
// (index WarmupPair, num then den) runs first and is not counted: first calls meet cold
// connections, caches and heaps that no later pair sees. Either side's error, in the
// warm-up too, ends the measurement.
func Pairs(ctx context.Context, name string, n int, num, den Side) (*Ratio, error) {
	n = max(n, MinPairs)
	r := &Ratio{Name: name}
	// Each side starts on a collected heap: the garbage one side leaves is not collected
	// on the other side's time.
	num, den = collected(num), collected(den)
	if _, err := num(ctx, WarmupPair); err != nil {
		return nil, fmt.Errorf("%s, warm-up pair: %w", name, err)
	}
	if _, err := den(ctx, WarmupPair); err != nil {
		return nil, fmt.Errorf("%s, warm-up pair: %w", name, err)
	}
	for i := range n {
		var a, b time.Duration
		var err error
		if i%2 == 0 {
			if a, err = num(ctx, i); err == nil {
				b, err = den(ctx, i)
			}
		} else {
			if b, err = den(ctx, i); err == nil {
				a, err = num(ctx, i)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s, pair %d: %w", name, i, err)
		}
		if a <= 0 || b <= 0 {
			return nil, fmt.Errorf("%s, pair %d: durations %v and %v, want both positive", name, i, a, b)
		}
		r.Ratios = append(r.Ratios, float64(a)/float64(b))
	}
	return r, nil
}

// NotesEnv names the file Note appends to; `make bench` sets it and prints each note after
// its figure. (Not standard output: a benchmark's output there can land inside the result
// line `go test` prints, and its logs are cut after ten lines.)
const NotesEnv = "KEYLINE_BENCH_NOTES"

// Logger is where Note goes when NotesEnv is not set: *testing.B.
type Logger interface {
	Logf(format string, args ...any)
}

// Note records a note on a figure, for `make bench` to print after it: what the two sides of
// a ratio do differently, or which function a cold-start figure measured. Each note is one
// line `<figure> <text>` appended to the file NotesEnv names, or logged to b without it.
func Note(b Logger, figure, format string, args ...any) error {
	text := strings.Join(strings.Fields(fmt.Sprintf(format, args...)), " ")
	path := os.Getenv(NotesEnv)
	if path == "" {
		b.Logf("%s: %s", figure, text)
		return nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("benchfmt: note on %s: %w", figure, err)
	}
	if _, err := fmt.Fprintf(f, "%s %s\n", figure, text); err != nil {
		_ = f.Close()
		return fmt.Errorf("benchfmt: note on %s: %w", figure, err)
	}
	return f.Close()
}

// collected is side run after a garbage collection, outside the duration it returns.
func collected(side Side) Side {
	return func(ctx context.Context, pair int) (time.Duration, error) {
		runtime.GC()
		return side(ctx, pair)
	}
}
