// Package invariants checks the invariants of DESIGN §7 over one observed state of keyline:
// the lineage (apps, generations, backups, audit), the objects at rest (the generation and
// key named in each sealed header) and the executions of the state machines. The soak, the
// demo and tests collect a Snapshot (Collect) and call Check; every violation names its
// invariant, its app and what was seen.
//
// What a snapshot shows: I1 (one ACTIVE generation; deactivated exactly when its key is
// revoked, as the key item says, or an operator holds it), I3 (no CMK-scope object of a settled app under an older generation), I4 (no
// backup recorded for a generation that was never ACTIVE; a backup listed restorable is on
// the active generation), I5 (no backup recorded while its app re-encrypted; every skip has
// its reason), I7 (no app REENCRYPTING without a running execution; no execution running
// past a bound), I8 (a key's recorded state is its KMS state, once its events are applied),
// I9 (every retired generation, and every live one on a revoked key, has its audit entry)
// and I10 at rest (every
// object is sealed under its own org's and app's encryption context).
//
// What needs a history of operations (a Recorder's Ops in Snapshot.History: what clients
// wrote and read, what they were told): I2 (no CMK read or write of an app succeeds once
// its deactivation was applied and seen), I6 (an acknowledged write reads back with the
// same bytes) and I10 (a call with one org's token about another org's app learns nothing).
package invariants

