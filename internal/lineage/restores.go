package lineage

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// RecordRestore records a restore request (ID generated when empty, Status default PENDING,
// SourceAppID default AppID) with an audit entry, in one transaction; the target app must
// exist. Idempotent on ID for the same request; another request with the same ID is
// ErrDuplicate.
func (s *Store) RecordRestore(ctx context.Context, r Restore) (Restore, error) {
	if r.ID == "" {
		r.ID = NewID()
	}
	if err := validID("restore", r.ID); err != nil {
		return Restore{}, err
	}
	if err := validID("app", r.AppID); err != nil {
		return Restore{}, err
	}
	if err := validID("backup", r.BackupID); err != nil {
		return Restore{}, err
	}
	if r.SourceAppID == "" {
		r.SourceAppID = r.AppID
	}
	if err := validID("source app", r.SourceAppID); err != nil {
		return Restore{}, err
	}
	if r.Status == "" {
		r.Status = RestorePending
	}
	if !r.Status.valid() {
		return Restore{}, invalid("restore %s: unknown status %q", r.ID, r.Status)
	}
	now := s.clock.Now().UTC()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	r.CreatedAt = r.CreatedAt.UTC()
	if r.Status.Terminal() && r.FinishedAt.IsZero() {
		r.FinishedAt = now
	}
	m, err := marshal(r, typeRestore, appPK(r.AppID), restoreSK(r.ID))
	if err != nil {
		return Restore{}, err
	}
	detail := map[string]string{"restoreId": r.ID, "backupId": r.BackupID, "sourceAppId": r.SourceAppID, "status": string(r.Status)}
	if r.Reason != "" {
		detail["reason"] = r.Reason
	}
	audit, err := s.auditItem(AuditEntry{AppID: r.AppID, Action: ActionRestoreRequested, Actor: r.RequestedBy,
		Cause: Cause{ExecutionArn: r.ExecutionArn, Actor: r.RequestedBy}, Detail: detail}, now)
	if err != nil {
		return Restore{}, err
	}
	err = s.transact(ctx, []types.TransactWriteItem{
		s.check(keyOf(appPK(r.AppID), skMeta), "attribute_exists(PK)", nil, nil),
		s.putNew(m), audit,
	})
	var f *txFailure
	switch {
	case err == nil:
		return r, nil
	case errors.As(err, &f) && f.failed(0):
		return Restore{}, notFound("app %s", r.AppID)
	case errors.As(err, &f) && f.failed(1):
		prev, gerr := s.GetRestore(ctx, r.AppID, r.ID)
		if gerr != nil {
			return Restore{}, gerr
		}
		if prev.BackupID == r.BackupID && prev.SourceAppID == r.SourceAppID && prev.RequestedBy == r.RequestedBy {
			return prev, nil
		}
		return Restore{}, fmt.Errorf("%w: restore %s of app %s exists for another request", ErrDuplicate, r.ID, r.AppID)
	}
	return Restore{}, fmt.Errorf("lineage: record restore %s of app %s: %w", r.ID, r.AppID, err)
}

func (st RestoreStatus) valid() bool {
	switch st {
	case RestorePending, RestoreRunning, RestoreSucceeded, RestoreFailed, RestoreRefused:
		return true
	}
	return false
}

