package lineage

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// BeginReencrypt starts a re-encryption: app REENCRYPTING, generation newGen PENDING with
// newKeyARN and wrappedDataKey (whose encryption context names newGen), and an audit entry,
// in one transaction, conditional on the app being ACTIVE at the version read and holding
// no unexpired backup lease (*ConflictError wrapping ErrLeaseHeld: retry later). newGen must
// be app.LatestGeneration+1 (0: the store picks it). Only cmk apps re-encrypt. Idempotent:
// if the same pending generation with the same key exists, it is returned.
func (s *Store) BeginReencrypt(ctx context.Context, appID string, newGen int, newKeyARN string, wrappedDataKey []byte, cause Cause) (Generation, error) {
	if newKeyARN == "" {
		return Generation{}, invalid("re-encryption of app %s: the new key ARN is empty", appID)
	}
	if newGen < 0 {
		return Generation{}, invalid("re-encryption of app %s: generation %d", appID, newGen)
	}
	if raw, err := s.getAppRaw(ctx, appID); err == nil {
		if err := s.noteKeyOrg(ctx, newKeyARN, raw.OrgID); err != nil {
			return Generation{}, err
		}
	}
	var result Generation
	_, err := s.changeApp(ctx, appID, "begin re-encryption", func(app *App, now time.Time) (appChange, error) {
		if app.KeyModel != KeyModelCMK {
			return appChange{}, invalid("app %s uses a provider-managed key; only cmk apps re-encrypt (R4)", app.ID)
		}
		if newGen != 0 && newGen <= app.LatestGeneration {
			g, err := s.GetGeneration(ctx, app.ID, newGen)
			if err != nil {
				return appChange{}, err
			}
			if g.State == GenPending && g.KeyARN == newKeyARN && app.PendingGeneration == newGen {
				result = g
				return appChange{noWrite: true}, nil
			}
			switch app.Status {
			case AppReencrypting:
				return appChange{}, conflict(app.ID, ErrReencrypting, "already re-encrypting to generation %d", app.PendingGeneration)
			case AppDeactivated:
				return appChange{}, conflict(app.ID, ErrAppDeactivated, "cannot re-encrypt a deactivated app: %s", app.StatusReason)
			}
			return appChange{}, conflict(app.ID, nil, "generation %d already exists (%s, key %s); the next generation is %d",
				newGen, g.State, g.KeyARN, app.LatestGeneration+1)
		}
		switch app.Status {
		case AppReencrypting:
			g, err := s.GetGeneration(ctx, app.ID, app.PendingGeneration)
			if err != nil {
				return appChange{}, err
			}
			if newGen == 0 && g.State == GenPending && g.KeyARN == newKeyARN {
				result = g
				return appChange{noWrite: true}, nil
			}
			return appChange{}, conflict(app.ID, ErrReencrypting, "already re-encrypting to generation %d (key %s)", g.Number, g.KeyARN)
		case AppDeactivated:
			return appChange{}, conflict(app.ID, ErrAppDeactivated, "cannot re-encrypt a deactivated app: %s", app.StatusReason)
		}
		if nk, err := s.GetKey(ctx, newKeyARN); err != nil {
			return appChange{}, err
		} else if !nk.Usable() {
			return appChange{}, conflict(app.ID, ErrKeyRevoked, "cannot re-encrypt to %s", nk.Reason())
		}
		if app.LeaseHeld(now) {
			return appChange{}, conflict(app.ID, ErrLeaseHeld, "a backup holds the lease (%s until %s); retry when it ends",
				app.BackupLease.Holder, app.BackupLease.Until.Format(time.RFC3339))
		}
		n := app.LatestGeneration + 1
		if newGen != 0 && newGen != n {
			return appChange{}, conflict(app.ID, nil, "generation %d requested but the next generation is %d", newGen, n)
		}
		g := Generation{AppID: app.ID, OrgID: app.OrgID, Number: n, KeyARN: newKeyARN, KeyModel: app.KeyModel,
			State: GenPending, StateReason: "being introduced by re-encryption", Since: now, WrappedDataKey: wrappedDataKey, CreatedAt: now}
		gm, err := s.genItem(g)
		if err != nil {
			return appChange{}, err
		}
		app.BackupLease = nil // expired, or it would have refused above
		app.Status = AppReencrypting
		app.StatusReason = fmt.Sprintf("re-encrypting from generation %d to generation %d", app.ActiveGeneration, n)
		app.PendingGeneration, app.LatestGeneration, app.PendingKeyARN = n, n, newKeyARN
		result = g
		return appChange{
			items: append([]types.TransactWriteItem{
				s.check(keyOf(appPK(app.ID), genSK(app.ActiveGeneration)), "#st = :a", map[string]string{"#st": "state"}, item{":a": str(string(GenActive))}),
				s.putNew(gm),
			}, s.keyUsableChecks(app.ActiveKeyARN, newKeyARN)...),
			audit: &AuditEntry{AppID: app.ID, Action: ActionReencryptBegun, Cause: cause, Detail: map[string]string{
				"fromGeneration": strconv.Itoa(app.ActiveGeneration), "generation": strconv.Itoa(n), "keyArn": newKeyARN,
			}},
		}, nil
	})
	if err != nil {
		return Generation{}, err
	}
	return result, nil
}

