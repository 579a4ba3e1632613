package iam

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/keyline/keyline/internal/testenv"
)

// DecisionsEnv names a file of recorded decisions (JSON lines written with
// KEYLINE_IAM_RECORD) that TestAgreesWithIAMSimulate also replays.
const DecisionsEnv = "KEYLINE_IAM_DECISIONS"

const (
	agreementSeed      = 20261206
	agreementDecisions = 2400
	simulatorPackage   = "@cloud-copilot/iam-simulate"
	compareScript      = "tools/node/iam-compare.mjs"
)

var summaryLine = regexp.MustCompile(`(?m)^iam decisions: (\d+) compared, (\d+) disagree$`)

// TestAgreesWithIAMSimulate evaluates thousands of generated requests with
// this package and replays the recorded decisions through an independent
// IAM simulator; every decision must agree.
func TestAgreesWithIAMSimulate(t *testing.T) {
	root := testenv.RepoRoot(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not on PATH (run `make deps`): %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "tools", "node", "node_modules", filepath.FromSlash(simulatorPackage), "package.json")); err != nil {
		t.Fatalf("%s is not installed in tools/node/node_modules: run `make deps` (%v)", simulatorPackage, err)
	}

	path := filepath.Join(t.TempDir(), "decisions.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	rec := NewRecorder(f)
	g := newGenerator(agreementSeed)
	counts := map[Reason]int{}
	for i := 0; i < agreementDecisions; i++ {
		c := g.next()
		d := evaluate(&c.req, c.identity, c.resource)
		counts[d.Reason]++
		rec.Record(&c.req, c.identity, c.resource, d)
	}
	if err := errors.Join(rec.Err(), f.Close()); err != nil {
		t.Fatal(err)
	}
	t.Logf("generated decisions: %d allowed, %d explicitly denied, %d implicitly denied",
		counts[Allowed], counts[ExplicitDeny], counts[ImplicitDeny])
	// The generated set must exercise every outcome substantially.
	for _, r := range []Reason{Allowed, ExplicitDeny, ImplicitDeny} {
		if counts[r] < agreementDecisions/10 {
			t.Errorf("only %d of %d generated decisions are %v", counts[r], agreementDecisions, r)
		}
	}
	compareWithSimulator(t, node, root, path, agreementDecisions)

	if replay := os.Getenv(DecisionsEnv); replay != "" {
		t.Run("recorded", func(t *testing.T) {
			compareWithSimulator(t, node, root, replay, -1)
		})
	}
}

// compareWithSimulator runs the comparison script on a file of recorded
// decisions and fails unless all of them (want of them, when want >= 0)
// were compared and none disagree.
func compareWithSimulator(t *testing.T, node, root, path string, want int) {
	t.Helper()
	cmd := exec.Command(node, filepath.Join(root, filepath.FromSlash(compareScript)), path)
	cmd.Dir = filepath.Join(root, "tools", "node")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	m := summaryLine.FindSubmatch(out)
	if m == nil {
		t.Fatalf("comparison printed no summary (err %v)\nstdout:\n%s\nstderr:\n%s", err, out, stderr.Bytes())
	}
	// The summary line is printed for scripts that collect it, not only logged.
	fmt.Println(string(m[0]))
	n, _ := strconv.Atoi(string(m[1]))
	bad, _ := strconv.Atoi(string(m[2]))
	if bad != 0 || err != nil {
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<24)
		shown := 0
		for sc.Scan() && shown < 20 {
			t.Log(sc.Text())
			shown++
		}
		t.Fatalf("%s (exit: %v) %s", m[0], err, stderr.Bytes())
	}
	if want >= 0 && n != want {
		t.Fatalf("compared %d decisions, want %d", n, want)
	}
	if n == 0 {
		t.Fatalf("no decisions in %s", path)
	}
}
