package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/sealing"
)

// EffectAwaitingEnable marks a key whose deletion was cancelled but which is not enabled yet
// (CancelKeyDeletion): recorded on the key's trail, nothing changed.
const EffectAwaitingEnable lineage.Effect = "awaiting-enable"

// ErrNotDeactivated: an operator asked to reactivate an app that is not deactivated by a
// key revocation.
var ErrNotDeactivated = errors.New("revocation: app is not deactivated by a key revocation")

// ErrKeyNotUsable: the key still fails its test round trip, so nothing is reactivated.
var ErrKeyNotUsable = errors.New("revocation: key not usable")

// Key changes, as the notify function's continuation events name them.
const (
	ChangeRevoked          = "revoked"
	ChangeReactivated      = "reactivated"
	ChangeAwaitingOperator = "awaiting-operator"
)

// RevokeKey revokes keyARN without checking the key first: for callers that already know
// the key is revoked (a failed key-health check). The revocation is ordered at the time it
// is applied. Repeating it changes nothing.
func (s *Service) RevokeKey(ctx context.Context, keyARN, reason string, cause lineage.Cause) (Result, error) {
	if !IsKeyARN(keyARN) {
		return Result{}, fmt.Errorf("%w: %q is not a KMS key ARN", ErrMalformedEvent, keyARN)
	}
	return s.revoke(ctx, keyARN, reason, s.nowRef(cause.Actor), cause)
}

// nowRef orders a change found by keyline itself (a check, a KMS error) among the key's
// CloudTrail events: just before the whole second it was found in. CloudTrail dates its
// events in whole seconds, so a DisableKey or EnableKey of that same second may have happened
// after the finding; ordered at the finding's own instant, it would be taken as older and
// dropped (a key disabled half a second after key health found it usable would stay usable
// in the lineage). Ordered before the second, every event of the second counts as newer:
// a revocation is always applied, and a reactivation still needs the key's test round trip.
// Its id starts with the exact time and this process's sequence number, so that changes
// found within one second apply in the order they were found.
func (s *Service) nowRef(what string) lineage.KeyEventRef {
	now := s.clock.Now().UTC()
	if what == "" {
		what = "keyline"
	}
	id := fmt.Sprintf("%s:%012d:%s:%s", now.Format("20060102T150405.000000000Z"), s.seq.Add(1), s.nonce, what)
	return lineage.KeyEventRef{ID: id, Time: now.Truncate(time.Second).Add(-time.Nanosecond)}
}

// revoke makes the key REVOKED (one conditional write: every app on it is deactivated at
// that instant), then aborts the re-encryptions whose pending generation uses it (B8) and
// starts the notifications.
func (s *Service) revoke(ctx context.Context, keyARN, reason string, ev lineage.KeyEventRef, cause lineage.Cause) (Result, error) {
	r, err := s.store.RevokeKey(ctx, keyARN, reason, ev, cause)
	// B9: whatever this process holds in memory under the key goes at once, even if the
	// write failed (a retry finishes it; a dropped key is only unwrapped again).
	if n := sealing.ForgetKey(keyARN); n > 0 {
		s.log.InfoContext(ctx, "revocation: cached data keys dropped", slog.String("key_arn", keyARN), slog.Int("keys", n))
	}
	if err != nil {
		return Result{KeyARN: keyARN}, fmt.Errorf("revocation: revoke key %s: %w", keyARN, err)
	}
	res := Result{KeyARN: keyARN, Outcome: OutcomeRevoked, Reason: reason, Key: r.Key, Changed: r.Changed}
	if r.OutOfOrder {
		res.Outcome, res.Reason = OutcomeOutOfOrder, "a newer event for the key was applied already"
		return res, nil
	}
	if r.Key.State != lineage.KeyRevoked {
		return res, nil
	}
	// B8: every re-encryption whose pending generation uses the key is aborted: it can no
	// longer commit (the commit's ConditionCheck on the key fails) and its next step stops
	// it. Repeated on every applied revocation event (idempotent), so a retry finishes it.
	pending, err := s.store.FindPendingOnKey(ctx, keyARN)
	if err != nil {
		return res, fmt.Errorf("revocation: pending generations of %s: %w", keyARN, err)
	}
	for _, g := range pending {
		if r.Changed {
			if err := s.store.NotePendingRevoked(ctx, g, ev.ID, cause); err != nil {
				return res, fmt.Errorf("revocation: %w", err)
			}
		}
		res.Apps = append(res.Apps, lineage.AffectedApp{AppID: g.AppID, OrgID: g.OrgID, Generation: g.Number, KeyARN: keyARN, Effect: lineage.EffectPendingRevoked})
	}
	if r.Changed {
		s.emitPending(ctx, keyARN, reason, cause, res.Apps)
	}
	if r.Changed || r.Repeat {
		if err := s.startNotify(ctx, keyARN, ChangeRevoked, r.Key, cause); err != nil {
			return res, err
		}
	}
	return res, nil
}

