//go:build conformance

package states

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func conformanceDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("KEYLINE_CONFORMANCE_DIR"); d != "" {
		return filepath.Join(d, "stepfunctions")
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/keyline/keyline")) {
			d := filepath.Join(dir, "..", "shared", "conformance", "stepfunctions")
			if _, err := os.Stat(d); err != nil {
				t.Fatalf("conformance corpus not found at %s (set KEYLINE_CONFORMANCE_DIR): %v", d, err)
			}
			return d
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("conformance corpus not found: set KEYLINE_CONFORMANCE_DIR or run inside the keyline repo next to ../shared")
		}
		dir = parent
	}
}

type confCase struct {
	Name            string          `json:"name"`
	Definition      json.RawMessage `json:"definition"`
	Input           json.RawMessage `json:"input"`
	Expected        json.RawMessage `json:"expected"`
	NormalisedPaths []string        `json:"normalised_paths"`
	EventTypes      []string        `json:"expected_event_types"`
	EventTypesNote  string          `json:"event_types_note"`
}

func TestConformance(t *testing.T) {
	root := conformanceDir(t)
	files, err := filepath.Glob(filepath.Join(root, "*", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases under %s", root)
	}
	pass, total := map[string]int{}, map[string]int{}
	for _, f := range files {
		area := filepath.Base(filepath.Dir(f))
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var c confCase
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		total[area]++
		if err := runCase(c); err != nil {
			t.Errorf("%s: %v", c.Name, err)
			continue
		}
		pass[area]++
	}
	areas := make([]string, 0, len(total))
	for a := range total {
		areas = append(areas, a)
	}
	sort.Strings(areas)
	sum, n := 0, 0
	for _, a := range areas {
		t.Logf("%-20s %3d/%3d", a, pass[a], total[a])
		sum += pass[a]
		n += total[a]
	}
	t.Logf("%-20s %3d/%3d", "total", sum, n)
}

func runCase(c confCase) error {
	m, err := Parse(c.Definition)
	if err != nil {
		return err
	}
	var types []string
	res := m.Run(context.Background(), c.Input, Options{Clock: &instantClock{t: testInfo.StartTime}, Execution: testInfo,
		OnEvent: func(ev Event) { types = append(types, ev.Type) }})
	if c.EventTypes != nil {
		if err := compareEventTypes(c.EventTypes, types, c.EventTypesNote != ""); err != nil {
			return err
		}
	}
	loose := map[string]bool{}
	for _, p := range c.NormalisedPaths {
		loose[strings.TrimPrefix(p, "$.expected")] = true
	}
	got := map[string]any{"status": res.Status}
	if res.Status == StatusSucceeded {
		got["output"] = mustJSON(string(res.Output))
	} else {
		if res.Error != "" {
			got["error"] = res.Error
		}
		if res.Cause != "" {
			got["cause"] = res.Cause
		}
	}
	return matchJSON("", mustJSON(string(c.Expected)), got, loose)
}

// compareEventTypes compares history event types. When the recording sorted the events of
// Parallel sections (sortedParallel), the events up to the first ParallelStateStarted compare in
// order and the rest as a set of types (the recording's transformer also merged duplicates).
func compareEventTypes(want, got []string, sortedParallel bool) error {
	if sortedParallel {
		want, got = normaliseParallel(want), normaliseParallel(got)
	}
	if strings.Join(want, ",") != strings.Join(got, ",") {
		return fmt.Errorf("event types:\nwant %v\ngot  %v", want, got)
	}
	return nil
}

func normaliseParallel(ev []string) []string {
	for i, e := range ev {
		if e != "ParallelStateStarted" {
			continue
		}
		set := map[string]bool{}
		for _, x := range ev[i+1:] {
			if x != "ParallelStateSucceeded" {
				set[x] = true
			}
		}
		rest := make([]string, 0, len(set))
		for x := range set {
			rest = append(rest, x)
		}
		sort.Strings(rest)
		return append(append([]string{}, ev[:i+1]...), rest...)
	}
	return ev
}
