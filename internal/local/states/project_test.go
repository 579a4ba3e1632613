package states

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// TestProjectDefinitions parses every state machine the project deploys.
func TestProjectDefinitions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "..", "infra", "statemachines", "*.asl.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no project state machines found under infra/statemachines: %v", err)
	}
	names := regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		subs := map[string]string{}
		for _, m := range names.FindAllStringSubmatch(string(b), -1) {
			subs[m[1]] = "fn-" + m[1]
		}
		def := SubstituteDefinition(string(b), subs)
		if names.MatchString(def) {
			t.Fatalf("%s: substitution left placeholders", f)
		}
		if _, err := Parse([]byte(def)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSubstituteDefinition(t *testing.T) {
	got := SubstituteDefinition(`{"a":"${X}","b":"${Y}","c":"${"}`, map[string]string{"X": "1"})
	if got != `{"a":"1","b":"${Y}","c":"${"}` {
		t.Fatalf("got %s", got)
	}
}
