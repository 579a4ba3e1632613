package lineage

import (
	"errors"
	"fmt"
)

// Sentinel errors. Check them with errors.Is; every error the Store returns wraps one.
var (
	// ErrNotFound: the org, app, generation, backup or restore does not exist.
	ErrNotFound = errors.New("lineage: not found")
	// ErrConflict: a lost optimistic-concurrency race or a failed condition. Returned as a
	// *ConflictError, which may also wrap one of the more specific sentinels below.
	ErrConflict = errors.New("lineage: conflict")
	// ErrInvariant: the change would break an invariant of the lineage, such as "exactly one
	// ACTIVE generation per app unless deactivated" or "the active generation changes only
	// through the store's own transitions".
	ErrInvariant = errors.New("lineage: invariant violated")
	// ErrLeaseHeld: another holder has an unexpired backup lease on the app.
	ErrLeaseHeld = errors.New("lineage: backup lease held")
	// ErrReencrypting: the app is re-encrypting (no backups run, no second re-encryption).
	ErrReencrypting = errors.New("lineage: app is re-encrypting")
	// ErrAppDeactivated: the app is deactivated because its key was revoked.
	ErrAppDeactivated = errors.New("lineage: app is deactivated")
	// ErrKeyRevoked: the generation's key is revoked (e.g. committing a re-encryption whose
	// new key was revoked meanwhile: abort it instead, B8).
	ErrKeyRevoked = errors.New("lineage: key revoked")
	// ErrDuplicate: the item already exists, or the event was already seen.
	ErrDuplicate = errors.New("lineage: duplicate")
	// ErrInvalidInput: the request is malformed (missing id, unknown key model, …); nothing changed.
	ErrInvalidInput = errors.New("lineage: invalid input")
)

// ConflictError is a change refused because the app (or another item) is not in the state
// the change needs, or changed underneath it. errors.Is(err, ErrConflict) holds, and
// errors.Is(err, Reason) holds for its specific reason (ErrLeaseHeld, ErrReencrypting,
// ErrAppDeactivated, ErrKeyRevoked) when it has one.
type ConflictError struct {
	// AppID is the app concerned, when there is one.
	AppID string
	// What says what conflicted, in words.
	What string
	// Reason is a more specific sentinel, or nil.
	Reason error
}

// Error implements error.
func (e *ConflictError) Error() string {
	msg := "lineage: conflict"
	if e.AppID != "" {
		msg += " on app " + e.AppID
	}
	if e.What != "" {
		msg += ": " + e.What
	}
	if e.Reason != nil {
		msg += " (" + e.Reason.Error() + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Unwrap returns the specific reason, so errors.Is(err, ErrLeaseHeld) etc. work.
func (e *ConflictError) Unwrap() error { return e.Reason }

func conflict(appID string, reason error, format string, args ...any) error {
	return &ConflictError{AppID: appID, What: fmt.Sprintf(format, args...), Reason: reason}
}

func notFound(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrNotFound}, args...)...)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidInput}, args...)...)
}

func invariant(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...)
}
