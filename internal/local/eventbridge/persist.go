package eventbridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/keyline/keyline/internal/local/eventpattern"
	"github.com/keyline/keyline/internal/local/schedule"
)

// stateFile is what Options.StateFile holds.
type stateFile struct {
	Buses     []string       `json:"buses"`
	Rules     []Rule         `json:"rules"`
	Schedules []ScheduleInfo `json:"schedules"`
}

// saveLocked writes the state file (atomically) if one is configured.
func (b *Bus) saveLocked() error {
	if b.opts.StateFile == "" {
		return nil
	}
	var st stateFile
	for name := range b.buses {
		st.Buses = append(st.Buses, name)
	}
	sort.Strings(st.Buses)
	for _, rules := range b.rules {
		for _, r := range rules {
			st.Rules = append(st.Rules, r.Rule)
		}
	}
	sort.Slice(st.Rules, func(i, j int) bool { return st.Rules[i].Arn < st.Rules[j].Arn })
	for _, s := range b.schedules {
		st.Schedules = append(st.Schedules, s.ScheduleInfo)
	}
	sort.Slice(st.Schedules, func(i, j int) bool { return st.Schedules[i].Name < st.Schedules[j].Name })
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("eventbridge: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(b.opts.StateFile), ".eventbridge-*.json")
	if err != nil {
		return fmt.Errorf("eventbridge: save state: %w", err)
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), b.opts.StateFile)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("eventbridge: save state: %w", werr)
	}
	return nil
}

// load reads the state file; a missing file is an empty state.
func (b *Bus) load() error {
	data, err := os.ReadFile(b.opts.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("eventbridge: load state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("eventbridge: load state %s: %w", b.opts.StateFile, err)
	}
	now := b.clock.Now()
	for _, name := range st.Buses {
		b.buses[name] = true
		if b.rules[name] == nil {
			b.rules[name] = map[string]*ruleState{}
		}
	}
	for _, r := range st.Rules {
		rs := &ruleState{Rule: r}
		if r.EventPattern != "" {
			p, err := eventpattern.Compile([]byte(r.EventPattern))
			if err != nil {
				return fmt.Errorf("eventbridge: load rule %s: %w", r.Name, err)
			}
			rs.pattern = p
		}
		if r.ScheduleExpression != "" {
			s, err := parseRuleSchedule(r.ScheduleExpression)
			if err != nil {
				return fmt.Errorf("eventbridge: load rule %s: %w", r.Name, err)
			}
			rs.sched, rs.next = s, s.Next(now, nil)
		}
		if !b.buses[r.EventBusName] {
			b.buses[r.EventBusName] = true
			b.rules[r.EventBusName] = map[string]*ruleState{}
		}
		b.rules[r.EventBusName][r.Name] = rs
	}
	for _, si := range st.Schedules {
		s, err := schedule.Parse(si.Expression)
		if err != nil {
			return fmt.Errorf("eventbridge: load schedule %s: %w", si.Name, err)
		}
		loc, err := schedule.LoadTimezone(si.Timezone)
		if err != nil {
			return fmt.Errorf("eventbridge: load schedule %s: %w", si.Name, err)
		}
		st := &scheduleState{ScheduleInfo: si, sched: s, loc: loc}
		// A firing missed while stopped still happens (at-least-once); a
		// one-time schedule that already fired stays done.
		switch {
		case si.Next.IsZero():
			if _, once := s.(*schedule.At); !once {
				st.Next = s.Next(now, loc)
			}
		case si.Next.Before(now):
			st.Next = now // missed while stopped: fire once, then resume
		}
		b.schedules[si.Name] = st
	}
	return nil
}
