package lineage_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

func TestRestorability(t *testing.T) {
	since := time.Date(2026, 2, 3, 4, 5, 0, 0, time.UTC)
	b := lineage.Backup{AppID: "a", ID: "b1", Generation: 1, KeyARN: keyA}
	gen := func(state lineage.GenerationState, reason, _ string) lineage.Generation {
		return lineage.Generation{AppID: "a", Number: 1, KeyARN: keyA, State: state, StateReason: reason, Since: since}
	}
	revokedKey := lineage.Key{ARN: keyA, State: lineage.KeyRevoked, Cause: "DisableKey", CauseEventID: "ev-9", Since: since}
	revoked := gen(lineage.GenActive, "", "")
	revoked.KeyRevoked, revoked.KeyReason = true, revokedKey.Reason()
	active := lineage.App{ID: "a", Status: lineage.AppActive, ActiveGeneration: 1}
	moved := lineage.App{ID: "a", Status: lineage.AppActive, ActiveGeneration: 2}
	deact := lineage.App{ID: "a", Status: lineage.AppDeactivated, StatusReason: "key revoked", ActiveGeneration: 1}
	cases := []struct {
		name string
		gen  lineage.Generation
		app  lineage.App
		ok   bool
		want []string
	}{
		{"active", gen(lineage.GenActive, "", ""), active, true, nil},
		{"re-encrypting still restores under the active generation", gen(lineage.GenActive, "", ""),
			lineage.App{ID: "a", Status: lineage.AppReencrypting, ActiveGeneration: 1, PendingGeneration: 2}, true, nil},
		{"retired", gen(lineage.GenRetired, "by re-encryption to generation 2", ""), moved, false,
			[]string{"sealed under generation 1, retired by re-encryption to generation 2 on 2026-02-03 04:05 UTC", "restore a backup taken under generation 2"}},
		{"revoked", revoked, deact, false,
			[]string{"key " + keyA + " is revoked (DisableKey, event ev-9", "re-enable the key to restore"}},
		{"active generation of a deactivated app", gen(lineage.GenActive, "", ""), deact, false, []string{"deactivated", "reactivate"}},
		{"active but not the app's", gen(lineage.GenActive, "", ""), moved, false, []string{"not the app's active generation 2"}},
		{"pending", gen(lineage.GenPending, "", ""), active, false, []string{"still being introduced"}},
		{"mismatched generation", lineage.Generation{AppID: "a", Number: 2, State: lineage.GenActive}, moved, false, []string{"mismatch"}},
	}
	for _, c := range cases {
		ok, reason := b.Restorability(c.gen, c.app)
		if ok != c.ok {
			t.Errorf("%s: ok=%v, want %v (%s)", c.name, ok, c.ok, reason)
		}
		if ok && reason != "" {
			t.Errorf("%s: restorable with a reason %q", c.name, reason)
		}
		for _, w := range c.want {
			if !strings.Contains(reason, w) {
				t.Errorf("%s: reason %q lacks %q", c.name, reason, w)
			}
		}
	}
}
