package eventbridge

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/keyline/keyline/internal/local/schedule"
)

// PutSchedule creates or replaces an EventBridge-Scheduler-style schedule
// that sends input (default `{}`) to targetArn whenever expression (cron, rate
// or at) fires in timezone (an IANA name; empty means UTC).
func (b *Bus) PutSchedule(name, expression, timezone, targetArn string, input []byte) error {
	if !nameRE.MatchString(name) {
		return validationf("Schedule name %q is not valid.", name)
	}
	s, err := schedule.Parse(expression)
	if err != nil {
		return validationf("Invalid Schedule Expression %s.", expression)
	}
	loc, err := schedule.LoadTimezone(timezone)
	if err != nil {
		return validationf("Invalid Schedule Expression Timezone %s.", timezone)
	}
	if len(targetArn) < 4 || targetArn[:4] != "arn:" {
		return validationf("Invalid target ARN %q.", targetArn)
	}
	if len(input) == 0 {
		input = []byte("{}")
	}
	if !json.Valid(input) {
		return validationf("Input of schedule %s is not valid JSON.", name)
	}
	st := &scheduleState{ScheduleInfo: ScheduleInfo{Name: name, Expression: expression, Timezone: timezone,
		TargetArn: targetArn, Input: string(input)}, sched: s, loc: loc}
	st.Next = s.Next(b.clock.Now(), loc)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.schedules[name] = st
	if err := b.saveLocked(); err != nil {
		return err
	}
	b.wakeScheduler()
	b.notifyLocked()
	return nil
}

// DeleteSchedule deletes a schedule.
func (b *Bus) DeleteSchedule(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.schedules[name] == nil {
		return fmt.Errorf("%w: Schedule %s does not exist.", ErrNotFound, name)
	}
	delete(b.schedules, name)
	b.notifyLocked()
	return b.saveLocked()
}

// ListSchedules returns the schedules by name, with their next firing time
// (zero for a one-time schedule that has fired).
func (b *Bus) ListSchedules() []ScheduleInfo {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]ScheduleInfo, 0, len(b.schedules))
	for _, s := range b.schedules {
		out = append(out, s.ScheduleInfo)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Start runs the scheduler, which fires scheduled rules and schedules on the
// bus's clock, until ctx is done or Close. With a fake clock, advancing it
// fires what became due; Drain waits for that.
func (b *Bus) Start(ctx context.Context) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.running || b.closed {
		return
	}
	b.running = true
	b.notifyLocked()
	b.wg.Add(1)
	go b.loop(ctx)
}

func (b *Bus) wakeScheduler() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

func (b *Bus) loop(ctx context.Context) {
	defer b.wg.Done()
	defer func() {
		b.mu.Lock()
		b.running = false
		b.notifyLocked()
		b.mu.Unlock()
	}()
	for {
		b.mu.Lock()
		if b.fireDueLocked(b.clock.Now()) {
			if err := b.saveLocked(); err != nil {
				b.log.Error("eventbridge: save schedules", "err", err)
			}
		}
		next := b.earliestLocked()
		b.notifyLocked()
		b.mu.Unlock()
		var tick <-chan time.Time
		if !next.IsZero() {
			tick = b.clock.After(next.Sub(b.clock.Now()))
		}
		select {
		case <-tick:
		case <-b.wake:
		case <-ctx.Done():
			return
		case <-b.ctx.Done():
			return
		}
	}
}

// earliestLocked returns the next firing of any schedule (zero if none).
func (b *Bus) earliestLocked() time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, r := range b.rules[DefaultBusName] {
		if r.sched != nil && r.State == "ENABLED" {
			consider(r.next)
		}
	}
	for _, s := range b.schedules {
		consider(s.Next)
	}
	return next
}

// dueLocked reports whether any schedule should have fired by now.
func (b *Bus) dueLocked(now time.Time) bool {
	next := b.earliestLocked()
	return !next.IsZero() && !next.After(now)
}

// fireDueLocked fires every schedule that is due at now, once, and reports whether
// schedules fired. Firings missed while the clock jumped (or the process was down)
// coalesce into that one firing, as EventBridge Scheduler does not backfill missed
// slots: a jump of days must not start hundreds of backups at once.
func (b *Bus) fireDueLocked(now time.Time) bool {
	if b.closed {
		return false
	}
	fired := false
	for _, r := range b.rules[DefaultBusName] {
		if r.sched == nil || r.State != "ENABLED" {
			continue
		}
		if !r.next.IsZero() && !r.next.After(now) {
			fired = true
			b.fireRuleLocked(r, r.next)
			r.next = r.sched.Next(now, time.UTC)
		}
	}
	for _, s := range b.schedules {
		if !s.Next.IsZero() && !s.Next.After(now) {
			fired = true
			b.enqueueLocked(delivery{eventID: newID(), rule: "schedule/" + s.Name,
				target: Target{ID: s.Name, Arn: s.TargetArn}, event: []byte(s.Input)})
			s.Next = s.sched.Next(now, s.loc)
		}
	}
	return fired
}

// fireRuleLocked sends a scheduled rule's "Scheduled Event" to its targets.
func (b *Bus) fireRuleLocked(r *ruleState, at time.Time) {
	env := Envelope{Version: "0", ID: newID(), DetailType: "Scheduled Event", Source: "aws.events",
		Account: b.opts.Account, Time: at.UTC().Format("2006-01-02T15:04:05Z"), Region: b.opts.Region,
		Resources: []string{r.Arn}, Detail: json.RawMessage("{}")}
	raw, err := json.Marshal(env)
	if err != nil {
		b.log.Error("eventbridge: scheduled event", "rule", r.Name, "err", err)
		return
	}
	for _, t := range r.Targets {
		b.enqueueLocked(delivery{eventID: env.ID, rule: r.Name, target: t, event: raw})
	}
}
