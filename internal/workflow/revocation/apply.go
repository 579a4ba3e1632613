package revocation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/sealing"
)

// EffectAwaitingEnable marks an app whose key's deletion was cancelled but which is not
// enabled yet (CancelKeyDeletion): recorded, nothing changed.
const EffectAwaitingEnable lineage.Effect = "awaiting-enable"

// ErrNotDeactivated: an operator asked to reactivate an app that is not deactivated by a
// key revocation.
var ErrNotDeactivated = errors.New("revocation: app is not deactivated by a key revocation")

// ErrKeyNotUsable: the key still fails its test round trip, so nothing is reactivated.
var ErrKeyNotUsable = errors.New("revocation: key not usable")

// RevokeKey deactivates every app whose active generation uses keyARN (and revokes pending
// generations on it, B8), without checking the key first: for callers that already know
// the key is revoked (a CloudTrail event, a failed key-health check). It emits one audit
// event per app changed. Repeating it changes nothing.
func (s *Service) RevokeKey(ctx context.Context, keyARN, reason string, cause lineage.Cause) (Result, error) {
	if !IsKeyARN(keyARN) {
		return Result{}, fmt.Errorf("%w: %q is not a KMS key ARN", ErrMalformedEvent, keyARN)
	}
	return s.revoke(ctx, keyARN, reason, cause)
}

func (s *Service) revoke(ctx context.Context, keyARN, reason string, cause lineage.Cause) (Result, error) {
	apps, err := s.store.RevokeKey(ctx, keyARN, reason, cause)
	// B9: whatever this process holds in memory under the key goes at once, even if the
	// write failed part way (a retry finishes it; a dropped key is only unwrapped again).
	if n := sealing.ForgetKey(keyARN); n > 0 {
		s.log.InfoContext(ctx, "revocation: cached data keys dropped", slog.String("key_arn", keyARN), slog.Int("keys", n))
	}
	// Apps changed before an error are changed (and a retry, which finishes the rest, will
	// not report them again): their events go out either way.
	s.emit(ctx, keyARN, reason, cause, apps)
	if err != nil {
		return Result{KeyARN: keyARN, Apps: apps}, fmt.Errorf("revocation: revoke key %s: %w", keyARN, err)
	}
	return Result{KeyARN: keyARN, Outcome: OutcomeRevoked, Reason: reason, Apps: apps}, nil
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
	return s.revoke(ctx, keyARN, fmt.Sprintf("KMS %s during %s", code, cause), lineage.Cause{Actor: cause})
}

// ReportRevoked is RevokeFromKMSError in the shape the data plane's workflows report with.
func (s *Service) ReportRevoked(ctx context.Context, keyARN, cause string, err error) error {
	_, rerr := s.RevokeFromKMSError(ctx, keyARN, err, cause)
	return rerr
}

// ReactivateKey is B1 for a caller that has no EnableKey event (the key-health check finding
// a revoked key usable again, e.g. after a key-policy change): the key must pass its test
// round trip, then its apps are reactivated within the window or left for an operator.
func (s *Service) ReactivateKey(ctx context.Context, keyARN string, cause lineage.Cause) (Result, error) {
	if !IsKeyARN(keyARN) {
		return Result{}, fmt.Errorf("%w: %q is not a KMS key ARN", ErrMalformedEvent, keyARN)
	}
	return s.reactivate(ctx, keyARN, cause)
}

func (s *Service) reactivate(ctx context.Context, keyARN string, cause lineage.Cause) (Result, error) {
	res := Result{KeyARN: keyARN}
	if err := s.checkKey(ctx, keyARN); err != nil {
		if errors.Is(err, keys.ErrRevoked) {
			res.Outcome, res.Reason = OutcomeNotVerified, "the key failed its test round trip: "+err.Error()
			s.log.WarnContext(ctx, "key enabled but not usable yet: nothing reactivated", slog.String("key_arn", keyARN), slog.Any("error", err))
			return res, nil
		}
		return res, fmt.Errorf("revocation: verify key %s: %w", keyARN, err)
	}
	apps, err := s.store.ReactivateKey(ctx, keyARN, cause, s.window)
	s.emit(ctx, keyARN, "EnableKey", cause, apps)
	if err != nil {
		return Result{KeyARN: keyARN, Apps: apps}, fmt.Errorf("revocation: reactivate key %s: %w", keyARN, err)
	}
	res.Outcome, res.Apps = OutcomeReactivated, apps
	return res, nil
}