// UpdateRestore updates a restore's status, reason, execution ARN, digest and FinishedAt
// (defaulted to now for terminal statuses) with an audit entry, conditional on the status
// read. A finished restore cannot change (*ConflictError), except to repeat the same
// outcome (idempotent). Empty fields of r keep their stored values.
func (s *Store) UpdateRestore(ctx context.Context, r Restore) (Restore, error) {
	if err := validID("app", r.AppID); err != nil {
		return Restore{}, err
	}
	if err := validID("restore", r.ID); err != nil {
		return Restore{}, err
	}
	if r.Status != "" && !r.Status.valid() {
		return Restore{}, invalid("restore %s: unknown status %q", r.ID, r.Status)
	}
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return Restore{}, err
			}
		}
		cur, err := s.GetRestore(ctx, r.AppID, r.ID)
		if err != nil {
			return Restore{}, err
		}
		next := cur
		if r.Status != "" {
			next.Status = r.Status
		}
		if r.Reason != "" {
			next.Reason = r.Reason
		}
		if r.ExecutionArn != "" {
			next.ExecutionArn = r.ExecutionArn
		}
		if r.Digest != "" {
			next.Digest = r.Digest
		}
		if r.KeyARN != "" {
			next.KeyARN = r.KeyARN
		}
		if !r.FinishedAt.IsZero() {
			next.FinishedAt = r.FinishedAt.UTC()
		}
		if cur.Status.Terminal() {
			if next.Status == cur.Status && next.Reason == cur.Reason && next.Digest == cur.Digest && next.ExecutionArn == cur.ExecutionArn {
				return cur, nil
			}
			return Restore{}, conflict(r.AppID, nil, "restore %s already finished (%s)", r.ID, cur.Status)
		}
		now := s.clock.Now().UTC()
		if next.Status.Terminal() && next.FinishedAt.IsZero() {
			next.FinishedAt = now
		}
		m, err := marshal(next, typeRestore, appPK(r.AppID), restoreSK(r.ID))
		if err != nil {
			return Restore{}, err
		}
		detail := map[string]string{"restoreId": r.ID, "backupId": next.BackupID, "status": string(next.Status), "previousStatus": string(cur.Status)}
		if next.Reason != "" {
			detail["reason"] = next.Reason
		}
		if next.Digest != "" {
			detail["digest"] = next.Digest
		}
		audit, err := s.auditItem(AuditEntry{AppID: r.AppID, Action: ActionRestoreUpdated, Actor: next.RequestedBy,
			Cause: Cause{ExecutionArn: next.ExecutionArn, Actor: next.RequestedBy}, Detail: detail}, now)
		if err != nil {
			return Restore{}, err
		}
		items := []types.TransactWriteItem{
			s.put(m, "#st = :st", map[string]string{"#st": "status"}, item{":st": str(string(cur.Status))}),
			audit,
		}
		starting := next.Status == RestoreRunning && cur.Status != RestoreRunning
		if starting {
			// K5: a restore starts only while the backup's key and the target's key are usable.
			target, keys, err := s.getAppKeys(ctx, r.AppID)
			if err != nil {
				return Restore{}, err
			}
			for _, arn := range []string{next.KeyARN, target.ActiveKeyARN} {
				if k, ok := keys[arn]; ok && !k.Usable() {
					return Restore{}, conflict(r.AppID, ErrKeyRevoked, "restore %s cannot start: %s", r.ID, k.Reason())
				}
			}
			if target.Status == AppDeactivated {
				return Restore{}, conflict(r.AppID, ErrAppDeactivated, "restore %s cannot start: %s", r.ID, target.StatusReason)
			}
			items = append(items, s.keyUsableChecks(next.KeyARN, target.ActiveKeyARN)...)
		}
		err = s.transact(ctx, items)
		if err == nil {
			return next, nil
		}
		var f *txFailure
		if errors.As(err, &f) && f.retryable() {
			continue
		}
		return Restore{}, fmt.Errorf("lineage: update restore %s of app %s: %w", r.ID, r.AppID, err)
	}
	return Restore{}, conflict(r.AppID, nil, "restore %s kept changing concurrently", r.ID)
}

// GetRestore returns one restore, or ErrNotFound.
func (s *Store) GetRestore(ctx context.Context, appID, restoreID string) (Restore, error) {
	if err := validID("app", appID); err != nil {
		return Restore{}, err
	}
	if err := validID("restore", restoreID); err != nil {
		return Restore{}, err
	}
	m, err := s.getItem(ctx, appPK(appID), restoreSK(restoreID))
	if err != nil {
		return Restore{}, err
	}
	if m == nil {
		return Restore{}, notFound("restore %s of app %s", restoreID, appID)
	}
	var r Restore
	return r, unmarshal(m, &r)
}

// ListRestores returns the app's restores (restores into the app), oldest first.
func (s *Store) ListRestores(ctx context.Context, appID string) ([]Restore, error) {
	if err := validID("app", appID); err != nil {
		return nil, err
	}
	var out []Restore
	err := s.queryPrefix(ctx, appPK(appID), "RESTORE#", func(m item) error {
		var r Restore
		if err := unmarshal(m, &r); err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, err
}
