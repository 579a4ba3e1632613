package stack

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyline/keyline/internal/console"
)

// MinOperatorTokenLen is the shortest operator token an operator may choose
// (KEYLINE_OPERATOR_TOKEN); a generated one has console.TokenBytes (256 bits) of randomness.
const MinOperatorTokenLen = console.MinOperatorTokenLen

// OperatorTokenFile is the file under the data directory that keeps the operator token (0600).
const OperatorTokenFile = "operator-token"

// operatorTokenMode is the only mode the operator-token file may have.
const operatorTokenMode os.FileMode = 0o600

// operatorToken returns the operator token of the data directory dir: chosen (not empty) it is
// written to the token file; otherwise the file's token, or a newly generated one written there.
// The file is created 0600 and a file readable by others is refused.
func operatorToken(dir, chosen string) (string, error) {
	path := filepath.Join(dir, OperatorTokenFile)
	if chosen == "" {
		b, err := os.ReadFile(path)
		switch {
		case err == nil:
			fi, err := os.Stat(path)
			if err != nil {
				return "", fmt.Errorf("operator token: %w", err)
			}
			if fi.Mode().Perm()&^operatorTokenMode != 0 {
				return "", fmt.Errorf("%w: %s is readable by others (mode %v): make it 0600 or remove it", ErrOptions, path, fi.Mode().Perm())
			}
			tok := strings.TrimSpace(string(b))
			if len(tok) < MinOperatorTokenLen {
				return "", fmt.Errorf("%w: %s holds a token shorter than %d characters: remove it to have one generated", ErrOptions, path, MinOperatorTokenLen)
			}
			return tok, nil
		case errors.Is(err, os.ErrNotExist):
			chosen = console.NewToken(operatorTokenPrefix)
		default:
			return "", fmt.Errorf("operator token: %w", err)
		}
	}
	// Write to a private temporary file and rename it into place, so the token is never in a
	// file others can read, even briefly.
	tmp, err := os.CreateTemp(dir, ".operator-token-*")
	if err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(operatorTokenMode); err != nil {
		tmp.Close()
		return "", fmt.Errorf("operator token: %w", err)
	}
	if _, err := tmp.WriteString(chosen + "\n"); err != nil {
		tmp.Close()
		return "", fmt.Errorf("operator token: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", fmt.Errorf("operator token: %w", err)
	}
	return chosen, nil
}