// RevokeFromKMSError feeds a KMS error met while working into the revocation path (B2).
// Only a revoked-class error (keys.ErrRevoked) can deactivate anything, and only once a check
// of the key (DescribeKey plus a test round trip) confirms it: throttling, 5xx and a key that
// checks out change nothing. cause names the work that met the error ("backup", "restore",
// "reencrypt", …). keyARN may be empty when err is a *keys.KeyError naming its key.
func (s *Service) RevokeFromKMSError(ctx context.Context, keyARN string, kmsErr error, cause string) (Result, error) {
	var ke *keys.KeyError
	if keyARN == "" && errors.As(kmsErr, &ke) {
		keyARN = ke.KeyARN
	}
	res := Result{KeyARN: keyARN}
	if !errors.Is(kmsErr, keys.ErrRevoked) {
		res.Outcome, res.Reason = OutcomeNotRevoked, "not a revoked-class key error"
		return res, nil
	}
	if !IsKeyARN(keyARN) {
		return res, fmt.Errorf("%w: %q is not a KMS key ARN", ErrMalformedEvent, keyARN)
	}
	code := ""
	if errors.As(kmsErr, &ke) {
		code = ke.Code
	}
	checkErr := s.checkKey(ctx, keyARN)
	switch {
	case checkErr == nil:
		s.log.WarnContext(ctx, "revoked-class KMS error, but the key checks out: nothing deactivated",
			slog.String("key_arn", keyARN), slog.String("code", code), slog.String("cause", cause))
		res.Outcome, res.Reason = OutcomeKeyWorks, "the key passed DescribeKey and a test round trip"
		return res, nil
	case !errors.Is(checkErr, keys.ErrRevoked):
		return res, fmt.Errorf("revocation: cannot confirm that key %s is revoked: %w", keyARN, checkErr)
	}
	if code == "" {
		code = "revoked"
	}
	if ce := (*keys.KeyError)(nil); errors.As(checkErr, &ce) && ce.Code != "" {
		code += ", confirmed " + ce.Code
	}
	return s.revoke(ctx, keyARN, fmt.Sprintf("KMS %s during %s", code, cause), s.nowRef(cause), lineage.Cause{Actor: cause})
}

// ReportRevoked is RevokeFromKMSError in the shape the data plane's workflows report with.
func (s *Service) ReportRevoked(ctx context.Context, keyARN, cause string, err error) error {
	_, rerr := s.RevokeFromKMSError(ctx, keyARN, err, cause)
	return rerr
}

// ReactivateKey is B1 for a caller that has no EnableKey event (the key-health check finding
// a revoked key usable again, e.g. after a key-policy change): the key must pass its test
// round trip, then it becomes usable within the window or awaits an operator.
func (s *Service) ReactivateKey(ctx context.Context, keyARN string, cause lineage.Cause) (Result, error) {
	if !IsKeyARN(keyARN) {
		return Result{}, fmt.Errorf("%w: %q is not a KMS key ARN", ErrMalformedEvent, keyARN)
	}
	return s.reactivate(ctx, keyARN, s.nowRef(cause.Actor), cause)
}

func (s *Service) reactivate(ctx context.Context, keyARN string, ev lineage.KeyEventRef, cause lineage.Cause) (Result, error) {
	res := Result{KeyARN: keyARN}
	if err := s.checkKey(ctx, keyARN); err != nil {
		if errors.Is(err, keys.ErrRevoked) {
			res.Outcome, res.Reason = OutcomeNotVerified, "the key failed its test round trip: "+err.Error()
			s.log.WarnContext(ctx, "key enabled but not usable yet: nothing reactivated", slog.String("key_arn", keyARN), slog.Any("error", err))
			return res, nil
		}
		return res, fmt.Errorf("revocation: verify key %s: %w", keyARN, err)
	}
	r, err := s.store.ReactivateKey(ctx, keyARN, s.window, ev, cause)
	if err != nil {
		return res, fmt.Errorf("revocation: reactivate key %s: %w", keyARN, err)
	}
	res.Key, res.Changed = r.Key, r.Changed
	if r.OutOfOrder {
		res.Outcome, res.Reason = OutcomeOutOfOrder, "a newer event for the key was applied already"
		return res, nil
	}
	res.Outcome = OutcomeReactivated
	if r.Key.AwaitingOperator {
		res.Reason = fmt.Sprintf("the key came back more than %s after it was revoked: an operator must reactivate it", s.window)
	}
	if r.Changed || r.Repeat {
		change := ChangeReactivated
		if r.Key.AwaitingOperator {
			change = ChangeAwaitingOperator
		}
		if err := s.startNotify(ctx, keyARN, change, r.Key, cause); err != nil {
			return res, err
		}
	}
	return res, nil
}

