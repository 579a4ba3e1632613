package revocation_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

func TestDisableKeyDeactivatesOnlyThatKeysApps(t *testing.T) {
	e := newEnv(t)
	kA, kB := e.newKey(), e.newKey()
	e.app("a1", kA)
	e.app("a2", kA)
	e.app("b1", kB)
	e.disable(kA)

	res := e.handle(event(t, "kms-disable-key.json", kA, "", time.Time{}))
	if res.Outcome != revocation.OutcomeRevoked || !res.Changed || res.Key.State != lineage.KeyRevoked || res.KeyARN != kA {
		t.Fatalf("result %+v, want %s revoked", res, kA)
	}
	if got := e.keyEventApps(audit.DetailKeyRevoked); len(got) != 1 || got[0] != 2 {
		t.Errorf("Key Revoked events with apps %v, want one with 2", got)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
	e.wantStatus("a2", lineage.AppDeactivated)
	e.wantStatus("b1", lineage.AppActive) // B6
	if e.genUsable("a1", 1) || !e.genUsable("b1", 1) {
		t.Errorf("generations usable: a1 %v, b1 %v", e.genUsable("a1", 1), e.genUsable("b1", 1))
	}
	if n := e.rec.Count(audit.DetailAppDeactivated); n != 2 {
		t.Errorf("%d App Deactivated events, want 2", n)
	}
	for _, ev := range e.rec.Events() {
		if ev.Resources[0] != kA {
			t.Errorf("event about %v, want %s", ev.Resources, kA)
		}
	}
	if n := countAudit(t, e.store, "a1", lineage.ActionKeyRevoked); n != 1 {
		t.Errorf("a1 has %d key.revoked audit entries, want 1", n)
	}
}

func TestScheduleKeyDeletionRevokes(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	res := e.handle(event(t, "kms-schedule-key-deletion.json", k, "", time.Time{}))
	if res.Outcome != revocation.OutcomeRevoked || !res.Changed {
		t.Fatalf("result %+v", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
}

func TestFailedCallChangesNothing(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	res := e.handle(event(t, "kms-disable-key-failed.json", k, "", time.Time{}))
	if res.Outcome != revocation.OutcomeFailedCall {
		t.Fatalf("outcome %s, want %s", res.Outcome, revocation.OutcomeFailedCall)
	}
	e.wantStatus("a1", lineage.AppActive)
	if len(e.rec.Events()) != 0 {
		t.Errorf("events emitted for a failed call: %v", e.rec.Events())
	}
	// The failed call did not claim its event id or order the key: a successful DisableKey
	// one second earlier still applies.
	res = e.handle(event(t, "kms-disable-key.json", k, "", time.Date(2026, 11, 27, 10, 14, 39, 0, time.UTC)))
	if res.Outcome != revocation.OutcomeRevoked || !res.Changed {
		t.Fatalf("result %+v", res)
	}
}

func TestDuplicateEventIsHarmless(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	raw := event(t, "kms-disable-key.json", k, "", time.Time{})
	if res := e.handle(raw); res.Outcome != revocation.OutcomeRevoked {
		t.Fatalf("first delivery: %+v", res)
	}
	// The key comes back (EnableKey, later): then the first event is delivered again.
	e.clk.Advance(time.Hour)
	res := e.handle(raw)
	if res.Outcome != revocation.OutcomeDuplicate || res.Changed {
		t.Fatalf("second delivery: %+v, want a duplicate", res)
	}
	if n := e.rec.Count(audit.DetailAppDeactivated); n != 1 {
		t.Errorf("%d App Deactivated events, want 1", n)
	}
	if n := countAudit(t, e.store, "a1", lineage.ActionKeyRevoked); n != 1 {
		t.Errorf("%d key.revoked audit entries, want 1", n)
	}
}

func TestDuplicateAfterReactivationDoesNotRevokeAgain(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	at := time.Date(2026, 11, 27, 10, 15, 0, 0, time.UTC)
	disable := event(t, "kms-disable-key.json", k, "dis-1", at)
	e.handle(disable)
	// EnableKey in the same second (CloudTrail's resolution): ordered by event id, so
	// every replica decides the same ("en-1" after "dis-1").
	if res := e.handle(event(t, "kms-enable-key.json", k, "en-1", at)); !res.Changed || !res.Key.Usable() {
		t.Fatalf("EnableKey: %+v", res)
	}
	if res := e.handle(disable); res.Outcome != revocation.OutcomeDuplicate {
		t.Fatalf("redelivered DisableKey: %+v", res)
	}
	e.wantStatus("a1", lineage.AppActive)
}

func TestOutOfOrderEvents(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	t1 := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(5 * time.Minute)
	// The customer disabled then re-enabled the key; EventBridge delivers EnableKey first.
	if res := e.handle(event(t, "kms-enable-key.json", k, "en-1", t2)); res.Outcome != revocation.OutcomeReactivated || res.Changed {
		t.Fatalf("EnableKey: %+v", res)
	}
	res := e.handle(event(t, "kms-disable-key.json", k, "dis-1", t1))
	if res.Outcome != revocation.OutcomeOutOfOrder {
		t.Fatalf("late DisableKey: %+v, want out of order", res)
	}
	e.wantStatus("a1", lineage.AppActive)

	// In order, the same pair deactivates, then reactivates.
	k2 := e.newKey()
	e.app("a2", k2)
	e.disable(k2)
	e.handle(event(t, "kms-disable-key.json", k2, "dis-2", t1))
	e.wantStatus("a2", lineage.AppDeactivated)
	e.enable(k2)
	if res := e.handle(event(t, "kms-enable-key.json", k2, "en-2", t2)); !res.Changed || !res.Key.Usable() {
		t.Fatalf("EnableKey: %+v", res)
	}
	e.wantStatus("a2", lineage.AppActive)
	if e.genState("a2", 1) != lineage.GenActive || !e.genUsable("a2", 1) {
		t.Errorf("generation 1 is %s, want ACTIVE and usable", e.genState("a2", 1))
	}
	if n := e.rec.Count(audit.DetailAppReactivated); n != 1 {
		t.Errorf("%d App Reactivated events, want 1", n)
	}
}

func TestReactivationWindow(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("within", k)
	k2 := e.newKey()
	e.app("past", k2)
	e.disable(k)
	e.disable(k2)
	t1 := t0.Add(-time.Minute)
	e.handle(event(t, "kms-disable-key.json", k, "dis-1", t1))
	e.handle(event(t, "kms-disable-key.json", k2, "dis-2", t1))

	// Nine days later k comes back: within the default 10-day window.
	e.clk.Advance(9 * 24 * time.Hour)
	e.enable(k)
	res := e.handle(event(t, "kms-enable-key.json", k, "en-1", e.clk.Now()))
	if !res.Changed || !res.Key.Usable() {
		t.Fatalf("within the window: %+v", res)
	}
	e.wantStatus("within", lineage.AppActive)

	// Twelve days after the revocation k2 comes back: past the window, an operator must act.
	e.clk.Advance(3 * 24 * time.Hour)
	e.enable(k2)
	res = e.handle(event(t, "kms-enable-key.json", k2, "en-2", e.clk.Now()))
	if !res.Changed || !res.Key.AwaitingOperator || res.Key.Usable() {
		t.Fatalf("past the window: %+v", res)
	}
	if got := e.keyEventApps(audit.DetailKeyAwaitingOperator); len(got) != 1 || got[0] != 1 {
		t.Errorf("Key Awaiting Operator events with apps %v, want one with 1", got)
	}
	e.wantStatus("past", lineage.AppDeactivated)
	if n := e.rec.Count(audit.DetailReactivationWaiting); n != 1 {
		t.Errorf("%d awaiting-operator events, want 1", n)
	}
	if _, err := e.svc.ReactivateApp(e.ctx, "within", "ops@example.com"); !errors.Is(err, revocation.ErrNotDeactivated) {
		t.Errorf("reactivating an active app: %v", err)
	}
	e.disable(k2)
	if _, err := e.svc.ReactivateApp(e.ctx, "past", "ops@example.com"); !errors.Is(err, revocation.ErrKeyNotUsable) {
		t.Errorf("reactivating on a disabled key: %v", err)
	}
	e.wantStatus("past", lineage.AppDeactivated)
	e.enable(k2)
	app, err := e.svc.ReactivateApp(e.ctx, "past", "ops@example.com")
	if err != nil || app.Status != lineage.AppActive {
		t.Fatalf("operator reactivation: %+v, %v", app, err)
	}
	e.wantStatus("past", lineage.AppActive)
}

func TestConfiguredWindow(t *testing.T) {
	e := newEnv(t)
	svc, err := revocation.New(revocation.Config{Store: e.store, Keys: e.keys, Emitter: e.rec, Clock: e.clk, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	k := e.newKey()
	e.app("a1", k)
	if _, err := svc.HandleCloudTrail(e.ctx, event(t, "kms-disable-key.json", k, "d", e.clk.Now())); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(2 * time.Hour)
	res, err := svc.HandleCloudTrail(e.ctx, event(t, "kms-enable-key.json", k, "en", e.clk.Now()))
	if err != nil || !res.Changed || !res.Key.AwaitingOperator {
		t.Fatalf("past a one-hour window: %+v, %v", res, err)
	}
}

func TestCancelKeyDeletionThenEnableKey(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	if _, err := e.kms.ScheduleKeyDeletion(e.ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(k), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	at := e.clk.Now()
	e.handle(event(t, "kms-schedule-key-deletion.json", k, "sched", at))
	e.wantStatus("a1", lineage.AppDeactivated)

	// CancelKeyDeletion leaves the key Disabled (as AWS does).
	if _, err := e.kms.CancelKeyDeletion(e.ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(k)}); err != nil {
		t.Fatal(err)
	}
	e.disable(k)
	res := e.handle(event(t, "kms-cancel-key-deletion.json", k, "cancel", at.Add(time.Minute)))
	if res.Outcome != revocation.OutcomeAwaitingEnable || res.Key.State != lineage.KeyRevoked {
		t.Fatalf("CancelKeyDeletion: %+v", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
	if n := countAudit(t, e.store, "a1", revocation.ActionAwaitingEnable); n != 1 {
		t.Errorf("%d awaiting-enable audit entries, want 1", n)
	}

	// EnableKey while the key is still disabled (a delayed event replayed, say): not verified.
	res = e.handle(event(t, "kms-enable-key.json", k, "en-early", at.Add(2*time.Minute)))
	if res.Outcome != revocation.OutcomeNotVerified {
		t.Fatalf("EnableKey on a disabled key: %+v", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)

	e.enable(k)
	res = e.handle(event(t, "kms-enable-key.json", k, "en", at.Add(3*time.Minute)))
	if !res.Changed || !res.Key.Usable() {
		t.Fatalf("EnableKey: %+v", res)
	}
	e.wantStatus("a1", lineage.AppActive)
}

func TestMalformedEventChangesNothing(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	for _, raw := range [][]byte{
		[]byte(`not json`),
		[]byte(`{"source":"aws.kms","detail":{"eventSource":"kms.amazonaws.com","eventName":"DisableKey","eventID":"x","eventTime":"2026-11-27T10:00:00Z","requestParameters":{"keyId":"alias/k"}}}`),
	} {
		if _, err := e.svc.HandleCloudTrail(e.ctx, raw); !errors.Is(err, revocation.ErrMalformedEvent) {
			t.Errorf("err = %v, want ErrMalformedEvent", err)
		}
	}
	e.wantStatus("a1", lineage.AppActive)
}

// failing wraps a provider; Check fails with err.
type failing struct {
	keys.Provider
	err error
}

func (f failing) Check(context.Context, string, string) error { return f.err }

func TestRevokeFromKMSError(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)

	throttled := &keys.KeyError{Class: keys.ClassTransient, Op: "Decrypt", KeyARN: k, Code: "ThrottlingException"}
	res, err := e.svc.RevokeFromKMSError(e.ctx, k, throttled, "backup")
	if err != nil || res.Outcome != revocation.OutcomeNotRevoked {
		t.Fatalf("throttling: %+v, %v", res, err)
	}
	e.wantStatus("a1", lineage.AppActive)

	// A revoked-class error whose key checks out deactivates nothing.
	denied := &keys.KeyError{Class: keys.ClassRevoked, Op: "Decrypt", KeyARN: k, Code: "AccessDeniedException"}
	res, err = e.svc.RevokeFromKMSError(e.ctx, "", denied, "backup")
	if err != nil || res.Outcome != revocation.OutcomeKeyWorks {
		t.Fatalf("key works: %+v, %v", res, err)
	}
	e.wantStatus("a1", lineage.AppActive)

	// The check itself throttled: nothing is deactivated, and the caller hears why.
	svc, _ := revocation.New(revocation.Config{Store: e.store, Keys: failing{e.keys, throttled}, Clock: e.clk})
	if _, err := svc.RevokeFromKMSError(e.ctx, k, denied, "backup"); err == nil {
		t.Error("unconfirmed revocation: no error")
	}
	e.wantStatus("a1", lineage.AppActive)

	e.disable(k)
	if err := e.svc.ReportRevoked(e.ctx, k, "backup", denied); err != nil {
		t.Fatal(err)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
	entries, _ := e.store.ListAudit(e.ctx, "a1")
	last := entries[len(entries)-1]
	if last.Action != lineage.ActionKeyRevoked || last.Actor != "backup" {
		t.Errorf("last audit entry %+v, want key.revoked by backup", last)
	}
}

// TestFindingsYieldToEventsOfTheirSecond: CloudTrail dates key events in whole seconds, so
// an event of the second in which keyline found a change itself may have happened after the
// finding. It must not be dropped as older: an EnableKey after a KMS error revoked the key
// reactivates it, and a DisableKey after key health found the key usable revokes it.
func TestFindingsYieldToEventsOfTheirSecond(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	denied := &keys.KeyError{Class: keys.ClassRevoked, Op: "Decrypt", KeyARN: k, Code: "DisabledException"}

	// 10:16:00.5: work meets the disabled key; 10:16:00.8: the customer enables it again.
	e.clk.Set(t0.Add(500 * time.Millisecond))
	e.disable(k)
	if err := e.svc.ReportRevoked(e.ctx, k, "backup", denied); err != nil {
		t.Fatal(err)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
	e.clk.Set(t0.Add(800 * time.Millisecond))
	e.enable(k)
	if res := e.handle(event(t, "kms-enable-key.json", k, "enable-same-second", t0)); !res.Changed {
		t.Fatalf("an EnableKey of the second the KMS error was met in: %+v, want it applied", res)
	}
	e.wantStatus("a1", lineage.AppActive)

	// 10:16:01: disabled (its event lost); 10:16:02.5: key health finds it usable again;
	// 10:16:02.7: disabled once more, and this DisableKey must count.
	e.clk.Set(t0.Add(time.Second))
	e.disable(k)
	if _, err := e.svc.RevokeKey(e.ctx, k, "key health: disabled", lineage.Cause{Actor: "keyhealth"}); err != nil {
		t.Fatal(err)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
	e.enable(k)
	e.clk.Set(t0.Add(2500 * time.Millisecond))
	if res, err := e.svc.ReactivateKey(e.ctx, k, lineage.Cause{Actor: "keyhealth"}); err != nil || !res.Changed {
		t.Fatalf("key health reactivation: %+v, %v", res, err)
	}
	e.wantStatus("a1", lineage.AppActive)
	e.clk.Set(t0.Add(2700 * time.Millisecond))
	e.disable(k)
	if res := e.handle(event(t, "kms-disable-key.json", k, "disable-same-second", t0.Add(2*time.Second))); !res.Changed {
		t.Fatalf("a DisableKey of the second key health found the key usable in: %+v, want it applied", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
}
