package lineage_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

// race runs a and b at the same moment and returns their errors.
func race(a, b func() error) (error, error) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	var ea, eb error
	wg.Add(2)
	go func() { defer wg.Done(); <-start; ea = a() }()
	go func() { defer wg.Done(); <-start; eb = b() }()
	close(start)
	wg.Wait()
	return ea, eb
}

func TestRaceReencryptAgainstBackupLease(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s := e.store
	mustOrg(t, s, "o")
	leaseWins, reencryptWins := 0, 0
	for round := 0; round < 12; round++ {
		id := fmt.Sprintf("app-%02d", round)
		mustApp(t, s, "o", id, keyA)
		ctx := context.Background()
		errBegin, errLease := race(
			func() error { _, err := s.BeginReencrypt(ctx, id, 2, keyB, nil, lineage.Cause{}); return err },
			func() error { _, err := s.AcquireBackupLease(ctx, id, "backup", time.Minute); return err },
		)
		if (errBegin == nil) == (errLease == nil) {
			t.Fatalf("round %d: exactly one must win: begin=%v lease=%v", round, errBegin, errLease)
		}
		app := mustGetApp(t, s, id)
		if errBegin == nil {
			reencryptWins++
			wantConflict(t, errLease, lineage.ErrReencrypting)
			if app.Status != lineage.AppReencrypting || app.BackupLease != nil {
				t.Fatalf("round %d: re-encryption won but app = %+v", round, app)
			}
		} else {
			leaseWins++
			wantConflict(t, errBegin, lineage.ErrLeaseHeld)
			if app.Status != lineage.AppActive || app.BackupLease == nil || app.LatestGeneration != 1 {
				t.Fatalf("round %d: lease won but app = %+v", round, app)
			}
		}
		if app.Version != 2 {
			t.Fatalf("round %d: exactly one write expected, version %d", round, app.Version)
		}
	}
	t.Logf("lease won %d, re-encryption won %d", leaseWins, reencryptWins)
}

func TestRaceTwoReencryptions(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s := e.store
	mustOrg(t, s, "o")
	for round := 0; round < 12; round++ {
		id := fmt.Sprintf("app-%02d", round)
		mustApp(t, s, "o", id, keyA)
		ctx := context.Background()
		var gb, gc lineage.Generation
		errB, errC := race(
			func() (err error) { gb, err = s.BeginReencrypt(ctx, id, 2, keyB, nil, lineage.Cause{}); return err },
			func() (err error) { gc, err = s.BeginReencrypt(ctx, id, 2, keyC, nil, lineage.Cause{}); return err },
		)
		if (errB == nil) == (errC == nil) {
			t.Fatalf("round %d: exactly one must win: %v / %v", round, errB, errC)
		}
		winner := gb
		loserErr := errC
		if errB != nil {
			winner, loserErr = gc, errB
		}
		wantConflict(t, loserErr, lineage.ErrReencrypting)
		gens, err := s.ListGenerations(ctx, id)
		if err != nil || len(gens) != 2 || gens[1].KeyARN != winner.KeyARN || gens[1].State != lineage.GenPending {
			t.Fatalf("round %d: lineage = %+v, %v (winner %s)", round, gens, err, winner.KeyARN)
		}
	}
}

// Many writers on one app: every change is applied exactly once (no lost update).
func TestConcurrentLeaseCyclesLoseNoUpdate(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s := e.store
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "busy", keyA)
	const workers, cycles = 6, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("w%d", w)
			ctx := context.Background()
			for done := 0; done < cycles; {
				_, err := s.AcquireBackupLease(ctx, "busy", holder, time.Minute)
				if err != nil {
					continue // held by another worker: try again
				}
				_, err = s.RecordBackup(ctx, lineage.Backup{AppID: "busy", ID: fmt.Sprintf("%s-%d", holder, done), Generation: 1}, holder, lineage.Cause{})
				if err != nil {
					errs <- err
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	list, err := s.ListBackups(context.Background(), "busy")
	if err != nil || len(list) != workers*cycles {
		t.Fatalf("backups: %d, %v", len(list), err)
	}
	if app := mustGetApp(t, s, "busy"); app.BackupLease != nil {
		t.Fatalf("lease left behind: %+v", app.BackupLease)
	}
}
