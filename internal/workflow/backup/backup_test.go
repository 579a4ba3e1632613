package backup_test

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
	"github.com/keyline/keyline/internal/sealing"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type fixture struct {
	*objectstest.Env
	b      *backup.Backups
	events *audittest.Recorder
	rep    *objectstest.Reporter
}

func newFixture(t *testing.T, ttl time.Duration) *fixture {
	e := objectstest.New(t)
	f := &fixture{Env: e, events: &audittest.Recorder{}, rep: &objectstest.Reporter{}}
	b, err := backup.New(backup.Config{Store: e.Store, Source: e.Source, Keys: e.Keys, S3: e.S3.Client, Bucket: objectstest.BackupBucket,
		Revocation: f.rep, Events: f.events, LeaseTTL: ttl, PartSize: 5 << 20, Concurrency: 2, Logger: e.Logger})
	if err != nil {
		t.Fatal(err)
	}
	f.b = b
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

func (f *fixture) item(t *testing.T, appID, exec string) backup.Item {
	t.Helper()
	in := backup.DueInput{ExecutionArn: exec}
	in.Input.AppIDs = []string{appID}
	in.Input.RequestedBy = "tester"
	out, err := f.b.ListDue(context.Background(), in)
	if err != nil || len(out.Items) != 1 {
		t.Fatalf("ListDue: %+v %v", out, err)
	}
	return out.Items[0]
}

// run runs the per-app steps as the machine does (without the Catch).
func (f *fixture) run(t *testing.T, it backup.Item) (backup.Step, error) {
	t.Helper()
	ctx := context.Background()
	st, err := f.b.Lease(ctx, it)
	if err != nil {
		return st, err
	}
	if st, err = f.b.Upload(ctx, st); err != nil {
		return st, err
	}
	return f.b.Record(ctx, st)
}

func TestBackupRoundTripOneKMSCall(t *testing.T) {
	f := newFixture(t, 0)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 12345))
	f.Put(t, "app1", objects.ScopeCMK, "b/big", data(t, 11<<20)) // multipart (5 MiB parts)
	f.Put(t, "app1", objects.ScopeManaged, "m", []byte("managed"))
	it := f.item(t, "app1", "arn:aws:states:us-east-1:1:execution:backup:e1")
	if it.BackupID != backup.ID("arn:aws:states:us-east-1:1:execution:backup:e1", "app1") {
		t.Fatal("backup id not derived from execution and app")
	}
	f.Keys.Reset()
	st, err := f.run(t, it)
	if err != nil || st.Status != backup.StatusRecorded {
		t.Fatalf("backup: %+v %v", st, err)
	}
	c := f.Keys.Counts()
	if c.Total() != 1 || c.GenerateDataKey != 1 {
		t.Fatalf("KMS calls per backup: %+v, want exactly 1 GenerateDataKey", c)
	}
	bs, err := f.Store.ListBackups(context.Background(), "app1")
	if err != nil || len(bs) != 1 {
		t.Fatalf("backups: %+v %v", bs, err)
	}
	b := bs[0]
	if b.ID != it.BackupID || b.Generation != 1 || b.KeyARN != keyARN || !b.Restorable || b.ObjectCount != 3 || len(b.Digest) != 64 {
		t.Fatalf("recorded backup %+v", b)
	}
	// R2: the backup's header names the active generation's key.
	raw := f.Raw(t, objectstest.BackupBucket, backup.ObjectKey("app1", it.BackupID))
	if int64(len(raw)) != b.SizeBytes {
		t.Fatalf("object %d bytes, recorded %d", len(raw), b.SizeBytes)
	}
	h, err := sealing.ReadHeader(bytes.NewReader(raw))
	if err != nil || h.KeyARN != keyARN || h.Generation != 1 || h.EncryptionContext["keyline:purpose"] != "backup" || h.EncryptionContext["keyline:app"] != "app1" {
		t.Fatalf("backup header %+v, %v", h, err)
	}
	if f.events.Count(audit.DetailBackupRecorded) != 1 {
		t.Fatalf("events %+v", f.events.Events())
	}
	// The lease is released: a re-encryption may begin.
	app, _ := f.Store.GetApp(context.Background(), "app1")
	if app.LeaseHeld(time.Now()) {
		t.Fatal("lease still held after recording")
	}
}

