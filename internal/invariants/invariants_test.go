package invariants

import (
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

const (
	k1 = "arn:aws:kms:us-east-1:111111111111:key/aaaaaaaa-0000-0000-0000-000000000001"
	k2 = "arn:aws:kms:us-east-1:111111111111:key/aaaaaaaa-0000-0000-0000-000000000002"
)

var now = time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)

// healthy is an app re-encrypted once, from k1 to k2, with a backup and its objects moved.
func healthy() Snapshot {
	return Snapshot{
		Now: now, ExecutionsKnown: true,
		Apps: []AppState{{
			App: lineage.App{ID: "a", OrgID: "o1", KeyModel: lineage.KeyModelCMK, Status: lineage.AppActive, ActiveGeneration: 2, LatestGeneration: 2},
			Generations: []lineage.Generation{
				{AppID: "a", Number: 1, KeyARN: k1, State: lineage.GenRetired},
				{AppID: "a", Number: 2, KeyARN: k2, State: lineage.GenActive},
			},
			Backups: []lineage.BackupView{
				{Backup: lineage.Backup{ID: "b1", Generation: 1, KeyARN: k1, CreatedAt: now.Add(-20 * time.Minute)}},
				{Backup: lineage.Backup{ID: "b2", Generation: 2, KeyARN: k2, CreatedAt: now.Add(-time.Minute)}, Restorable: true},
			},
			Audit: []lineage.AuditEntry{
				{Action: lineage.ActionAppCreated, Time: now.Add(-30 * time.Minute)},
				{Action: lineage.ActionReencryptBegun, Time: now.Add(-10 * time.Minute), Detail: map[string]string{"generation": "2"}},
				{Action: lineage.ActionReencryptCommitted, Time: now.Add(-5 * time.Minute), Detail: map[string]string{"generation": "2", "retiredGeneration": "1"}},
				{Action: lineage.ActionBackupSkipped, Time: now.Add(-8 * time.Minute), Detail: map[string]string{"reason": "re-encrypting"}},
			},
			Skips:   []lineage.Skip{{AppID: "a", Time: now.Add(-8 * time.Minute), Reason: "re-encrypting"}},
			Objects: []Object{{Key: "apps/a/cmk/x", Generation: 2, KeyARN: k2, Org: "o1", App: "a"}, {Key: "apps/a/cmk/y", Generation: 2, KeyARN: k2, Org: "o1", App: "a"}},
		}},
		Keys:        []KeyState{{ARN: k1, KMS: "Enabled"}, {ARN: k2, KMS: "Enabled"}},
		KeysSettled: true,
		Final:       true,
		History: []Op{
			op(OpWrite, "x", -4*time.Minute, 201, "d1"),
			op(OpRead, "x", -3*time.Minute, 200, "d1"),
			op(OpWrite, "x", -2*time.Minute, 0, "d2"), // no answer: it may have landed
			op(OpRead, "x", -90*time.Second, 200, "d2"),
			op(OpRead, "x", -80*time.Second, 200, "d1"),
			op(OpWrite, "y", -4*time.Minute, 201, "e1"),
			op(OpRead, "y", -time.Minute, 200, "e1"),
			{Kind: OpObserve, App: "a", Org: "o1", Start: now.Add(-50 * time.Second), End: now.Add(-49 * time.Second), Status: 200, AppStatus: "ACTIVE"},
			{Kind: OpForeign, App: "a", Org: "o2", Detail: "GET /v1/apps/a", Start: now.Add(-40 * time.Second), End: now.Add(-39 * time.Second), Status: 404},
		},
	}
}

// op is a CMK-scope object operation of app a by its own org, taking one second from now+at.
func op(kind, path string, at time.Duration, status int, digest string) Op {
	return Op{Kind: kind, App: "a", Org: "o1", Path: path, CMK: true, Start: now.Add(at), End: now.Add(at + time.Second), Status: status, Digest: digest, Generation: 2}
}

