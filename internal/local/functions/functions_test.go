package functions

import (
	"context"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/handlers"
)

const module = "github.com/keyline/keyline"

// testDeps are dependencies from a complete environment: every function's own settings
// as the deployer sets them, plus the resource names. No network is touched while building.
func testDeps(env map[string]string) handlers.Deps {
	return handlers.Deps{
		AWS:    aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), BaseEndpoint: aws.String("http://127.0.0.1:1")},
		Env:    func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:  clock.Real(),
	}
}

func completeEnv(fn infra.Function) map[string]string {
	env := map[string]string{
		infra.EnvTableName: "t", infra.EnvDataBucket: "d", infra.EnvBackupBucket: "b", infra.EnvEventBusName: "bus",
		infra.EnvProviderKeyARN: "arn:aws:kms:us-east-1:111122223333:key/p", infra.EnvS3PathStyle: "true",
		infra.EnvOperatorTokenSecret: "arn:aws:secretsmanager:us-east-1:111122223333:secret:Keyline/operator-token-abcdef",
	}
	for _, m := range infra.Description().StateMachines {
		env[handlers.StateMachineEnv(m.Name)] = "arn:aws:states:us-east-1:111122223333:stateMachine:" + m.Name
	}
	for k, v := range fn.Env {
		env[k] = v
	}
	return env
}

// TestEveryFunctionBuilds builds every function of the deployment from a complete
// environment and checks that each is a Lambda handler shape, that the table and the
// deployment name the same functions, and that a state machine's placeholders name only
// functions it lists.
func TestEveryFunctionBuilds(t *testing.T) {
	desc := infra.Description()
	var deployed []string
	for _, fn := range desc.Functions {
		deployed = append(deployed, fn.Name)
		c, ok := Constructor(fn.Name)
		if !ok {
			t.Errorf("function %s has no constructor", fn.Name)
			continue
		}
		h, err := c(context.Background(), testDeps(completeEnv(fn)))
		if err != nil {
			t.Errorf("build %s: %v", fn.Name, err)
			continue
		}
		ht := reflect.TypeOf(h)
		if ht.Kind() != reflect.Func || ht.NumIn() != 2 || ht.NumOut() != 2 ||
			ht.In(0) != reflect.TypeFor[context.Context]() || ht.Out(1) != reflect.TypeFor[error]() {
			t.Errorf("%s: handler type %v is not func(context.Context, In) (Out, error)", fn.Name, ht)
		}
	}
	slices.Sort(deployed)
	if !slices.Equal(deployed, Names()) {
		t.Errorf("deployed functions %v, constructors %v", deployed, Names())
	}
	for _, m := range desc.StateMachines {
		raw, err := infra.ASL(m)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, f := range m.Functions {
			listed[f] = true
			if _, ok := Constructor(f); !ok {
				t.Errorf("%s: function %s has no constructor", m.Name, f)
			}
		}
		for _, p := range infra.Placeholders(raw) {
			if f, ok := strings.CutPrefix(p, "Fn_"); ok && !listed[f] {
				t.Errorf("%s uses ${%s} but does not list function %s", m.Name, p, f)
			}
		}
	}
	// A missing setting is a clear error naming it, not a panic.
	fn, _ := desc.Function(infra.FnBackupUpload)
	env := completeEnv(fn)
	delete(env, infra.EnvBackupBucket)
	if _, err := Build(context.Background(), infra.FnBackupUpload, func(context.Context) (handlers.Deps, error) { return testDeps(env), nil }); err == nil || !strings.Contains(err.Error(), infra.EnvBackupBucket) {
		t.Errorf("missing backup bucket: %v", err)
	}
	if _, err := Build(context.Background(), "nosuchfunction", nil); err == nil {
		t.Error("an unknown function built")
	}
}

// mainCall is what a functions/<name>/main.go does: handlers.Main(infra.<Fn>, <pkg>.<Constructor>).
var mainCall = regexp.MustCompile(`handlers\.Main\(infra\.(\w+), (\w+\.\w+)\)`)

// tableEntry is one entry of this package's table: infra.<Fn>: handlers.Erase(<pkg>.<Constructor>).
var tableEntry = regexp.MustCompile(`infra\.(\w+): +handlers\.Erase\((\w+\.\w+)\)`)