func TestBackupStepsAreIdempotent(t *testing.T) {
	f := newFixture(t, 0)
	f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 1000))
	it := f.item(t, "app1", "exec-idem")
	ctx := context.Background()
	f.Keys.Reset()
	st1, err := f.b.Lease(ctx, it)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Lease(ctx, it); err != nil { // delivered twice: the same holder renews
		t.Fatalf("second lease: %v", err)
	}
	up1, err := f.b.Upload(ctx, st1)
	if err != nil {
		t.Fatal(err)
	}
	up2, err := f.b.Upload(ctx, st1)
	if err != nil || up2.Digest != up1.Digest || up2.SizeBytes != up1.SizeBytes {
		t.Fatalf("second upload: %+v %v (first %+v)", up2, err, up1)
	}
	if c := f.Keys.Counts(); c.Total() != 1 {
		t.Fatalf("a repeated upload made KMS calls again: %+v", c)
	}
	for i := range 2 {
		r, err := f.b.Record(ctx, up1)
		if err != nil || r.Status != backup.StatusRecorded {
			t.Fatalf("record #%d: %+v %v", i+1, r, err)
		}
	}
	if bs, _ := f.Store.ListBackups(ctx, "app1"); len(bs) != 1 {
		t.Fatalf("%d backups after recording twice", len(bs))
	}
	// Fail after a successful record changes nothing.
	r, err := f.b.Fail(ctx, backup.FailInput{Item: it, Error: backup.StatesError{Error: "Lambda.ServiceException"}})
	if err != nil || r.Status != backup.StatusRecorded {
		t.Fatalf("fail after record: %+v %v", r, err)
	}
	if len(f.KeysUnder(t, objectstest.BackupBucket, backup.ObjectKey("app1", it.BackupID))) != 1 {
		t.Fatal("Fail deleted a recorded backup")
	}
}

