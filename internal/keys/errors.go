package keys

import (
	"errors"
	"fmt"
)

// Class is the class of a key error, which decides what keyline does about it.
type Class string

const (
	// ClassRevoked: the key is disabled, pending deletion, gone or no longer granted to us.
	// Feeds the revocation path (DESIGN B2).
	ClassRevoked Class = "revoked"
	// ClassTransient: throttling, 5xx, network. Retried with backoff; never deactivates anything.
	ClassTransient Class = "transient"
	// ClassBadRequest: the request itself is wrong (bad ciphertext, wrong key, bad context).
	ClassBadRequest Class = "bad-request"
)

// Sentinels matched with errors.Is against a *KeyError of the same class.
var (
	ErrRevoked    = errors.New("keys: key revoked or unusable")
	ErrTransient  = errors.New("keys: transient key service error")
	ErrBadRequest = errors.New("keys: bad key request")
)

// KeyError is a classified error from a key operation.
type KeyError struct {
	Class  Class
	Op     string // GenerateDataKey, Decrypt, DescribeKey, Check
	KeyARN string
	Code   string // the KMS error code (e.g. DisabledException), or a keyline code such as KeyState:Disabled
	Err    error
}

func (e *KeyError) Error() string {
	s := fmt.Sprintf("keys: %s %s: %s", e.Op, e.KeyARN, e.Class)
	if e.Code != "" {
		s += " (" + e.Code + ")"
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *KeyError) Unwrap() error { return e.Err }

// Is matches the sentinel of the error's class.
func (e *KeyError) Is(target error) bool {
	switch target {
	case ErrRevoked:
		return e.Class == ClassRevoked
	case ErrTransient:
		return e.Class == ClassTransient
	case ErrBadRequest:
		return e.Class == ClassBadRequest
	}
	return false
}

// ClassOf returns the class of a key error anywhere in err's chain, and false if there is none.
func ClassOf(err error) (Class, bool) {
	var ke *KeyError
	if errors.As(err, &ke) {
		return ke.Class, true
	}
	return "", false
}