// TestMainsNameTheirConstructors checks that every functions/<name>/main.go names the
// constructor this package's table names for it, so Lambda and the local runtime build
// the same handler.
func TestMainsNameTheirConstructors(t *testing.T) {
	src, err := os.ReadFile("functions.go")
	if err != nil {
		t.Fatal(err)
	}
	table := map[string]string{}
	for _, m := range tableEntry.FindAllStringSubmatch(string(src), -1) {
		table[m[1]] = m[2]
	}
	if len(table) != len(Names()) {
		t.Fatalf("read %d table entries from functions.go, the table has %d", len(table), len(Names()))
	}
	root := moduleRoot(t)
	for _, name := range Names() {
		b, err := os.ReadFile(filepath.Join(root, "functions", name, "main.go"))
		if err != nil {
			t.Errorf("function %s: %v", name, err)
			continue
		}
		m := mainCall.FindStringSubmatch(string(b))
		if m == nil {
			t.Errorf("functions/%s/main.go does not call handlers.Main(infra.<Fn>, <pkg>.<Constructor>)", name)
			continue
		}
		if table[m[1]] != m[2] {
			t.Errorf("functions/%s/main.go builds %s for infra.%s; the local table builds %q", name, m[2], m[1], table[m[1]])
		}
	}
}

// forbiddenDeps returns the packages in deps that function fn must not link: nothing of
// the local runtime in any function, the console only in the console's functions, and
// only its own plane's handlers.
func forbiddenDeps(fn string, deps []string) []string {
	consoleFn := fn == infra.FnConsoleAPI || fn == infra.FnConsoleAuthorizer
	keyFn := false
	for _, f := range infra.Description().StateMachines {
		if f.Name == infra.SMReencrypt && slices.Contains(f.Functions, fn) {
			keyFn = true
		}
	}
	keyFn = keyFn || slices.Contains([]string{infra.FnKeyEvent, infra.FnKeyHealth, infra.FnKeyNotify, infra.FnKeyStateMigrate}, fn)
	var bad []string
	for _, d := range deps {
		switch {
		case strings.HasPrefix(d, module+"/internal/local"),
			strings.HasPrefix(d, module+"/cmd/"),
			strings.HasPrefix(d, module+"/internal/acceptance"),
			!consoleFn && (strings.HasPrefix(d, module+"/internal/console") || d == module+"/internal/handlers/console"),
			keyFn && d == module+"/internal/handlers/data",
			!keyFn && d == module+"/internal/handlers/key":
			bad = append(bad, d)
		}
	}
	return bad
}

// TestFunctionBinariesLinkOnlyWhatTheyUse lists each function's dependencies with `go list
// -deps` and fails when one links the local runtime, the console (outside the console's
// functions) or another plane's handlers.
func TestFunctionBinariesLinkOnlyWhatTheyUse(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed to list the functions' dependencies: %v", err)
	}
	c := exec.Command("go", "list", "-tags", "lambda.norpc", "-f", `{{.ImportPath}} {{join .Deps " "}}`, "./functions/...")
	c.Dir = moduleRoot(t)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("go list ./functions/...: %v", err)
	}
	listed := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		n, ok := strings.CutPrefix(f[0], module+"/functions/")
		if !ok {
			t.Fatalf("go list printed %q", line)
		}
		listed++
		if !slices.Contains(f[1:], module+"/internal/handlers") {
			t.Fatalf("functions/%s: dependency list without internal/handlers: %v", n, f[1:])
		}
		if bad := forbiddenDeps(n, f[1:]); len(bad) > 0 {
			t.Errorf("functions/%s links %v", n, bad)
		}
	}
	if listed != len(Names()) {
		t.Errorf("go list listed %d functions, the table has %d", listed, len(Names()))
	}
}

// TestForbiddenDepsCatches shows the dependency check failing on the dependency lists it
// exists to refuse.
func TestForbiddenDepsCatches(t *testing.T) {
	for fn, deps := range map[string][]string{
		infra.FnBackupUpload:    {module + "/internal/console"},
		infra.FnBackupRecord:    {module + "/internal/console/api"},
		infra.FnKeyEvent:        {module + "/internal/local/kms"},
		infra.FnConsoleAPI:      {module + "/internal/local/stack"},
		infra.FnReencryptBatch:  {module + "/internal/handlers/data"},
		infra.FnRestoreRun:      {module + "/internal/handlers/key"},
		infra.FnDrillPlan:       {module + "/internal/handlers/console"},
		infra.FnReencryptCommit: {module + "/internal/acceptance"},
	} {
		if bad := forbiddenDeps(fn, deps); len(bad) != 1 {
			t.Errorf("%s linking %v: check found %v", fn, deps, bad)
		}
	}
	if bad := forbiddenDeps(infra.FnConsoleAPI, []string{module + "/internal/console", module + "/internal/handlers/console"}); len(bad) != 0 {
		t.Errorf("the console function may link the console: %v", bad)
	}
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return strings.TrimSpace(string(out))
}
