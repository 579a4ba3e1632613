package lineage_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// rawWrite matches a DynamoDB item write through the SDK: a call of one of the write
// operations, or the construction of its input.
var rawWrite = regexp.MustCompile(`\.(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems)\(|\b(PutItem|UpdateItem|DeleteItem|BatchWriteItem|TransactWriteItems)Input\{`)

// rawWrites lists the non-test Go files under root, outside the allowed directories, that
// write DynamoDB items directly, as "path:line: text".
func rawWrites(root string, allowed []string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			for _, a := range allowed {
				if rel == a {
					return filepath.SkipDir
				}
			}
			if strings.HasPrefix(d.Name(), ".") && rel != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if rawWrite.MatchString(line) {
				found = append(found, fmt.Sprintf("%s:%d: %s", rel, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	return found, err
}

// ownerAllowed are the only places that write items: the lineage store (the table's one
// owner) and the local runtime (DynamoDB Local and the States interpreter's DynamoDB
// integration, which serve the writes rather than make them).
var ownerAllowed = []string{filepath.Join("internal", "lineage"), filepath.Join("internal", "local")}

// TestOneOwnerOfTheTable fails when a package other than the lineage store writes raw
// DynamoDB items (DESIGN.md §2: one table, one owner).
func TestOneOwnerOfTheTable(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	found, err := rawWrites(strings.TrimSpace(string(out)), ownerAllowed)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range found {
		t.Errorf("a raw DynamoDB write outside the lineage store: %s", f)
	}
}

// TestOneOwnerCheckCatches shows the check finding a raw write in a package of its own,
// and ignoring the allowed directories and tests.
func TestOneOwnerCheckCatches(t *testing.T) {
	root := t.TempDir()
	write := func(rel, src string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("internal/console/tokens.go", "package console\nfunc f() { c.PutItem(ctx, &dynamodb.PutItemInput{}) }\n")
	write("internal/objects/keys.go", "package objects\nvar in = dynamodb.UpdateItemInput{}\n")
	write("internal/lineage/apps.go", "package lineage\nfunc f() { c.PutItem(ctx, nil) }\n")
	write("internal/local/states/x.go", "package states\nfunc f() { c.TransactWriteItems(ctx, nil) }\n")
	write("internal/console/x_test.go", "package console\nfunc f() { c.DeleteItem(ctx, nil) }\n")
	found, err := rawWrites(root, ownerAllowed)
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 2 || !strings.HasPrefix(found[0], filepath.Join("internal", "console", "tokens.go")+":2:") ||
		!strings.HasPrefix(found[1], filepath.Join("internal", "objects", "keys.go")+":2:") {
		t.Fatalf("found %q, want the console's and the objects' writes", found)
	}
}
