package stack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/eventbridge"
	"github.com/keyline/keyline/internal/local/eventpattern"
	"github.com/keyline/keyline/internal/local/iam"
)

// localCustomerBus is keyline's customer bus: customers' forwarding rules (DEPLOY.md) put
// their CloudTrail KMS events on it, and the deployment's CloudTrail KMS rules are mirrored
// there with the same targets (as the CDK stack mirrors them).
const localCustomerBus = "keyline-customer-kms"

// forwarderSession is the session name of the customer's forwarder role when EventBridge
// assumes it to deliver to a cross-account target.
const forwarderSession = "events"

// customerForwardingRule is the pattern of the rule customers put on their default bus to
// forward their KMS events to keyline (DEPLOY.md: exactly keyline's pattern).
var customerForwardingRule = eventpattern.MustCompile(infra.KMSKeyEventPattern)

// orgPageSize is the page size of the enrolled-accounts listing.
const orgPageSize = 100

// ErrForwardDenied is wrapped by the error of a customer's forward that the policies refuse.
var ErrForwardDenied = errors.New("forwarding to keyline's customer bus denied")

// deliverCloudTrail puts a CloudTrail KMS event where AWS makes it reach keyline: an event
// of keyline's own account on its default bus; a customer account's event on keyline's
// customer bus through forwardCustomerEvent. A refused forward is logged with AWS's answer
// and lost, as EventBridge drops what its target refuses.
func (s *Stack) deliverCloudTrail(ctx context.Context, raw []byte) error {
	env, err := cloudTrailEnvelope(raw)
	if err != nil {
		return err
	}
	if env.Account == "" || env.Account == s.state.Account {
		return s.Bus.PublishEnvelope(ctx, "", raw)
	}
	// The customer's forwarding rule has keyline's pattern: only what it matches leaves the
	// customer's account.
	if ok, err := customerForwardingRule.Match(raw); err != nil || !ok {
		return err
	}
	if err := s.forwardCustomerEvent(ctx, raw); err != nil {
		if errors.Is(err, ErrForwardDenied) {
			s.logger.Warn("customer CloudTrail event not forwarded", "account", env.Account, "event_id", env.ID, "error", err)
			return nil
		}
		return err
	}
	return nil
}

// envelope is what delivery reads of an event.
type envelope struct {
	Account    string `json:"account"`
	Source     string `json:"source"`
	DetailType string `json:"detail-type"`
	ID         string `json:"id"`
}

func cloudTrailEnvelope(raw []byte) (envelope, error) {
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return env, fmt.Errorf("cloudtrail event: %w", err)
	}
	return env, nil
}

// forwardCustomerEvent delivers a customer account's CloudTrail event to keyline's customer
// bus as the customer's forwarding rule (DEPLOY.md) does: a PutEvents of the customer's
// forwarder role, which both the role's policy (infra.CustomerForwarderPolicy) and the bus
// policy (infra.CustomerBusPolicy for the enrolled accounts) must allow. An error wrapping
// ErrForwardDenied when they refuse it.
func (s *Stack) forwardCustomerEvent(ctx context.Context, raw []byte) error {
	env, err := cloudTrailEnvelope(raw)
	if err != nil {
		return err
	}
	if err := infra.CheckAccount(env.Account); err != nil || env.Account == s.state.Account {
		return fmt.Errorf("%w: account %q is not a customer account", ErrForwardDenied, env.Account)
	}
	if err := s.authorizeForward(ctx, env.Account, env.Source, env.DetailType); err != nil {
		return err
	}
	return s.Bus.PublishEnvelope(ctx, localCustomerBus, raw)
}

// customerBusARN is the ARN of keyline's customer bus.
func (s *Stack) customerBusARN() string { return s.Bus.BusArn(localCustomerBus) }

// authorizeForward evaluates the customer forwarder role's PutEvents onto keyline's
// customer bus (IAM on): its identity policy and the bus policy, cross-account.
func (s *Stack) authorizeForward(ctx context.Context, account, source, detailType string) error {
	if s.IAM != IAMOn {
		return nil
	}
	if s.Store == nil {
		return fmt.Errorf("%w: the lineage store is not started yet", ErrForwardDenied)
	}
	busARN := s.customerBusARN()
	accounts, err := s.enrolledAccounts(ctx)
	if err != nil {
		return err
	}
	// A bus policy with no enrolled account admits no one (the CDK stack leaves it closed).
	var resource *iam.Policy
	if len(accounts) > 0 {
		if resource, err = s.policies.cache.Parse("customer-bus-policy", infra.CustomerBusPolicy(busARN, accounts).JSON()); err != nil {
			return err
		}
	}
	identity, err := s.policies.cache.Parse(infra.CustomerForwarderRole, infra.CustomerForwarderPolicy(busARN).JSON())
	if err != nil {
		return err
	}
	req := &iam.Request{
		Account:   account,
		Principal: iam.AssumedRoleARN(account, infra.CustomerForwarderRole, forwarderSession),
		Action:    "events:PutEvents", Resource: busARN, ResourceAccount: s.state.Account,
		Context: iam.Context{
			authz.CtxEventsSource:     iam.String(source),
			authz.CtxEventsDetailType: iam.String(detailType),
			authz.CtxResourceAccount:  iam.String(s.state.Account),
		},
	}
	d := iam.Evaluate(req, []*iam.Policy{identity}, resource)
	if !d.Allowed {
		return fmt.Errorf("%w: AccessDeniedException: %s (%s)", ErrForwardDenied, d.AccessDeniedMessage(req), d)
	}
	return nil
}

// enrolledAccounts are the accounts the orgs enrolled: the list the operator passes to the
// CDK stack as EnrolledCustomerAccounts.
func (s *Stack) enrolledAccounts(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	cursor := ""
	for {
		page, err := s.Store.ListOrgs(ctx, cursor, orgPageSize)
		if err != nil {
			return nil, fmt.Errorf("enrolled accounts: %w", err)
		}
		for _, o := range page.Items {
			for _, a := range o.Accounts {
				seen[a] = true
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	out := make([]string, 0, len(seen))
	for a := range seen {
		out = append(out, a)
	}
	sort.Strings(out)
	return out, nil
}

// mirrorOnCustomerBus puts a CloudTrail KMS rule on the customer bus too, with the same
// target, as the CDK stack mirrors it.
func mirrorOnCustomerBus(ctx context.Context, bus *eventbridge.Bus, r infra.Rule, tgt eventbridge.Target) error {
	if _, err := bus.CreateEventBus(localCustomerBus); err != nil && !errors.Is(err, eventbridge.ErrAlreadyExists) {
		return fmt.Errorf("event bus %s: %w", localCustomerBus, err)
	}
	if _, err := bus.PutRule(ctx, eventbridge.RuleInput{Name: r.Name, EventBusName: localCustomerBus, EventPattern: string(r.EventPattern), Description: r.Description}); err != nil {
		return fmt.Errorf("rule %s on %s: %w", r.Name, localCustomerBus, err)
	}
	if err := bus.PutTargets(ctx, localCustomerBus, r.Name, []eventbridge.Target{tgt}); err != nil {
		return fmt.Errorf("rule %s targets on %s: %w", r.Name, localCustomerBus, err)
	}
	return nil
}
