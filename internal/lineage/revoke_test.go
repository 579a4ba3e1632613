package lineage_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
)

// backupItems reads the raw backup items of an app, to prove revocation never writes them.
func backupItems(t *testing.T, client *dynamodb.Client, table, appID string) []map[string]types.AttributeValue {
	t.Helper()
	out, err := client.Query(ctxT(t), &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		KeyConditionExpression:    aws.String("PK = :pk AND begins_with(SK, :pre)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "APP#" + appID}, ":pre": &types.AttributeValueMemberS{Value: "BACKUP"}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Items
}

func TestRevokeKeyAcrossManyApps(t *testing.T) {
	t.Run("batched", func(t *testing.T) { testRevokeKeyAcrossManyApps(t, 0) })
	t.Run("one transaction per app", func(t *testing.T) { testRevokeKeyAcrossManyApps(t, 1) })
}

func testRevokeKeyAcrossManyApps(t *testing.T, batch int) {
	client := testenv.DynamoDB(t)
	table := testenv.NewTable(t, client)
	// A small page limit forces the GSI query through many pages.
	s := lineage.New(client, table, lineage.Options{PageLimit: 7, RevokeBatch: batch})
	ctx := ctxT(t)
	setup := time.Now()
	mustOrg(t, s, "big")
	mustOrg(t, s, "other")
	onA := mustApps(t, s, "big", "a", keyA, 250)
	onB := mustApps(t, s, "other", "b", keyB, 40)
	// Apps that moved away from key A before it was revoked: their A generation is RETIRED.
	moved := mustApps(t, s, "other", "moved", keyA, 5)
	for _, id := range moved {
		mustBackup(t, s, id, id+"-old")
		if _, err := s.BeginReencrypt(ctx, id, 2, keyB, nil, lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CommitReencrypt(ctx, id, 2, lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
	}
	withBackups := append(onA[:6:6], onB[:3]...)
	before := map[string][]map[string]types.AttributeValue{}
	for _, id := range withBackups {
		for i := 0; i < 3; i++ {
			mustBackup(t, s, id, fmt.Sprintf("%s-b%d", id, i))
		}
		before[id] = backupItems(t, client, table, id)
		if len(before[id]) != 6 { // 3 backups + 3 id references
			t.Fatalf("app %s: %d backup items", id, len(before[id]))
		}
	}

	versions := map[string]int64{}
	for _, id := range onA {
		versions[id] = mustGetApp(t, s, id).Version
	}
	gens, err := s.FindGenerationsByKey(ctx, keyA)
	if err != nil || len(gens) != 255 {
		t.Fatalf("FindGenerationsByKey(A): %d generations, %v", len(gens), err)
	}

	start := time.Now()
	affected, err := s.RevokeKey(ctx, keyA, "DisableKey", lineage.Cause{EventID: "ev-1", Actor: "cloudtrail"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RevokeKey: %d apps in %v (setup took %v)", len(affected), time.Since(start), start.Sub(setup))
	if len(affected) != len(onA) {
		t.Fatalf("RevokeKey affected %d apps, want %d", len(affected), len(onA))
	}
	for i, a := range affected {
		if a.AppID != onA[i] || a.Effect != lineage.EffectDeactivated || a.Generation != 1 || a.OrgID != "big" || a.KeyARN != keyA {
			t.Fatalf("affected[%d] = %+v", i, a)
		}
	}
	for _, id := range onA {
		app := mustGetApp(t, s, id)
		if app.Status != lineage.AppDeactivated || !strings.Contains(app.StatusReason, "DisableKey") || app.Version != versions[id]+1 {
			t.Fatalf("app %s after revocation: %+v", id, app)
		}
		if g := mustGen(t, s, id, 1); g.State != lineage.GenRevoked || g.RevokedBy != "ev-1" {
			t.Fatalf("generation of %s: %+v", id, g)
		}
	}
	for _, id := range append(onB, moved...) {
		if app := mustGetApp(t, s, id); app.Status != lineage.AppActive {
			t.Fatalf("app %s on another key was touched (B6): %+v", id, app)
		}
	}
	for _, id := range moved {
		if g := mustGen(t, s, id, 1); g.State != lineage.GenRetired {
			t.Fatalf("retired generation of %s became %s", id, g.State)
		}
	}
	// Backups are unavailable, derived from their generation; their items were not written.
	for _, id := range withBackups {
		if got := backupItems(t, client, table, id); !reflect.DeepEqual(got, before[id]) {
			t.Fatalf("app %s: backup items changed by revocation", id)
		}
		list, err := s.ListBackups(ctx, id)
		if err != nil || len(list) != 3 {
			t.Fatalf("ListBackups %s: %d, %v", id, len(list), err)
		}
		for _, v := range list {
			revoked := strings.HasPrefix(id, "a-")
			if v.Restorable == revoked {
				t.Fatalf("backup %s: restorable=%v", v.ID, v.Restorable)
			}
			if revoked && (!strings.Contains(v.Reason, "key "+keyA+" is revoked (DisableKey, event ev-1") || !strings.Contains(v.Reason, "re-enable the key")) {
				t.Fatalf("backup %s reason: %q", v.ID, v.Reason)
			}
		}
	}
	// No further backups for deactivated apps (R8).
	_, err = s.AcquireBackupLease(ctx, onA[0], "h", time.Minute)
	wantConflict(t, err, lineage.ErrAppDeactivated)

	// Idempotent: a repeated event changes nothing.
	again, err := s.RevokeKey(ctx, keyA, "DisableKey", lineage.Cause{EventID: "ev-2"})
	if err != nil || len(again) != 0 {
		t.Fatalf("repeated RevokeKey: %d affected, %v", len(again), err)
	}
	if app := mustGetApp(t, s, onA[0]); app.Version != versions[onA[0]]+1 {
		t.Fatalf("repeated revocation wrote the app: version %d", app.Version)
	}
	if g := mustGen(t, s, onA[0], 1); g.RevokedBy != "ev-1" {
		t.Fatalf("repeated revocation rewrote the generation: %+v", g)
	}
	audit, err := s.ListAudit(ctx, onA[0])
	if err != nil || len(audit) != 5 || audit[4].Action != lineage.ActionKeyRevoked || audit[4].Cause.EventID != "ev-1" {
		t.Fatalf("audit of %s: %+v, %v", onA[0], audit, err)
	}
	if _, err := s.RevokeKey(ctx, "", "x", lineage.Cause{}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("empty ARN: %v", err)
	}
}

func TestRevocationDuringReencryption(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")

	// B8, new key revoked: the re-encryption aborts and the old generation stays active.
	mustApp(t, s, "o", "newkey", keyA)
	mustBackup(t, s, "newkey", "nb1")
	if _, err := s.BeginReencrypt(ctx, "newkey", 2, keyB, nil, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	aff, err := s.RevokeKey(ctx, keyB, "ScheduleKeyDeletion", lineage.Cause{EventID: "ev-b"})
	if err != nil || len(aff) != 1 || aff[0].Effect != lineage.EffectPendingRevoked || aff[0].Generation != 2 {
		t.Fatalf("RevokeKey(B) = %+v, %v", aff, err)
	}
	if app := mustGetApp(t, s, "newkey"); app.Status != lineage.AppReencrypting {
		t.Fatalf("app = %+v", app)
	}
	_, err = s.CommitReencrypt(ctx, "newkey", 2, lineage.Cause{})
	wantConflict(t, err, lineage.ErrKeyRevoked)
	app, err := s.AbortReencrypt(ctx, "newkey", 2, "new key revoked", lineage.Cause{})
	if err != nil || app.Status != lineage.AppActive || app.ActiveGeneration != 1 || app.PendingGeneration != 0 {
		t.Fatalf("AbortReencrypt = %+v, %v", app, err)
	}
	if g := mustGen(t, s, "newkey", 2); g.State != lineage.GenRevoked {
		t.Fatalf("pending generation after abort: %+v", g)
	}
	if _, err := s.AbortReencrypt(ctx, "newkey", 2, "again", lineage.Cause{}); err != nil {
		t.Fatalf("repeated abort: %v", err)
	}
	if v := backupView(t, s, "newkey", "nb1"); !v.Restorable {
		t.Fatalf("backup under the old, still active generation: %+v", v)
	}
	// Key B coming back does not make the aborted generation active.
	if aff, err := s.ReactivateKey(ctx, keyB, lineage.Cause{}, 0); err != nil || len(aff) != 0 {
		t.Fatalf("ReactivateKey(B) = %+v, %v", aff, err)
	}
	mustBackup(t, s, "newkey", "nb2")

	// B8, old key revoked: the app is deactivated; commit is refused, abort leaves it deactivated.
	mustApp(t, s, "o", "oldkey", keyC)
	if _, err := s.BeginReencrypt(ctx, "oldkey", 0, keyA, nil, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	aff, err = s.RevokeKey(ctx, keyC, "DisableKey", lineage.Cause{EventID: "ev-c"})
	if err != nil || len(aff) != 1 || aff[0].Effect != lineage.EffectDeactivated {
		t.Fatalf("RevokeKey(C) = %+v, %v", aff, err)
	}
	_, err = s.CommitReencrypt(ctx, "oldkey", 2, lineage.Cause{})
	wantConflict(t, err, lineage.ErrAppDeactivated)
	app, err = s.AbortReencrypt(ctx, "oldkey", 2, "old key revoked", lineage.Cause{})
	if err != nil || app.Status != lineage.AppDeactivated || app.PendingGeneration != 0 {
		t.Fatalf("AbortReencrypt(oldkey) = %+v, %v", app, err)
	}
	if g := mustGen(t, s, "oldkey", 2); g.State != lineage.GenRetired {
		t.Fatalf("pending generation: %+v", g)
	}
	// When key C returns, the app is reactivated on generation 1.
	aff, err = s.ReactivateKey(ctx, keyC, lineage.Cause{EventID: "ev-enable"}, 0)
	if err != nil || len(aff) != 1 || aff[0].Effect != lineage.EffectReactivated {
		t.Fatalf("ReactivateKey(C) = %+v, %v", aff, err)
	}
	if app := mustGetApp(t, s, "oldkey"); app.Status != lineage.AppActive || app.ActiveGeneration != 1 {
		t.Fatalf("reactivated app = %+v", app)
	}
}

func TestReactivationWindow(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "soon", keyA)
	mustApp(t, s, "o", "late", keyB)
	mustApp(t, s, "o", "moved", keyA)
	mustBackup(t, s, "soon", "s1")
	mustBackup(t, s, "late", "l1")
	mustBackup(t, s, "moved", "m1")
	if _, err := s.BeginReencrypt(ctx, "moved", 2, keyC, nil, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CommitReencrypt(ctx, "moved", 2, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{keyA, keyB} {
		if _, err := s.RevokeKey(ctx, k, "DisableKey", lineage.Cause{EventID: "rev-" + k[len(k)-1:]}); err != nil {
			t.Fatal(err)
		}
	}
	window := 10 * 24 * time.Hour

	// Key A returns after a day: reactivated; its backup restorable again; the generation
	// retired by re-encryption stays retired.
	e.clock.Advance(24 * time.Hour)
	aff, err := s.ReactivateKey(ctx, keyA, lineage.Cause{EventID: "enable-a"}, window)
	if err != nil || len(aff) != 1 || aff[0].AppID != "soon" || aff[0].Effect != lineage.EffectReactivated {
		t.Fatalf("ReactivateKey(A) = %+v, %v", aff, err)
	}
	if v := backupView(t, s, "soon", "s1"); !v.Restorable {
		t.Fatalf("backup s1 after reactivation: %+v", v)
	}
	if g := mustGen(t, s, "soon", 1); g.State != lineage.GenActive || g.RevokedBy != "" {
		t.Fatalf("reactivated generation: %+v", g)
	}
	if v := backupView(t, s, "moved", "m1"); v.Restorable {
		t.Fatalf("backup disabled by re-encryption became restorable: %+v", v)
	}
	if aff, err := s.ReactivateKey(ctx, keyA, lineage.Cause{}, window); err != nil || len(aff) != 0 {
		t.Fatalf("repeated ReactivateKey(A) = %+v, %v", aff, err)
	}

	// Key B returns after 11 days: past the window, the app waits for an operator.
	e.clock.Advance(10 * 24 * time.Hour)
	for i := 0; i < 2; i++ {
		aff, err = s.ReactivateKey(ctx, keyB, lineage.Cause{EventID: "enable-b"}, window)
		if err != nil || len(aff) != 1 || aff[0].AppID != "late" || aff[0].Effect != lineage.EffectAwaitingOperator {
			t.Fatalf("ReactivateKey(B) #%d = %+v, %v", i, aff, err)
		}
	}
	app := mustGetApp(t, s, "late")
	if app.Status != lineage.AppDeactivated || !strings.Contains(app.StatusReason, "operator") {
		t.Fatalf("app past the window: %+v", app)
	}
	if v := backupView(t, s, "late", "l1"); v.Restorable {
		t.Fatalf("backup past the window is restorable: %+v", v)
	}
	audit, err := s.ListAudit(ctx, "late")
	if err != nil {
		t.Fatal(err)
	}
	waiting := 0
	for _, a := range audit {
		if a.Action == lineage.ActionReactivationWaiting {
			waiting++
		}
	}
	if waiting != 1 {
		t.Fatalf("awaiting-operator audited %d times, want once", waiting)
	}
	app, err = s.ReactivateApp(ctx, "late", lineage.Cause{Actor: "operator-bob"})
	if err != nil || app.Status != lineage.AppActive {
		t.Fatalf("ReactivateApp = %+v, %v", app, err)
	}
	if g := mustGen(t, s, "late", 1); g.State != lineage.GenActive || g.AwaitingOperator {
		t.Fatalf("generation after operator reactivation: %+v", g)
	}
	if v := backupView(t, s, "late", "l1"); !v.Restorable {
		t.Fatalf("backup after operator reactivation: %+v", v)
	}
	if _, err := s.ReactivateApp(ctx, "late", lineage.Cause{}); err != nil {
		t.Fatalf("repeated ReactivateApp: %v", err)
	}
}

func TestLeaseExpiry(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "a", keyA)
	if _, err := s.AcquireBackupLease(ctx, "a", "h1", time.Minute); err != nil {
		t.Fatal(err)
	}
	_, err := s.AcquireBackupLease(ctx, "a", "h2", time.Minute)
	wantConflict(t, err, lineage.ErrLeaseHeld)
	_, err = s.BeginReencrypt(ctx, "a", 2, keyB, nil, lineage.Cause{})
	wantConflict(t, err, lineage.ErrLeaseHeld)
	// The same holder renews.
	e.clock.Advance(30 * time.Second)
	app, err := s.AcquireBackupLease(ctx, "a", "h1", time.Minute)
	if err != nil || !app.BackupLease.Until.Equal(t0.Add(90*time.Second)) {
		t.Fatalf("renewal = %+v, %v", app.BackupLease, err)
	}
	if err := s.ReleaseBackupLease(ctx, "a", "h2"); !errors.Is(err, lineage.ErrLeaseHeld) {
		t.Fatalf("releasing another holder's lease: %v", err)
	}
	// An expired lease is taken over; the crashed holder can no longer record its backup.
	e.clock.Advance(2 * time.Minute)
	if _, err := s.AcquireBackupLease(ctx, "a", "h2", time.Minute); err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	_, err = s.RecordBackup(ctx, lineage.Backup{AppID: "a", ID: "from-h1", Generation: 1}, "h1", lineage.Cause{})
	wantConflict(t, err, lineage.ErrLeaseHeld)
	// A crashed backup never blocks a re-encryption for longer than its lease.
	e.clock.Advance(61 * time.Second)
	if _, err := s.BeginReencrypt(ctx, "a", 2, keyB, nil, lineage.Cause{}); err != nil {
		t.Fatalf("BeginReencrypt after the lease expired: %v", err)
	}
	if app := mustGetApp(t, s, "a"); app.BackupLease != nil {
		t.Fatalf("expired lease kept while re-encrypting: %+v", app.BackupLease)
	}
	if err := s.ReleaseBackupLease(ctx, "a", "h2"); err != nil {
		t.Fatalf("releasing a lease that is gone: %v", err)
	}
	if _, err := s.AcquireBackupLease(ctx, "a", "h1", 0); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("zero ttl: %v", err)
	}
	if _, err := s.AcquireBackupLease(ctx, "missing", "h1", time.Minute); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("missing app: %v", err)
	}
}

func TestEventDedupeAndOrdering(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, context.Background()
	if err := s.MarkEventSeen(ctx, "ev-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkEventSeen(ctx, "ev-1", time.Hour); !errors.Is(err, lineage.ErrDuplicate) {
		t.Fatalf("second delivery: want ErrDuplicate, got %v", err)
	}
	if err := s.MarkEventSeen(ctx, "ev-2", time.Hour); err != nil {
		t.Fatalf("another event: %v", err)
	}
	e.clock.Advance(time.Hour + time.Second)
	if err := s.MarkEventSeen(ctx, "ev-1", time.Hour); err != nil {
		t.Fatalf("after its ttl an event id is forgotten: %v", err)
	}

	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	steps := []struct {
		key   string
		at    time.Time
		apply bool
	}{
		{keyA, base.Add(2 * time.Second), true},
		{keyA, base.Add(1 * time.Second), false}, // older: out of order
		{keyA, base.Add(2 * time.Second), true},  // same second: order unknowable, applies
		{keyB, base, true},                       // keys are ordered separately
		{keyA, base.Add(3 * time.Second), true},
		{keyA, base.Add(2 * time.Second), false},
	}
	for i, st := range steps {
		apply, err := s.ObserveKeyEvent(ctx, st.key, st.at, fmt.Sprint("e", i))
		if err != nil || apply != st.apply {
			t.Fatalf("step %d: apply=%v err=%v, want %v", i, apply, err, st.apply)
		}
	}
}

func TestListApps(t *testing.T) {
	e := newEnv(t, lineage.Options{PageLimit: 2})
	s, ctx := e.store, ctxT(t)
	var want []string
	for _, o := range []struct {
		id string
		n  int
	}{{"o1", 5}, {"o2", 0}, {"o3", 7}, {"o4", 3}} {
		mustOrg(t, s, o.id)
		want = append(want, mustApps(t, s, o.id, o.id+"-app", keyA, o.n)...)
	}
	for _, limit := range []int{1, 3, 4, 100} {
		var got []string
		cursor, pages := "", 0
		for {
			page, err := s.ListApps(ctx, cursor, limit)
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Items) > limit {
				t.Fatalf("page of %d items, limit %d", len(page.Items), limit)
			}
			for _, a := range page.Items {
				got = append(got, a.ID)
			}
			pages++
			if page.Next == "" {
				break
			}
			cursor = page.Next
			if pages > 100 {
				t.Fatal("pagination does not end")
			}
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("limit %d:\n got %v\nwant %v", limit, got, want)
		}
	}
	page, err := s.ListAppsByOrg(ctx, "o3", "", 4)
	if err != nil || len(page.Items) != 4 || page.Next == "" || page.Items[0].ID != "o3-app-0000" {
		t.Fatalf("ListAppsByOrg page 1 = %+v, %v", page, err)
	}
	page, err = s.ListAppsByOrg(ctx, "o3", page.Next, 4)
	if err != nil || len(page.Items) != 3 || page.Next != "" || page.Items[2].ID != "o3-app-0006" {
		t.Fatalf("ListAppsByOrg page 2 = %+v, %v", page, err)
	}
	if _, err := s.ListAppsByOrg(ctx, "o1", page.Next+"garbage!", 4); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("bad cursor: %v", err)
	}
	orgs, err := s.ListOrgs(ctx, "", 3)
	if err != nil || len(orgs.Items) != 3 || orgs.Next == "" {
		t.Fatalf("ListOrgs = %+v, %v", orgs, err)
	}
	orgs, err = s.ListOrgs(ctx, orgs.Next, 3)
	if err != nil || len(orgs.Items) != 1 || orgs.Items[0].ID != "o4" || orgs.Next != "" {
		t.Fatalf("ListOrgs page 2 = %+v, %v", orgs, err)
	}
}

// Duplicate deliveries of one revocation processed at the same time: every app is revoked
// exactly once (a batch that loses falls back to per-app transactions, which find nothing
// left to do).
func TestConcurrentRevocations(t *testing.T) {
	e := newEnv(t, lineage.Options{RevokeBatch: 8, Parallelism: 4})
	s := e.store
	mustOrg(t, s, "o")
	ids := mustApps(t, s, "o", "c", keyA, 60)
	var r1, r2 []lineage.AffectedApp
	e1, e2 := race(
		func() (err error) {
			r1, err = s.RevokeKey(context.Background(), keyA, "DisableKey", lineage.Cause{EventID: "d1"})
			return err
		},
		func() (err error) {
			r2, err = s.RevokeKey(context.Background(), keyA, "DisableKey", lineage.Cause{EventID: "d2"})
			return err
		},
	)
	if e1 != nil || e2 != nil {
		t.Fatalf("RevokeKey: %v / %v", e1, e2)
	}
	seen := map[string]int{}
	for _, a := range append(r1, r2...) {
		seen[a.AppID]++
	}
	for _, id := range ids {
		if seen[id] != 1 {
			t.Fatalf("app %s reported %d times (%d + %d affected)", id, seen[id], len(r1), len(r2))
		}
		app := mustGetApp(t, s, id)
		if app.Status != lineage.AppDeactivated || app.Version != 2 {
			t.Fatalf("app %s: %+v", id, app)
		}
		audit, err := s.ListAudit(context.Background(), id)
		if err != nil || len(audit) != 2 || audit[1].Action != lineage.ActionKeyRevoked {
			t.Fatalf("audit of %s: %+v, %v", id, audit, err)
		}
	}
	t.Logf("first delivery revoked %d apps, second %d", len(r1), len(r2))
}
