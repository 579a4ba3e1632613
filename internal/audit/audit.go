// Package audit emits keyline's audit events (DESIGN B5): every change of app state, key
// generation and backup availability is, besides its entry in the lineage audit trail, sent
// as an EventBridge event with `source: keyline` on keyline's event bus, so operators can
// alarm on it.
//
// Emitter is the small interface the workflows use; EventBridge is its implementation on
// the SDK's eventbridge client (PutEvents, at most 10 entries per call, failed entries
// retried). Tests record events with audittest.Recorder.
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/keyline/keyline/internal/decl"
)

// Source is the `source` of every event keyline emits.
const Source = decl.AuditSource

// Detail types of keyline's events. Operators write rules on these: never rename them.
const (
	// DetailKeyRevoked is the one event per key revocation (detail: keyArn, apps = the
	// number of apps whose active generation uses the key); the revocation alarm counts it.
	DetailKeyRevoked = decl.DetailKeyRevoked
	// DetailKeyReactivated is the one event per key reactivation (detail: keyArn, apps).
	DetailKeyReactivated = "Key Reactivated"
	// DetailKeyAwaitingOperator is the one event per key that came back past the
	// reactivation window (detail: keyArn, apps): an operator must reactivate it.
	DetailKeyAwaitingOperator = "Key Awaiting Operator"
	// DetailKeyNotificationPage is keyline's own continuation event: the notify function
	// sends the per-app events of one key change page by page, each page triggered by one.
	DetailKeyNotificationPage = "Key Notification Page"
	// DetailAppDeactivated and DetailAppReactivated are sent per app after a key change, at
	// least once, asynchronously, in pages (DetailKeyNotificationPage).
	DetailAppDeactivated          = decl.DetailAppDeactivated
	DetailAppReactivated          = "App Reactivated"
	DetailGenerationRevoked       = "Key Generation Revoked"
	DetailPendingGenerationRevoke = decl.DetailPendingGenerationRevoked
	DetailReactivationWaiting     = "Reactivation Awaiting Operator"
	DetailKeyAwaitingEnable       = "Key Awaiting EnableKey"
	DetailKeyHealthFailed         = "Key Health Check Failed"
	DetailReencryptBegun          = "Re-encryption Begun"
	DetailReencryptCommitted      = "Re-encryption Committed"
	DetailReencryptAborted        = "Re-encryption Aborted"
	DetailBackupRecorded          = "Backup Recorded"
	DetailBackupSkipped           = "Backup Skipped"
	DetailBackupsDisabled         = "Backups Disabled"
	DetailBackupsRestorable       = "Backups Restorable Again"
	DetailRestoreSucceeded        = "Restore Succeeded"
	DetailRestoreFailed           = "Restore Failed"
	DetailRestoreRefused          = "Restore Refused"
	DetailDrillFailed             = "Restore Drill Failed"
)

// Event is one audit event. Detail is marshalled to a JSON object.
type Event struct {
	// DetailType is the event's `detail-type`, one of the Detail* constants.
	DetailType string
	// Detail is the event's body; it must marshal to a JSON object.
	Detail any
	// Resources are the ARNs the event concerns (e.g. the KMS key), optional.
	Resources []string
	// Time is when the change happened (zero: the time EventBridge receives it).
	Time time.Time
}

// Validate reports an event that cannot be sent.
func (e Event) Validate() error {
	if e.DetailType == "" {
		return fmt.Errorf("%w: an event needs a detail type", ErrInvalidEvent)
	}
	if _, err := e.detailJSON(); err != nil {
		return err
	}
	return nil
}

func (e Event) detailJSON() (string, error) {
	if e.Detail == nil {
		return "{}", nil
	}
	b, err := json.Marshal(e.Detail)
	if err != nil {
		return "", fmt.Errorf("%w: detail of %q: %w", ErrInvalidEvent, e.DetailType, err)
	}
	if len(b) == 0 || b[0] != '{' {
		return "", fmt.Errorf("%w: detail of %q must be a JSON object", ErrInvalidEvent, e.DetailType)
	}
	return string(b), nil
}

// Emitter sends audit events. Implementations are safe for concurrent use.
type Emitter interface {
	// Emit sends events, batching them as the transport needs. It returns an *EmitError
	// when some could not be delivered after retries; the others were delivered.
	Emit(ctx context.Context, events ...Event) error
}

// Errors of the package.
var (
	// ErrInvalidEvent: an event that cannot be sent (no detail type, detail not an object).
	ErrInvalidEvent = errors.New("audit: invalid event")
	// ErrNotDelivered: some events were not delivered after retries (see EmitError).
	ErrNotDelivered = errors.New("audit: events not delivered")
)

// EmitError says how many events were not delivered and why.
type EmitError struct {
	Failed int
	Total  int
	// Codes counts the error codes of the last failed attempt.
	Codes map[string]int
	// Err joins the errors of the batches' last failed calls and, when ctx ended before
	// every batch was sent, the context's (nil when only entries were refused).
	Err error
}

func (e *EmitError) Error() string {
	s := fmt.Sprintf("audit: %d of %d events not delivered", e.Failed, e.Total)
	if len(e.Codes) > 0 {
		s += fmt.Sprintf(" (codes %v)", e.Codes)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrNotDelivered) true.
func (e *EmitError) Is(target error) bool { return target == ErrNotDelivered }

// Unwrap returns the call and context errors.
func (e *EmitError) Unwrap() error { return e.Err }

// Discard is an Emitter that drops every event (after validating it).
type Discard struct{}

// Emit implements Emitter.
func (Discard) Emit(_ context.Context, events ...Event) error {
	for _, e := range events {
		if err := e.Validate(); err != nil {
			return err
		}
	}
	return nil
}