func skips(t *testing.T, f *fixture, app string) []lineage.Skip {
	t.Helper()
	s, err := f.Store.ListSkips(context.Background(), app)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSkipWhileReencrypting(t *testing.T) {
	f := newFixture(t, 0)
	f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	ctx := context.Background()
	newKey := f.CMKApp(t, "org1", "other")
	wrapped, err := objects.NewGenerationKey(ctx, f.Keys, "org1", "app1", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.BeginReencrypt(ctx, "app1", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	st, err := f.run(t, f.item(t, "app1", "exec-r5"))
	if err != nil || st.Status != backup.StatusSkipped || !strings.Contains(st.Reason, "R5") {
		t.Fatalf("backup during re-encryption: %+v %v", st, err)
	}
	sk := skips(t, f, "app1")
	if len(sk) != 1 || !strings.Contains(sk[0].Reason, "re-encryption") {
		t.Fatalf("skips %+v", sk)
	}
	if len(f.KeysUnder(t, objectstest.BackupBucket, "backups/app1/")) != 0 {
		t.Fatal("a backup object was written while re-encrypting")
	}
	if f.events.Count(audit.DetailBackupSkipped) != 1 {
		t.Fatalf("events %+v", f.events.Events())
	}
}

func TestNoBackupForDeactivatedApp(t *testing.T) {
	f := newFixture(t, 0)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	ctx := context.Background()
	if _, err := f.Store.RevokeKey(ctx, keyARN, "DisableKey", lineage.KeyEventRef{ID: "ev1", Time: time.Now()}, lineage.Cause{EventID: "ev1", Actor: "cloudtrail"}); err != nil {
		t.Fatal(err)
	}
	f.Keys.Reset()
	st, err := f.run(t, f.item(t, "app1", "exec-r8"))
	if err != nil || st.Status != backup.StatusSkipped || !strings.Contains(st.Reason, "R8") {
		t.Fatalf("backup of a deactivated app: %+v %v", st, err)
	}
	if c := f.Keys.Counts(); c.Total() != 0 {
		t.Fatalf("KMS called for a deactivated app: %+v", c)
	}
	if sk := skips(t, f, "app1"); len(sk) != 1 || !strings.Contains(sk[0].Reason, "no further backups") {
		t.Fatalf("skips %+v", sk)
	}
	if bs, _ := f.Store.ListBackups(ctx, "app1"); len(bs) != 0 {
		t.Fatalf("backups %+v", bs)
	}
	// The schedule leaves deactivated apps out: no backup and no skip written every run.
	out, err := f.b.ListDue(ctx, backup.DueInput{ExecutionArn: "exec-sched-r8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range out.Items {
		if it.AppID == "app1" {
			t.Fatalf("the scheduled run lists the deactivated app: %+v", out.Items)
		}
	}
}

func TestRecordRefusedWhenGenerationChanged(t *testing.T) {
	f := newFixture(t, 50*time.Millisecond)
	f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 5000))
	ctx := context.Background()
	it := f.item(t, "app1", "exec-genchange")
	st, err := f.b.Lease(ctx, it)
	if err != nil {
		t.Fatal(err)
	}
	up, err := f.b.Upload(ctx, st)
	if err != nil || up.Status != backup.StatusUploaded {
		t.Fatalf("upload %+v %v", up, err)
	}
	// The lease expires, a re-encryption runs to its end: generation 2 is now active.
	time.Sleep(80 * time.Millisecond)
	newKey := f.CMKApp(t, "org1", "other")
	wrapped, err := objects.NewGenerationKey(ctx, f.Keys, "org1", "app1", 2, newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.BeginReencrypt(ctx, "app1", 2, newKey, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.CommitReencrypt(ctx, "app1", 2, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	r, err := f.b.Record(ctx, up)
	if err != nil || r.Status != backup.StatusSkipped || !strings.Contains(r.Reason, "generation") {
		t.Fatalf("record after the generation changed: %+v %v", r, err)
	}
	if bs, _ := f.Store.ListBackups(ctx, "app1"); len(bs) != 0 {
		t.Fatalf("backup recorded under a superseded generation: %+v", bs)
	}
	if left := f.KeysUnder(t, objectstest.BackupBucket, "backups/app1/"); len(left) != 0 {
		t.Fatalf("discarded upload left behind: %v", left)
	}
}

func TestRevokedKeyFailsBackupAndFeedsRevocation(t *testing.T) {
	f := newFixture(t, 0)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	ctx := context.Background()
	if _, err := f.KMS.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(keyARN)}); err != nil {
		t.Fatal(err)
	}
	it := f.item(t, "app1", "exec-revoked")
	st, err := f.b.Lease(ctx, it)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.b.Upload(ctx, st)
	var kr *wferr.KeyRevoked
	if !errors.As(err, &kr) || kr.KeyARN != keyARN {
		t.Fatalf("upload under a disabled key: %T %v, want *wferr.KeyRevoked", err, err)
	}
	if len(f.rep.Calls()) != 1 || f.rep.Calls()[0] != keyARN {
		t.Fatalf("revocation reports %v", f.rep.Calls())
	}
	// The Catch path: lease released, failure recorded, nothing left in the bucket.
	fr, err := f.b.Fail(ctx, backup.FailInput{Item: it, Error: backup.StatesError{Error: "KeyRevoked",
		Cause: fmt.Sprintf(`{"errorMessage":%q,"errorType":"KeyRevoked"}`, kr.Msg)}})
	if err != nil || fr.Status != backup.StatusFailed || !strings.Contains(fr.Reason, "revoked") {
		t.Fatalf("fail: %+v %v", fr, err)
	}
	app, _ := f.Store.GetApp(ctx, "app1")
	if app.LeaseHeld(time.Now()) {
		t.Fatal("lease held after Fail")
	}
	if left := f.KeysUnder(t, objectstest.BackupBucket, "backups/app1/"); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestListDueScheduled(t *testing.T) {
	f := newFixture(t, 0)
	f.CMKApp(t, "org1", "app1")
	f.ManagedApp(t, "org1", "app2")
	f.Put(t, "app1", objects.ScopeCMK, "a", []byte("x"))
	f.Put(t, "app2", objects.ScopeManaged, "a", []byte("y"))
	ctx := context.Background()
	in := backup.DueInput{ExecutionArn: "exec-sched-1"}
	out, err := f.b.ListDue(ctx, in)
	if err != nil || len(out.Items) != 2 || out.RequestedBy != "scheduler" {
		t.Fatalf("due: %+v %v", out, err)
	}
	for _, it := range out.Items {
		if st, err := f.run(t, it); err != nil || st.Status != backup.StatusRecorded {
			t.Fatalf("backup of %s: %+v %v", it.AppID, st, err)
		}
	}
	out, err = f.b.ListDue(ctx, backup.DueInput{ExecutionArn: "exec-sched-2"})
	if err != nil || len(out.Items) != 0 {
		t.Fatalf("due right after backing up: %+v %v", out, err)
	}
	in.Input.AppIDs = []string{"nope"}
	if _, err := f.b.ListDue(ctx, in); !errors.As(err, new(*wferr.NotFound)) {
		t.Fatalf("on-demand backup of an unknown app: %v", err)
	}
}

func TestRecordRefusedWhenKeyRevokedMidBackup(t *testing.T) {
	f := newFixture(t, 0)
	keyARN := f.CMKApp(t, "org1", "app1")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 5000))
	ctx := context.Background()
	st, err := f.b.Lease(ctx, f.item(t, "app1", "exec-revoke-mid"))
	if err != nil {
		t.Fatal(err)
	}
	up, err := f.b.Upload(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Store.RevokeKey(ctx, keyARN, "DisableKey", lineage.KeyEventRef{ID: "ev-mid", Time: time.Now()}, lineage.Cause{EventID: "ev-mid"}); err != nil {
		t.Fatal(err)
	}
	r, err := f.b.Record(ctx, up)
	if err != nil || r.Status != backup.StatusSkipped || !strings.Contains(r.Reason, "revoked") {
		t.Fatalf("record after revocation: %+v %v", r, err)
	}
	if bs, _ := f.Store.ListBackups(ctx, "app1"); len(bs) != 0 {
		t.Fatalf("backup recorded under a revoked key: %+v", bs)
	}
	if left := f.KeysUnder(t, objectstest.BackupBucket, "backups/app1/"); len(left) != 0 {
		t.Fatalf("discarded upload left behind: %v", left)
	}
}
