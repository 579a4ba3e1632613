package backup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/local/states"
	"github.com/keyline/keyline/internal/objects/objectstest"
	"github.com/keyline/keyline/internal/workflow/backup"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// scaleApps is the number of due apps one scheduled run must handle.
const scaleApps = 5000

// scalePage is the page size of ListDue in the scale test (the handler's default).
const scalePage = 200

// scaleRun runs def (the backup machine, placeholders replaced by function names) over
// scaleApps due apps with instant step handlers: every 7th app's upload fails (its failure is
// recorded by Fail) and every 50th app's Fail fails as well. It returns the result, the number
// of history events of the run, and the outcome each app reached.
func scaleRun(t *testing.T, def []byte) (states.Result, int, map[string]string) {
	t.Helper()
	m, err := states.Parse(def)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	var mu sync.Mutex
	outcome := map[string]string{}
	set := func(app, s string) {
		mu.Lock()
		outcome[app] = s
		mu.Unlock()
	}
	appNo := func(app string) int {
		n, _ := strconv.Atoi(app[len("app-"):])
		return n
	}
	handlers := map[string]any{
		infra.FnBackupListDue: func(_ context.Context, in backup.DueInput) (backup.DueOutput, error) {
			start := 0
			if in.Cursor != "" {
				start, _ = strconv.Atoi(in.Cursor)
			}
			out := backup.DueOutput{Items: []backup.Item{}, RequestedBy: "scheduler"}
			for i := start; i < min(start+scalePage, scaleApps); i++ {
				app := fmt.Sprintf("app-%05d", i)
				out.Items = append(out.Items, backup.Item{AppID: app, BackupID: backup.ID(in.ExecutionArn, app), ExecutionArn: in.ExecutionArn, RequestedBy: "scheduler"})
			}
			if next := start + scalePage; next < scaleApps {
				out.Next, out.HasMore = strconv.Itoa(next), true
			}
			return out, nil
		},
		infra.FnBackupLease: func(_ context.Context, it backup.Item) (backup.Step, error) {
			set(it.AppID+"/lease", "x")
			return backup.Step{Item: it, Status: backup.StatusLeased}, nil
		},
		infra.FnBackupUpload: func(_ context.Context, st backup.Step) (backup.Step, error) {
			set(st.AppID+"/upload", "x")
			if appNo(st.AppID)%7 == 0 {
				return backup.Step{}, &wferr.Invalid{Msg: "upload failed for " + st.AppID}
			}
			st.Status = backup.StatusUploaded
			return st, nil
		},
		infra.FnBackupRecord: func(_ context.Context, st backup.Step) (backup.Step, error) {
			set(st.AppID, backup.StatusRecorded)
			st.Status = backup.StatusRecorded
			return st, nil
		},
		infra.FnBackupFail: func(_ context.Context, st backup.Step) (backup.Step, error) {
			if appNo(st.AppID)%50 == 0 {
				return backup.Step{}, &wferr.Invalid{Msg: "cannot record the failure of " + st.AppID}
			}
			set(st.AppID, backup.StatusFailed)
			st.Status = backup.StatusFailed
			return st, nil
		},
	}
	events := 0
	res := m.Run(context.Background(), []byte(`{"requestedBy":"scheduler"}`), states.Options{
		Tasks:     &states.Integrations{Lambda: objectstest.Invoker(handlers)},
		OnEvent:   func(states.Event) { events++ },
		Execution: states.ExecutionInfo{ID: "arn:aws:states:us-east-1:000000000000:execution:" + infra.SMBackup + ":scale", Name: "scale", StateMachineName: infra.SMBackup},
	})
	return res, events, outcome
}

// TestScheduledRunOf5000Apps: one scheduled run over 5,000 due apps succeeds, stays far
// below the 25,000-event history quota, and no app's failure (even one whose failure cannot be
// recorded) fails the run: every app reaches an outcome.
func TestScheduledRunOf5000Apps(t *testing.T) {
	res, events, outcome := scaleRun(t, objectstest.MachineDefinition(t, infra.SMBackup))
	if res.Status != states.StatusSucceeded {
		t.Fatalf("run %s: %s %s", res.Status, res.Error, res.Cause)
	}
	if events >= states.MaxHistoryEvents/10 {
		t.Fatalf("the run wrote %d history events; it should stay far below the quota of %d", events, states.MaxHistoryEvents)
	}
	recorded, failed, unrecorded := 0, 0, 0
	for i := range scaleApps {
		app := fmt.Sprintf("app-%05d", i)
		switch s := outcome[app]; {
		case s == backup.StatusRecorded:
			recorded++
		case s == backup.StatusFailed:
			failed++
		case i%7 == 0 && i%50 == 0:
			unrecorded++
		default:
			t.Errorf("%s reached no outcome (%q) lease %q upload %q", app, s, outcome[app+"/lease"], outcome[app+"/upload"])
		}
	}
	t.Logf("%d apps: %d recorded, %d failed and recorded, %d failed unrecorded; %d history events", scaleApps, recorded, failed, unrecorded, events)
	if failed == 0 || unrecorded == 0 {
		t.Fatal("the run exercised no failures")
	}
	// The last page's results name the apps whose failure could not be recorded.
	if !bytes.Contains(res.Output, []byte("could not be recorded")) {
		t.Fatalf("the last page's results do not show the unrecorded failure: %.300s", res.Output)
	}
}

// TestScheduledRunInlineHitsHistoryQuota is the check failing against the design it
// replaces: the same machine with an inline Map loops every app through one execution's
// history and fails with the history quota, as AWS fails it.
func TestScheduledRunInlineHitsHistoryQuota(t *testing.T) {
	def := objectstest.MachineDefinition(t, infra.SMBackup)
	var d map[string]any
	if err := json.Unmarshal(def, &d); err != nil {
		t.Fatal(err)
	}
	bm := d["States"].(map[string]any)["BackupApps"].(map[string]any)
	bm["ItemProcessor"].(map[string]any)["ProcessorConfig"] = map[string]any{"Mode": "INLINE"}
	delete(bm, "ToleratedFailurePercentage")
	inline, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	res, events, _ := scaleRun(t, inline)
	if res.Status != states.StatusFailed || res.Error != states.ErrRuntime || res.Cause != states.HistoryLimitCause {
		t.Fatalf("inline run %s %s %q, want FAILED %s %q", res.Status, res.Error, res.Cause, states.ErrRuntime, states.HistoryLimitCause)
	}
	if events != states.MaxHistoryEvents {
		t.Fatalf("inline run wrote %d events, want %d", events, states.MaxHistoryEvents)
	}
}
