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
	// Parallelism bounds the transactions RevokeKey and ReactivateKey run at once.
	// Default: 32.
	Parallelism int
	// RevokeBatch is how many apps RevokeKey revokes per TransactWriteItems (1 to 33). Each
	// app is three writes (generation, app, audit), all-or-nothing either way, and a batch
	// that is canceled (an app changed meanwhile) falls back to one transaction per app.
	// Batches cut the number of calls: on DynamoDB Local, which handles transactions
	// poorly in parallel, 25 apps per transaction revoke 2-3 times faster than one. Default:
	// 25; 1 means one transaction per app.
	RevokeBatch int
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
	batch int
	limit int32
	log   *slog.Logger
	seq   atomic.Int64
	nonce string
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
	s.batch = opts.RevokeBatch
	if s.batch <= 0 {
		s.batch = 25
	}
	s.batch = min(s.batch, 33)
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
// consistent), lets fn check the invariants and change it, then writes the app with
// Version+1, conditional on the Version read, together with fn's other items and audit
// entry in one transaction. When a condition fails because something changed underneath,
// it reads again and lets fn decide again, so a loser gets the specific refusal fn gives
// for the new state; after maxAttempts it gives up with a *ConflictError.
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
		app, err := s.GetApp(ctx, appID)
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
		err = s.transact(ctx, items)
		if err == nil {
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

// checkAppInvariant checks what must hold of every app written.
func checkAppInvariant(a App) error {
	switch a.Status {
	case AppActive, AppDeactivated:
		if a.PendingGeneration != 0 && a.Status == AppActive {
			return invariant("app %s: ACTIVE with pending generation %d", a.ID, a.PendingGeneration)
		}
	case AppReencrypting:
		if a.PendingGeneration <= a.ActiveGeneration {
			return invariant("app %s: re-encrypting without a pending generation after %d", a.ID, a.ActiveGeneration)
		}
	default:
		return invariant("app %s: unknown status %q", a.ID, a.Status)
	}
	if a.ActiveGeneration < 1 || a.ActiveGeneration > a.LatestGeneration || a.PendingGeneration > a.LatestGeneration {
		return invariant("app %s: generations active %d, pending %d, latest %d are inconsistent",
			a.ID, a.ActiveGeneration, a.PendingGeneration, a.LatestGeneration)
	}
	return nil
}
