// Package schedule parses EventBridge and EventBridge Scheduler schedule
// expressions — cron(...), rate(...) and at(...) — and computes when they fire,
// in any time zone.
//
// AWS cron expressions have six fields (minutes hours day-of-month month
// day-of-week year), exactly one of day-of-month and day-of-week is `?`, and
// weekdays count 1=SUN…7=SAT. They are checked here and then evaluated by
// github.com/hashicorp/cronexpr, whose weekdays count 0=SUN…6=SAT.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // time zones work even where the OS has no zoneinfo

	"github.com/hashicorp/cronexpr"
)

// ErrInvalidExpression is wrapped by every error for a bad schedule expression.
var ErrInvalidExpression = errors.New("invalid schedule expression")

// ErrInvalidTimezone is wrapped by LoadTimezone's errors.
var ErrInvalidTimezone = errors.New("invalid schedule time zone")

// Schedule is a parsed schedule expression.
type Schedule interface {
	// Next returns the first firing strictly after `after`, with the
	// expression's wall-clock fields read in loc (nil means UTC). It returns
	// the zero time when the schedule never fires again.
	Next(after time.Time, loc *time.Location) time.Time
	// String returns the expression as it was given.
	String() string
}

// Parse parses cron(...), rate(...) or at(...).
func Parse(expr string) (Schedule, error) {
	e := strings.TrimSpace(expr)
	open := strings.IndexByte(e, '(')
	if open < 0 || !strings.HasSuffix(e, ")") {
		return nil, invalidf(expr, "want cron(...), rate(...) or at(...)")
	}
	kind, body := e[:open], strings.TrimSpace(e[open+1:len(e)-1])
	switch kind {
	case "cron":
		return parseCron(expr, body)
	case "rate":
		return parseRate(expr, body)
	case "at":
		return parseAt(expr, body)
	}
	return nil, invalidf(expr, "unknown expression type %q: want cron, rate or at", kind)
}

// LoadTimezone resolves an IANA time zone name as Scheduler's
// ScheduleExpressionTimezone does; the empty name is UTC.
func LoadTimezone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "Local" {
		return nil, fmt.Errorf("%w: %q", ErrInvalidTimezone, name)
	}
	return loc, nil
}

func invalidf(expr, format string, args ...any) error {
	return fmt.Errorf("%w %q: %s", ErrInvalidExpression, expr, fmt.Sprintf(format, args...))
}

// Rate fires every Every, counted from the previous firing.
type Rate struct {
	Every time.Duration
	text  string
}

// Next returns after+Every: rates are fixed durations (a "day" is 24 hours,
// also across daylight-saving changes, as in EventBridge Scheduler).
func (r *Rate) Next(after time.Time, _ *time.Location) time.Time { return after.Add(r.Every) }

func (r *Rate) String() string { return r.text }

func parseRate(expr, body string) (Schedule, error) {
	fields := strings.Fields(body)
	if len(fields) != 2 {
		return nil, invalidf(expr, "rate needs a value and a unit, as in rate(5 minutes)")
	}
	n, err := strconv.Atoi(fields[0])
	if err != nil || n <= 0 || fields[0][0] == '+' {
		return nil, invalidf(expr, "rate value %q must be a positive whole number", fields[0])
	}
	units := map[string]time.Duration{"minute": time.Minute, "hour": time.Hour, "day": 24 * time.Hour}
	unit := fields[1]
	singular := strings.TrimSuffix(unit, "s")
	d, ok := units[singular]
	if !ok {
		return nil, invalidf(expr, "rate unit %q must be minute(s), hour(s) or day(s)", unit)
	}
	if n == 1 && unit != singular {
		return nil, invalidf(expr, "a rate of 1 takes the singular unit %q", singular)
	}
	if n > 1 && unit == singular {
		return nil, invalidf(expr, "a rate of %d takes the plural unit %q", n, singular+"s")
	}
	return &Rate{Every: time.Duration(n) * d, text: expr}, nil
}

// At fires once, at a wall-clock time in the schedule's time zone.
type At struct {
	year, day, hour, min, sec int
	month                     time.Month
	text                      string
}

// Next returns the one firing if it is after `after`, else the zero time.
func (a *At) Next(after time.Time, loc *time.Location) time.Time {
	t := a.Time(loc)
	if t.After(after) {
		return t
	}
	return time.Time{}
}

// Time returns the firing time in loc (nil means UTC).
func (a *At) Time(loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	return time.Date(a.year, a.month, a.day, a.hour, a.min, a.sec, 0, loc)
}

func (a *At) String() string { return a.text }

func parseAt(expr, body string) (Schedule, error) {
	t, err := time.Parse("2006-01-02T15:04:05", body)
	if err != nil {
		return nil, invalidf(expr, "at() takes yyyy-mm-ddThh:mm:ss")
	}
	return &At{year: t.Year(), month: t.Month(), day: t.Day(), hour: t.Hour(), min: t.Minute(), sec: t.Second(), text: expr}, nil
}

// Cron fires at the times an AWS cron expression names.
type Cron struct {
	text string
	mu   sync.Mutex // cronexpr.Expression.Next writes into the expression
	expr *cronexpr.Expression
}

func (c *Cron) String() string { return c.text }

// Next returns the next matching minute after `after`, reading the fields in
// loc. As in EventBridge Scheduler, a time that a daylight-saving change skips
// does not fire, and a wall-clock time that repeats when clocks go back fires
// once.
func (c *Cron) Next(after time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	from := after.In(loc)
	prevWall := wallClock(from)
	t := from
	for i := 0; i < 4; i++ {
		n := c.expr.Next(t)
		if n.IsZero() {
			return n
		}
		if wallClock(n) > prevWall {
			return n
		}
		t = n // the same wall time again (clocks went back): it already fired
	}
	return time.Time{}
}

