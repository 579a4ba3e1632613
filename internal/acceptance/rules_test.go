package acceptance

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
)

// One local deployment serves every rule test of this binary (DynamoDB Local alone takes
// seconds to start); each rule works in apps and keys of its own.
var (
	rulesOnce sync.Once
	rulesRun  *demoRun
	rulesErr  error
)

func rulesSystem(t *testing.T) *demoRun {
	t.Helper()
	rulesOnce.Do(func() {
		dir, err := os.MkdirTemp("", "keyline-rules-*")
		if err != nil {
			rulesErr = err
			return
		}
		sys, _, err := StartLocal(context.Background(), dir, slog.New(slog.DiscardHandler))
		if err != nil {
			rulesErr = err
			return
		}
		rulesRun, rulesErr = newDemoRun(context.Background(), sys)
	})
	if rulesErr != nil {
		t.Fatalf("starting the local deployment: %v", rulesErr)
	}
	return rulesRun
}

func runRule(t *testing.T, id string) {
	t.Helper()
	r := rulesSystem(t)
	for _, rc := range ruleChecks() {
		if rc.ID != id {
			continue
		}
		detail, err := runCheck(context.Background(), r, rc)
		if err != nil {
			if errors.Is(err, errRule) {
				t.Fatalf("%s violated: %v", id, err)
			}
			t.Fatalf("%s: %v", id, err)
		}
		t.Logf("%s: %s", id, detail)
		return
	}
	t.Fatalf("no check for rule %s", id)
}

func TestRuleR1KeyModels(t *testing.T)              { runRule(t, "R1") }
func TestRuleR2BackupUnderActiveKey(t *testing.T)   { runRule(t, "R2") }
func TestRuleR3CMKRestoresOnlyIntoCMK(t *testing.T) { runRule(t, "R3") }
func TestRuleR4ReencryptCMKScopeOnly(t *testing.T)  { runRule(t, "R4") }
func TestRuleR5NoBackupDuringReencrypt(t *testing.T) {
	runRule(t, "R5")
}
func TestRuleR6OldBackupsDisabled(t *testing.T)          { runRule(t, "R6") }
func TestRuleR7RestoreNeedsUsableActiveKey(t *testing.T) { runRule(t, "R7") }
func TestRuleR8RevocationDeactivates(t *testing.T)       { runRule(t, "R8") }
func TestRuleB1Reactivation(t *testing.T)                { runRule(t, "B1") }
func TestRuleB2RevocationWithoutCloudTrail(t *testing.T) {
	runRule(t, "B2")
}
func TestRuleB3EventsIdempotentAndOrdered(t *testing.T) { runRule(t, "B3") }
func TestRuleB4RestoreDrills(t *testing.T)              { runRule(t, "B4") }
func TestRuleB5Audit(t *testing.T)                      { runRule(t, "B5") }
func TestRuleB6RevocationPerKey(t *testing.T)           { runRule(t, "B6") }
func TestRuleB7ReadsDuringReencrypt(t *testing.T)       { runRule(t, "B7") }
func TestRuleB8RevokedDuringReencrypt(t *testing.T)     { runRule(t, "B8") }

// Every rule of DESIGN.md has a check (and so a test and a demo line).
func TestEveryRuleHasACheck(t *testing.T) {
	want := []string{"R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10"}
	got := map[string]bool{}
	for _, rc := range ruleChecks() {
		if got[rc.ID] {
			t.Fatalf("rule %s checked twice", rc.ID)
		}
		got[rc.ID] = true
	}
	for _, id := range want {
		if !got[id] {
			t.Errorf("no check for %s", id)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d checks, want %d", len(got), len(want))
	}
}
func TestRuleB9RevocationCutsAccess(t *testing.T) { runRule(t, "B9") }
func TestRuleB10Tenancy(t *testing.T)             { runRule(t, "B10") }

// After the rule tests of this binary ran (in file order, before this one), the invariants
// hold over everything they did.
func TestZInvariantsHoldAfterTheRules(t *testing.T) {
	r := rulesSystem(t)
	rep, err := r.sys.Invariants(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("violated: %s", v)
	}
	if rep.Checked == 0 {
		t.Fatal("no invariant checked")
	}
	t.Logf("invariants: %d checked, %d violated", rep.Checked, len(rep.Violations))
}
