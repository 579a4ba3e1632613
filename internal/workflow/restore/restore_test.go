package restore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/restore"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	*objectstest.Env
	b      *backup.Backups
	r      *restore.Restores
	events *audittest.Recorder
	rep    *objectstest.Reporter
}

func newFixture(t *testing.T) *fixture {
	e := objectstest.New(t)
	f := &fixture{Env: e, events: &audittest.Recorder{}, rep: &objectstest.Reporter{}}
	var err error
	f.b, err = backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Revocation: f.rep, Events: f.events, PartSize: 5 << 20, Concurrency: 2, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	f.r, err = restore.New(restore.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Revocation: f.rep, Events: f.events, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.r.Close)
	e.Org(t, "org1")
	return f
}

func data(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// backupOf backs the app up and returns the backup id.
func (f *fixture) backupOf(t *testing.T, appID string) string {
	t.Helper()
	return objectstest.Backup(t, f.b, appID, "exec-"+appID+"-"+t.Name())
}

var restoreSeq int

func (f *fixture) request(t *testing.T, target, source, backupID string) restore.Input {
	t.Helper()
	restoreSeq++
	in := restore.Input{AppID: target, RestoreID: fmt.Sprintf("r%d", restoreSeq), BackupID: backupID, SourceAppID: source,
		RequestedBy: "alice", ExecutionArn: fmt.Sprintf("exec-restore-%d", restoreSeq)}
	if _, err := f.Store.RecordRestore(context.Background(), lineage.Restore{AppID: target, ID: in.RestoreID, BackupID: backupID,
		SourceAppID: source, RequestedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	return in
}

// run runs the restore machine's steps, with its Catch → Fail.
func (f *fixture) run(t *testing.T, in restore.Input) (restore.Step, error) {
	t.Helper()
	ctx := context.Background()
	st, err := f.r.Start(ctx, in)
	if err == nil {
		st, err = f.r.Run(ctx, st)
	}
	if err == nil {
		st, err = f.r.Finish(ctx, st)
	}
	if err != nil {
		typ := fmt.Sprintf("%T", err)
		typ = typ[strings.LastIndex(typ, ".")+1:]
		fs, ferr := f.r.Fail(ctx, restore.FailInput{Input: in, Error: restore.StatesError{Error: typ,
			Cause: fmt.Sprintf(`{"errorMessage":%q,"errorType":%q}`, err.Error(), typ)}})
		if ferr != nil {
			t.Fatalf("fail step: %v", ferr)
		}
		return fs, err
	}
	return st, nil
}

func (f *fixture) restoreRecord(t *testing.T, in restore.Input) lineage.Restore {
	t.Helper()
	r, err := f.Store.GetRestore(context.Background(), in.AppID, in.RestoreID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRestoreRoundTripInPlaceAndIntoAnotherApp(t *testing.T) {
	f := newFixture(t)
	f.CMKApp(t, "org1", "app1")
	f.CMKApp(t, "org1", "app2")
	files := map[string][]byte{"a": data(t, 100), "dir/b": data(t, 6<<20)}
	for p, d := range files {
		f.Put(t, "app1", objects.ScopeCMK, p, d)
	}
	f.Put(t, "app1", objects.ScopeManaged, "m", []byte("managed"))
	id := f.backupOf(t, "app1")
	ctx := context.Background()
	// Lose the data, then restore in place.
	if _, err := f.Source.DeleteAll(ctx, "app1"); err != nil {
		t.Fatal(err)
	}
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("overwritten"))
	in := f.request(t, "app1", "app1", id)
	st, err := f.run(t, in)
	if err != nil || st.Status != lineage.RestoreSucceeded || st.Objects != 3 || st.Copied != 3 {
		t.Fatalf("restore in place: %+v %v", st, err)
	}
	for p, d := range files {
		if !bytes.Equal(f.Get(t, "app1", objects.ScopeCMK, p), d) {
			t.Fatalf("restored %s differs", p)
		}
	}
	bv, _ := f.Store.GetBackup(ctx, "app1", id)
	rec := f.restoreRecord(t, in)
	if rec.Status != lineage.RestoreSucceeded || rec.Digest != bv.Digest {
		t.Fatalf("restore record %+v, backup digest %s", rec, bv.Digest)
	}
	// Into another CMK app: re-sealed under its key.
	in2 := f.request(t, "app2", "app1", id)
	st, err = f.run(t, in2)
	if err != nil || st.Status != lineage.RestoreSucceeded || st.Resealed != 3 {
		t.Fatalf("restore into app2: %+v %v", st, err)
	}
	for p, d := range files {
		if !bytes.Equal(f.Get(t, "app2", objects.ScopeCMK, p), d) {
			t.Fatalf("app2 %s differs", p)
		}
	}
	if f.events.Count(audit.DetailRestoreSucceeded) != 2 {
		t.Fatalf("events %+v", f.events.Events())
	}
	// Steps delivered again change nothing.
	again, err := f.r.Start(ctx, in2)
	if err != nil || again.Status != lineage.RestoreSucceeded {
		t.Fatalf("start after success: %+v %v", again, err)
	}
	if r, err := f.r.Run(ctx, again); err != nil || r.Status != lineage.RestoreSucceeded {
		t.Fatalf("run after success: %+v %v", r, err)
	}
	if r, err := f.r.Fail(ctx, restore.FailInput{Input: in2, Error: restore.StatesError{Error: "Failed"}}); err != nil || r.Status != lineage.RestoreSucceeded {
		t.Fatalf("fail after success: %+v %v", r, err)
	}
	if f.restoreRecord(t, in2).Status != lineage.RestoreSucceeded {
		t.Fatal("a late Fail changed a finished restore")
	}
}

func TestRestoreRunIsIdempotent(t *testing.T) {
	f := newFixture(t)
	f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 5000))
	id := f.backupOf(t, "app1")
	ctx := context.Background()
	in := f.request(t, "app1", "app1", id)
	st, err := f.r.Start(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	if st2, err := f.r.Start(ctx, in); err != nil || st2.Status != lineage.RestoreRunning {
		t.Fatalf("second start: %+v %v", st2, err)
	}
	r1, err := f.r.Run(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.r.Run(ctx, st)
	if err != nil || r2.Digest != r1.Digest {
		t.Fatalf("second run: %+v %v", r2, err)
	}
	for range 2 {
		if fin, err := f.r.Finish(ctx, r1); err != nil || fin.Status != lineage.RestoreSucceeded {
			t.Fatalf("finish: %+v %v", fin, err)
		}
	}
}

func refusal(t *testing.T, err error, code string) *restore.Refusal {
	t.Helper()
	var rf *restore.Refusal
	if !errors.As(err, &rf) {
		t.Fatalf("got %v, want a *restore.Refusal", err)
	}
	if rf.Code != code {
		t.Fatalf("refusal %q (%s), want code %s", rf.Code, rf.Reason, code)
	}
	return rf
}

func TestRefusalR3CMKBackupIntoManagedApp(t *testing.T) {
	f := newFixture(t)
	f.CMKApp(t, "org1", "cmk1")
	f.ManagedApp(t, "org1", "man1")
	f.Put(t, "cmk1", objects.ScopeCMK, "a", []byte("x"))
	id := f.backupOf(t, "cmk1")
	ctx := context.Background()
	err := restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "man1", SourceAppID: "cmk1", BackupID: id})
	rf := refusal(t, err, restore.CodeUnprocessable)
	if !strings.Contains(rf.Reason, "customer-managed") {
		t.Fatalf("reason %q", rf.Reason)
	}
	// The machine refuses too, records REFUSED and writes nothing.
	in := f.request(t, "man1", "cmk1", id)
	st, err := f.run(t, in)
	if !errors.As(err, new(*wferr.Refused)) || st.Status != lineage.RestoreRefused {
		t.Fatalf("machine: %+v %v", st, err)
	}
	if rec := f.restoreRecord(t, in); rec.Status != lineage.RestoreRefused || !strings.Contains(rec.Reason, "customer-managed") {
		t.Fatalf("record %+v", rec)
	}
	if got := f.KeysUnder(t, objectstest.DataBucket, "apps/man1/"); len(got) != 0 {
		t.Fatalf("written: %v", got)
	}
	// A managed backup may go into a managed app.
	f.ManagedApp(t, "org1", "man2")
	f.Put(t, "man2", objects.ScopeManaged, "a", []byte("y"))
	mid := f.backupOf(t, "man2")
	if err := restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "man1", SourceAppID: "man2", BackupID: mid}); err != nil {
		t.Fatalf("managed into managed: %v", err)
	}
}

