// The README's layout tree and its "where to find rule X" table are checked against the
// repository: every directory of the tree exists and every directory of the repository is in
// the tree; every rule and invariant of DESIGN.md is in the table, and each package and test
// function the table names exists.
package keyline_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/keyline/keyline/infra"
)

// designIDs are the rules (§1) and invariants (§7) of DESIGN.md, which the table must cover.
// Kept here, not read from DESIGN.md, so that the test needs only this repository.
var designIDs = []string{
	"R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8",
	"B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10",
	"I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10",
}

const (
	readmeFile  = "README.md"
	layoutBegin = "<!-- layout -->"
	layoutEnd   = "<!-- end layout -->"
	rulesBegin  = "<!-- rules -->"
	rulesEnd    = "<!-- end rules -->"
	// functionsPattern is the layout line that stands for every function's directory.
	functionsPattern = "functions/<name>"
)

var errReadme = errors.New("README")

// section returns the README text between the begin and end markers.
func section(readme []byte, begin, end string) (string, error) {
	i := bytes.Index(readme, []byte(begin))
	j := bytes.Index(readme, []byte(end))
	if i < 0 || j < i {
		return "", fmt.Errorf("%w: no section between %q and %q", errReadme, begin, end)
	}
	return string(readme[i+len(begin) : j]), nil
}

// layoutDirs parses the layout tree (two spaces of indent per level, each line a directory
// ending in '/' and its description) into slash-separated paths.
func layoutDirs(readme []byte) ([]string, error) {
	text, err := section(readme, layoutBegin, layoutEnd)
	if err != nil {
		return nil, err
	}
	var (
		dirs  []string
		stack []string
	)
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "```") {
			continue
		}
		trimmed := strings.TrimLeft(line, " ")
		indent := len(line) - len(trimmed)
		fields := strings.Fields(trimmed)
		if indent%2 != 0 || indent/2 > len(stack) || !strings.HasSuffix(fields[0], "/") {
			return nil, fmt.Errorf("%w: layout line %q: want a directory ending in '/' indented by two spaces per level", errReadme, line)
		}
		if len(fields) < 2 {
			return nil, fmt.Errorf("%w: layout line %q says nothing about the directory", errReadme, line)
		}
		stack = append(stack[:indent/2], strings.TrimSuffix(fields[0], "/"))
		dirs = append(dirs, strings.Join(stack, "/"))
	}
	return dirs, nil
}

// ignoredDirs reads the directory entries of .gitignore: anchored ones ("/bin/") as paths
// from the root, the others ("node_modules/") as names anywhere.
func ignoredDirs(root string) (anchored, names map[string]bool, err error) {
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		return nil, nil, err
	}
	anchored, names = map[string]bool{}, map[string]bool{"testdata": true}
	for _, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasSuffix(l, "/") || strings.HasPrefix(l, "#") {
			continue
		}
		if strings.HasPrefix(l, "/") {
			anchored[strings.Trim(l, "/")] = true
		} else {
			names[strings.Trim(l, "/")] = true
		}
	}
	return anchored, names, nil
}

// repoDirs lists the repository's directories (slash-separated, relative to root), leaving
// out hidden ones, testdata and what .gitignore ignores.
func repoDirs(root string) ([]string, error) {
	anchored, names, err := ignoredDirs(root)
	if err != nil {
		return nil, err
	}
	var dirs []string
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() || p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if strings.HasPrefix(d.Name(), ".") || names[d.Name()] || anchored[rel] {
			return filepath.SkipDir
		}
		dirs = append(dirs, rel)
		return nil
	})
	return dirs, err
}

// checkLayout compares the layout tree with the repository under root, both ways; the
// functions/<name> line stands for exactly the contract's functions, each with a main.go.
func checkLayout(readme []byte, root string, functions []string) error {
	listed, err := layoutDirs(readme)
	if err != nil {
		return err
	}
	actual, err := repoDirs(root)
	if err != nil {
		return err
	}
	var problems []string
	for _, d := range listed {
		if d == functionsPattern {
			continue
		}
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			problems = append(problems, fmt.Sprintf("%s/ is in the layout but not in the repository", d))
		}
	}
	for _, d := range actual {
		if strings.HasPrefix(d, "functions/") && slices.Contains(listed, functionsPattern) {
			name := strings.TrimPrefix(d, "functions/")
			if strings.Contains(name, "/") || !slices.Contains(functions, name) {
				problems = append(problems, fmt.Sprintf("%s/ is not the directory of a function of the contract", d))
			}
			continue
		}
		if !slices.Contains(listed, d) {
			problems = append(problems, fmt.Sprintf("%s/ is in the repository but not in the layout", d))
		}
	}
	for _, f := range functions {
		if _, err := os.Stat(filepath.Join(root, "functions", f, "main.go")); err != nil {
			problems = append(problems, fmt.Sprintf("function %s has no functions/%s/main.go", f, f))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: layout: %s", errReadme, strings.Join(problems, "; "))
	}
	return nil
}

// ruleRow is one row of the rule table: a rule (empty on continuation rows), a package and
// its tests.
type ruleRow struct {
	id, pkg string
	tests   []string
}

var (
	ruleID   = regexp.MustCompile(`^([RBI][0-9]+)\b`)
	backtick = regexp.MustCompile("`([^`]+)`")
)