func TestHealthyStatePasses(t *testing.T) {
	r := Check(healthy())
	if len(r.Violations) != 0 || r.Checked < 10 {
		t.Fatalf("healthy state: %d checked, violations %v", r.Checked, r.Violations)
	}
}

// Each invariant reports a state built to violate it.
func TestEachInvariantCanFail(t *testing.T) {
	cases := []struct {
		inv, want string
		breakIt   func(s *Snapshot)
	}{
		{I1, "ACTIVE generations", func(s *Snapshot) { s.Apps[0].Generations[0].State = lineage.GenActive }},
		{I1, "not ACTIVE", func(s *Snapshot) { s.Apps[0].Generations[1].State = lineage.GenRetired }},
		{I1, "app not deactivated", func(s *Snapshot) { s.Apps[0].Generations[1].KeyRevoked = true }},
		{I1, "deactivated without a revoked key", func(s *Snapshot) { s.Apps[0].App.Status = lineage.AppDeactivated }},
		{I3, "sealed under generation 1", func(s *Snapshot) { s.Apps[0].Objects[1].Generation = 1 }},
		{I4, "PENDING generation", func(s *Snapshot) {
			s.Apps[0].Generations = append(s.Apps[0].Generations, lineage.Generation{Number: 3, KeyARN: k1, State: lineage.GenPending})
			s.Apps[0].Backups = append(s.Apps[0].Backups, lineage.BackupView{Backup: lineage.Backup{ID: "b3", Generation: 3, KeyARN: k1}})
		}},
		{I4, "listed restorable", func(s *Snapshot) { s.Apps[0].Backups[0].Restorable = true }},
		{I7, "without a running re-encryption", func(s *Snapshot) {
			s.Apps[0].App.Status, s.Apps[0].App.PendingGeneration = lineage.AppReencrypting, 3
			s.Apps[0].Generations = append(s.Apps[0].Generations, lineage.Generation{Number: 3, KeyARN: k1, State: lineage.GenPending})
		}},
		{I7, "running for", func(s *Snapshot) {
			s.Executions = append(s.Executions, Execution{Arn: "arn:x", Machine: "backup", Status: "RUNNING", Started: now.Add(-3 * time.Hour)})
		}},
		{I9, "without a commit or abort", func(s *Snapshot) { s.Apps[0].Audit = s.Apps[0].Audit[:2] }},
		{I2, "after the app's deactivation was applied", func(s *Snapshot) {
			s.History = append(s.History,
				Op{Kind: OpObserve, App: "a", Org: "o1", Start: now.Add(-30 * time.Second), End: now.Add(-29 * time.Second), Status: 200, AppStatus: "DEACTIVATED"},
				op(OpRead, "x", -20*time.Second, 200, "d1"))
		}},
		{I2, "after the app's deactivation was applied", func(s *Snapshot) {
			s.Apps[0].Audit = append(s.Apps[0].Audit, lineage.AuditEntry{Action: lineage.ActionKeyRevoked, Time: now.Add(-30 * time.Second)})
			s.History = append(s.History, op(OpWrite, "z", -20*time.Second, 201, "f1"))
		}},
		{I5, "while the app re-encrypted", func(s *Snapshot) { s.Apps[0].Backups[1].CreatedAt = now.Add(-7 * time.Minute) }},
		{I5, "without its reason", func(s *Snapshot) { s.Apps[0].Audit[3].Detail["reason"] = "" }},
		{I5, "has no reason", func(s *Snapshot) { s.Apps[0].Skips[0].Reason = "" }},
		{I6, "that no acknowledged write left there", func(s *Snapshot) { s.History[6].Digest = "other" }},
		{I6, "is lost", func(s *Snapshot) { s.History[6].Status, s.History[6].Digest = 404, "" }},
		{I6, "was never read back", func(s *Snapshot) { s.History = s.History[:6] }},
		{I8, "recorded as usable", func(s *Snapshot) { s.Keys[1].KMS = "Disabled" }},
		{I8, "recorded as revoked", func(s *Snapshot) { s.Keys[0].Revoked = true }},
		{I10, "another org's", func(s *Snapshot) { s.History[8].Status = 200 }},
		{I10, "sealed for org", func(s *Snapshot) { s.Apps[0].Objects[0].Org = "o2" }},
		{I9, "without a revocation", func(s *Snapshot) {
			s.Apps[0].App.Status = lineage.AppDeactivated
			s.Apps[0].App.StatusReason = "DisableKey"
			s.Apps[0].Generations[1].KeyRevoked = true
		}},
	}
	for _, tc := range cases {
		t.Run(tc.inv+" "+tc.want, func(t *testing.T) {
			s := healthy()
			tc.breakIt(&s)
			r := Check(s)
			for _, v := range r.Violations {
				if v.Invariant == tc.inv && strings.Contains(v.Detail, tc.want) {
					return
				}
			}
			t.Fatalf("want a %s violation saying %q, got %v", tc.inv, tc.want, r.Violations)
		})
	}
}

