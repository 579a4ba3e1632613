// Package filesecret reads a secret from a file only its owner may read (mode 0600 or
// stricter): the local runtime's store of the operator token, served to the functions by the
// local endpoint's Secrets Manager.
package filesecret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyline/keyline/internal/secret"
)

// OwnerOnly is the widest mode a secret file may have.
const OwnerOnly os.FileMode = 0o600

// maxBytes bounds what is read of a secret file (Secrets Manager's own limit is 64 KiB).
const maxBytes = 64 << 10

// Source reads the secret in one file, again on every call (a replaced file takes effect).
type Source struct{ path string }

var _ secret.Source = Source{}

// New returns the Source of the file at path.
func New(path string) Source { return Source{path: path} }

// Path is the file's path.
func (s Source) Path() string { return s.path }

// Value returns the file's content without surrounding white space. A file others may read,
// or an empty one, is refused.
func (s Source) Value(context.Context) (string, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("%w: %s", secret.ErrNotFound, s.path)
	}
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	if perm := fi.Mode().Perm(); perm&^OwnerOnly != 0 || !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%w: %s may be read by others (mode %v): make it 0600", secret.ErrUnusable, s.path, perm)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxBytes))
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("%w: %s is empty", secret.ErrUnusable, s.path)
	}
	return v, nil
}
