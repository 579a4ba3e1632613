package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/keys"
)

// accessDeniedCodes are the error codes AWS refuses a call with when no policy allows it
// (S3 spells it without the suffix).
var accessDeniedCodes = map[string]bool{"AccessDeniedException": true, "AccessDenied": true}

// deniedActionRE finds the action in AWS's AccessDenied message ("... is not authorized to
// perform: kms:Decrypt on resource: ...").
var deniedActionRE = regexp.MustCompile(`perform: ([A-Za-z0-9-]+:[A-Za-z0-9]+)`)

// iamPrefixes name the IAM action prefix of an SDK service id, for a denial whose message
// does not name its action.
var iamPrefixes = map[string]string{"DynamoDB": "dynamodb", "S3": "s3", "KMS": "kms", "SFN": "states", "EventBridge": "events"}

// deniedCall is one of the console's own AWS calls that AWS refused with AccessDenied.
type deniedCall struct {
	// action is the IAM action refused ("states:StartExecution"), "" when unknown.
	action string
}

// accessDenied reports whether err is an AWS AccessDenied answer to one of the console's
// calls, and which action it refused.
func accessDenied(err error) (deniedCall, bool) {
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || !accessDeniedCodes[apiErr.ErrorCode()] {
		return deniedCall{}, false
	}
	var d deniedCall
	if m := deniedActionRE.FindStringSubmatch(apiErr.ErrorMessage()); m != nil {
		d.action = m[1]
	} else if op := (*smithy.OperationError)(nil); errors.As(err, &op) {
		prefix := iamPrefixes[op.ServiceID]
		if prefix == "" {
			prefix = strings.ToLower(op.ServiceID)
		}
		d.action = prefix + ":" + op.OperationName
	}
	return d, true
}

// customerKeyUnusable reports whether err is a customer key refusing keyline right now
// (disabled, pending deletion, deleted, or its key policy no longer admitting keyline):
// the customer's doing, not keyline's. The provider key is keyline's own.
func (s *Server) customerKeyUnusable(err error) bool {
	var ke *keys.KeyError
	if !errors.As(err, &ke) || ke.Class != keys.ClassRevoked || ke.KeyARN == "" {
		return false
	}
	return s.o.Provision == nil || ke.KeyARN != s.o.Provision.ProviderKeyARN
}

// RevocationCause names the console as the work that met a revoked customer key: the
// revocation's audit entry and reason carry it (B2, B5).
const RevocationCause = "console"

// reportTimeout bounds one report of a revoked key: it goes on when the client has gone away
// (the report is keyline's business, not the request's), but ends early enough for the
// answer to go out within the API gateway's 29 seconds.
const reportTimeout = 10 * time.Second

// reportRevoked feeds a customer key's revoked-class error into the revocation path (B2),
// which confirms it with DescribeKey and a test round trip before it revokes anything. Only
// errors customerKeyUnusable accepts come here: never the provider key, never a transient
// error. A failed report is logged with the request (log carries its id) and changes no
// answer: the scheduled key-health check finds the key later.
func (s *Server) reportRevoked(ctx context.Context, log *slog.Logger, err error) {
	var ke *keys.KeyError
	if s.o.Revocations == nil || !errors.As(err, &ke) {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	_, rerr, _ := s.reports.Do(ke.KeyARN, func() (any, error) {
		return nil, s.o.Revocations.ReportRevoked(ctx, ke.KeyARN, RevocationCause, err)
	})
	if rerr != nil {
		log.ErrorContext(ctx, "reporting a revoked customer key failed; the key-health check will find it",
			"key_arn", ke.KeyARN, "code", ke.Code, "error", rerr)
		return
	}
	log.InfoContext(ctx, "a customer key's revoked-class error reported to the revocation path", "key_arn", ke.KeyARN, "code", ke.Code)
}

// keyUnusableMessage says what the customer must fix when their key refuses keyline; it
// names no key detail and no KMS error text (B10).
func (s *Server) keyUnusableMessage() string {
	account := s.o.KeylineAccount
	if account == "" {
		account = "ACCOUNT"
	}
	return "the app's customer key refuses keyline right now: it is disabled, pending deletion or deleted, or its key policy " +
		"no longer admits keyline for the app's org; the customer must enable the key and keep in its policy the statements that " +
		"`keyline key-policy --org ORG --account " + account + "` prints for the app's org, then retry"
}

// misconfigured is the answer when AWS refuses one of keyline's own calls: keyline's
// deployment is wrong, not the request. It says what the operator must fix.
func misconfigured(d deniedCall, reqID string) *apiError {
	action := d.action
	if action == "" {
		action = "one of its AWS calls"
	}
	return &apiError{http.StatusInternalServerError, "Misconfigured", fmt.Sprintf(
		"keyline is misconfigured: AWS denied the console's %s (AccessDenied); the operator must allow it in the console-api role's "+
			"IAM policy (the deployment contract, infra) and redeploy; this request changed nothing and can be retried then (request id %s)",
		action, reqID)}
}
