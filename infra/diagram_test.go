package infra_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyline/keyline/infra"
)

// The README's architecture diagram is generated from the deployment description, so it
// shows every function, state machine, rule and schedule the contract deploys, and nothing
// else. After changing the contract: go test ./infra -run TestREADMEDiagram -update
var updateDiagram = flag.Bool("update", false, "rewrite the README's architecture diagram from the deployment description")

const (
	readmePath = "../README.md"
	// The generated block sits between these two lines of the README.
	diagramBegin = "<!-- architecture diagram: generated from infra.Description() by `go test ./infra -run TestREADMEDiagram -update`; do not edit -->"
	diagramEnd   = "<!-- end of the generated architecture diagram -->"
)

var errDiagram = errors.New("README architecture diagram")

// resourceNodes are the diagram's nodes of the shared resources.
var resourceNodes = []struct {
	r     infra.Resource
	id    string
	shape string
}{
	{infra.Table, "TABLE", `[("DynamoDB table<br/>key lineage, backups, audit")]`},
	{infra.DataBucket, "DATA", `[("S3 data bucket<br/>sealed app objects")]`},
	{infra.BackupBucket, "BACKUPS", `[("S3 backup bucket<br/>sealed snapshots")]`},
	{infra.ProviderKey, "PKEY", `["provider KMS key"]`},
	{infra.CustomerKeys, "CMK", `["customer KMS keys"]`},
	{infra.EventBus, "BUS", `["keyline event bus<br/>source: keyline"]`},
}

var nonID = regexp.MustCompile(`[^A-Za-z0-9]`)

func nodeID(kind, name string) string { return kind + "_" + nonID.ReplaceAllString(name, "_") }

func targetID(t infra.Target) string {
	if t.StateMachine != "" {
		return nodeID("sm", t.StateMachine)
	}
	return nodeID("fn", t.Function)
}

// diagram renders d as a Mermaid flowchart: triggers (rules, schedules, the console's API
// Gateway) → state machines (each a box of its functions) and functions → the resources
// they are granted (a machine's edges are the union of its functions').
func diagram(d infra.Deployment) string {
	var b strings.Builder
	line := func(format string, args ...any) { fmt.Fprintf(&b, "  "+format+"\n", args...) }
	b.WriteString("```mermaid\nflowchart LR\n")
	line(`subgraph customer["customer account"]`)
	line(`  CT["CloudTrail KMS events"]`)
	line(`  CMK["customer KMS keys"]`)
	line(`end`)
	line(`APIGW["console API<br/>(API Gateway)"]`)
	for _, r := range resourceNodes {
		if r.r != infra.CustomerKeys {
			line(`%s%s`, r.id, r.shape)
		}
	}
	inMachine := map[string]bool{}
	for _, m := range d.StateMachines {
		line(`subgraph %s["state machine: %s"]`, nodeID("sm", m.Name), m.Name)
		for _, f := range m.Functions {
			inMachine[f] = true
			line(`  %s["%s"]`, nodeID("fn", f), f)
		}
		line(`end`)
	}
	for _, f := range d.Functions {
		if !inMachine[f.Name] {
			line(`%s["%s"]`, nodeID("fn", f.Name), f.Name)
		}
	}
	line(`APIGW --> %s`, nodeID("fn", infra.FnConsoleAuthorizer))
	line(`APIGW --> %s`, nodeID("fn", infra.FnConsoleAPI))
	for _, r := range d.Rules {
		from := "CT"
		if r.Bus == infra.BusKeyline {
			from = "BUS"
		}
		line(`%s --> %s{{"rule: %s"}} --> %s`, from, nodeID("rule", r.Name), r.Name, targetID(r.Target))
	}
	for _, s := range d.Schedules {
		line(`%s(["schedule: %s<br/>%s"]) --> %s`, nodeID("sched", s.Name), s.Name, s.Expression, targetID(s.Target))
	}
	for _, f := range d.Functions {
		for _, m := range f.StartsStateMachines {
			line(`%s -- starts --> %s`, nodeID("fn", f.Name), nodeID("sm", m))
		}
	}
	// Resource edges: one per machine (its functions' grants) and per function outside one.
	access := func(fns ...string) []string {
		var ids []string
		for _, name := range fns {
			f, _ := d.Function(name)
			for _, a := range f.Access {
				for _, r := range resourceNodes {
					if r.r == a.Resource && !slices.Contains(ids, r.id) {
						ids = append(ids, r.id)
					}
				}
			}
		}
		// In the order of resourceNodes, so the output is stable.
		var out []string
		for _, r := range resourceNodes {
			if slices.Contains(ids, r.id) {
				out = append(out, r.id)
			}
		}
		return out
	}
	for _, m := range d.StateMachines {
		for _, id := range access(m.Functions...) {
			line(`%s --> %s`, nodeID("sm", m.Name), id)
		}
	}
	for _, f := range d.Functions {
		if inMachine[f.Name] {
			continue
		}
		for _, id := range access(f.Name) {
			line(`%s --> %s`, nodeID("fn", f.Name), id)
		}
	}
	b.WriteString("```\n")
	return b.String()
}