func TestRefusalR7DisabledKey(t *testing.T) {
	f := newFixture(t)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	id := f.backupOf(t, "app1")
	ctx := context.Background()
	if _, err := f.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
		t.Fatal(err)
	}
	err := restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "app1", BackupID: id})
	rf := refusal(t, err, restore.CodeConflict)
	if !strings.Contains(rf.Reason, keyARN) || !strings.Contains(rf.Reason, "enable the key") {
		t.Fatalf("reason %q", rf.Reason)
	}
	in := f.request(t, "app1", "app1", id)
	st, err := f.run(t, in)
	if !errors.As(err, new(*wferr.Refused)) || st.Status != lineage.RestoreRefused {
		t.Fatalf("machine: %+v %v", st, err)
	}
	if len(f.rep.Calls()) == 0 || f.rep.Calls()[0] != keyARN {
		t.Fatalf("the disabled key was not reported to the revocation path: %v", f.rep.Calls())
	}
}

func TestRefusalR7RevokedAndRetiredGeneration(t *testing.T) {
	f := newFixture(t)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	id := f.backupOf(t, "app1")
	ctx := context.Background()
	// Retired by re-encryption: 422 for good (R6).
	newKey := f.CMKApp(t, "org1", "other")
	wrapped, err := objects.NewGenerationKey(ctx, f.Keys, "org1", "app1", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.BeginReencrypt(ctx, "app1", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	err = restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "app1", BackupID: id})
	refusal(t, err, restore.CodeConflict) // re-encrypting: retry later
	if _, err := f.Store.CommitReencrypt(ctx, "app1", 2, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	err = restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "app1", BackupID: id})
	if rf := refusal(t, err, restore.CodeUnprocessable); !strings.Contains(rf.Reason, "retired") {
		t.Fatalf("reason %q", rf.Reason)
	}
	// Revoked (R8): 409, re-enabling the key makes it restorable again.
	f.CMKApp(t, "org1", "app3")
	f.Put(t, "app3", objects.ScopeCMK, "a", []byte("x"))
	id3 := f.backupOf(t, "app3")
	gen, _ := f.Store.GetGeneration(ctx, "app3", 1)
	if _, err := f.Store.RevokeKey(ctx, gen.KeyARN, "DisableKey", lineage.KeyEventRef{ID: "e1", Time: time.Now()}, lineage.Cause{EventID: "e1"}); err != nil {
		t.Fatal(err)
	}
	err = restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "app3", BackupID: id3})
	refusal(t, err, restore.CodeConflict)
	_ = keyARN
	// Unknown backup: not found, not a refusal.
	err = restore.Validate(ctx, f.Store, f.Keys, restore.Request{AppID: "app1", BackupID: "nope"})
	if !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("unknown backup: %v", err)
	}
}

