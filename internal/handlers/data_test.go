package handlers

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyline/keyline/infra"
	"github.com/keyline/keyline/internal/clock"
)

// TestDataHandlersBuild builds every data-plane handler from a complete environment (no network
// is touched while building) and checks that each is a Lambda handler shape and has its
// function in the deployment, its main package, and vice versa.
func TestDataHandlersBuild(t *testing.T) {
	env := map[string]string{
		infra.EnvTableName: "t", infra.EnvDataBucket: "d", infra.EnvBackupBucket: "b", infra.EnvEventBusName: "bus",
		infra.EnvProviderKeyARN: "arn:aws:kms:us-east-1:111122223333:key/p", "KEYLINE_S3_PATH_STYLE": "true",
	}
	deps := Deps{
		AWS:    aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", ""), BaseEndpoint: aws.String("http://127.0.0.1:1")},
		Env:    func(k string) string { return env[k] },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:  clock.Real(),
	}
	desc := infra.Description()
	hs := dataHandlers()
	for name, c := range hs {
		fn, ok := desc.Function(name)
		if !ok {
			t.Errorf("handler %s has no function in the deployment", name)
			continue
		}
		// The function's own settings, as the deployer would set them.
		for k, v := range fn.Env {
			if _, set := env[k]; !set {
				env[k] = v
			}
		}
		h, err := c(context.Background(), deps)
		if err != nil {
			t.Errorf("build %s: %v", name, err)
			continue
		}
		ht := reflect.TypeOf(h)
		if ht.Kind() != reflect.Func || ht.NumIn() != 2 || ht.NumOut() != 2 ||
			ht.In(0) != reflect.TypeFor[context.Context]() || ht.Out(1) != reflect.TypeFor[error]() {
			t.Errorf("%s: handler type %v is not func(context.Context, In) (Out, error)", name, ht)
		}
		main, err := os.ReadFile(filepath.Join("..", "..", "functions", name, "main.go"))
		if err != nil || !strings.Contains(string(main), `handlers.Main("`+name+`")`) {
			t.Errorf("functions/%s/main.go: %v", name, err)
		}
	}
	for _, sm := range []string{infra.SMBackup, infra.SMRestore, infra.SMRestoreDrill} {
		m, ok := desc.StateMachineNamed(sm)
		if !ok {
			t.Fatalf("no state machine %s", sm)
		}
		raw, err := infra.ASL(m)
		if err != nil {
			t.Fatal(err)
		}
		listed := map[string]bool{}
		for _, f := range m.Functions {
			listed[f] = true
			if hs[f] == nil {
				t.Errorf("%s: function %s has no handler", sm, f)
			}
		}
		for _, p := range infra.Placeholders(raw) {
			if f, ok := strings.CutPrefix(p, "Fn_"); ok && !listed[f] {
				t.Errorf("%s uses ${%s} but does not list function %s", sm, p, f)
			}
		}
	}
	// A missing setting is a clear error, not a panic.
	delete(env, infra.EnvBackupBucket)
	if _, err := hs[infra.FnBackupUpload](context.Background(), deps); err == nil || !strings.Contains(err.Error(), infra.EnvBackupBucket) {
		t.Errorf("missing backup bucket: %v", err)
	}
}