// A running re-encryption execution satisfies I7; stranded objects an abort listed satisfy I3;
// an app deactivated by its key's revocation (audited on the key's trail, merged into the
// app's) or by an operator's hold satisfies I1 and I9.
func TestAllowedStates(t *testing.T) {
	s0 := healthy()
	s0.Apps[0].App.Status = lineage.AppDeactivated
	s0.Apps[0].Generations[1].KeyRevoked = true
	s0.Apps[0].Audit = append(s0.Apps[0].Audit, lineage.AuditEntry{Action: lineage.ActionKeyRevoked, KeyARN: k2})
	s0.Apps[0].Backups[1].Restorable = false
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("deactivated by its key's revocation: %v", r.Violations)
	}
	s0 = healthy()
	s0.Apps[0].App.Status, s0.Apps[0].App.Hold = lineage.AppDeactivated, "incident 7"
	s0.Apps[0].Backups[1].Restorable = false
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("held by an operator: %v", r.Violations)
	}
	// Unknown outcomes are not judged; a revoked key that KMS has disabled is consistent (I8);
	// reads and writes of a deactivated app that are refused are what I2 wants.
	s0 = healthy()
	s0.Keys[0] = KeyState{ARN: k1, KMS: "PendingDeletion", Revoked: true}
	s0.History = append(s0.History,
		Op{Kind: OpObserve, App: "a", Org: "o1", Start: now.Add(-30 * time.Second), End: now.Add(-29 * time.Second), Status: 200, AppStatus: "DEACTIVATED"},
		op(OpRead, "x", -20*time.Second, 409, ""),
		Op{Kind: OpForeign, App: "a", Org: "o2", Detail: "GET /v1/apps/a", Start: now.Add(-10 * time.Second), End: now.Add(-9 * time.Second), Status: 0})
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("allowed history: %v", r.Violations)
	}
	// A restore requested into the app may put earlier content back (I6).
	s0 = healthy()
	s0.History = append(s0.History,
		Op{Kind: OpRestore, App: "a", Org: "o1", Start: now.Add(-70 * time.Second), End: now.Add(-69 * time.Second), Status: 202},
		op(OpRead, "y", -60*time.Second, 200, "d1"))
	s0.History[6].Digest = "d1" // y read back as x's first content: not y's, so still wrong
	if r := Check(s0); len(r.Violations) == 0 {
		t.Fatal("a restore made any digest acceptable")
	}
	s0 = healthy()
	s0.History = append(s0.History,
		Op{Kind: OpRestore, App: "a", Org: "o1", Start: now.Add(-70 * time.Second), End: now.Add(-69 * time.Second), Status: 202},
		op(OpRead, "x", -60*time.Second, 200, "d1"), op(OpRead, "x", -55*time.Second, 404, ""))
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("content put back by a restore: %v", r.Violations)
	}
	// A read that was still running when the reactivation landed may succeed (I2).
	s0 = healthy()
	s0.Apps[0].Audit = append(s0.Apps[0].Audit,
		lineage.AuditEntry{Action: lineage.ActionKeyRevoked, Time: now.Add(-40 * time.Second)},
		lineage.AuditEntry{Action: lineage.ActionKeyReactivated, Time: now.Add(-19500 * time.Millisecond)})
	s0.History = append(s0.History, op(OpRead, "x", -20*time.Second, 200, "d1"))
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("read overlapping the reactivation: %v", r.Violations)
	}
	// A revocation undone at once (within AuditSlack) leaves no span to judge.
	s0 = healthy()
	s0.Apps[0].Audit = append(s0.Apps[0].Audit,
		lineage.AuditEntry{Action: lineage.ActionKeyRevoked, Time: now.Add(-40 * time.Second)},
		lineage.AuditEntry{Action: lineage.ActionKeyReactivated, Time: now.Add(-39 * time.Second)})
	s0.History = append(s0.History, op(OpRead, "x", -20*time.Second, 200, "d1"))
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("revocation undone at once: %v", r.Violations)
	}
	// The revocation of a retired generation's key (shown in the app's trail) does not
	// deactivate the app: its reads go on (I2).
	s0 = healthy()
	s0.Apps[0].Audit = append(s0.Apps[0].Audit, lineage.AuditEntry{Action: lineage.ActionKeyRevoked, KeyARN: k1, Time: now.Add(-40 * time.Second)})
	s0.History = append(s0.History, op(OpRead, "x", -20*time.Second, 200, "d1"))
	if r := Check(s0); len(r.Violations) != 0 {
		t.Fatalf("another key's revocation: %v", r.Violations)
	}

	s := healthy()
	s.Apps[0].App.Status, s.Apps[0].App.PendingGeneration = lineage.AppReencrypting, 3
	s.Apps[0].Generations = append(s.Apps[0].Generations, lineage.Generation{Number: 3, KeyARN: k1, State: lineage.GenPending})
	s.Executions = []Execution{{Arn: "arn:r", Machine: "reencrypt", Status: "RUNNING", AppID: "a", Started: now.Add(-time.Minute)}}
	if r := Check(s); len(r.Violations) != 0 {
		t.Fatalf("running re-encryption: %v", r.Violations)
	}
	s = healthy()
	s.Apps[0].Objects[0].Generation = 3
	s.Apps[0].Stranded = map[string]bool{s.Apps[0].Objects[0].Key: true}
	if r := Check(s); len(r.Violations) != 0 {
		t.Fatalf("stranded object listed by an abort: %v", r.Violations)
	}
}

