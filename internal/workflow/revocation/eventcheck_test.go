package revocation_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// mutate rewrites an event's envelope (m) and CloudTrail record (d).
func mutate(t *testing.T, raw []byte, f func(m, d map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	f(m, m["detail"].(map[string]any))
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKeyEventChecks (B10): a DisableKey event counts only from aws.kms, with its account and
// recipientAccountId the key's account, an account an org with apps on the key enrolled, and a
// time at most 5 minutes ahead. Each forged variant is refused, audited on the app and changes
// nothing; the genuine event, even with an id a forged one used first, then applies.
func TestKeyEventChecks(t *testing.T) {
	e := newEnv(t)
	k := e.newKey()
	e.app("a1", k)
	e.disable(k)

	// An app on a key in an account its org did not enrol.
	foreign := "arn:aws:kms:us-east-1:444455556666:key/0f0f0f0f-0000-1111-2222-333333333333"
	if _, err := e.store.CreateApp(e.ctx, lineage.App{ID: "f1", OrgID: e.org, KeyModel: lineage.KeyModelCMK}, foreign, []byte("wrapped"), lineage.Cause{Actor: "test"}); err != nil {
		t.Fatal(err)
	}

	base := event(t, "kms-disable-key.json", k, "ev-genuine", t0)
	forged := map[string][]byte{
		"no source":             mutate(t, base, func(m, _ map[string]any) { delete(m, "source") }),
		"another account":       mutate(t, base, func(m, _ map[string]any) { m["account"] = "999999999999" }),
		"another recipient":     mutate(t, base, func(_, d map[string]any) { d["recipientAccountId"] = "999999999999" }),
		"dated 2100":            mutate(t, base, func(m, d map[string]any) { d["eventTime"] = "2100-01-01T00:00:00Z"; m["time"] = "2100-01-01T00:00:01Z" }),
		"six minutes ahead":     event(t, "kms-disable-key.json", k, "ev-genuine", t0.Add(6*time.Minute)),
		"account none enrolled": mutate(t, event(t, "kms-disable-key.json", foreign, "ev-genuine", t0), func(m, d map[string]any) { m["account"] = "444455556666"; d["recipientAccountId"] = "444455556666" }),
	}
	for name, raw := range forged {
		res := e.handle(raw)
		if res.Outcome != revocation.OutcomeRefused || res.Reason == "" {
			t.Errorf("%s: %+v, want refused", name, res)
		}
	}
	// Another source is not even a key event.
	if _, err := e.svc.HandleCloudTrail(e.ctx, mutate(t, base, func(m, _ map[string]any) { m["source"] = "keyline.attacker" })); !errors.Is(err, revocation.ErrMalformedEvent) {
		t.Errorf("another source: %v, want a malformed event", err)
	}
	e.wantStatus("a1", lineage.AppActive)
	e.wantStatus("f1", lineage.AppActive)
	if n := countAudit(t, e.store, "a1", revocation.ActionKeyEventRefused); n != len(forged)-1 {
		t.Errorf("%d refusals audited on a1, want %d", n, len(forged)-1)
	}
	if n := countAudit(t, e.store, "f1", revocation.ActionKeyEventRefused); n != 1 {
		t.Errorf("%d refusals audited on f1, want 1", n)
	}

	// Within the skew, from the key's enrolled account: the genuine event applies.
	e.clk.Advance(time.Minute)
	if res := e.handle(event(t, "kms-disable-key.json", k, "ev-genuine", t0.Add(4*time.Minute))); res.Outcome != revocation.OutcomeRevoked || !res.Changed || res.Key.Usable() {
		t.Fatalf("the genuine event: %+v", res)
	}
	e.wantStatus("a1", lineage.AppDeactivated)
}