// readmeDiagram returns the README's generated block and where it sits.
func readmeDiagram(readme []byte) (block string, start, end int, err error) {
	i := bytes.Index(readme, []byte(diagramBegin+"\n"))
	j := bytes.Index(readme, []byte(diagramEnd))
	if i < 0 || j < i {
		return "", 0, 0, fmt.Errorf("%w: no block between %q and %q", errDiagram, diagramBegin, diagramEnd)
	}
	start = i + len(diagramBegin) + 1
	return string(readme[start:j]), start, j, nil
}

// checkDiagram reports how the README's diagram differs from d's: each function, state
// machine, rule and schedule missing from it, or any other difference from the generated one.
func checkDiagram(readme []byte, d infra.Deployment) error {
	block, _, _, err := readmeDiagram(readme)
	if err != nil {
		return err
	}
	var missing []string
	for _, f := range d.Functions {
		if !strings.Contains(block, `["`+f.Name+`"]`) {
			missing = append(missing, "function "+f.Name)
		}
	}
	for _, m := range d.StateMachines {
		if !strings.Contains(block, "state machine: "+m.Name+`"`) {
			missing = append(missing, "state machine "+m.Name)
		}
	}
	for _, r := range d.Rules {
		if !strings.Contains(block, "rule: "+r.Name+`"`) {
			missing = append(missing, "rule "+r.Name)
		}
	}
	for _, s := range d.Schedules {
		if !strings.Contains(block, "schedule: "+s.Name+"<br/>") {
			missing = append(missing, "schedule "+s.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: missing %s; regenerate it: go test ./infra -run TestREADMEDiagram -update", errDiagram, strings.Join(missing, ", "))
	}
	if want := diagram(d); block != want {
		return fmt.Errorf("%w differs from the deployment description; regenerate it: go test ./infra -run TestREADMEDiagram -update\n got:\n%s\nwant:\n%s", errDiagram, block, want)
	}
	return nil
}

func TestREADMEDiagram(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	d := infra.Description()
	if *updateDiagram {
		_, start, end, err := readmeDiagram(readme)
		if err != nil {
			t.Fatal(err)
		}
		out := slices.Concat(readme[:start], []byte(diagram(d)), readme[end:])
		if err := os.WriteFile(readmePath, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the diagram in %s", filepath.Clean(readmePath))
		return
	}
	if err := checkDiagram(readme, d); err != nil {
		t.Fatal(err)
	}
}

// The check fails when a function is added to the contract (and so is not in the README's
// diagram), when one is removed from the diagram, and when the block is gone.
func TestREADMEDiagramCheckCatches(t *testing.T) {
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	added := infra.Description()
	added.Functions = append(added.Functions, infra.Function{Name: "brandnew", Access: []infra.Access{{Resource: infra.Table, Level: "read"}}})
	if err := checkDiagram(readme, added); !errors.Is(err, errDiagram) || !strings.Contains(err.Error(), "function brandnew") {
		t.Errorf("a function added to the contract: %v", err)
	}
	d := infra.Description()
	dropped := bytes.Replace(readme, []byte(`["`+infra.FnBackupUpload+`"]`), nil, 1)
	if err := checkDiagram(dropped, d); !errors.Is(err, errDiagram) || !strings.Contains(err.Error(), "function "+infra.FnBackupUpload) {
		t.Errorf("a function dropped from the diagram: %v", err)
	}
	edge := []byte(nodeID("sm", infra.SMBackup) + " --> BACKUPS\n")
	if !bytes.Contains(readme, edge) {
		t.Fatalf("the diagram has no edge %q", edge)
	}
	if err := checkDiagram(bytes.Replace(readme, edge, nil, 1), d); !errors.Is(err, errDiagram) {
		t.Errorf("an edge dropped from the diagram: %v", err)
	}
	if err := checkDiagram(bytes.Replace(readme, []byte(diagramBegin), nil, 1), d); !errors.Is(err, errDiagram) {
		t.Errorf("no generated block: %v", err)
	}
}
