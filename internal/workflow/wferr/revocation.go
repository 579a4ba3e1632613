package wferr

import (
	"context"
	"errors"
	"log/slog"

	"github.com/keyline/keyline/internal/keys"
)

// RevocationReporter feeds a revoked-class KMS error met while working into the revocation
// path (DESIGN B2). The key plane's revocation package implements it; the handler
// constructors wire it.
type RevocationReporter interface {
	ReportRevoked(ctx context.Context, keyARN, cause string, err error) error
}

// ReportIfRevoked reports err to r when it is a revoked-class key error and returns the
// *KeyRevoked a step should fail with; for any other error it returns nil. A failed report is
// logged (the key-health check will find the key again), never hidden in the step's error.
// cause names the work that met the error ("backup", "restore", "restore-drill").
func ReportIfRevoked(ctx context.Context, r RevocationReporter, log *slog.Logger, cause string, err error) *KeyRevoked {
	if !errors.Is(err, keys.ErrRevoked) {
		return nil
	}
	var ke *keys.KeyError
	arn := ""
	if errors.As(err, &ke) {
		arn = ke.KeyARN
	}
	if r != nil && arn != "" {
		if rerr := r.ReportRevoked(ctx, arn, cause, err); rerr != nil && log != nil {
			log.ErrorContext(ctx, "reporting a revoked key failed", "key_arn", arn, "error", rerr)
		}
	}
	return &KeyRevoked{KeyARN: arn, Msg: err.Error()}
}
