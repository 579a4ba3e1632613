package lineage_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/testenv"
)

// countItems counts every item of the table (a consistent scan), to show how many items a
// change wrote.
func countItems(t *testing.T, client *dynamodb.Client, table string) int {
	t.Helper()
	n := 0
	p := dynamodb.NewScanPaginator(client, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctxT(t))
		if err != nil {
			t.Fatal(err)
		}
		n += int(out.Count)
	}
	return n
}

// ev is a key event at t0+sec seconds.
func ev(id string, sec int) lineage.KeyEventRef {
	return lineage.KeyEventRef{ID: id, Time: t0.Add(time.Duration(sec) * time.Second)}
}

func keyActions(t *testing.T, s *lineage.Store, arn string) []string {
	t.Helper()
	entries, err := s.ListKeyAudit(ctxT(t), arn)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Action)
	}
	return out
}

// TestRevokeKeyIsOneWriteForEveryApp: revoking a key writes its key item and one audit
// entry, whatever the number of apps on it; every app on it reads DEACTIVATED at once, in
// single reads and in listings; apps on other keys and apps that moved off the key do not.
func TestRevokeKeyIsOneWriteForEveryApp(t *testing.T) {
	client := testenv.DynamoDB(t)
	table := testenv.NewTable(t, client)
	s := lineage.New(client, table, lineage.Options{PageLimit: 7})
	ctx := ctxT(t)
	mustOrg(t, s, "big")
	mustOrg(t, s, "other")
	onA := mustApps(t, s, "big", "a", keyA, 120)
	onB := mustApps(t, s, "other", "b", keyB, 20)
	moved := mustApps(t, s, "other", "moved", keyA, 3)
	for _, id := range moved {
		mustBackup(t, s, id, id+"-old")
		if _, err := s.BeginReencrypt(ctx, id, 2, keyB, nil, lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CommitReencrypt(ctx, id, 2, lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
	}
	mustBackup(t, s, onA[0], "a0-b1")
	before := countItems(t, client, table)
	r, err := s.RevokeKey(ctx, keyA, "DisableKey", ev("d1", 10), lineage.Cause{EventID: "d1", Actor: "cloudtrail"})
	if err != nil || !r.Applied || !r.Changed || r.Key.State != lineage.KeyRevoked {
		t.Fatalf("RevokeKey = %+v, %v", r, err)
	}
	if got := countItems(t, client, table) - before; got != 2 {
		t.Fatalf("revoking a key with %d apps wrote %d items, want 2 (the key item and its audit entry)", len(onA), got)
	}
	for _, id := range onA {
		if app := mustGetApp(t, s, id); app.Status != lineage.AppDeactivated || !strings.Contains(app.StatusReason, "DisableKey, event d1") {
			t.Fatalf("app %s on the revoked key: %+v", id, app)
		}
	}
	for _, id := range append(onB, moved...) {
		if app := mustGetApp(t, s, id); app.Status != lineage.AppActive {
			t.Fatalf("app %s not on the revoked key: %+v", id, app)
		}
	}
	page, err := s.ListAppsByOrg(ctx, "big", "", 100)
	if err != nil || len(page.Items) != 100 {
		t.Fatalf("ListAppsByOrg = %d, %v", len(page.Items), err)
	}
	for _, a := range page.Items {
		if a.Status != lineage.AppDeactivated {
			t.Fatalf("listed app %s: %s", a.ID, a.Status)
		}
	}
	if v := backupView(t, s, onA[0], "a0-b1"); v.Restorable || !strings.Contains(v.Reason, "re-enable the key") {
		t.Fatalf("backup under the revoked key: %+v", v)
	}
	if v := backupView(t, s, moved[0], moved[0]+"-old"); v.Restorable || !strings.Contains(v.Reason, "retired") {
		t.Fatalf("backup retired by re-encryption: %+v", v)
	}
	// Audited once, on the key; shown in the trail of every app on it.
	if got := keyActions(t, s, keyA); len(got) != 1 || got[0] != lineage.ActionKeyRevoked {
		t.Fatalf("key trail = %v", got)
	}
	trail, err := s.ListAudit(ctx, onA[5])
	if err != nil || len(trail) != 2 || trail[0].Action != lineage.ActionAppCreated || trail[1].Action != lineage.ActionKeyRevoked || trail[1].KeyARN != keyA {
		t.Fatalf("app trail = %+v, %v", trail, err)
	}
	// An app that moved off key A before its revocation does not show it.
	trail, err = s.ListAudit(ctx, moved[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range trail {
		if e.Action == lineage.ActionKeyRevoked {
			t.Fatalf("app that moved off the key shows its revocation: %+v", trail)
		}
	}
	// Nothing runs on a deactivated app.
	_, err = s.AcquireBackupLease(ctx, onA[1], "h", time.Minute)
	wantConflict(t, err, lineage.ErrAppDeactivated)
	_, err = s.BeginReencrypt(ctx, onA[1], 0, keyC, nil, lineage.Cause{})
	wantConflict(t, err, lineage.ErrAppDeactivated)
	_, err = s.BeginReencrypt(ctx, onB[1], 0, keyA, nil, lineage.Cause{})
	wantConflict(t, err, lineage.ErrKeyRevoked)
	_, err = s.CreateApp(ctx, lineage.App{ID: "late", OrgID: "big", KeyModel: lineage.KeyModelCMK}, keyA, []byte("w"), lineage.Cause{})
	wantConflict(t, err, lineage.ErrKeyRevoked)
	// Repeating the event, or a newer revocation, changes nothing.
	if r, err := s.RevokeKey(ctx, keyA, "DisableKey", ev("d1", 10), lineage.Cause{}); err != nil || !r.Repeat || r.Changed {
		t.Fatalf("repeated event = %+v, %v", r, err)
	}
	if r, err := s.RevokeKey(ctx, keyA, "ScheduleKeyDeletion", ev("d2", 11), lineage.Cause{}); err != nil || !r.Applied || r.Changed || r.Key.Cause != "DisableKey" {
		t.Fatalf("second revocation = %+v, %v", r, err)
	}
	if got := keyActions(t, s, keyA); len(got) != 1 {
		t.Fatalf("key trail after repeats = %v", got)
	}
	n, err := s.CountAppsOnKey(ctx, keyA)
	if err != nil || n != len(onA) {
		t.Fatalf("CountAppsOnKey = %d, %v; want %d", n, err, len(onA))
	}
	seen := 0
	for cursor, pages := "", 0; ; pages++ {
		p, err := s.AppsOnKey(ctx, keyA, cursor, 50)
		if err != nil {
			t.Fatal(err)
		}
		seen += len(p.Apps)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if seen != len(onA) {
		t.Fatalf("AppsOnKey paged %d apps, want %d", seen, len(onA))
	}
}

// TestKeyEventOrder: key events apply in eventTime order whatever order they arrive in;
// equal times are ordered by event id (K3).
func TestKeyEventOrder(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "app", keyA)
	steps := []struct {
		revoke  bool
		ev      lineage.KeyEventRef
		applied bool
		want    lineage.KeyState
	}{
		{true, ev("e5", 5), true, lineage.KeyRevoked},
		{false, ev("e3", 3), false, lineage.KeyRevoked}, // older Enable: refused
		{false, ev("e7", 7), true, lineage.KeyUsable},
		{true, ev("e6", 6), false, lineage.KeyUsable}, // older Disable: refused
		{true, ev("b", 7), false, lineage.KeyUsable},  // same time, smaller id: refused
		{true, ev("f", 7), true, lineage.KeyRevoked},  // same time, larger id: applies
		{false, ev("e9", 9), true, lineage.KeyUsable},
	}
	for i, st := range steps {
		var r lineage.KeyChangeResult
		var err error
		if st.revoke {
			r, err = s.RevokeKey(ctx, keyA, "DisableKey", st.ev, lineage.Cause{})
		} else {
			r, err = s.ReactivateKey(ctx, keyA, time.Hour, st.ev, lineage.Cause{})
		}
		if err != nil || r.Applied != st.applied || r.OutOfOrder == st.applied || r.Key.State != st.want {
			t.Fatalf("step %d (%+v): %+v, %v", i, st, r, err)
		}
		wantStatus := lineage.AppActive
		if st.want == lineage.KeyRevoked {
			wantStatus = lineage.AppDeactivated
		}
		if app := mustGetApp(t, s, "app"); app.Status != wantStatus {
			t.Fatalf("step %d: app %s, want %s", i, app.Status, wantStatus)
		}
	}
	k, err := s.GetKey(ctx, keyA)
	if err != nil || k.LastEventID != "e9" || !k.LastEventTime.Equal(t0.Add(9*time.Second)) {
		t.Fatalf("key = %+v, %v", k, err)
	}
	if _, err := s.RevokeKey(ctx, keyA, "x", lineage.KeyEventRef{}, lineage.Cause{}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("revocation without an event: %v", err)
	}
	if _, err := s.RevokeKey(ctx, keyA, "x", lineage.KeyEventRef{ID: "no-time"}, lineage.Cause{}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Fatalf("revocation without an event time: %v", err)
	}
}

func TestRevocationDuringReencryption(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")

	// B8, new key revoked: the re-encryption cannot commit; it aborts and the old generation
	// stays active.
	mustApp(t, s, "o", "newkey", keyA)
	mustBackup(t, s, "newkey", "nb1")
	if _, err := s.BeginReencrypt(ctx, "newkey", 2, keyB, nil, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeKey(ctx, keyB, "ScheduleKeyDeletion", ev("ev-b", 1), lineage.Cause{EventID: "ev-b"}); err != nil {
		t.Fatal(err)
	}
	pending, err := s.FindPendingOnKey(ctx, keyB)
	if err != nil || len(pending) != 1 || pending[0].AppID != "newkey" || pending[0].Number != 2 || !pending[0].KeyRevoked {
		t.Fatalf("FindPendingOnKey(B) = %+v, %v", pending, err)
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
	if g := mustGen(t, s, "newkey", 2); g.State != lineage.GenRetired {
		t.Fatalf("pending generation after abort: %+v", g)
	}
	if pending, err := s.FindPendingOnKey(ctx, keyB); err != nil || len(pending) != 0 {
		t.Fatalf("FindPendingOnKey(B) after the abort = %+v, %v", pending, err)
	}
	if _, err := s.AbortReencrypt(ctx, "newkey", 2, "again", lineage.Cause{}); err != nil {
		t.Fatalf("repeated abort: %v", err)
	}
	if v := backupView(t, s, "newkey", "nb1"); !v.Restorable {
		t.Fatalf("backup under the old, still active generation: %+v", v)
	}
	// Key B coming back does not make the aborted generation usable (K7).
	if _, err := s.ReactivateKey(ctx, keyB, 0, ev("ev-b2", 2), lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if g := mustGen(t, s, "newkey", 2); g.State != lineage.GenRetired || g.Usable() {
		t.Fatalf("aborted generation after its key returned: %+v", g)
	}
	mustBackup(t, s, "newkey", "nb2")

	// B8, old key revoked: the app is deactivated; commit is refused, abort leaves it deactivated.
	mustApp(t, s, "o", "oldkey", keyC)
	if _, err := s.BeginReencrypt(ctx, "oldkey", 0, keyA, nil, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RevokeKey(ctx, keyC, "DisableKey", ev("ev-c", 3), lineage.Cause{EventID: "ev-c"}); err != nil {
		t.Fatal(err)
	}
	if app := mustGetApp(t, s, "oldkey"); app.Status != lineage.AppDeactivated {
		t.Fatalf("app whose old key was revoked: %+v", app)
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
	// When key C returns, the app is active again on generation 1.
	if _, err := s.ReactivateKey(ctx, keyC, 0, ev("ev-enable", 4), lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if app := mustGetApp(t, s, "oldkey"); app.Status != lineage.AppActive || app.ActiveGeneration != 1 {
		t.Fatalf("reactivated app = %+v", app)
	}
}

// TestLineageABA plays A→B→A: a generation retired by re-encryption never becomes usable
// again when its key returns; the generation that uses the key now does.
func TestLineageABA(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "aba", keyA)
	mustBackup(t, s, "aba", "under-a1")
	for _, step := range []struct {
		n   int
		key string
	}{{2, keyB}, {3, keyA}} {
		if _, err := s.BeginReencrypt(ctx, "aba", step.n, step.key, nil, lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CommitReencrypt(ctx, "aba", step.n, lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
		mustBackup(t, s, "aba", fmt.Sprint("under-gen", step.n))
	}
	if _, err := s.RevokeKey(ctx, keyA, "DisableKey", ev("revoke-a", 1), lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if app := mustGetApp(t, s, "aba"); app.Status != lineage.AppDeactivated || app.ActiveGeneration != 3 {
		t.Fatalf("app on A again, A revoked: %+v", app)
	}
	e.clock.Advance(time.Hour)
	if _, err := s.ReactivateKey(ctx, keyA, 0, ev("enable-a", 2), lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if app := mustGetApp(t, s, "aba"); app.Status != lineage.AppActive {
		t.Fatalf("app after A returned: %+v", app)
	}
	gens, err := s.ListGenerations(ctx, "aba")
	if err != nil || len(gens) != 3 {
		t.Fatal(gens, err)
	}
	want := []lineage.GenerationState{lineage.GenRetired, lineage.GenRetired, lineage.GenActive}
	for i, g := range gens {
		if g.State != want[i] || g.KeyRevoked {
			t.Fatalf("generation %d: %+v, want %s", g.Number, g, want[i])
		}
	}
	if gens[0].Usable() || !gens[2].Usable() {
		t.Fatalf("usable: gen1 %v gen3 %v", gens[0].Usable(), gens[2].Usable())
	}
	for id, ok := range map[string]bool{"under-a1": false, "under-gen2": false, "under-gen3": true} {
		if v := backupView(t, s, "aba", id); v.Restorable != ok {
			t.Fatalf("backup %s restorable=%v, want %v (%s)", id, v.Restorable, ok, v.Reason)
		}
	}
}

func TestReactivationWindow(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	s, ctx := e.store, ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "soon", keyA)
	mustApp(t, s, "o", "late", keyB)
	mustApp(t, s, "o", "late2", keyB)
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
	for i, k := range []string{keyA, keyB} {
		if _, err := s.RevokeKey(ctx, k, "DisableKey", ev(fmt.Sprint("rev-", i), i), lineage.Cause{}); err != nil {
			t.Fatal(err)
		}
	}
	window := 10 * 24 * time.Hour

	// Key A returns after a day: usable; its backup restorable again; the generation
	// retired by re-encryption stays retired.
	e.clock.Advance(24 * time.Hour)
	r, err := s.ReactivateKey(ctx, keyA, window, ev("enable-a", 100), lineage.Cause{})
	if err != nil || !r.Changed || r.Key.State != lineage.KeyUsable {
		t.Fatalf("ReactivateKey(A) = %+v, %v", r, err)
	}
	if v := backupView(t, s, "soon", "s1"); !v.Restorable {
		t.Fatalf("backup s1 after reactivation: %+v", v)
	}
	if v := backupView(t, s, "moved", "m1"); v.Restorable {
		t.Fatalf("backup disabled by re-encryption became restorable: %+v", v)
	}

	// Key B returns after 11 days: past the window, it stays REVOKED awaiting an operator.
	e.clock.Advance(10 * 24 * time.Hour)
	for i := 0; i < 2; i++ {
		r, err = s.ReactivateKey(ctx, keyB, window, ev(fmt.Sprint("enable-b", i), 200+i), lineage.Cause{})
		if err != nil || r.Key.State != lineage.KeyRevoked || !r.Key.AwaitingOperator || r.Changed != (i == 0) {
			t.Fatalf("ReactivateKey(B) #%d = %+v, %v", i, r, err)
		}
	}
	app := mustGetApp(t, s, "late")
	if app.Status != lineage.AppDeactivated || !strings.Contains(app.StatusReason, "operator") {
		t.Fatalf("app past the window: %+v", app)
	}
	if v := backupView(t, s, "late", "l1"); v.Restorable {
		t.Fatalf("backup past the window is restorable: %+v", v)
	}
	if got := keyActions(t, s, keyB); strings.Join(got, ",") != lineage.ActionKeyRevoked+","+lineage.ActionReactivationWaiting {
		t.Fatalf("key trail = %v", got)
	}
	// The operator decides per key: reactivating one app brings back every app on the key.
	app, err = s.ReactivateApp(ctx, "late", lineage.Cause{Actor: "operator-bob"})
	if err != nil || app.Status != lineage.AppActive {
		t.Fatalf("ReactivateApp = %+v, %v", app, err)
	}
	if app := mustGetApp(t, s, "late2"); app.Status != lineage.AppActive {
		t.Fatalf("other app on the key after the operator's decision: %+v", app)
	}
	if v := backupView(t, s, "late", "l1"); !v.Restorable {
		t.Fatalf("backup after operator reactivation: %+v", v)
	}
	if _, err := s.ReactivateApp(ctx, "late", lineage.Cause{}); err != nil {
		t.Fatalf("repeated ReactivateApp: %v", err)
	}
	// An operator's hold deactivates one app whatever its key.
	app, err = s.HoldApp(ctx, "soon", "suspected compromise", lineage.Cause{Actor: "operator-bob"})
	if err != nil || app.Status != lineage.AppDeactivated || !strings.Contains(app.StatusReason, "suspected compromise") {
		t.Fatalf("HoldApp = %+v, %v", app, err)
	}
	_, err = s.AcquireBackupLease(ctx, "soon", "h", time.Minute)
	wantConflict(t, err, lineage.ErrAppDeactivated)
	if app, err := s.ReactivateApp(ctx, "soon", lineage.Cause{Actor: "operator-bob"}); err != nil || app.Status != lineage.AppActive || app.Hold != "" {
		t.Fatalf("release = %+v, %v", app, err)
	}
}

// TestKeyCheckInTheSameTransaction (K5): a key revoked between a change's read and its
// write fails the change's ConditionCheck, whatever the change read; without the check (the
// broken variant) the lease and the backup record would land on a revoked key.
func TestKeyCheckInTheSameTransaction(t *testing.T) {
	for _, broken := range []bool{false, true} {
		t.Run(fmt.Sprint("broken=", broken), func(t *testing.T) {
			e := newEnv(t, lineage.Options{})
			s, ctx := e.store, ctxT(t)
			if broken {
				lineage.DropKeyChecks(s)
			}
			mustOrg(t, s, "o")
			mustApp(t, s, "o", "a", keyA)
			mustApp(t, s, "o", "r", keyB)
			var step int
			revokeOnce := func(key string) func(string) {
				return func(string) {
					step++
					if step == 1 {
						if _, err := s.RevokeKey(context.Background(), key, "DisableKey", ev(fmt.Sprint("gap-", key), step), lineage.Cause{}); err != nil {
							t.Error(err)
						}
					}
				}
			}
			lineage.SetBeforeWrite(s, revokeOnce(keyA))
			_, leaseErr := s.AcquireBackupLease(ctx, "a", "h", time.Minute)
			lineage.SetBeforeWrite(s, nil)
			step = 0
			lineage.SetBeforeWrite(s, revokeOnce(keyC))
			_, beginErr := s.BeginReencrypt(ctx, "r", 0, keyC, nil, lineage.Cause{})
			lineage.SetBeforeWrite(s, nil)
			if broken {
				// Without the check the lease is taken on a revoked key and a re-encryption
				// begins towards one: the check is what refuses them.
				if leaseErr != nil || beginErr != nil {
					t.Fatalf("broken variant refused anyway (lease %v, begin %v): the test does not exercise the check", leaseErr, beginErr)
				}
				return
			}
			wantConflict(t, leaseErr, lineage.ErrAppDeactivated)
			wantConflict(t, beginErr, lineage.ErrKeyRevoked)
		})
	}
}

// TestMigrate: items written by the previous code (per-app REVOKED generations, app status
// DEACTIVATED, the CLOCK item, generations' GSI sort keys without their state) are read
// correctly before the upgrade and rewritten by Migrate, which is idempotent.
func TestMigrate(t *testing.T) {
	client := testenv.DynamoDB(t)
	table := testenv.NewTable(t, client)
	s := lineage.New(client, table, lineage.Options{Clock: clocktest.NewFake(t0)})
	ctx := ctxT(t)
	mustOrg(t, s, "o")
	mustApp(t, s, "o", "revoked", keyA)
	mustApp(t, s, "o", "fine", keyB)
	mustBackup(t, s, "revoked", "rb1")
	// legacy writes an item the way the previous code did ("N:" marks a number).
	legacy := func(pk, sk, expr string, values map[string]string) {
		t.Helper()
		vals := map[string]types.AttributeValue{}
		for k, v := range values {
			if n, ok := strings.CutPrefix(v, "N:"); ok {
				vals[k] = &types.AttributeValueMemberN{Value: n}
			} else {
				vals[k] = &types.AttributeValueMemberS{Value: v}
			}
		}
		var names map[string]string
		for n, a := range map[string]string{"#status": "status", "#state": "state", "#type": "Type"} {
			if strings.Contains(expr, n) {
				if names == nil {
					names = map[string]string{}
				}
				names[n] = a
			}
		}
		_, err := client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName:        aws.String(table),
			Key:              map[string]types.AttributeValue{"PK": &types.AttributeValueMemberS{Value: pk}, "SK": &types.AttributeValueMemberS{Value: sk}},
			UpdateExpression: aws.String(expr), ExpressionAttributeValues: vals,
			ExpressionAttributeNames: names,
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// What the previous code wrote when key A was revoked, and its CLOCK item.
	legacy("APP#revoked", "META", "SET #status = :d, statusReason = :r REMOVE activeKeyArn",
		map[string]string{":d": "DEACTIVATED", ":r": "key " + keyA + " revoked (DisableKey, event old-1)"})
	legacy("APP#revoked", "GEN#00000001", "SET #state = :r, stateReason = :why, revokedBy = :by, GSI1SK = :sk",
		map[string]string{":r": "REVOKED", ":why": "DisableKey", ":by": "old-1", ":sk": "APP#revoked#GEN#00000001"})
	legacy("APP#fine", "GEN#00000001", "SET GSI1SK = :sk", map[string]string{":sk": "APP#fine#GEN#00000001"})
	legacy("KEY#"+keyA, "CLOCK", "SET lastEventTime = :t, lastEventId = :id, #type = :ty",
		map[string]string{":t": "N:" + fmt.Sprint(t0.UnixNano()), ":id": "old-1", ":ty": "KEYCLOCK"})

	check := func(when string) {
		t.Helper()
		if app := mustGetApp(t, s, "revoked"); app.Status != lineage.AppDeactivated || !strings.Contains(app.StatusReason, keyA) {
			t.Fatalf("%s: revoked app = %+v", when, app)
		}
		if g := mustGen(t, s, "revoked", 1); g.State != lineage.GenActive || !g.KeyRevoked || g.Usable() {
			t.Fatalf("%s: revoked generation = %+v", when, g)
		}
		if v := backupView(t, s, "revoked", "rb1"); v.Restorable {
			t.Fatalf("%s: backup under the revoked key = %+v", when, v)
		}
		if app := mustGetApp(t, s, "fine"); app.Status != lineage.AppActive {
			t.Fatalf("%s: fine app = %+v", when, app)
		}
		_, err := s.AcquireBackupLease(ctx, "revoked", "h", time.Minute)
		wantConflict(t, err, lineage.ErrAppDeactivated)
	}
	check("before the upgrade")
	rep, err := s.Migrate(ctx)
	if err != nil || rep.Apps != 1 || rep.Generations != 2 || rep.Keys != 1 || rep.Clocks != 1 {
		t.Fatalf("Migrate = %+v, %v", rep, err)
	}
	check("after the upgrade")
	k, err := s.GetKey(ctx, keyA)
	if err != nil || k.State != lineage.KeyRevoked || k.CauseEventID != "old-1" || k.LastEventID != "old-1" {
		t.Fatalf("key item = %+v, %v", k, err)
	}
	if n, err := s.CountAppsOnKey(ctx, keyB); err != nil || n != 1 {
		t.Fatalf("CountAppsOnKey(B) after the upgrade = %d, %v", n, err)
	}
	if rep, err := s.Migrate(ctx); err != nil || rep != (lineage.MigrationReport{}) {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
	// An event older than the last one the previous code applied is still refused; a newer
	// EnableKey reactivates the app.
	if r, err := s.ReactivateKey(ctx, keyA, 0, lineage.KeyEventRef{ID: "older", Time: t0.Add(-time.Second)}, lineage.Cause{}); err != nil || !r.OutOfOrder {
		t.Fatalf("older event after the upgrade = %+v, %v", r, err)
	}
	if _, err := s.ReactivateKey(ctx, keyA, 0, lineage.KeyEventRef{ID: "newer", Time: t0.Add(time.Second)}, lineage.Cause{}); err != nil {
		t.Fatal(err)
	}
	if app := mustGetApp(t, s, "revoked"); app.Status != lineage.AppActive {
		t.Fatalf("app after EnableKey = %+v", app)
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

// TestMigrateClaimsAccounts: orgs created before accounts were claimed get their claims from
// Migrate (idempotent); an account two such orgs enrolled stays with one of them; after it,
// a new org enrolling a claimed account is refused. A legacy CLOCK item is retired, not
// deleted (the upgrade deletes nothing where audit entries live).
func TestMigrateClaimsAccounts(t *testing.T) {
	client := testenv.DynamoDB(t)
	table := testenv.NewTable(t, client)
	s := lineage.New(client, table, lineage.Options{Clock: clocktest.NewFake(t0)})
	ctx := ctxT(t)
	legacyOrg := func(id string, accounts ...string) {
		t.Helper()
		list := make([]types.AttributeValue, 0, len(accounts))
		for _, a := range accounts {
			list = append(list, &types.AttributeValueMemberS{Value: a})
		}
		_, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: map[string]types.AttributeValue{
			"PK": &types.AttributeValueMemberS{Value: "ORG#" + id}, "SK": &types.AttributeValueMemberS{Value: "META"},
			"Type": &types.AttributeValueMemberS{Value: "ORG"}, "orgId": &types.AttributeValueMemberS{Value: id},
			"name": &types.AttributeValueMemberS{Value: id}, "accounts": &types.AttributeValueMemberL{Value: list},
		}})
		if err != nil {
			t.Fatal(err)
		}
	}
	legacyOrg("o1", "100000000001", "100000000002")
	legacyOrg("o2", "100000000002", "100000000003")
	if o, err := s.GetOrg(ctx, "o1"); err != nil || len(o.Accounts) != 2 {
		t.Fatalf("legacy org as read: %+v, %v", o, err)
	}
	rep, err := s.Migrate(ctx)
	if err != nil || rep.Accounts != 3 {
		t.Fatalf("Migrate = %+v, %v; want 3 account claims", rep, err)
	}
	for account, want := range map[string][]string{"100000000001": {"o1"}, "100000000002": {"o1", "o2"}, "100000000003": {"o2"}} {
		if got, err := s.AccountOrg(ctx, account); err != nil || !slices.Contains(want, got) {
			t.Fatalf("account %s claimed by %q, %v; want one of %v", account, got, err, want)
		}
	}
	if rep, err := s.Migrate(ctx); err != nil || rep != (lineage.MigrationReport{}) {
		t.Fatalf("second Migrate = %+v, %v", rep, err)
	}
	if _, err := s.CreateOrg(ctx, lineage.Org{ID: "o3", Name: "o3", Accounts: []string{"100000000003"}}); !errors.Is(err, lineage.ErrAccountEnrolled) {
		t.Fatalf("a new org on a claimed account: %v, want ErrAccountEnrolled", err)
	}
}