import (
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

// Invariant ids.
const (
	I1  = "I1"
	I2  = "I2"
	I3  = "I3"
	I4  = "I4"
	I5  = "I5"
	I6  = "I6"
	I7  = "I7"
	I8  = "I8"
	I9  = "I9"
	I10 = "I10"
)

// AuditSlack is how long after an audit entry's time its change may take to land (the entry
// is timed before its transaction commits): operations that start within it are not judged
// against the change.
const AuditSlack = 5 * time.Second

// DefaultMaxRunning bounds how long an execution may run before I7 reports it.
const DefaultMaxRunning = 2 * time.Hour

// Object is one CMK-scope object at rest, as its sealed header names it.
type Object struct {
	Key        string `json:"key"`
	Generation int    `json:"generation"`
	KeyARN     string `json:"keyArn"`
	// Org and App are the org and app the header's encryption context names.
	Org string `json:"org,omitempty"`
	App string `json:"app,omitempty"`
}

// KeyState is one key as keyline recorded it and as KMS has it (I8).
type KeyState struct {
	ARN string `json:"keyArn"`
	// Revoked is keyline's record: the key is revoked.
	Revoked bool `json:"revoked"`
	// KMS is the key's KeyState in KMS (Enabled, Disabled, PendingDeletion, …; "" unknown).
	KMS string `json:"kmsState,omitempty"`
}

// Execution is one execution of a state machine, with the app its input names.
type Execution struct {
	Arn     string    `json:"executionArn"`
	Machine string    `json:"machine"` // the state machine's name, e.g. "reencrypt"
	Status  string    `json:"status"`  // RUNNING, SUCCEEDED, FAILED, …
	AppID   string    `json:"appId,omitempty"`
	Started time.Time `json:"started"`
}

// AppState is what is known of one app.
type AppState struct {
	App         lineage.App          `json:"app"`
	Generations []lineage.Generation `json:"generations"`
	Backups     []lineage.BackupView `json:"backups"`
	Audit       []lineage.AuditEntry `json:"audit"`
	// Objects are the app's CMK-scope objects at rest.
	Objects []Object `json:"objects"`
	// Stranded are objects an abort reported left under its generation (I3 allows them).
	Stranded map[string]bool `json:"stranded,omitempty"`
	// Skips are the app's recorded backup skips (I5).
	Skips []lineage.Skip `json:"skips,omitempty"`
}

// Snapshot is one observation of the system.
type Snapshot struct {
	Apps       []AppState  `json:"apps"`
	Executions []Execution `json:"executions"`
	// ExecutionsKnown says whether Executions is the complete list (I7 needs it).
	ExecutionsKnown bool          `json:"executionsKnown"`
	Now             time.Time     `json:"now"`
	MaxRunning      time.Duration `json:"maxRunning,omitempty"`
	// Keys are the keys' recorded and KMS states; I8 is checked only when KeysSettled says
	// every key event was applied (the system is quiet and key health has run).
	Keys        []KeyState `json:"keys,omitempty"`
	KeysSettled bool       `json:"keysSettled,omitempty"`
	// History is what clients did and were told (a Recorder's Ops).
	History []Op `json:"history,omitempty"`
	// Final says the history is complete and every app was read back since its last write
	// (I6 then also requires each acknowledged object to have been read back).
	Final bool `json:"final,omitempty"`
}

// Violation is one invariant seen broken.
type Violation struct {
	Invariant string `json:"invariant"`
	AppID     string `json:"appId,omitempty"`
	Detail    string `json:"detail"`
}

func (v Violation) String() string { return v.Invariant + " " + v.AppID + ": " + v.Detail }

// Report is the outcome of one Check: how many individual checks ran and what broke.
type Report struct {
	Checked    int         `json:"checked"`
	Violations []Violation `json:"violations,omitempty"`
}

type checker struct {
	r Report
}

func (c *checker) check(ok bool, inv, app, format string, a ...any) {
	c.r.Checked++
	if !ok {
		c.r.Violations = append(c.r.Violations, Violation{Invariant: inv, AppID: app, Detail: fmt.Sprintf(format, a...)})
	}
}

// Check checks the snapshot.
func Check(s Snapshot) Report {
	c := &checker{}
	maxRun := s.MaxRunning
	if maxRun <= 0 {
		maxRun = DefaultMaxRunning
	}
	running := map[string]bool{} // app → a re-encryption execution runs
	for _, ex := range s.Executions {
		if ex.Status == "RUNNING" {
			if ex.Machine == "reencrypt" && ex.AppID != "" {
				running[ex.AppID] = true
			}
			if !ex.Started.IsZero() && !s.Now.IsZero() {
				c.check(s.Now.Sub(ex.Started) <= maxRun, I7, ex.AppID, "execution %s of %s running for %v (bound %v)", ex.Arn, ex.Machine, s.Now.Sub(ex.Started).Round(time.Second), maxRun)
			}
		}
	}
	for _, a := range s.Apps {
		checkApp(c, a, s.ExecutionsKnown && running[a.App.ID], s.ExecutionsKnown)
		checkBackupsOutsideReencryption(c, a)
		checkTenancyAtRest(c, a)
	}
	if s.KeysSettled {
		checkKeys(c, s.Keys)
	}
	checkHistory(c, s)
	sort.SliceStable(c.r.Violations, func(i, j int) bool { return c.r.Violations[i].Invariant < c.r.Violations[j].Invariant })
	return c.r
}

func checkApp(c *checker, a AppState, reencryptRunning, execKnown bool) {
	app := a.App
	id := app.ID
	gens := map[int]lineage.Generation{}
	active := 0
	for _, g := range a.Generations {
		gens[g.Number] = g
		if g.State == lineage.GenActive {
			active++
		}
	}
	cur, ok := gens[app.ActiveGeneration]
	c.check(ok, I1, id, "the active generation %d is not in the lineage", app.ActiveGeneration)
	// The active generation stays ACTIVE through its key's revocation: the app is deactivated
	// exactly when that key is revoked (derived from the key item) or an operator holds it.
	c.check(active == 1, I1, id, "%s with %d ACTIVE generations, want exactly one", app.Status, active)
	c.check(!ok || cur.State == lineage.GenActive, I1, id, "its active generation %d is %s, not ACTIVE", app.ActiveGeneration, cur.State)
	revoked := ok && cur.KeyRevoked
	if app.Status == lineage.AppDeactivated {
		c.check(revoked || app.Hold != "", I1, id, "deactivated without a revoked key or an operator's hold (generation %d, key %s)", app.ActiveGeneration, cur.KeyARN)
	} else {
		c.check(!revoked, I1, id, "%s but the key of its active generation %d is revoked (app not deactivated)", app.Status, app.ActiveGeneration)
	}
	if app.Status == lineage.AppReencrypting {
		p, ok := gens[app.PendingGeneration]
		c.check(ok && p.State == lineage.GenPending, I1, id, "re-encrypting to generation %d, which is %s", app.PendingGeneration, p.State)
		if execKnown {
			c.check(reencryptRunning, I7, id, "REENCRYPTING (to generation %d) without a running re-encryption execution", app.PendingGeneration)
		}
	}

	// I3: a settled CMK app has every CMK-scope object under its active generation, except
	// those an abort listed as stranded. An app whose re-encryption execution still runs is
	// not settled: DESIGN's I3 speaks of the state when the re-encryption has committed or
	// aborted, and an abort ends only when it has put back what it can (it waits for a key
	// that objects written meanwhile need).
	if app.KeyModel == lineage.KeyModelCMK && app.Status == lineage.AppActive && !reencryptRunning {
		for _, o := range a.Objects {
			if a.Stranded[o.Key] || gens[o.Generation].KeyRevoked {
				continue // left by an abort under a generation only its revoked key opens
			}
			c.check(o.Generation == app.ActiveGeneration, I3, id, "object %s sealed under generation %d (%s), the active one is %d", o.Key, o.Generation, gens[o.Generation].State, app.ActiveGeneration)
		}
	}

	// I4: backups only of generations that were ACTIVE; listed restorable only on the active one.
	for _, b := range a.Backups {
		g, ok := gens[b.Generation]
		c.check(ok, I4, id, "backup %s names generation %d, not in the lineage", b.ID, b.Generation)
		if !ok {
			continue
		}
		c.check(g.State != lineage.GenPending, I4, id, "backup %s recorded for the PENDING generation %d", b.ID, b.Generation)
		c.check(g.KeyARN == b.KeyARN, I4, id, "backup %s names key %s, its generation %d key %s", b.ID, b.KeyARN, b.Generation, g.KeyARN)
		if b.Restorable {
			c.check(g.State == lineage.GenActive && !g.KeyRevoked && app.Status != lineage.AppDeactivated, I4, id, "backup %s listed restorable on generation %d (%s, key revoked %t, app %s)", b.ID, b.Generation, g.State, g.KeyRevoked, app.Status)
		}
	}

	// I9: every retired or revoked generation has the audit entry of its change.
	actions := map[string]map[string]bool{} // generation → actions naming it
	for _, e := range a.Audit {
		for _, k := range []string{"generation", "retiredGeneration"} {
			if n := e.Detail[k]; n != "" {
				if actions[n] == nil {
					actions[n] = map[string]bool{}
				}
				actions[n][e.Action] = true
			}
		}
		if e.Action == lineage.ActionKeyRevoked || e.Action == lineage.ActionPendingKeyRevoked {
			if actions["*revoked"] == nil {
				actions["*revoked"] = map[string]bool{}
			}
			actions["*revoked"][e.Action] = true
		}
	}
	c.check(len(a.Audit) == 0 || hasAction(a.Audit, lineage.ActionAppCreated), I9, id, "no %s entry", lineage.ActionAppCreated)
	for _, g := range a.Generations {
		n := strconv.Itoa(g.Number)
		if g.State == lineage.GenRetired {
			c.check(actions[n][lineage.ActionReencryptCommitted] || actions[n][lineage.ActionReencryptAborted], I9, id,
				"generation %d RETIRED without a commit or abort in the audit trail", g.Number)
		}
		if g.KeyRevoked && g.State != lineage.GenRetired {
			c.check(actions[n][lineage.ActionKeyRevoked] || actions[n][lineage.ActionPendingKeyRevoked] || len(actions["*revoked"]) > 0, I9, id,
				"generation %d on a revoked key without a revocation in the audit trail", g.Number)
		}
	}
}

func hasAction(es []lineage.AuditEntry, action string) bool {
	for _, e := range es {
		if e.Action == action {
			return true
		}
	}
	return false
}
