package filesecret_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyline/keyline/internal/secret"
	"github.com/keyline/keyline/internal/secret/filesecret"
)

// TestOwnerOnlyFile: a 0600 file is read (trimmed, again on each call); a file others may
// read, an empty one and a missing one are refused with the matching error.
func TestOwnerOnlyFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	src := filesecret.New(path)
	if _, err := src.Value(ctx); !errors.Is(err, secret.ErrNotFound) {
		t.Fatalf("missing file: %v, want ErrNotFound", err)
	}
	if err := os.WriteFile(path, []byte("  first-value\n"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	if v, err := src.Value(ctx); err != nil || v != "first-value" {
		t.Fatalf("0600 file: %q, %v", v, err)
	}
	if err := os.WriteFile(path, []byte("second-value"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	if v, err := src.Value(ctx); err != nil || v != "second-value" {
		t.Fatalf("replaced file: %q, %v", v, err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if v, err := src.Value(ctx); !errors.Is(err, secret.ErrUnusable) || v != "" {
			t.Fatalf("mode %v: %q, %v; want ErrUnusable", mode, v, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "empty"), []byte(" \n"), filesecret.OwnerOnly); err != nil {
		t.Fatal(err)
	}
	if _, err := filesecret.New(filepath.Join(dir, "empty")).Value(ctx); !errors.Is(err, secret.ErrUnusable) {
		t.Fatalf("empty file: %v, want ErrUnusable", err)
	}
	if _, err := filesecret.New(dir).Value(ctx); err == nil {
		t.Fatal("a directory was read as a secret")
	}
}