// wallClock orders local wall-clock minutes.
func wallClock(t time.Time) int64 {
	y, m, d := t.Date()
	return (((int64(y)*13+int64(m))*32+int64(d))*24+int64(t.Hour()))*60 + int64(t.Minute())
}

// cronField describes one AWS cron field.
type cronField struct {
	name     string
	min, max int
	names    []string // index 0 is the name of value min
	special  string   // allowed extra characters among ? L W #
	step     bool     // "/" allowed
}

var (
	monthNames = []string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}
	dayNames   = []string{"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"}
	cronFields = []cronField{
		{name: "minutes", min: 0, max: 59, step: true},
		{name: "hours", min: 0, max: 23, step: true},
		{name: "day-of-month", min: 1, max: 31, special: "?LW", step: true},
		{name: "month", min: 1, max: 12, names: monthNames, step: true},
		{name: "day-of-week", min: 1, max: 7, names: dayNames, special: "?L#"},
		{name: "year", min: 1970, max: 2199, step: true},
	}
)

func parseCron(expr, body string) (Schedule, error) {
	fields := strings.Fields(body)
	if len(fields) != 6 {
		return nil, invalidf(expr, "cron needs six fields (minutes hours day-of-month month day-of-week year), got %d", len(fields))
	}
	dom, dow := fields[2], fields[4]
	if (dom == "?") == (dow == "?") {
		return nil, invalidf(expr, "exactly one of day-of-month and day-of-week must be '?'")
	}
	out := make([]string, 6)
	for i, f := range fields {
		v, err := translateField(cronFields[i], f)
		if err != nil {
			return nil, invalidf(expr, "%s field %q: %v", cronFields[i].name, f, err)
		}
		out[i] = v
	}
	line := "0 " + strings.Join(out, " ")
	ce, err := cronexpr.Parse(line)
	if err != nil {
		return nil, invalidf(expr, "%v", err)
	}
	return &Cron{text: expr, expr: ce}, nil
}

// translateField checks an AWS cron field and rewrites it for cronexpr
// (day-of-week numbers move from 1=SUN to 0=SUN).
func translateField(f cronField, s string) (string, error) {
	if s == "" {
		return "", errors.New("empty")
	}
	if s == "?" {
		if !strings.Contains(f.special, "?") {
			return "", errors.New("'?' is allowed only in day-of-month and day-of-week")
		}
		return "?", nil
	}
	items := strings.Split(s, ",")
	out := make([]string, len(items))
	for i, item := range items {
		v, err := translateItem(f, item, len(items) > 1)
		if err != nil {
			return "", err
		}
		out[i] = v
	}
	return strings.Join(out, ","), nil
}

func translateItem(f cronField, item string, inList bool) (string, error) {
	up := strings.ToUpper(item)
	dow := f.name == "day-of-week"
	switch {
	case item == "":
		return "", errors.New("empty list item")
	case f.name == "day-of-month" && (up == "L" || up == "LW"):
		if inList {
			return "", fmt.Errorf("%q cannot be part of a list", item)
		}
		return up, nil
	case f.name == "day-of-month" && strings.HasSuffix(up, "W"):
		if inList {
			return "", fmt.Errorf("%q cannot be part of a list", item)
		}
		n, err := f.value(strings.TrimSuffix(up, "W"))
		if err != nil {
			return "", err
		}
		return strconv.Itoa(n) + "W", nil
	case dow && up == "L":
		return "6", nil // the last day of the week: Saturday
	case dow && strings.HasSuffix(up, "L"):
		n, err := f.value(strings.TrimSuffix(up, "L"))
		if err != nil {
			return "", err
		}
		return strconv.Itoa(n-1) + "L", nil
	case dow && strings.Contains(up, "#"):
		day, nth, _ := strings.Cut(up, "#")
		n, err := f.value(day)
		if err != nil {
			return "", err
		}
		k, err := strconv.Atoi(nth)
		if err != nil || k < 1 || k > 5 {
			return "", fmt.Errorf("the week after '#' must be 1 to 5, got %q", nth)
		}
		return fmt.Sprintf("%d#%d", n-1, k), nil
	}
	rng, step, hasStep := strings.Cut(up, "/")
	if hasStep {
		if !f.step {
			return "", errors.New("'/' is not allowed in this field")
		}
		n, err := strconv.Atoi(step)
		if err != nil || n <= 0 {
			return "", fmt.Errorf("bad increment %q", step)
		}
	}
	var lo, hi int
	switch {
	case rng == "*":
		if dow {
			return "*", nil
		}
		if hasStep {
			return "*/" + step, nil
		}
		return "*", nil
	case strings.Contains(rng, "-"):
		a, b, _ := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return "", err
		}
		if hi, err = f.value(b); err != nil {
			return "", err
		}
		if hi < lo {
			return "", fmt.Errorf("range %q runs backwards", rng)
		}
	default:
		n, err := f.value(rng)
		if err != nil {
			return "", err
		}
		lo, hi = n, n
		if hasStep {
			hi = f.max
		}
	}
	if dow {
		lo, hi = lo-1, hi-1
	}
	var v string
	if lo == hi && !hasStep {
		v = strconv.Itoa(lo)
	} else {
		v = fmt.Sprintf("%d-%d", lo, hi)
	}
	if hasStep {
		v += "/" + step
	}
	return v, nil
}

// value parses a number or (for month and day-of-week) a three-letter name.
func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if s == n {
			return f.min + i, nil
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil || s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("%q is not a valid value", s)
	}
	if n < f.min || n > f.max {
		return 0, fmt.Errorf("%d is outside %d-%d", n, f.min, f.max)
	}
	return n, nil
}
