package revocation_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/local/eventpattern"
	"github.com/keyline/keyline/internal/local/functions"
)

// TestKeyPlaneRuleMatchesSampleEvents checks the deployed CloudTrail rule against the sample
// events: successful key-state changes reach the key-event function, a failed call (with an
// errorCode) and other events do not (B3).
func TestKeyPlaneRuleMatchesSampleEvents(t *testing.T) {
	var rule *infra.Rule
	for _, r := range infra.Description().Rules {
		if r.Target.Function == infra.FnKeyEvent {
			rule = &r
		}
	}
	if rule == nil {
		t.Fatal("no rule targets the key-event function")
	}
	p, err := eventpattern.Compile(rule.EventPattern)
	if err != nil {
		t.Fatalf("rule pattern: %v", err)
	}
	for file, want := range map[string]bool{
		"kms-disable-key.json":           true,
		"kms-schedule-key-deletion.json": true,
		"kms-enable-key.json":            true,
		"kms-cancel-key-deletion.json":   true,
		"kms-disable-key-failed.json":    false,
		"schedule-key-health.json":       false,
	} {
		got, err := p.Match(sample(t, file))
		if err != nil || got != want {
			t.Errorf("%s: match %v (%v), want %v", file, got, err, want)
		}
	}
	if m, _ := p.Match(event(t, "kms-disable-key.json", sampleKey, "x", t0)); !m {
		t.Error("a rewritten DisableKey no longer matches")
	}
}

// TestKeyPlaneDeployment checks the key plane's part of the deployment description: every
// function has a handler and a functions/<name>/main.go, the re-encryption machine's
// placeholders name its own functions, and the key-health schedule targets its function.
func TestKeyPlaneDeployment(t *testing.T) {
	d := infra.Description()
	names := functions.Names()
	fns := []string{infra.FnKeyEvent, infra.FnKeyHealth, infra.FnKeyNotify, infra.FnKeyStateMigrate, infra.FnReencryptValidate,
		infra.FnReencryptBegin, infra.FnReencryptBatch, infra.FnReencryptCommit, infra.FnReencryptAbort}
	for _, fn := range fns {
		f, ok := d.Function(fn)
		if !ok {
			t.Errorf("function %s is not deployed", fn)
			continue
		}
		if !slices.Contains(names, fn) {
			t.Errorf("function %s has no handler", fn)
		}
		if len(f.Access) == 0 || f.Timeout <= 0 || f.MemoryMB <= 0 {
			t.Errorf("function %s: %+v", fn, f)
		}
		b, err := os.ReadFile(filepath.Join("..", "..", "..", "functions", fn, "main.go"))
		if err != nil || !regexp.MustCompile(`handlers\.Main\(infra\.\w+, key\.\w+\)`).Match(b) {
			t.Errorf("functions/%s/main.go: %v", fn, err)
		}
	}
	sm, ok := d.StateMachineNamed(infra.SMReencrypt)
	if !ok {
		t.Fatal("no reencrypt machine")
	}
	asl, err := infra.ASL(sm)
	if err != nil {
		t.Fatal(err)
	}
	for _, ph := range infra.Placeholders(asl) {
		fn, isFn := strings.CutPrefix(ph, "Fn_")
		switch {
		case isFn && !slices.Contains(sm.Functions, fn):
			t.Errorf("placeholder %s names a function the machine does not list", ph)
		case !isFn && ph != "DataBucket":
			t.Errorf("unexpected placeholder %s", ph)
		}
	}
	found := false
	for _, s := range d.Schedules {
		if s.Target.Function == infra.FnKeyHealth && s.Expression != "" {
			found = true
		}
	}
	if !found {
		t.Error("no schedule runs the key-health function")
	}
	// The notification pages reach the notify function through a rule on keyline's bus.
	var notify *infra.Rule
	for _, r := range d.Rules {
		if r.Target.Function == infra.FnKeyNotify {
			notify = &r
		}
	}
	if notify == nil || notify.Bus != infra.BusKeyline {
		t.Fatalf("no rule on keyline's bus targets the notify function: %+v", notify)
	}
	p, err := eventpattern.Compile(notify.EventPattern)
	if err != nil {
		t.Fatal(err)
	}
	page := fmt.Sprintf(`{"version":"0","id":"1","source":%q,"detail-type":%q,"account":"000000000000","time":"2026-11-27T10:00:00Z","region":"us-east-1","resources":[],"detail":{"keyArn":%q,"change":"revoked","page":1}}`,
		audit.Source, audit.DetailKeyNotificationPage, sampleKey)
	if m, err := p.Match([]byte(page)); err != nil || !m {
		t.Errorf("a notification page does not match the notify rule: %v %v", m, err)
	}
	if m, _ := p.Match(sample(t, "kms-disable-key.json")); m {
		t.Error("a CloudTrail event matches the notify rule")
	}
}