// ruleRows parses the rule table.
func ruleRows(readme []byte) ([]ruleRow, error) {
	text, err := section(readme, rulesBegin, rulesEnd)
	if err != nil {
		return nil, err
	}
	var rows []ruleRow
	last := ""
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "| rule ") || strings.HasPrefix(line, "| ---") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 3 {
			return nil, fmt.Errorf("%w: rule table row %q: want 3 cells", errReadme, line)
		}
		label := strings.TrimSpace(cells[0])
		if m := ruleID.FindStringSubmatch(label); m != nil {
			last = m[1]
		} else if label != "" {
			last = ""
		}
		pkgs := backtick.FindAllStringSubmatch(cells[1], -1)
		tests := backtick.FindAllStringSubmatch(cells[2], -1)
		if len(pkgs) != 1 || len(tests) == 0 {
			return nil, fmt.Errorf("%w: rule table row %q: want one package and at least one test, each in backticks", errReadme, line)
		}
		r := ruleRow{id: last, pkg: pkgs[0][1]}
		for _, t := range tests {
			r.tests = append(r.tests, t[1])
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// testFuncs returns the names of the Test functions of the _test.go files in dir.
func testFuncs(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*_test.go"))
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	fset := token.NewFileSet()
	for _, f := range files {
		af, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range af.Decls {
			if fd, ok := d.(*ast.FuncDecl); ok && fd.Recv == nil && strings.HasPrefix(fd.Name.Name, "Test") {
				out[fd.Name.Name] = true
			}
		}
	}
	return out, nil
}

// checkRules checks that the table covers every id and that each package (a directory under
// root) holds each test function it is said to.
func checkRules(readme []byte, root string, ids []string) error {
	rows, err := ruleRows(readme)
	if err != nil {
		return err
	}
	var problems []string
	covered := map[string]bool{}
	cache := map[string]map[string]bool{}
	for _, r := range rows {
		if r.id != "" {
			if !slices.Contains(ids, r.id) {
				problems = append(problems, r.id+" is not a rule or invariant of DESIGN.md")
			}
			covered[r.id] = true
		}
		funcs, ok := cache[r.pkg]
		if !ok {
			if fi, err := os.Stat(filepath.Join(root, r.pkg)); err != nil || !fi.IsDir() {
				problems = append(problems, fmt.Sprintf("%s: no package %s", r.id, r.pkg))
				cache[r.pkg] = nil
				continue
			}
			if funcs, err = testFuncs(filepath.Join(root, r.pkg)); err != nil {
				return err
			}
			cache[r.pkg] = funcs
		}
		if funcs == nil {
			continue
		}
		for _, t := range r.tests {
			if !funcs[t] {
				problems = append(problems, fmt.Sprintf("%s: no test %s in %s", r.id, t, r.pkg))
			}
		}
	}
	for _, id := range ids {
		if !covered[id] {
			problems = append(problems, id+" is missing from the table")
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: rule table: %s", errReadme, strings.Join(problems, "; "))
	}
	return nil
}

func functionNames() []string {
	var out []string
	for _, f := range infra.Description().Functions {
		out = append(out, f.Name)
	}
	return out
}

func TestREADMELayoutMatchesTheTree(t *testing.T) {
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLayout(readme, ".", functionNames()); err != nil {
		t.Fatal(err)
	}
}

func TestREADMERuleTable(t *testing.T) {
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkRules(readme, ".", designIDs); err != nil {
		t.Fatal(err)
	}
}

// Each check fails on a README or a tree broken on purpose.
func TestREADMEChecksCatch(t *testing.T) {
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	replace := func(old, new string) []byte {
		t.Helper()
		if !bytes.Contains(readme, []byte(old)) {
			t.Fatalf("README has no %q", old)
		}
		return bytes.Replace(readme, []byte(old), []byte(new), 1)
	}
	for _, c := range []struct {
		name   string
		readme []byte
		ids    []string
		want   string
	}{
		{"renamed test", replace("`TestRuleR5NoBackupDuringReencrypt`", "`TestRuleR5Gone`"), designIDs, "no test TestRuleR5Gone in internal/acceptance"},
		{"moved package", replace("| `internal/workflow/drill` |", "| `internal/workflow/drills` |"), designIDs, "no package internal/workflow/drills"},
		{"rule missing", replace("| B4 restore drills |", "| restore drills |"), designIDs, "B4 is missing from the table"},
		{"new rule in DESIGN", readme, append(slices.Clone(designIDs), "B11"), "B11 is missing from the table"},
		{"unknown rule", replace("| I10 no org", "| I11 no org"), designIDs, "I11 is not a rule or invariant"},
	} {
		if err := checkRules(c.readme, ".", c.ids); !errors.Is(err, errReadme) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		name      string
		readme    []byte
		functions []string
		want      string
	}{
		{"listed directory gone", replace("  fanout/ ", "  fanouts/ "), functionNames(), "internal/fanouts/ is in the layout but not in the repository"},
		{"directory not listed", replace("    jsonpath/", "    jsonpaths/"), functionNames(), "internal/local/states/jsonpath/ is in the repository but not in the layout"},
		{"function not in the contract", readme, slices.DeleteFunc(functionNames(), func(s string) bool { return s == infra.FnDrillRun }),
			"functions/drillrun/ is not the directory of a function of the contract"},
		{"function without main.go", readme, append(functionNames(), "brandnew"), "function brandnew has no functions/brandnew/main.go"},
		{"line without a description", replace("  fanout/                   the one bounded fan-out helper", "  fanout/"), functionNames(), "says nothing"},
	} {
		if err := checkLayout(c.readme, ".", c.functions); !errors.Is(err, errReadme) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
	}
}
