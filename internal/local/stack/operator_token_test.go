package stack

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOperatorTokenFile: a generated operator token has 256 bits, is kept 0600 under the data
// directory and read back on the next start; a chosen one replaces it; a file others can read
// is refused.
func TestOperatorTokenFile(t *testing.T) {
	dir := t.TempDir()
	tok, err := operatorToken(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(tok, "klop_"))
	if err != nil || len(raw)*8 < 256 {
		t.Fatalf("generated token %q: %d bits (%v), want at least 256", tok, len(raw)*8, err)
	}
	path := filepath.Join(dir, OperatorTokenFile)
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v, want mode 0600", fi, err)
	}
	again, err := operatorToken(dir, "")
	if err != nil || again != tok {
		t.Fatalf("second start: %q %v, want the same token", again, err)
	}
	chosen := strings.Repeat("c", MinOperatorTokenLen)
	if got, err := operatorToken(dir, chosen); err != nil || got != chosen {
		t.Fatalf("chosen token: %q %v", got, err)
	}
	if got, _ := operatorToken(dir, ""); got != chosen {
		t.Fatalf("after choosing: %q", got)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := operatorToken(dir, ""); !errors.Is(err, ErrOptions) {
		t.Fatalf("a world-readable token file: %v, want ErrOptions", err)
	}
}
