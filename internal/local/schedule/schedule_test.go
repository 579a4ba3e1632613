package schedule

import (
	"errors"
	"testing"
	"time"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := LoadTimezone(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func mustParse(t *testing.T, expr string) Schedule {
	t.Helper()
	s, err := Parse(expr)
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	return s
}

// next returns the first n firings after from.
func next(s Schedule, from time.Time, loc *time.Location, n int) []time.Time {
	var out []time.Time
	t := from
	for i := 0; i < n; i++ {
		t = s.Next(t, loc)
		if t.IsZero() {
			break
		}
		out = append(out, t)
	}
	return out
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// AWS documentation examples (EventBridge "Schedule expressions for rules").
func TestCronAWSExamples(t *testing.T) {
	// 2026-01-01 is a Thursday.
	from := utc("2026-01-01T00:00:00Z")
	cases := []struct {
		expr string
		want []string
	}{
		{"cron(0 10 * * ? *)", []string{"2026-01-01T10:00:00Z", "2026-01-02T10:00:00Z"}},
		{"cron(15 12 * * ? *)", []string{"2026-01-01T12:15:00Z", "2026-01-02T12:15:00Z"}},
		{"cron(0 18 ? * MON-FRI *)", []string{"2026-01-01T18:00:00Z", "2026-01-02T18:00:00Z", "2026-01-05T18:00:00Z"}},
		{"cron(0 8 1 * ? *)", []string{"2026-01-01T08:00:00Z", "2026-02-01T08:00:00Z"}},
		{"cron(0/15 * * * ? *)", []string{"2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z", "2026-01-01T00:45:00Z"}},
		{"cron(0/10 * ? * MON-FRI *)", []string{"2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z"}},
		{"cron(0/5 8-17 ? * MON-FRI *)", []string{"2026-01-01T08:00:00Z", "2026-01-01T08:05:00Z"}},
		{"cron(0 9 ? * 2#1 *)", []string{"2026-01-05T09:00:00Z", "2026-02-02T09:00:00Z"}}, // first Monday
		// weekdays count 1=SUN…7=SAT
		{"cron(0 12 ? * 1 *)", []string{"2026-01-04T12:00:00Z", "2026-01-11T12:00:00Z"}}, // Sunday
		{"cron(0 12 ? * 7 *)", []string{"2026-01-03T12:00:00Z"}},                         // Saturday
		{"cron(0 12 ? * 2-3 *)", []string{"2026-01-05T12:00:00Z", "2026-01-06T12:00:00Z", "2026-01-12T12:00:00Z"}},
		{"cron(0 12 ? * 1,7 *)", []string{"2026-01-03T12:00:00Z", "2026-01-04T12:00:00Z"}},
		{"cron(0 12 ? * SUN,SAT *)", []string{"2026-01-03T12:00:00Z", "2026-01-04T12:00:00Z"}},
		{"cron(0 0 ? * 6L *)", []string{"2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"}}, // last Friday
		{"cron(0 0 ? * L *)", []string{"2026-01-03T00:00:00Z"}},                          // Saturday
		{"cron(0 0 L * ? *)", []string{"2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z"}},
		{"cron(0 0 LW * ? *)", []string{"2026-01-30T00:00:00Z", "2026-02-27T00:00:00Z"}},
		{"cron(0 0 3W * ? *)", []string{"2026-01-02T00:00:00Z", "2026-02-03T00:00:00Z"}}, // Jan 3 is a Saturday
		{"cron(30 6 1 JAN,JUL ? 2026-2027)", []string{"2026-01-01T06:30:00Z", "2026-07-01T06:30:00Z", "2027-01-01T06:30:00Z"}},
	}
	for _, c := range cases {
		s := mustParse(t, c.expr)
		got := next(s, from, time.UTC, len(c.want))
		if len(got) != len(c.want) {
			t.Errorf("%s: got %v, want %v", c.expr, got, c.want)
			continue
		}
		for i := range got {
			if !got[i].Equal(utc(c.want[i])) {
				t.Errorf("%s: firing %d = %s, want %s", c.expr, i, got[i].Format(time.RFC3339), c.want[i])
			}
		}
	}
}

func TestCronStrictlyAfterAndEnds(t *testing.T) {
	s := mustParse(t, "cron(0 0 1 1 ? 2026)")
	if n := s.Next(utc("2026-01-01T00:00:00Z"), nil); !n.IsZero() {
		t.Fatalf("fired again at %s after its only firing", n)
	}
	if n := s.Next(utc("2025-12-31T23:59:30Z"), nil); !n.Equal(utc("2026-01-01T00:00:00Z")) {
		t.Fatalf("got %s", n)
	}
}

func TestCronTimezone(t *testing.T) {
	berlin := mustLoc(t, "Europe/Berlin")
	s := mustParse(t, "cron(0 9 * * ? *)")
	got := s.Next(utc("2026-01-10T00:00:00Z"), berlin)
	if !got.Equal(utc("2026-01-10T08:00:00Z")) { // CET = UTC+1
		t.Fatalf("winter: %s", got.UTC())
	}
	got = s.Next(utc("2026-07-10T00:00:00Z"), berlin)
	if !got.Equal(utc("2026-07-10T07:00:00Z")) { // CEST = UTC+2
		t.Fatalf("summer: %s", got.UTC())
	}
}

func TestCronDST(t *testing.T) {
	ny := mustLoc(t, "America/New_York")
	// Spring forward: 2026-03-08 02:00 EST becomes 03:00 EDT. 02:30 does not
	// exist that day, so it does not fire (EventBridge Scheduler skips it).
	s := mustParse(t, "cron(30 2 * * ? *)")
	got := next(s, time.Date(2026, 3, 7, 12, 0, 0, 0, ny), ny, 2)
	want := []time.Time{time.Date(2026, 3, 9, 2, 30, 0, 0, ny)}
	if len(got) < 1 || !got[0].Equal(want[0]) {
		t.Fatalf("spring forward: got %v, want %v", got, want)
	}
	// An hourly schedule passes from 01:00 EST to 03:00 EDT: one real hour.
	h := mustParse(t, "cron(0 * * * ? *)")
	got = next(h, time.Date(2026, 3, 8, 0, 30, 0, 0, ny), ny, 3)
	if len(got) != 3 || got[1].Sub(got[0]) != time.Hour || got[1].Hour() != 3 {
		t.Fatalf("hourly over spring forward: %v", got)
	}
	// Fall back: 2026-11-01 01:30 happens twice (EDT, then EST); it fires once.
	got = next(mustParse(t, "cron(30 1 * * ? *)"), time.Date(2026, 10, 31, 12, 0, 0, 0, ny), ny, 3)
	if len(got) != 3 {
		t.Fatalf("fall back: %v", got)
	}
	if got[0].Day() != 1 || got[1].Day() != 2 {
		t.Fatalf("fall back fired twice or skipped: %v", got)
	}
	if _, off := got[0].Zone(); off != -4*3600 {
		t.Fatalf("first 01:30 should be EDT, got %v", got[0])
	}
}

func TestRate(t *testing.T) {
	cases := map[string]time.Duration{
		"rate(1 minute)":    time.Minute,
		"rate(5 minutes)":   5 * time.Minute,
		"rate(1 hour)":      time.Hour,
		"rate(12 hours)":    12 * time.Hour,
		"rate(1 day)":       24 * time.Hour,
		"rate(7 days)":      7 * 24 * time.Hour,
		" rate( 2 hours ) ": 2 * time.Hour,
	}
	from := utc("2026-03-07T12:00:00Z")
	for e, d := range cases {
		s := mustParse(t, e)
		if got := s.Next(from, nil); got.Sub(from) != d {
			t.Errorf("%s: next after %s = %s", e, from, got)
		}
	}
	// A day is 24 hours also across a DST change.
	ny := mustLoc(t, "America/New_York")
	d := mustParse(t, "rate(1 day)")
	start := time.Date(2026, 3, 7, 9, 0, 0, 0, ny)
	if got := d.Next(start, ny); got.Sub(start) != 24*time.Hour || got.In(ny).Hour() != 10 {
		t.Fatalf("rate over DST: %s", got.In(ny))
	}
}

func TestAt(t *testing.T) {
	tokyo := mustLoc(t, "Asia/Tokyo")
	s := mustParse(t, "at(2026-05-01T09:30:00)")
	if got := s.Next(utc("2026-01-01T00:00:00Z"), tokyo); !got.Equal(utc("2026-05-01T00:30:00Z")) {
		t.Fatalf("got %s", got.UTC())
	}
	if got := s.Next(utc("2026-05-01T00:30:00Z"), tokyo); !got.IsZero() {
		t.Fatalf("fired twice: %s", got)
	}
	if got := s.Next(utc("2026-01-01T00:00:00Z"), nil); !got.Equal(utc("2026-05-01T09:30:00Z")) {
		t.Fatalf("UTC: %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	bad := []string{
		"", "cron", "cron()", "every(5 minutes)",
		"cron(0 10 * * *)",       // five fields
		"cron(0 10 * * ? * *)",   // seven fields
		"cron(0 10 * * * *)",     // neither is ?
		"cron(0 10 ? * ? *)",     // both are ?
		"cron(60 10 * * ? *)",    // minute out of range
		"cron(0 24 * * ? *)",     // hour out of range
		"cron(0 10 32 * ? *)",    // day out of range
		"cron(0 10 0 * ? *)",     // day out of range
		"cron(0 10 * 13 ? *)",    // month out of range
		"cron(0 10 ? * 8 *)",     // weekday out of range
		"cron(0 10 ? * 0 *)",     // weekday 0 is not AWS's
		"cron(0 10 ? * 2#6 *)",   // week out of range
		"cron(0 10 * * ? 1969)",  // year out of range
		"cron(0 10 ? * MON/2 *)", // no steps in day-of-week
		"cron(0 10 * * ? */0)",   // zero step
		"cron(0 10 5-1 * ? *)",   // backwards range
		"cron(0 ? * * ? *)",      // ? in hours
		"cron(0 10 * FOO ? *)",   // bad name
		"cron(0 10 L,3 * ? *)",   // L in a list
		"cron(a 10 * * ? *)",
		"rate(0 minutes)", "rate(-1 minutes)", "rate(1 minutes)", "rate(5 minute)",
		"rate(5 seconds)", "rate(5)", "rate(five minutes)", "rate(1.5 hours)",
		"at(2026-05-01)", "at(2026-13-01T00:00:00)", "at(2026-05-01 09:30:00)",
	}
	for _, e := range bad {
		if _, err := Parse(e); !errors.Is(err, ErrInvalidExpression) {
			t.Errorf("Parse(%q) = %v, want ErrInvalidExpression", e, err)
		}
	}
}

func TestLoadTimezone(t *testing.T) {
	if _, err := LoadTimezone("Mars/Olympus"); !errors.Is(err, ErrInvalidTimezone) {
		t.Fatalf("got %v", err)
	}
	if loc, err := LoadTimezone(""); err != nil || loc != time.UTC {
		t.Fatalf("empty: %v %v", loc, err)
	}
}

func TestCronConcurrent(t *testing.T) {
	s := mustParse(t, "cron(0 0 L * ? *)")
	done := make(chan time.Time)
	for i := 0; i < 4; i++ {
		go func(m int) {
			done <- s.Next(time.Date(2026, time.Month(1+m), 1, 0, 0, 0, 0, time.UTC), nil)
		}(i)
	}
	for i := 0; i < 4; i++ {
		if got := <-done; got.Day() < 28 {
			t.Errorf("got %s", got)
		}
	}
}
