package keyhealth_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/audit/audittest"
	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/testenv"
	"github.com/keyline/keyline/internal/workflow/keyhealth"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type env struct {
	ctx   context.Context
	store *lineage.Store
	kms   *kms.Client
	keys  keys.Provider
	rec   *audittest.Recorder
	rev   *revocation.Service
	clk   *clocktest.Fake
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	ddb := testenv.DynamoDB(t)
	clk := clocktest.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	store := lineage.New(ddb, testenv.NewTable(t, ddb), lineage.Options{Clock: clk, PageLimit: 2})
	kc, _ := testenv.KMS(t)
	kp := keys.NewKMS(kc, keys.Options{MaxAttempts: 2, BaseDelay: time.Millisecond})
	rec := &audittest.Recorder{}
	rev, err := revocation.New(revocation.Config{Store: store, Keys: kp, Emitter: rec, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateOrg(ctx, lineage.Org{ID: "org-1", Name: "Org", Accounts: []string{testenv.KMSAccountID}}); err != nil {
		t.Fatal(err)
	}
	return &env{ctx: ctx, store: store, kms: kc, keys: kp, rec: rec, rev: rev, clk: clk}
}

func (e *env) app(t *testing.T, id, keyARN string) {
	t.Helper()
	wrapped, err := objects.NewGenerationKey(e.ctx, e.keys, "org-1", id, 1, keyARN)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.CreateApp(e.ctx, lineage.App{ID: id, OrgID: "org-1", KeyModel: lineage.KeyModelCMK}, keyARN, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) status(t *testing.T, id string) lineage.AppStatus {
	t.Helper()
	a, err := e.store.GetApp(e.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return a.Status
}

// countingChecks counts Check calls per key.
type countingChecks struct {
	keys.Provider
	mu    sync.Mutex
	calls map[string]int
}

func (c *countingChecks) Check(ctx context.Context, org, arn string) error {
	c.mu.Lock()
	c.calls[arn]++
	c.mu.Unlock()
	return c.Provider.Check(ctx, org, arn)
}

func TestDisabledKeyDeactivatesItsAppsOnly(t *testing.T) {
	e := newEnv(t)
	good, bad := testenv.NewKMSKey(t, e.kms), testenv.NewKMSKey(t, e.kms)
	for _, id := range []string{"g1", "g2", "g3"} {
		e.app(t, id, good)
	}
	e.app(t, "b1", bad)
	e.app(t, "b2", bad)
	if _, err := e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(bad)}); err != nil {
		t.Fatal(err)
	}
	cc := &countingChecks{Provider: e.keys, calls: map[string]int{}}
	chk, err := keyhealth.New(keyhealth.Config{Store: e.store, Keys: cc, Revoker: e.rev})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := chk.Run(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Apps != 5 || len(rep.Keys) != 2 || rep.Healthy != 1 || rep.Revoked != 1 || rep.Deactivated != 2 {
		t.Fatalf("report %+v", rep)
	}
	if cc.calls[good] != 1 || cc.calls[bad] != 1 {
		t.Errorf("checks per key %v, want one each (distinct keys)", cc.calls)
	}
	for id, want := range map[string]lineage.AppStatus{"g1": lineage.AppActive, "g2": lineage.AppActive, "g3": lineage.AppActive,
		"b1": lineage.AppDeactivated, "b2": lineage.AppDeactivated} {
		if got := e.status(t, id); got != want {
			t.Errorf("app %s is %s, want %s", id, got, want)
		}
	}
	entries, _ := e.store.ListAudit(e.ctx, "b1")
	if last := entries[len(entries)-1]; last.Action != lineage.ActionKeyRevoked || last.Actor != keyhealth.Actor {
		t.Errorf("audit %+v, want key.revoked by %s", last, keyhealth.Actor)
	}
	if n := e.rec.Count(audit.DetailKeyNotificationPage); n != 1 {
		t.Errorf("%d key notifications started, want 1 (the notify function sends the apps' events)", n)
	}

	// The next run checks the healthy key as an active key, and tries the revoked one for
	// reactivation: still disabled, so nothing changes.
	cc.calls = map[string]int{}
	rep, err = chk.Run(e.ctx)
	if err != nil || rep.Apps != 3 || len(rep.Keys) != 2 || cc.calls[bad] != 0 || rep.Reactivated != 0 {
		t.Fatalf("second run %+v, %v, calls %v", rep, err, cc.calls)
	}
	if r := rep.Keys[1]; r.KeyARN != bad || r.Status != "still-revoked" {
		t.Errorf("revoked key result %+v", r)
	}
	if got := e.status(t, "b1"); got != lineage.AppDeactivated {
		t.Fatalf("b1 is %s", got)
	}

	// Access comes back without an EnableKey event reaching keyline: the check reactivates.
	if _, err := e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(bad)}); err != nil {
		t.Fatal(err)
	}
	rep, err = chk.Run(e.ctx)
	if err != nil || rep.Reactivated != 2 {
		t.Fatalf("third run %+v, %v", rep, err)
	}
	for _, id := range []string{"b1", "b2"} {
		if got := e.status(t, id); got != lineage.AppActive {
			t.Errorf("app %s is %s after its key came back", id, got)
		}
	}
	if n := e.rec.Count(audit.DetailKeyNotificationPage); n != 2 {
		t.Errorf("%d key notifications started, want 2 (revoked, then reactivated)", n)
	}
}

func TestKeyBackPastWindowAwaitsOperatorOnce(t *testing.T) {
	e := newEnv(t)
	k := testenv.NewKMSKey(t, e.kms)
	e.app(t, "a1", k)
	if _, err := e.kms.DisableKey(e.ctx, &kms.DisableKeyInput{KeyId: aws.String(k)}); err != nil {
		t.Fatal(err)
	}
	chk, err := keyhealth.New(keyhealth.Config{Store: e.store, Keys: e.keys, Revoker: e.rev})
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := chk.Run(e.ctx); err != nil || rep.Deactivated != 1 {
		t.Fatalf("first run %+v, %v", rep, err)
	}
	e.clk.Advance(11 * 24 * time.Hour)
	if _, err := e.kms.EnableKey(e.ctx, &kms.EnableKeyInput{KeyId: aws.String(k)}); err != nil {
		t.Fatal(err)
	}
	rep, err := chk.Run(e.ctx)
	if err != nil || rep.Reactivated != 0 || len(rep.Keys) != 1 || rep.Keys[0].AwaitingOperator != 1 {
		t.Fatalf("past the window %+v, %v", rep, err)
	}
	if got := e.status(t, "a1"); got != lineage.AppDeactivated {
		t.Fatalf("a1 is %s, want DEACTIVATED until an operator acts", got)
	}
	// Once flagged for an operator, the key is not tried again.
	rep, err = chk.Run(e.ctx)
	if err != nil || len(rep.Keys) != 0 {
		t.Fatalf("next run %+v, %v", rep, err)
	}
	if n := e.rec.Count(audit.DetailKeyNotificationPage); n != 2 {
		t.Errorf("%d key notifications started, want 2 (revoked, then awaiting an operator once)", n)
	}
}

// throttling answers every Check with a throttling error, as KMS does under load.
type throttling struct{ keys.Provider }

func (throttling) Check(_ context.Context, _, arn string) error {
	return &keys.KeyError{Class: keys.ClassTransient, Op: "DescribeKey", KeyARN: arn, Code: "ThrottlingException"}
}

// internalError answers with a KMS 5xx.
type internalError struct{ keys.Provider }

func (internalError) Check(_ context.Context, _, arn string) error {
	return &keys.KeyError{Class: keys.ClassTransient, Op: "GenerateDataKey", KeyARN: arn, Code: "KMSInternalException"}
}

func TestTransientErrorsNeverDeactivate(t *testing.T) {
	e := newEnv(t)
	k := testenv.NewKMSKey(t, e.kms)
	e.app(t, "a1", k)
	for _, p := range []keys.Provider{throttling{e.keys}, internalError{e.keys}} {
		chk, err := keyhealth.New(keyhealth.Config{Store: e.store, Keys: p, Revoker: e.rev})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := chk.Run(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Transient != 1 || rep.Deactivated != 0 || rep.Keys[0].Status != "transient" {
			t.Errorf("report %+v", rep)
		}
		if got := e.status(t, "a1"); got != lineage.AppActive {
			t.Fatalf("app is %s after a transient error", got)
		}
	}
	if len(e.rec.Events()) != 0 {
		t.Errorf("events emitted: %v", e.rec.Events())
	}
}