// I2 derives a deactivation from the key trail as the product does: only a reactivation of
// the revoked key ends it (another key's return does not), and that key's reactivation,
// recorded once on the key's trail and shown in the app's, does.
func TestDeactivationEndsWithItsKeysReactivation(t *testing.T) {
	revoked := func(reactivated string) Snapshot {
		s := healthy()
		s.Apps[0].Audit = append(s.Apps[0].Audit,
			lineage.AuditEntry{Action: lineage.ActionKeyRevoked, KeyARN: k2, Time: now.Add(-40 * time.Second), Detail: map[string]string{"keyArn": k2}},
			lineage.AuditEntry{Action: lineage.ActionKeyReactivated, KeyARN: reactivated, Time: now.Add(-30 * time.Second), Detail: map[string]string{"keyArn": reactivated}})
		s.History = append(s.History, op(OpWrite, "z", -20*time.Second, 201, "f1"), op(OpRead, "z", -10*time.Second, 200, "f1"))
		return s
	}
	if r := Check(revoked(k2)); len(r.Violations) != 0 {
		t.Fatalf("after the key's own reactivation: %v", r.Violations)
	}
	r := Check(revoked(k1))
	n := 0
	for _, v := range r.Violations {
		if v.Invariant == I2 {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("another key's reactivation ended the deactivation: %d I2 violations (%v), want the write and the read", n, r.Violations)
	}
}
