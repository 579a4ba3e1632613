// Package wferr holds the errors keyline's workflow Lambdas return, one Go type per States
// error name: aws-lambda-go reports a handler error's type name as its errorType, and the
// state machines' Retry and Catch match on it (e.g. "Transient", "KeyRevoked", "LeaseHeld").
//
// A handler must return these types unwrapped (not inside fmt.Errorf), or the errorType
// becomes the wrapper's; From does the mapping from domain errors.
package wferr

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
)

// Transient is a failure worth retrying (throttling, 5xx, network, a lost optimistic race).
// ASL: Retry on "Transient" with backoff.
type Transient struct{ Msg string }

func (e *Transient) Error() string { return e.Msg }

// LeaseHeld: another holder has the app's backup lease (or, for a re-encryption, a backup
// runs): retry later.
type LeaseHeld struct{ Msg string }

func (e *LeaseHeld) Error() string { return e.Msg }

// KeyRevoked: a key the step needs is disabled, pending deletion, gone or no longer granted.
// The revocation path has been told (B2).
type KeyRevoked struct {
	KeyARN string
	Msg    string
}

func (e *KeyRevoked) Error() string { return e.Msg }

// Stranded: an abort put back every object it could, but objects a client wrote during the
// re-encryption are still under the aborted generation, because a key they need (the
// aborted generation's, to open them, or the previous one's, to seal them again) is revoked
// now. ASL: the abort is retried while the key may come back, then it ends listing them.
type Stranded struct{ Msg string }

func (e *Stranded) Error() string { return e.Msg }

// Refused: a rule refuses the request (R3, R7, …); Code is "conflict" (409) or
// "unprocessable" (422), Msg a reason a person can act on. Not retried.
type Refused struct {
	Code string
	Msg  string
}

func (e *Refused) Error() string { return e.Msg }

// Corrupt: stored data failed authentication or is truncated (a tampered backup, a damaged
// object). Not retried.
type Corrupt struct{ Msg string }

func (e *Corrupt) Error() string { return e.Msg }

// Invalid: the step's input is malformed; nothing changed. Not retried.
type Invalid struct{ Msg string }

func (e *Invalid) Error() string { return e.Msg }

// NotFound: the app, backup or restore the step names does not exist. Not retried.
type NotFound struct{ Msg string }

func (e *NotFound) Error() string { return e.Msg }

// Failed is any other failure of a step. Not retried by the machines.
type Failed struct{ Msg string }

func (e *Failed) Error() string { return e.Msg }

// From maps a domain error onto the workflow error type the state machines match on. A nil
// error stays nil; an error that already is one of this package's types is returned as is.
func From(err error) error {
	if err == nil {
		return nil
	}
	switch err.(type) {
	case *Transient, *LeaseHeld, *KeyRevoked, *Stranded, *Refused, *Corrupt, *Invalid, *NotFound, *Failed:
		return err
	}
	var (
		tr *Transient
		lh *LeaseHeld
		kr *KeyRevoked
		rf *Refused
		co *Corrupt
		in *Invalid
		nf *NotFound
		fa *Failed
	)
	switch {
	case errors.As(err, &kr):
		return &KeyRevoked{KeyARN: kr.KeyARN, Msg: err.Error()}
	case errors.As(err, &rf):
		return &Refused{Code: rf.Code, Msg: rf.Msg}
	case errors.As(err, &co):
		return &Corrupt{Msg: err.Error()}
	case errors.As(err, &lh):
		return &LeaseHeld{Msg: err.Error()}
	case errors.As(err, &tr):
		return &Transient{Msg: err.Error()}
	case errors.As(err, &in):
		return &Invalid{Msg: err.Error()}
	case errors.As(err, &nf):
		return &NotFound{Msg: err.Error()}
	case errors.As(err, &fa):
		return &Failed{Msg: err.Error()}
	}
	if class, ok := keys.ClassOf(err); ok {
		var ke *keys.KeyError
		errors.As(err, &ke)
		switch class {
		case keys.ClassRevoked:
			return &KeyRevoked{KeyARN: ke.KeyARN, Msg: err.Error()}
		case keys.ClassTransient:
			return &Transient{Msg: err.Error()}
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &Transient{Msg: err.Error()}
	case errors.Is(err, lineage.ErrLeaseHeld):
		return &LeaseHeld{Msg: err.Error()}
	case errors.Is(err, lineage.ErrNotFound):
		return &NotFound{Msg: err.Error()}
	case errors.Is(err, lineage.ErrInvalidInput):
		return &Invalid{Msg: err.Error()}
	case errors.Is(err, lineage.ErrConflict) && !errors.Is(err, lineage.ErrReencrypting) &&
		!errors.Is(err, lineage.ErrAppDeactivated) && !errors.Is(err, lineage.ErrKeyRevoked):
		// A lost optimistic race: the step may be retried.
		return &Transient{Msg: err.Error()}
	}
	return &Failed{Msg: err.Error()}
}

// Errorf is a convenience for a *Failed with a formatted message.
func Errorf(format string, args ...any) error { return &Failed{Msg: fmt.Sprintf(format, args...)} }
