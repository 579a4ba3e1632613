package lineage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/clock"
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Clock stamps every change and decides lease expiry and the reactivation window.
	// Default: clock.Real().
	Clock clock.Clock
	// Parallelism bounds the reads Migrate runs at once. Default: 32.
	Parallelism int
	// PageLimit is the Limit of each Query page (0: DynamoDB's default of 1 MB pages).
	// Tests set it small to force pagination.
	PageLimit int32
	// Logger receives structured logs. Default: slog.Default().
	Logger *slog.Logger
}

// Store is the lineage store on one DynamoDB table. It is safe for concurrent use.
type Store struct {
	db    *dynamodb.Client
	table string
	clock clock.Clock
	par   int
	limit int32
	log   *slog.Logger
	seq   atomic.Int64
	nonce string
	// Test hooks (export_test.go): beforeWrite runs between changeApp's read and its
	// transaction; noKeyChecks drops the key ConditionChecks (K5), to show the tests that
	// need them fail without them.
	beforeWrite func(what string)
	noKeyChecks bool
}

// New returns a Store on the table (created with CreateTable) reached through client.
func New(client *dynamodb.Client, tableName string, opts Options) *Store {
	s := &Store{db: client, table: tableName, clock: opts.Clock, par: opts.Parallelism, limit: opts.PageLimit, log: opts.Logger}
	if s.clock == nil {
		s.clock = clock.Real()
	}
	if s.par <= 0 {
		s.par = 32
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	s.nonce = hex.EncodeToString(b[:])
	return s
}

// Table returns the name of the store's table.
func (s *Store) Table() string { return s.table }

// NewID returns a new random identifier (32 hex digits), for backups, restores and the like.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// maxAttempts bounds the read-check-write retries of one change under contention.
const maxAttempts = 12

// appChange is what a change function decided for an app.
type appChange struct {
	// items are the other writes of the transaction (generations, backups, …).
	items []types.TransactWriteItem
	// audit, when set, is appended in the same transaction.
	audit *AuditEntry
	// noWrite: nothing to do (idempotent repeat); the app is returned as read.
	noWrite bool
}

// changeApp is the one place app items are rewritten: it reads the app (strongly
// consistent) with the keys of its generations, derives its status (K1), lets fn check the
// invariants and change it, then writes the app with Version+1, conditional on the Version
// read, together with fn's other items (among them the ConditionChecks on the key items a
// change needs usable, K5) and audit entry in one transaction. When a condition fails
// because something changed underneath (the app, a generation, a key), it reads again and
// lets fn decide again, so a loser gets the specific refusal fn gives for the new state;
// after maxAttempts it gives up with a *ConflictError. The app returned carries its derived
// status.
func (s *Store) changeApp(ctx context.Context, appID, what string, fn func(app *App, now time.Time) (appChange, error)) (App, error) {
	if err := validID("app", appID); err != nil {
		return App{}, err
	}
	var lastErr error
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return App{}, err
			}
		}
		app, keys, err := s.getAppKeys(ctx, appID)
		if err != nil {
			return App{}, err
		}
		now := s.clock.Now().UTC()
		next := app
		if app.BackupLease != nil {
			l := *app.BackupLease
			next.BackupLease = &l
		}
		ch, err := fn(&next, now)
		if err != nil {
			return App{}, err
		}
		if ch.noWrite {
			return next, nil
		}
		if next.ID != app.ID || next.OrgID != app.OrgID || next.KeyModel != app.KeyModel {
			return App{}, invariant("%s: an app's id, org and key model never change", what)
		}
		if err := checkAppInvariant(next); err != nil {
			return App{}, err
		}
		next.Version = app.Version + 1
		m, err := s.appItem(next)
		if err != nil {
			return App{}, err
		}
		items := append([]types.TransactWriteItem{s.put(m, "#v = :v",
			map[string]string{"#v": "version"}, item{":v": num(app.Version)})}, ch.items...)
		if ch.audit != nil {
			a, err := s.auditItem(*ch.audit, now)
			if err != nil {
				return App{}, err
			}
			items = append(items, a)
		}
		if s.beforeWrite != nil {
			s.beforeWrite(what)
		}
		err = s.transact(ctx, items)
		if err == nil {
			if _, ok := keys[next.ActiveKeyARN]; !ok {
				// A commit moved the app onto its pending key, which its ConditionCheck found usable.
				keys[next.ActiveKeyARN] = Key{ARN: next.ActiveKeyARN, State: KeyUsable}
			}
			next.Status, next.StatusReason = storedStatus(next), ""
			deriveApp(&next, keys)
			return next, nil
		}
		var f *txFailure
		if errors.As(err, &f) && f.retryable() {
			lastErr = err
			continue
		}
		return App{}, fmt.Errorf("lineage: %s on app %s: %w", what, appID, err)
	}
	return App{}, &ConflictError{AppID: appID, What: fmt.Sprintf("%s: the app kept changing concurrently (%d attempts; last: %v)", what, maxAttempts, lastErr)}
}

// checkAppInvariant checks what must hold of every app written: its stored status follows
// from whether a generation is pending (DEACTIVATED is derived, never stored, K1).
func checkAppInvariant(a App) error {
	if a.PendingGeneration != 0 && a.PendingGeneration <= a.ActiveGeneration {
		return invariant("app %s: pending generation %d is not after the active generation %d", a.ID, a.PendingGeneration, a.ActiveGeneration)
	}
	if (a.PendingGeneration == 0) != (a.PendingKeyARN == "") && a.KeyModel == KeyModelCMK {
		return invariant("app %s: pending generation %d with pending key %q", a.ID, a.PendingGeneration, a.PendingKeyARN)
	}
	if a.ActiveGeneration < 1 || a.ActiveGeneration > a.LatestGeneration || a.PendingGeneration > a.LatestGeneration {
		return invariant("app %s: generations active %d, pending %d, latest %d are inconsistent",
			a.ID, a.ActiveGeneration, a.PendingGeneration, a.LatestGeneration)
	}
	return nil
}
