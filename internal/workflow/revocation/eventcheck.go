package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

// Key events are checked before they are applied (B10): a key event counts only when it comes
// from AWS KMS, its EventBridge account and its CloudTrail recipient account are both the key
// ARN's account, an org with apps on the key enrolled that account, and it is not dated in the
// future beyond the clock skew. Anything else is refused: audited on the apps on the key (when
// there are any) and logged, and nothing else changes.

// EventSourceKMS is the only EventBridge source of key events.
const EventSourceKMS = "aws.kms"

// MaxEventClockSkew is how far ahead of keyline's clock an event's time may be.
const MaxEventClockSkew = 5 * time.Minute

// OutcomeRefused is a key event that did not pass CheckEvent: nothing changed.
const OutcomeRefused Outcome = "refused"

// ActionKeyEventRefused is the audit action of a refused key event.
const ActionKeyEventRefused = "key-event-refused"

// CheckEvent returns why ev does not count ("" when it does). err is a failure to check.
func (s *Service) CheckEvent(ctx context.Context, ev KeyEvent) (reason string, err error) {
	if ev.Source != EventSourceKMS {
		return fmt.Sprintf("source %q is not %s", ev.Source, EventSourceKMS), nil
	}
	keyAccount, ok := lineage.KeyAccount(ev.KeyARN)
	if !ok {
		return "the key ARN names no account", nil
	}
	if ev.EnvelopeAccount != keyAccount {
		return fmt.Sprintf("the event's account %q is not the key's account", ev.EnvelopeAccount), nil
	}
	if ev.RecipientAccount != keyAccount {
		return fmt.Sprintf("the event's recipientAccountId %q is not the key's account", ev.RecipientAccount), nil
	}
	if limit := s.clock.Now().Add(MaxEventClockSkew); ev.Time.After(limit) {
		return fmt.Sprintf("eventTime %s is more than %s ahead of the clock", ev.Time.Format(time.RFC3339), MaxEventClockSkew), nil
	}
	orgs, err := KeyOrgs(ctx, s.store, ev.KeyARN)
	if err != nil {
		return "", err
	}
	for _, id := range orgs {
		org, err := s.store.GetOrg(ctx, id)
		if errors.Is(err, lineage.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("revocation: org %s: %w", id, err)
		}
		if org.Enrolled(keyAccount) {
			return "", nil
		}
	}
	return "no org with apps on the key enrolled the key's account", nil
}

// refuseEvent audits a refused event once, on the key's trail (which the trail of every app on
// the key shows, lineage ListAudit), when an org has apps on the key, and answers OutcomeRefused.
func (s *Service) refuseEvent(ctx context.Context, ev KeyEvent, reason string) (Result, error) {
	s.log.WarnContext(ctx, "key event refused", slog.String("event_id", ev.ID), slog.String("event_name", ev.Name),
		slog.String("key_arn", ev.KeyARN), slog.String("reason", reason))
	orgs, err := s.store.KeyOrgs(ctx, ev.KeyARN)
	if err != nil {
		return Result{}, fmt.Errorf("revocation: orgs on key %s: %w", ev.KeyARN, err)
	}
	if len(orgs) > 0 {
		if _, err := s.store.AppendAudit(ctx, lineage.AuditEntry{KeyARN: ev.KeyARN, Action: ActionKeyEventRefused, Actor: "cloudtrail",
			Cause:  lineage.Cause{EventID: ev.ID},
			Detail: map[string]string{"keyArn": ev.KeyARN, "eventName": ev.Name, "reason": reason}}); err != nil {
			return Result{}, fmt.Errorf("revocation: audit refused event %s: %w", ev.ID, err)
		}
	}
	return Result{EventID: ev.ID, EventName: ev.Name, KeyARN: ev.KeyARN, Outcome: OutcomeRefused, Reason: reason}, nil
}