// awaitingEnable records, for every app deactivated on keyARN, that the key's deletion was
// cancelled but the key is still Disabled. Nothing else changes.
func (s *Service) awaitingEnable(ctx context.Context, keyARN string, cause lineage.Cause) ([]lineage.AffectedApp, error) {
	gens, err := s.store.FindGenerationsByKey(ctx, keyARN)
	if err != nil {
		return nil, fmt.Errorf("revocation: find generations of %s: %w", keyARN, err)
	}
	var (
		mu   sync.Mutex
		out  []lineage.AffectedApp
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 16)
	)
	for _, g := range gens {
		if g.State != lineage.GenRevoked {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			app, err := s.store.GetApp(ctx, g.AppID)
			if err == nil && (app.Status != lineage.AppDeactivated || app.ActiveGeneration != g.Number) {
				return
			}
			if err == nil {
				_, err = s.store.AppendAudit(ctx, lineage.AuditEntry{AppID: g.AppID, Action: ActionAwaitingEnable, Actor: cause.Actor, Cause: cause,
					Detail: map[string]string{"keyArn": keyARN, "generation": fmt.Sprint(g.Number),
						"note": "key deletion cancelled; the key stays Disabled until EnableKey"}})
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("app %s: %w", g.AppID, err))
				return
			}
			out = append(out, lineage.AffectedApp{AppID: g.AppID, OrgID: app.OrgID, Generation: g.Number, KeyARN: keyARN, Effect: EffectAwaitingEnable})
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return out, fmt.Errorf("revocation: record awaiting EnableKey: %w", errors.Join(errs...))
	}
	s.emit(ctx, keyARN, "CancelKeyDeletion", cause, out)
	return out, nil
}

// ReactivateApp is an operator's reactivation of one app deactivated by a key revocation,
// past the reactivation window (B1): the app's key must pass its test round trip first.
func (s *Service) ReactivateApp(ctx context.Context, appID, operator string) (lineage.App, error) {
	if appID == "" || operator == "" {
		return lineage.App{}, fmt.Errorf("%w: an app id and the operator are required", lineage.ErrInvalidInput)
	}
	app, gen, err := s.store.ActiveKey(ctx, appID)
	if err != nil {
		return lineage.App{}, fmt.Errorf("revocation: app %s: %w", appID, err)
	}
	if app.Status != lineage.AppDeactivated || gen.State != lineage.GenRevoked {
		return app, fmt.Errorf("%w: app %s is %s and its generation %d is %s", ErrNotDeactivated, appID, app.Status, gen.Number, gen.State)
	}
	if err := s.keys.Check(ctx, app.OrgID, gen.KeyARN); err != nil {
		if errors.Is(err, keys.ErrRevoked) {
			return app, fmt.Errorf("%w: key %s of app %s fails its test round trip; enable it first: %w", ErrKeyNotUsable, gen.KeyARN, appID, err)
		}
		return app, fmt.Errorf("revocation: verify key %s: %w", gen.KeyARN, err)
	}
	cause := lineage.Cause{Actor: operator}
	app, err = s.store.ReactivateApp(ctx, appID, cause)
	if err != nil {
		return app, fmt.Errorf("revocation: reactivate app %s: %w", appID, err)
	}
	s.emit(ctx, gen.KeyARN, "operator", cause, []lineage.AffectedApp{{AppID: appID, OrgID: app.OrgID, Generation: gen.Number,
		KeyARN: gen.KeyARN, Effect: lineage.EffectReactivated}})
	return app, nil
}

// emit sends one audit event per app changed. Delivery failures are logged, not returned:
// the change and its audit entry are already in the lineage table.
func (s *Service) emit(ctx context.Context, keyARN, reason string, cause lineage.Cause, apps []lineage.AffectedApp) {
	if len(apps) == 0 {
		return
	}
	now := s.clock.Now().UTC()
	events := make([]audit.Event, 0, len(apps))
	for _, a := range apps {
		events = append(events, audit.Event{
			DetailType: detailType(a.Effect),
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

func detailType(e lineage.Effect) string {
	switch e {
	case lineage.EffectDeactivated:
		return audit.DetailAppDeactivated
	case lineage.EffectPendingRevoked:
		return audit.DetailPendingGenerationRevoke
	case lineage.EffectReactivated:
		return audit.DetailAppReactivated
	case lineage.EffectAwaitingOperator:
		return audit.DetailReactivationWaiting
	case EffectAwaitingEnable:
		return audit.DetailKeyAwaitingEnable
	}
	return audit.DetailGenerationRevoked
}
