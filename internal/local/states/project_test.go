package states

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/keyline/keyline/infra"
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
		def, err := infra.Substitute(b, subs)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if _, err := Parse(def); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}
