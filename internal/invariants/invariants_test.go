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
			App: lineage.App{ID: "a", KeyModel: lineage.KeyModelCMK, Status: lineage.AppActive, ActiveGeneration: 2, LatestGeneration: 2},
			Generations: []lineage.Generation{
				{AppID: "a", Number: 1, KeyARN: k1, State: lineage.GenRetired},
				{AppID: "a", Number: 2, KeyARN: k2, State: lineage.GenActive},
			},
			Backups: []lineage.BackupView{
				{Backup: lineage.Backup{ID: "b1", Generation: 1, KeyARN: k1}},
				{Backup: lineage.Backup{ID: "b2", Generation: 2, KeyARN: k2}, Restorable: true},
			},
			Audit: []lineage.AuditEntry{
				{Action: lineage.ActionAppCreated},
				{Action: lineage.ActionReencryptBegun, Detail: map[string]string{"generation": "2"}},
				{Action: lineage.ActionReencryptCommitted, Detail: map[string]string{"generation": "2", "retiredGeneration": "1"}},
			},
			Objects: []Object{{Key: "apps/a/cmk/x", Generation: 2, KeyARN: k2}, {Key: "apps/a/cmk/y", Generation: 2, KeyARN: k2}},
		}},
	}
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