// CommitReencrypt ends a re-encryption: generation gen ACTIVE, the previous one RETIRED (its
// backups disabled, R6), app ACTIVE on gen, audit. A *ConflictError wrapping ErrKeyRevoked if
// gen's key was revoked meanwhile (abort instead, B8), ErrAppDeactivated if the old key was.
// Idempotent once committed.
func (s *Store) CommitReencrypt(ctx context.Context, appID string, gen int, cause Cause) (App, error) {
	if gen < 2 {
		return App{}, invalid("commit re-encryption of app %s: generation %d cannot be a new generation", appID, gen)
	}
	return s.changeApp(ctx, appID, "commit re-encryption", func(app *App, now time.Time) (appChange, error) {
		if app.ActiveGeneration == gen && app.PendingGeneration == 0 {
			g, err := s.GetGeneration(ctx, app.ID, gen)
			if err != nil {
				return appChange{}, err
			}
			if g.State == GenActive {
				return appChange{noWrite: true}, nil
			}
		}
		if app.PendingGeneration != gen {
			return appChange{}, conflict(app.ID, nil, "no re-encryption to generation %d is running (active %d, pending %d)", gen, app.ActiveGeneration, app.PendingGeneration)
		}
		if app.Status == AppDeactivated {
			return appChange{}, conflict(app.ID, ErrAppDeactivated, "the key of generation %d was revoked during the re-encryption; abort it: %s", app.ActiveGeneration, app.StatusReason)
		}
		pending, err := s.GetGeneration(ctx, app.ID, gen)
		if err != nil {
			return appChange{}, err
		}
		if pending.State != GenPending {
			return appChange{}, invariant("app %s: pending generation %d is %s", app.ID, gen, pending.State)
		}
		if pending.KeyRevoked {
			return appChange{}, conflict(app.ID, ErrKeyRevoked, "the new key of generation %d was revoked; abort the re-encryption (%s)", gen, pending.KeyReason)
		}
		oldGen, err := s.getGenRaw(ctx, app.ID, app.ActiveGeneration)
		if err != nil {
			return appChange{}, err
		}
		old := app.ActiveGeneration
		oldKey := app.ActiveKeyARN
		app.Status, app.StatusReason = AppActive, ""
		app.ActiveGeneration, app.PendingGeneration = gen, 0
		app.ActiveKeyARN, app.PendingKeyARN = pending.KeyARN, ""
		return appChange{
			items: append([]types.TransactWriteItem{
				s.genStateUpdate(oldGen, []GenerationState{GenActive, GenRevoked}, GenRetired, fmt.Sprintf("by re-encryption to generation %d", gen), now),
				s.genStateUpdate(pending, []GenerationState{GenPending}, GenActive, "", now),
			}, s.keyUsableChecks(oldKey, pending.KeyARN)...),
			audit: &AuditEntry{AppID: app.ID, Action: ActionReencryptCommitted, Cause: cause, Detail: map[string]string{
				"retiredGeneration": strconv.Itoa(old), "generation": strconv.Itoa(gen), "keyArn": pending.KeyARN,
			}},
		}, nil
	})
}

// AbortReencrypt abandons a re-encryption: the pending generation RETIRED, the app back on
// its previous generation (deactivated, derived, if that generation's key was revoked
// meanwhile, B8); audit. Idempotent.
func (s *Store) AbortReencrypt(ctx context.Context, appID string, gen int, reason string, cause Cause) (App, error) {
	if gen < 2 {
		return App{}, invalid("abort re-encryption of app %s: generation %d cannot be a new generation", appID, gen)
	}
	if reason == "" {
		reason = "no reason given"
	}
	return s.changeApp(ctx, appID, "abort re-encryption", func(app *App, now time.Time) (appChange, error) {
		if app.PendingGeneration != gen {
			g, err := s.GetGeneration(ctx, app.ID, gen)
			if err != nil {
				return appChange{}, err
			}
			if app.ActiveGeneration != gen && g.State == GenRetired {
				return appChange{noWrite: true}, nil // already aborted
			}
			return appChange{}, conflict(app.ID, nil, "no re-encryption to generation %d is running (generation %d is %s)", gen, gen, g.State)
		}
		pending, err := s.getGenRaw(ctx, app.ID, gen)
		if err != nil {
			return appChange{}, err
		}
		if pending.State != GenPending && pending.State != GenRevoked {
			return appChange{}, invariant("app %s: pending generation %d is %s", app.ID, gen, pending.State)
		}
		old, err := s.getGenRaw(ctx, app.ID, app.ActiveGeneration)
		if err != nil {
			return appChange{}, err
		}
		if old.State != GenActive && old.State != GenRevoked {
			return appChange{}, invariant("app %s: active generation %d is %s", app.ID, old.Number, old.State)
		}
		// The pending generation is retired whatever its key's state (K7); the app goes back
		// to its previous generation, and is deactivated exactly when that one's key is
		// revoked (derived, K1).
		items := []types.TransactWriteItem{
			s.genStateUpdate(pending, []GenerationState{GenPending, GenRevoked}, GenRetired, "by an aborted re-encryption: "+reason, now),
			s.check(keyOf(appPK(app.ID), genSK(old.Number)), "#st = :a OR #st = :r", map[string]string{"#st": "state"},
				item{":a": str(string(GenActive)), ":r": str(string(GenRevoked))}),
		}
		app.PendingGeneration, app.PendingKeyARN = 0, ""
		if app.Status != AppDeactivated {
			app.Status, app.StatusReason = AppActive, ""
		}
		return appChange{
			items: items,
			audit: &AuditEntry{AppID: app.ID, Action: ActionReencryptAborted, Cause: cause, Detail: map[string]string{
				"generation": strconv.Itoa(gen), "keyArn": pending.KeyARN, "reason": reason,
				"activeGeneration": strconv.Itoa(old.Number), "status": string(app.Status),
			}},
		}, nil
	})
}
