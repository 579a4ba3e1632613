package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// EventBridge and Step Functions condition keys.
const (
	CtxEventsSource     = "events:source"
	CtxEventsDetailType = "events:detail-type"
)

// defaultBus is the name of every account's default event bus.
const defaultBus = "default"

// EventsExtractor returns the checks of EventBridge requests: PutEvents is events:PutEvents
// on each bus its entries name (the default bus when none; a bus ARN may be in another
// account), with events:source and events:detail-type; rule operations act on the rule's
// ARN, everything else on "*".
func EventsExtractor(account string) Extractor {
	return ExtractorFunc(func(_ context.Context, r *Request) ([]Check, error) {
		op := r.Target
		busARN := func(name string) string {
			if strings.HasPrefix(name, "arn:") {
				return name
			}
			if name == "" {
				name = defaultBus
			}
			return "arn:aws:events:" + r.Region + ":" + r.Principal.Account + ":event-bus/" + name
		}
		mk := func(action, resource string) Check {
			acct := ARNAccount(resource)
			if acct == "" {
				acct = r.Principal.Account
			}
			return Check{Action: "events:" + action, Resource: resource, ResourceAccount: acct,
				Context: map[string]Value{CtxResourceAccount: One(acct)}}
		}
		switch op {
		case "PutEvents":
			var b struct {
				Entries []struct {
					EventBusName string `json:"EventBusName"`
					Source       string `json:"Source"`
					DetailType   string `json:"DetailType"`
				} `json:"Entries"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("events PutEvents: %w", err)
			}
			type agg struct{ sources, types []string }
			byBus := map[string]*agg{}
			for _, e := range b.Entries {
				arn := busARN(e.EventBusName)
				a := byBus[arn]
				if a == nil {
					a = &agg{}
					byBus[arn] = a
				}
				a.sources = append(a.sources, e.Source)
				a.types = append(a.types, e.DetailType)
			}
			buses := make([]string, 0, len(byBus))
			for k := range byBus {
				buses = append(buses, k)
			}
			sort.Strings(buses)
			cs := make([]Check, 0, len(buses))
			for _, bus := range buses {
				c := mk(op, bus)
				c.Context[CtxEventsSource] = Set(uniqueSorted(byBus[bus].sources)...)
				c.Context[CtxEventsDetailType] = Set(uniqueSorted(byBus[bus].types)...)
				cs = append(cs, c)
			}
			return cs, nil
		case "PutRule", "DeleteRule", "DescribeRule", "EnableRule", "DisableRule", "PutTargets", "RemoveTargets", "ListTargetsByRule":
			var b struct {
				Name         string `json:"Name"`
				Rule         string `json:"Rule"`
				EventBusName string `json:"EventBusName"`
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("events %s: %w", op, err)
			}
			name := b.Name
			if name == "" {
				name = b.Rule
			}
			rule := "arn:aws:events:" + r.Region + ":" + r.Principal.Account + ":rule/"
			if b.EventBusName != "" && b.EventBusName != defaultBus {
				rule += b.EventBusName + "/"
			}
			return []Check{mk(op, rule+name)}, nil
		case "CreateEventBus", "DeleteEventBus", "DescribeEventBus", "PutPermission", "RemovePermission":
			var b struct {
				Name         string `json:"Name"`
				EventBusName string `json:"EventBusName"`
			}
			_ = json.Unmarshal(r.Body, &b)
			name := b.Name
			if name == "" {
				name = b.EventBusName
			}
			return []Check{mk(op, busARN(name))}, nil
		}
		return []Check{mk(op, "*")}, nil
	})
}

// StatesExtractor returns the checks of Step Functions requests: states:<Operation> on the
// state machine's ARN (StartExecution, ListExecutions, DescribeStateMachine, …) or on the
// execution's ARN (DescribeExecution, GetExecutionHistory, StopExecution).
func StatesExtractor() Extractor {
	return ExtractorFunc(func(_ context.Context, r *Request) ([]Check, error) {
		op := r.Target
		var b struct {
			StateMachineArn string `json:"stateMachineArn"`
			ExecutionArn    string `json:"executionArn"`
		}
		if len(strings.TrimSpace(string(r.Body))) > 0 {
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("states %s: %w", op, err)
			}
		}
		res := "*"
		switch {
		case b.ExecutionArn != "":
			res = b.ExecutionArn
		case b.StateMachineArn != "":
			res = b.StateMachineArn
		}
		acct := ARNAccount(res)
		if acct == "" {
			acct = r.Principal.Account
		}
		return []Check{{Action: "states:" + op, Resource: res, ResourceAccount: acct,
			Context: map[string]Value{CtxResourceAccount: One(acct)}}}, nil
	})
}