func TestTamperedOrTruncatedBackupFailsAndWritesNothing(t *testing.T) {
	for _, how := range []string{"tampered", "truncated"} {
		t.Run(how, func(t *testing.T) {
			f := newFixture(t)
			f.CMKApp(t, "org1", "app1")
			f.CMKApp(t, "org1", "app2")
			f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 3000))
			f.Put(t, "app1", objects.ScopeCMK, "z-last", data(t, 3<<20))
			id := f.backupOf(t, "app1")
			key := backup.ObjectKey("app1", id)
			raw := f.Raw(t, objectstest.BackupBucket, key)
			bad := bytes.Clone(raw)
			if how == "tampered" {
				bad[len(bad)-5000] ^= 0x01 // late in the stream: after the first object
			} else {
				bad = bad[:len(bad)-1000]
			}
			f.PutRaw(t, objectstest.BackupBucket, key, bad)
			in := f.request(t, "app2", "app1", id)
			st, err := f.run(t, in)
			var co *wferr.Corrupt
			if !errors.As(err, &co) || st.Status != lineage.RestoreFailed {
				t.Fatalf("restore of a %s backup: %+v %T %v", how, st, err, err)
			}
			rec := f.restoreRecord(t, in)
			if rec.Status != lineage.RestoreFailed || !strings.Contains(rec.Reason, "damaged") || !strings.Contains(rec.Reason, "nothing was written") {
				t.Fatalf("record %+v", rec)
			}
			if got := f.KeysUnder(t, objectstest.DataBucket, "apps/app2/"); len(got) != 0 {
				t.Fatalf("a damaged backup wrote %v", got)
			}
			if f.events.Count(audit.DetailRestoreFailed) != 1 {
				t.Fatalf("events %+v", f.events.Events())
			}
		})
	}
}