// awaitingEnable records on the key's trail that its deletion was cancelled but it is still
// Disabled (CancelKeyDeletion). Nothing else changes.
func (s *Service) awaitingEnable(ctx context.Context, keyARN string, ev lineage.KeyEventRef, cause lineage.Cause) (Result, error) {
	r, err := s.store.NoteKeyEvent(ctx, keyARN, lineage.ActionKeyAwaitingEnable, "key deletion cancelled; the key stays Disabled until EnableKey", ev, cause)
	if err != nil {
		return Result{KeyARN: keyARN}, fmt.Errorf("revocation: record awaiting EnableKey: %w", err)
	}
	res := Result{KeyARN: keyARN, Key: r.Key, Outcome: OutcomeAwaitingEnable,
		Reason: "CancelKeyDeletion leaves the key Disabled: its apps stay deactivated until EnableKey"}
	if r.OutOfOrder {
		res.Outcome, res.Reason = OutcomeOutOfOrder, "a newer event for the key was applied already"
		return res, nil
	}
	if r.Key.State == lineage.KeyRevoked {
		if err := s.emitter.Emit(ctx, audit.Event{DetailType: audit.DetailKeyAwaitingEnable, Resources: []string{keyARN}, Time: s.clock.Now().UTC(),
			Detail: map[string]any{"keyArn": keyARN, "cause": cause, "effect": EffectAwaitingEnable}}); err != nil {
			s.log.ErrorContext(ctx, "audit event not emitted", slog.String("key_arn", keyARN), slog.Any("error", err))
		}
	}
	return res, nil
}

// ReactivateApp is an operator's reactivation of an app deactivated by its key past the
// reactivation window (B1): the app's key must pass its test round trip first. The operator
// decides per key (lineage K6): the key becomes usable, and with it every app on it.
func (s *Service) ReactivateApp(ctx context.Context, appID, operator string) (lineage.App, error) {
	if appID == "" || operator == "" {
		return lineage.App{}, fmt.Errorf("%w: an app id and the operator are required", lineage.ErrInvalidInput)
	}
	app, gen, err := s.store.ActiveKey(ctx, appID)
	if err != nil {
		return lineage.App{}, fmt.Errorf("revocation: app %s: %w", appID, err)
	}
	if app.Status != lineage.AppDeactivated {
		return app, fmt.Errorf("%w: app %s is %s", ErrNotDeactivated, appID, app.Status)
	}
	if gen.KeyARN != "" && app.Hold == "" {
		if err := s.keys.Check(ctx, app.OrgID, gen.KeyARN); err != nil {
			if errors.Is(err, keys.ErrRevoked) {
				return app, fmt.Errorf("%w: key %s of app %s fails its test round trip; enable it first: %w", ErrKeyNotUsable, gen.KeyARN, appID, err)
			}
			return app, fmt.Errorf("revocation: verify key %s: %w", gen.KeyARN, err)
		}
	}
	cause := lineage.Cause{Actor: operator}
	app, err = s.store.ReactivateApp(ctx, appID, cause)
	if err != nil {
		return app, fmt.Errorf("revocation: reactivate app %s: %w", appID, err)
	}
	if gen.KeyARN != "" {
		k, err := s.store.GetKey(ctx, gen.KeyARN)
		if err == nil && k.Usable() {
			err = s.startNotify(ctx, gen.KeyARN, ChangeReactivated, k, cause)
		}
		if err != nil {
			// The app is reactivated; only its notifications are missing.
			s.log.ErrorContext(ctx, "operator reactivation: notifications not started", slog.String("app_id", appID), slog.Any("error", err))
		}
	}
	return app, nil
}

// emitPending sends one event per re-encryption aborted by the revocation (B8): there are
// few, and each is acted on by a person.
func (s *Service) emitPending(ctx context.Context, keyARN, reason string, cause lineage.Cause, apps []lineage.AffectedApp) {
	if len(apps) == 0 {
		return
	}
	now := s.clock.Now().UTC()
	events := make([]audit.Event, 0, len(apps))
	for _, a := range apps {
		events = append(events, audit.Event{
			DetailType: audit.DetailPendingGenerationRevoke,
			Resources:  []string{keyARN},
			Time:       now,
			Detail: map[string]any{
				"appId": a.AppID, "orgId": a.OrgID, "keyArn": keyARN, "generation": a.Generation,
				"effect": a.Effect, "reason": reason, "cause": cause,
			},
		})
	}
	if err := s.emitter.Emit(ctx, events...); err != nil {
		s.log.ErrorContext(ctx, "audit events not emitted", slog.String("key_arn", keyARN), slog.Int("events", len(events)), slog.Any("error", err))
	}
}
