package acceptance

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/keyline/keyline/internal/console/api"
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

// exclusiveRules are the rules whose checks change something every check sees, or wait for
// the whole deployment to be idle: R7 and B2 stop CloudTrail deliveries for a while, B1 moves
// the deployment's clock by days, B3 waits for idle after each delivery. Their tests
// (the rule's and its broken variants') run alone, before the others; every other rule test
// runs alongside the rest, in apps and keys of its own, through a fork of the run (clients of
// its own, so a 5xx is charged to the check that saw it).
var exclusiveRules = map[string]bool{"R7": true, "B1": true, "B2": true, "B3": true}

// rulesRunning counts the rule tests running alongside each other; the invariant check
// waits for them.
var rulesRunning sync.WaitGroup

// rulesParallel is how many rule tests run at once by default (most of a check's time is
// spent waiting on executions and the endpoint, not on this machine's cores).
const rulesParallel = 8

// TestMain runs rulesParallel tests at once unless -test.parallel says otherwise, and never
// fewer than two: the invariant test holds a slot while it waits for the rule tests.
func TestMain(m *testing.M) {
	flag.Parse()
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	n := rulesParallel
	if explicit {
		n, _ = strconv.Atoi(flag.Lookup("test.parallel").Value.String())
		n = max(n, 2)
	}
	if err := flag.Set("test.parallel", strconv.Itoa(n)); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	os.Exit(m.Run())
}

// alongside returns the run the test of rule id works in: a fork of the shared run, the test
// marked parallel, unless the rule is exclusive (then the shared run itself, alone).
func alongside(t *testing.T, id string) *demoRun {
	t.Helper()
	r := rulesSystem(t)
	if exclusiveRules[id] {
		return r
	}
	rulesRunning.Add(1)
	t.Cleanup(rulesRunning.Done)
	t.Parallel()
	return r.fork()
}

func runRule(t *testing.T, id string) {
	t.Helper()
	r := alongside(t, id)
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

// After the rule tests of this binary ran, the invariants hold over everything they did. This
// test is declared last: every rule test has started (and the parallel ones counted
// themselves in rulesRunning) before it starts; it then waits for them to end.
func TestZInvariantsHoldAfterTheRules(t *testing.T) {
	r := rulesSystem(t)
	t.Parallel()
	rulesRunning.Wait()
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

// A run, its forks and their forks never name two apps alike (a fork of a fork once drew the
// block its parent's sibling was given).
func TestForksNameAppsApart(t *testing.T) {
	root := &demoRun{orgID: "o", blocks: forkBlocks(), events: &eventLog{},
		op: &api.Client{}, org: &api.Client{}}
	runs := []*demoRun{root}
	for i := 0; i < 3; i++ {
		a := root.fork()
		runs = append(runs, a, a.fork(), a.fork().fork())
	}
	seen := map[string]bool{}
	for round := 0; round < 3; round++ {
		for i, r := range runs {
			n := r.name("app")
			if seen[n] {
				t.Fatalf("run %d named %s, already taken", i, n)
			}
			seen[n] = true
		}
	}
}
