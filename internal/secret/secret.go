// Package secret is where keyline's functions read a deployment secret (the console's
// operator token) from: one small interface, one package per implementation. In AWS and on
// the local endpoint alike the functions read it through Secrets Manager's GetSecretValue
// (awssecret); the local endpoint serves that call from a 0600 file under the data directory
// (filesecret). No secret is ever in a function's environment.
package secret

import (
	"context"
	"errors"
)

// Source yields a secret's current value.
type Source interface {
	Value(ctx context.Context) (string, error)
}

// ErrUnusable is wrapped by a Source's errors about a secret it found but may not use (empty,
// or stored where others can read it).
var ErrUnusable = errors.New("secret: unusable")

// ErrNotFound is wrapped when the secret does not exist.
var ErrNotFound = errors.New("secret: not found")
