package lineage_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

func TestLifecycle(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "acme")
	if _, err := s.CreateOrg(ctx, lineage.Org{ID: "acme"}); !errors.Is(err, lineage.ErrDuplicate) {
		t.Fatalf("second CreateOrg: want ErrDuplicate, got %v", err)
	}
	org, err := s.GetOrg(ctx, "acme")
	if err != nil || org.Name != "Org acme" || !org.CreatedAt.Equal(t0) {
		t.Fatalf("GetOrg = %+v, %v", org, err)
	}

	app := mustApp(t, s, "acme", "shop", keyA)
	if app.Status != lineage.AppActive || app.ActiveGeneration != 1 || app.Version != 1 || app.KeyModel != lineage.KeyModelCMK {
		t.Fatalf("new app = %+v", app)
	}
	if got := mustGetApp(t, s, "shop"); got.Status != app.Status || got.Version != 1 || !got.CreatedAt.Equal(t0) {
		t.Fatalf("GetApp = %+v", got)
	}
	g1 := mustGen(t, s, "shop", 1)
	if g1.State != lineage.GenActive || g1.KeyARN != keyA || string(g1.WrappedDataKey) != "wrapped-shop" || g1.OrgID != "acme" {
		t.Fatalf("generation 1 = %+v", g1)
	}

	// Bad input changes nothing.
	if _, err := s.CreateApp(ctx, lineage.App{ID: "shop", OrgID: "acme", KeyModel: lineage.KeyModelCMK}, keyA, nil, lineage.Cause{}); !errors.Is(err, lineage.ErrDuplicate) {
		t.Fatalf("duplicate app: want ErrDuplicate, got %v", err)
	}
	if _, err := s.CreateApp(ctx, lineage.App{ID: "nokey", OrgID: "acme", KeyModel: lineage.KeyModelCMK}, "", nil, lineage.Cause{}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("cmk app without key: want ErrInvalidInput, got %v", err)
	}
	if _, err := s.CreateApp(ctx, lineage.App{ID: "orphan", OrgID: "nobody"}, "", nil, lineage.Cause{}); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("app of missing org: want ErrNotFound, got %v", err)
	}
	if _, err := s.CreateApp(ctx, lineage.App{ID: "a#b", OrgID: "acme"}, "", nil, lineage.Cause{}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("app id with '#': want ErrInvalidInput, got %v", err)
	}
	if _, err := s.GetApp(ctx, "nokey"); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("refused app exists: %v", err)
	}

	// Backup 1 under generation 1.
	b1 := mustBackup(t, s, "shop", "b1")
	if b1.KeyARN != keyA || !b1.CreatedAt.Equal(t0) {
		t.Fatalf("backup 1 = %+v", b1)
	}
	after := mustGetApp(t, s, "shop")
	if after.BackupLease != nil || !after.LastBackupAt.Equal(t0) {
		t.Fatalf("after RecordBackup the lease is released and LastBackupAt set: %+v", after)
	}
	// Idempotent on the backup id (the lease is gone, yet the repeat succeeds and adds nothing).
	again, err := s.RecordBackup(ctx, lineage.Backup{AppID: "shop", ID: "b1", Generation: 1}, "backup-b1", lineage.Cause{})
	if err != nil || again.Digest != "d-b1" {
		t.Fatalf("repeated RecordBackup = %+v, %v", again, err)
	}
	if v := backupView(t, s, "shop", "b1"); !v.Restorable || v.Reason != "" {
		t.Fatalf("backup 1 should be restorable: %+v", v)
	}
	// Without the lease nothing is recorded.
	if _, err := s.RecordBackup(ctx, lineage.Backup{AppID: "shop", ID: "stray", Generation: 1}, "nobody", lineage.Cause{}); !errors.Is(err, lineage.ErrLeaseHeld) {
		t.Fatalf("RecordBackup without lease: want ErrLeaseHeld, got %v", err)
	}

	// Re-encryption to key B.
	e.clock.Advance(time.Hour)
	g2, err := s.BeginReencrypt(ctx, "shop", 2, keyB, []byte("wrapped-2"), lineage.Cause{RequestID: "req-1", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if g2.Number != 2 || g2.State != lineage.GenPending || g2.KeyARN != keyB {
		t.Fatalf("pending generation = %+v", g2)
	}
	if a := mustGetApp(t, s, "shop"); a.Status != lineage.AppReencrypting || a.PendingGeneration != 2 || a.ActiveGeneration != 1 {
		t.Fatalf("app while re-encrypting = %+v", a)
	}
	if again, err := s.BeginReencrypt(ctx, "shop", 2, keyB, []byte("wrapped-2"), lineage.Cause{}); err != nil || again.Number != 2 {
		t.Fatalf("repeated BeginReencrypt should be idempotent: %+v, %v", again, err)
	}
	if _, err := s.BeginReencrypt(ctx, "shop", 0, keyC, nil, lineage.Cause{}); err == nil {
		t.Fatal("a second re-encryption to another key was accepted")
	} else {
		wantConflict(t, err, lineage.ErrReencrypting)
	}
	// R5: no backup while re-encrypting; the skip is recorded with its reason.
	_, err = s.AcquireBackupLease(ctx, "shop", "backup-x", time.Minute)
	wantConflict(t, err, lineage.ErrReencrypting)
	if err := s.RecordSkip(ctx, "shop", err.Error(), lineage.Cause{Actor: "scheduler"}); err != nil {
		t.Fatal(err)
	}
	skips, err := s.ListSkips(ctx, "shop")
	if err != nil || len(skips) != 1 || !strings.Contains(skips[0].Reason, "re-encrypting") {
		t.Fatalf("skips = %+v, %v", skips, err)
	}
	if v := backupView(t, s, "shop", "b1"); !v.Restorable {
		t.Fatalf("generation 1 is still active while re-encrypting: %+v", v)
	}

	// Commit: generation 2 active, generation 1 retired, backup 1 disabled (R6).
	e.clock.Advance(time.Hour)
	committed, err := s.CommitReencrypt(ctx, "shop", 2, lineage.Cause{ExecutionArn: "exec-1"})
	if err != nil {
		t.Fatal(err)
	}
	if committed.Status != lineage.AppActive || committed.ActiveGeneration != 2 || committed.PendingGeneration != 0 {
		t.Fatalf("committed app = %+v", committed)
	}
	if again, err := s.CommitReencrypt(ctx, "shop", 2, lineage.Cause{}); err != nil || again.Version != committed.Version {
		t.Fatalf("repeated commit should be idempotent and write nothing: %+v, %v", again, err)
	}
	gens, err := s.ListGenerations(ctx, "shop")
	if err != nil || len(gens) != 2 || gens[0].State != lineage.GenRetired || gens[1].State != lineage.GenActive {
		t.Fatalf("lineage after commit = %+v, %v", gens, err)
	}
	v1 := backupView(t, s, "shop", "b1")
	if v1.Restorable || !strings.Contains(v1.Reason, "sealed under generation 1, retired by re-encryption to generation 2") ||
		!strings.Contains(v1.Reason, "restore a backup taken under generation 2") {
		t.Fatalf("backup 1 after re-encryption = %+v", v1)
	}
	// A backup still sealed under generation 1 cannot be recorded any more.
	if _, err := s.AcquireBackupLease(ctx, "shop", "late", time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err = s.RecordBackup(ctx, lineage.Backup{AppID: "shop", ID: "late", Generation: 1}, "late", lineage.Cause{})
	wantConflict(t, err, nil)
	if err := s.ReleaseBackupLease(ctx, "shop", "late"); err != nil {
		t.Fatal(err)
	}
	b2 := mustBackup(t, s, "shop", "b2")
	if b2.Generation != 2 || b2.KeyARN != keyB {
		t.Fatalf("backup 2 = %+v", b2)
	}
	list, err := s.ListBackups(ctx, "shop")
	if err != nil || len(list) != 2 || list[0].ID != "b1" || list[0].Restorable || list[1].ID != "b2" || !list[1].Restorable {
		t.Fatalf("ListBackups = %+v, %v", list, err)
	}

	// Restores.
	r, err := s.RecordRestore(ctx, lineage.Restore{AppID: "shop", BackupID: "b2", RequestedBy: "alice"})
	if err != nil || r.Status != lineage.RestorePending || r.ID == "" || r.SourceAppID != "shop" {
		t.Fatalf("RecordRestore = %+v, %v", r, err)
	}
	if again, err := s.RecordRestore(ctx, r); err != nil || again.ID != r.ID {
		t.Fatalf("repeated RecordRestore = %+v, %v", again, err)
	}
	if _, err := s.RecordRestore(ctx, lineage.Restore{AppID: "shop", ID: r.ID, BackupID: "b1"}); !errors.Is(err, lineage.ErrDuplicate) {
		t.Fatalf("other request with the same restore id: want ErrDuplicate, got %v", err)
	}
	if _, err := s.UpdateRestore(ctx, lineage.Restore{AppID: "shop", ID: r.ID, Status: lineage.RestoreRunning, ExecutionArn: "exec-r"}); err != nil {
		t.Fatal(err)
	}
	done, err := s.UpdateRestore(ctx, lineage.Restore{AppID: "shop", ID: r.ID, Status: lineage.RestoreSucceeded, Digest: "d-b2"})
	if err != nil || done.FinishedAt.IsZero() || done.ExecutionArn != "exec-r" || done.Digest != "d-b2" {
		t.Fatalf("finished restore = %+v, %v", done, err)
	}
	_, err = s.UpdateRestore(ctx, lineage.Restore{AppID: "shop", ID: r.ID, Status: lineage.RestoreFailed, Reason: "late"})
	wantConflict(t, err, nil)
	rs, err := s.ListRestores(ctx, "shop")
	if err != nil || len(rs) != 1 || rs[0].Status != lineage.RestoreSucceeded {
		t.Fatalf("ListRestores = %+v, %v", rs, err)
	}

	// A provider-managed app never takes a CMK re-encryption (R1, R4).
	if _, err := s.CreateApp(ctx, lineage.App{ID: "blog", OrgID: "acme"}, "", nil, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.BeginReencrypt(ctx, "blog", 0, keyB, nil, lineage.Cause{}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("re-encrypting a managed app: want ErrInvalidInput, got %v", err)
	}
	if a := mustGetApp(t, s, "blog"); a.KeyModel != lineage.KeyModelManaged || a.Version != 1 {
		t.Fatalf("managed app changed: %+v", a)
	}

	// The audit trail holds every change, oldest first, with its cause.
	audit, err := s.ListAudit(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action)
	}
	want := []string{
		lineage.ActionAppCreated, lineage.ActionBackupRecorded, lineage.ActionReencryptBegun, lineage.ActionBackupSkipped,
		lineage.ActionReencryptCommitted, lineage.ActionBackupRecorded, lineage.ActionRestoreRequested,
		lineage.ActionRestoreUpdated, lineage.ActionRestoreUpdated,
	}
	if strings.Join(actions, ",") != strings.Join(want, ",") {
		t.Fatalf("audit actions\n got %v\nwant %v", actions, want)
	}
	if audit[2].Cause.RequestID != "req-1" || audit[2].Actor != "alice" || audit[2].Detail["keyArn"] != keyB {
		t.Fatalf("re-encryption audit entry = %+v", audit[2])
	}
	if audit[4].Cause.ExecutionArn != "exec-1" || audit[4].Detail["retiredGeneration"] != "1" {
		t.Fatalf("commit audit entry = %+v", audit[4])
	}
}

func TestAuditOrderWithinOneTimestamp(t *testing.T) {
	e := newEnv(t, lineage.Options{PageLimit: 3})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "a", keyA)
	for i := 0; i < 12; i++ {
		if _, err := s.AppendAudit(ctx, lineage.AuditEntry{AppID: "a", Action: "test.step", Detail: map[string]string{"i": string(rune('a' + i))}}); err != nil {
			t.Fatal(err)
		}
	}
	// One entry stamped earlier than the rest sorts first even though it was written last.
	if _, err := s.AppendAudit(ctx, lineage.AuditEntry{AppID: "a", Action: "test.early", Time: t0.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	audit, err := s.ListAudit(ctx, "a")
	if err != nil || len(audit) != 14 {
		t.Fatalf("ListAudit: %d entries, %v", len(audit), err)
	}
	if audit[0].Action != "test.early" || audit[1].Action != lineage.ActionAppCreated {
		t.Fatalf("order: %s, %s", audit[0].Action, audit[1].Action)
	}
	for i := 2; i < 14; i++ {
		if audit[i].Detail["i"] != string(rune('a'+i-2)) || audit[i].Seq <= audit[i-1].Seq && i > 2 {
			t.Fatalf("entry %d out of order: %+v", i, audit[i])
		}
	}
	if _, err := s.AppendAudit(ctx, lineage.AuditEntry{AppID: "a"}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("entry without action: want ErrInvalidInput, got %v", err)
	}
}
