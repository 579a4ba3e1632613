package lineage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// AcquireBackupLease takes the app's backup lease for holder until now+ttl and returns the
// app as leased. Refused with a *ConflictError wrapping ErrReencrypting while the app
// re-encrypts, ErrAppDeactivated when deactivated, ErrLeaseHeld while another holder's
// lease is unexpired. An expired lease is taken over; the same holder renews its lease.
func (s *Store) AcquireBackupLease(ctx context.Context, appID, holder string, ttl time.Duration) (App, error) {
	if holder == "" {
		return App{}, invalid("backup lease of app %s: holder is empty", appID)
	}
	if ttl <= 0 {
		return App{}, invalid("backup lease of app %s: ttl must be positive, got %s", appID, ttl)
	}
	return s.changeApp(ctx, appID, "acquire backup lease", func(app *App, now time.Time) (appChange, error) {
		switch app.Status {
		case AppReencrypting:
			return appChange{}, conflict(app.ID, ErrReencrypting, "no backup while re-encrypting to generation %d", app.PendingGeneration)
		case AppDeactivated:
			return appChange{}, conflict(app.ID, ErrAppDeactivated, "no backup of a deactivated app: %s", app.StatusReason)
		}
		if app.LeaseHeld(now) && app.BackupLease.Holder != holder {
			return appChange{}, conflict(app.ID, ErrLeaseHeld, "backup lease held by %s until %s",
				app.BackupLease.Holder, app.BackupLease.Until.Format(time.RFC3339))
		}
		app.BackupLease = &Lease{Holder: holder, Until: now.Add(ttl)}
		return appChange{items: s.keyUsableChecks(app.ActiveKeyARN)}, nil
	})
}

// ReleaseBackupLease releases holder's lease. Releasing a lease that is not held is a no-op;
// releasing another holder's unexpired lease is a *ConflictError wrapping ErrLeaseHeld.
func (s *Store) ReleaseBackupLease(ctx context.Context, appID, holder string) error {
	if holder == "" {
		return invalid("backup lease of app %s: holder is empty", appID)
	}
	_, err := s.changeApp(ctx, appID, "release backup lease", func(app *App, now time.Time) (appChange, error) {
		if app.BackupLease == nil {
			return appChange{noWrite: true}, nil
		}
		if app.BackupLease.Holder != holder {
			if app.LeaseHeld(now) {
				return appChange{}, conflict(app.ID, ErrLeaseHeld, "backup lease is held by %s, not %s", app.BackupLease.Holder, holder)
			}
			return appChange{noWrite: true}, nil
		}
		app.BackupLease = nil
		return appChange{}, nil
	})
	return err
}

// RecordBackup records a finished backup, only if holder still holds the app's backup lease,
// the app is ACTIVE and b.Generation is still the app's ACTIVE generation (checked in the
// same transaction); it releases the lease, sets LastBackupAt and appends an audit entry.
// Idempotent on b.ID (generated when empty): recording the same id again returns the stored
// backup. b.KeyARN defaults to the generation's key and must match it; CreatedAt defaults to now.
func (s *Store) RecordBackup(ctx context.Context, b Backup, holder string, cause Cause) (Backup, error) {
	if b.ID == "" {
		b.ID = NewID()
	}
	if err := validID("backup", b.ID); err != nil {
		return Backup{}, err
	}
	if err := validID("app", b.AppID); err != nil {
		return Backup{}, err
	}
	if b.Generation < 1 {
		return Backup{}, invalid("backup %s of app %s has no generation", b.ID, b.AppID)
	}
	if b.SizeBytes < 0 || b.ObjectCount < 0 {
		return Backup{}, invalid("backup %s of app %s has a negative size or object count", b.ID, b.AppID)
	}
	if b.CreatedAt.IsZero() {
		b.CreatedAt = s.clock.Now()
	}
	b.CreatedAt = b.CreatedAt.UTC()
	var stored *Backup
	_, err := s.changeApp(ctx, b.AppID, "record backup", func(app *App, now time.Time) (appChange, error) {
		if prev, err := s.getBackup(ctx, b.AppID, b.ID); err == nil {
			stored = &prev
			return appChange{noWrite: true}, nil
		} else if !errors.Is(err, ErrNotFound) {
			return appChange{}, err
		}
		switch app.Status {
		case AppReencrypting:
			return appChange{}, conflict(app.ID, ErrReencrypting, "backup %s not recorded: the app is re-encrypting", b.ID)
		case AppDeactivated:
			return appChange{}, conflict(app.ID, ErrAppDeactivated, "backup %s not recorded: %s", b.ID, app.StatusReason)
		}
		if app.BackupLease == nil || app.BackupLease.Holder != holder {
			by := "nobody"
			if app.BackupLease != nil {
				by = app.BackupLease.Holder
			}
			return appChange{}, conflict(app.ID, ErrLeaseHeld, "backup %s not recorded: the backup lease is held by %s, not %s", b.ID, by, holder)
		}
		gen, err := s.GetGeneration(ctx, app.ID, b.Generation)
		if err != nil {
			return appChange{}, err
		}
		if gen.KeyRevoked {
			return appChange{}, conflict(app.ID, ErrKeyRevoked, "backup %s not recorded: %s", b.ID, gen.KeyReason)
		}
		if gen.State != GenActive || app.ActiveGeneration != b.Generation {
			return appChange{}, conflict(app.ID, nil, "backup %s not recorded: it was sealed under generation %d (%s), the active generation is %d",
				b.ID, b.Generation, gen.State, app.ActiveGeneration)
		}
		if b.KeyARN == "" {
			b.KeyARN = gen.KeyARN
		}
		if b.KeyARN != gen.KeyARN {
			return appChange{}, invalid("backup %s names key %s but generation %d uses %s", b.ID, b.KeyARN, gen.Number, gen.KeyARN)
		}
		bm, err := marshal(b, typeBackup, appPK(b.AppID), backupSK(b.CreatedAt, b.ID))
		if err != nil {
			return appChange{}, err
		}
		ref := item{attrPK: str(appPK(b.AppID)), attrSK: str(backupRefSK(b.ID)), "Type": str(typeBackRef), "ref": bm[attrSK]}
		app.BackupLease = nil
		app.LastBackupAt = b.CreatedAt
		return appChange{
			items: append([]types.TransactWriteItem{
				s.check(keyOf(appPK(app.ID), genSK(gen.Number)), "#st = :a", map[string]string{"#st": "state"}, item{":a": str(string(GenActive))}),
				s.putNew(bm),
				s.putNew(ref),
			}, s.keyUsableChecks(gen.KeyARN)...),
			audit: &AuditEntry{AppID: app.ID, Action: ActionBackupRecorded, Cause: cause, Detail: map[string]string{
				"backupId": b.ID, "generation": strconv.Itoa(b.Generation), "keyArn": b.KeyARN,
				"objectKey": b.ObjectKey, "digest": b.Digest, "sizeBytes": strconv.FormatInt(b.SizeBytes, 10),
			}},
		}, nil
	})
	if err != nil {
		return Backup{}, err
	}
	if stored != nil {
		return *stored, nil
	}
	return b, nil
}

