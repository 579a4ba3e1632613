package lineage_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	keyA = "arn:aws:kms:us-east-1:111122223333:key/aaaaaaaa-0000-0000-0000-000000000001"
	keyB = "arn:aws:kms:us-east-1:111122223333:key/bbbbbbbb-0000-0000-0000-000000000002"
	keyC = "arn:aws:kms:us-east-1:111122223333:key/cccccccc-0000-0000-0000-000000000003"
)

type env struct {
	store *lineage.Store
	clock *clocktest.Fake
	table string
}

func newEnv(t testing.TB, opts lineage.Options) env {
	t.Helper()
	client := testenv.DynamoDB(t)
	table := testenv.NewTable(t, client)
	fc := clocktest.NewFake(t0)
	if opts.Clock == nil {
		opts.Clock = fc
	}
	return env{store: lineage.New(client, table, opts), clock: fc, table: table}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func mustOrg(t testing.TB, s *lineage.Store, id string) {
	t.Helper()
	if _, err := s.CreateOrg(ctxT(t), lineage.Org{ID: id, Name: "Org " + id}); err != nil {
		t.Fatalf("CreateOrg %s: %v", id, err)
	}
}

func mustApp(t testing.TB, s *lineage.Store, org, id, key string) lineage.App {
	t.Helper()
	app, err := s.CreateApp(ctxT(t), lineage.App{ID: id, OrgID: org, KeyModel: lineage.KeyModelCMK}, key, []byte("wrapped-"+id), lineage.Cause{Actor: "test"})
	if err != nil {
		t.Fatalf("CreateApp %s: %v", id, err)
	}
	return app
}

// mustApps creates n cmk apps named prefix-0000… on key, in parallel.
func mustApps(t testing.TB, s *lineage.Store, org, prefix, key string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for _, id := range ids {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_, err := s.CreateApp(context.Background(), lineage.App{ID: id, OrgID: org, KeyModel: lineage.KeyModelCMK}, key, []byte("w"), lineage.Cause{})
			if err != nil {
				errs <- fmt.Errorf("CreateApp %s: %w", id, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return ids
}

// mustBackup takes the lease and records a backup under the app's active generation.
func mustBackup(t testing.TB, s *lineage.Store, appID, id string) lineage.Backup {
	t.Helper()
	ctx := ctxT(t)
	app, err := s.AcquireBackupLease(ctx, appID, "backup-"+id, time.Minute)
	if err != nil {
		t.Fatalf("AcquireBackupLease %s: %v", appID, err)
	}
	b, err := s.RecordBackup(ctx, lineage.Backup{AppID: appID, ID: id, Generation: app.ActiveGeneration,
		ObjectKey: "backups/" + appID + "/" + id, SizeBytes: 42, Digest: "d-" + id, ObjectCount: 3}, "backup-"+id, lineage.Cause{Actor: "scheduler"})
	if err != nil {
		t.Fatalf("RecordBackup %s/%s: %v", appID, id, err)
	}
	return b
}

func mustGetApp(t testing.TB, s *lineage.Store, id string) lineage.App {
	t.Helper()
	a, err := s.GetApp(ctxT(t), id)
	if err != nil {
		t.Fatalf("GetApp %s: %v", id, err)
	}
	return a
}

func mustGen(t testing.TB, s *lineage.Store, id string, n int) lineage.Generation {
	t.Helper()
	g, err := s.GetGeneration(ctxT(t), id, n)
	if err != nil {
		t.Fatalf("GetGeneration %s/%d: %v", id, n, err)
	}
	return g
}

// wantConflict checks err is a *ConflictError and, when reason is not nil, wraps reason.
func wantConflict(t testing.TB, err error, reason error) {
	t.Helper()
	var ce *lineage.ConflictError
	if !errors.As(err, &ce) || !errors.Is(err, lineage.ErrConflict) {
		t.Fatalf("want a *ConflictError, got %T %v", err, err)
	}
	if reason != nil && !errors.Is(err, reason) {
		t.Fatalf("want a conflict wrapping %v, got %v", reason, err)
	}
}

func backupView(t testing.TB, s *lineage.Store, appID, id string) lineage.BackupView {
	t.Helper()
	v, err := s.GetBackup(ctxT(t), appID, id)
	if err != nil {
		t.Fatalf("GetBackup %s/%s: %v", appID, id, err)
	}
	return v
}
