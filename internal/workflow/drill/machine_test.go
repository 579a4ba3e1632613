package drill_test

import (
	"encoding/json"
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/drill"
)

// TestDrillMachine runs infra/statemachines/restore-drill.asl.json with the real handlers.
func TestDrillMachine(t *testing.T) {
	f := newFixture(t, 1)
	f.CMKApp(t, "org1", "app1")
	f.ManagedApp(t, "org1", "app2")
	f.Put(t, "app1", objects.ScopeCMK, "a", data(t, 5000))
	f.Put(t, "app2", objects.ScopeManaged, "b", data(t, 5000))
	f.backupOf(t, "app1", "e1")
	f.backupOf(t, "app2", "e2")
	inv := objectstest.Invoker(map[string]any{infra.FnDrillPlan: f.d.Plan, infra.FnDrillRun: f.d.Run})
	res := objectstest.RunMachine(t, infra.SMRestoreDrill, map[string]string{"requestedBy": "scheduler"}, inv)
	if res.Status != "SUCCEEDED" {
		t.Fatalf("drill execution %+v", res)
	}
	var out struct {
		Results []drill.Outcome `json:"results"`
	}
	if err := json.Unmarshal(res.Output, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 2 {
		t.Fatalf("results %s", res.Output)
	}
	for _, r := range out.Results {
		if r.Status != drill.StatusPassed {
			t.Fatalf("results %s", res.Output)
		}
	}
}
