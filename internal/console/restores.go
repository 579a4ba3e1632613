package console

import (
	"context"
	"errors"
	"net/http"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/workflow/restore"
)

// RestoreRules validates restores with the restore workflow's own rules (R3, R7), so the
// console refuses exactly what the state machine would.
type RestoreRules struct {
	Store restore.Store
	Keys  keys.Provider
}

// ValidateRestore returns nil, a Refusal (409/422), or a failure to check.
func (v RestoreRules) ValidateRestore(ctx context.Context, targetAppID, sourceAppID, backupID string) error {
	err := restore.Validate(ctx, v.Store, v.Keys, restore.Request{AppID: targetAppID, SourceAppID: sourceAppID, BackupID: backupID})
	var ref *restore.Refusal
	if errors.As(err, &ref) {
		status := http.StatusConflict
		if ref.Code == restore.CodeUnprocessable {
			status = http.StatusUnprocessableEntity
		}
		return &refusal{status: status, reason: ref.Reason, code: ref.ReasonCode}
	}
	return err
}

type refusal struct {
	status int
	reason string
	code   string
}

func (r *refusal) Error() string      { return r.reason }
func (r *refusal) HTTPStatus() int    { return r.status }
func (r *refusal) ReasonCode() string { return r.code }