func (s *Store) getBackup(ctx context.Context, appID, backupID string) (Backup, error) {
	ref, err := s.getItem(ctx, appPK(appID), backupRefSK(backupID))
	if err != nil {
		return Backup{}, err
	}
	sk, ok := ref["ref"].(*types.AttributeValueMemberS)
	if !ok {
		return Backup{}, notFound("backup %s of app %s", backupID, appID)
	}
	m, err := s.getItem(ctx, appPK(appID), sk.Value)
	if err != nil {
		return Backup{}, err
	}
	if m == nil {
		return Backup{}, fmt.Errorf("lineage: backup %s of app %s: its reference points at a missing item", backupID, appID)
	}
	var b Backup
	return b, unmarshal(m, &b)
}

// GetBackup returns one backup with its derived restorability, or ErrNotFound.
func (s *Store) GetBackup(ctx context.Context, appID, backupID string) (BackupView, error) {
	if err := validID("app", appID); err != nil {
		return BackupView{}, err
	}
	if err := validID("backup", backupID); err != nil {
		return BackupView{}, err
	}
	b, err := s.getBackup(ctx, appID, backupID)
	if err != nil {
		return BackupView{}, err
	}
	app, err := s.GetApp(ctx, appID)
	if err != nil {
		return BackupView{}, err
	}
	gen, err := s.GetGeneration(ctx, appID, b.Generation)
	if err != nil {
		return BackupView{}, err
	}
	ok, reason := b.Restorability(gen, app)
	return BackupView{Backup: b, Restorable: ok, Reason: reason}, nil
}

// ListBackups returns the app's backups, oldest first, each with its derived restorability
// (the app and its generations are read once, not per backup).
func (s *Store) ListBackups(ctx context.Context, appID string) ([]BackupView, error) {
	app, err := s.GetApp(ctx, appID)
	if err != nil {
		return nil, err
	}
	gens, err := s.ListGenerations(ctx, appID)
	if err != nil {
		return nil, err
	}
	byNum := make(map[int]Generation, len(gens))
	for _, g := range gens {
		byNum[g.Number] = g
	}
	var out []BackupView
	err = s.queryPrefix(ctx, appPK(appID), "BACKUP#", func(m item) error {
		var b Backup
		if err := unmarshal(m, &b); err != nil {
			return err
		}
		v := BackupView{Backup: b}
		if g, ok := byNum[b.Generation]; ok {
			v.Restorable, v.Reason = b.Restorability(g, app)
		} else {
			v.Reason = fmt.Sprintf("generation %d of the backup is missing from the lineage; contact the operator", b.Generation)
		}
		out = append(out, v)
		return nil
	})
	return out, err
}
