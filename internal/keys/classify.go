package keys

import (
	"context"
	"errors"
	"net"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Error codes by class. Anything not listed: 5xx → transient, 4xx → bad request, no response → transient.
var (
	revokedCodes = map[string]bool{
		"DisabledException":        true,
		"KMSInvalidStateException": true,
		"AccessDeniedException":    true,
		"NotFoundException":        true,
		"KeyUnavailableException":  true,
	}
	transientCodes = map[string]bool{
		"ThrottlingException":               true,
		"Throttling":                        true,
		"ThrottledException":                true,
		"TooManyRequestsException":          true,
		"RequestLimitExceeded":              true,
		"LimitExceededException":            true,
		"KMSInternalException":              true,
		"DependencyTimeoutException":        true,
		"ServiceUnavailable":                true,
		"ServiceUnavailableException":       true,
		"InternalFailure":                   true,
		"InternalError":                     true,
		"RequestTimeout":                    true,
		"RequestTimeoutException":           true,
		"CloudHsmClusterNotActiveException": true,
		"XksProxyUriUnreachableException":   true,
	}
	badRequestCodes = map[string]bool{
		"InvalidCiphertextException":    true,
		"IncorrectKeyException":         true,
		"InvalidKeyUsageException":      true,
		"ValidationException":           true,
		"InvalidGrantTokenException":    true,
		"InvalidArnException":           true,
		"UnsupportedOperationException": true,
		"DryRunOperationException":      true,
		"SerializationException":        true,
	}
)

// Classify turns an error from a KMS call into a *KeyError. An error that already is a
// *KeyError is returned as is.
func Classify(op, keyARN string, err error) *KeyError {
	var ke *KeyError
	if errors.As(err, &ke) {
		return ke
	}
	e := &KeyError{Op: op, KeyARN: keyARN, Err: err}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		e.Code = apiErr.ErrorCode()
	}
	status := 0
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	switch {
	case revokedCodes[e.Code]:
		e.Class = ClassRevoked
	case transientCodes[e.Code]:
		e.Class = ClassTransient
	case badRequestCodes[e.Code]:
		e.Class = ClassBadRequest
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		e.Class = ClassTransient
		if e.Code == "" {
			e.Code = "ContextDone"
		}
	case status == 429 || status >= 500:
		e.Class = ClassTransient
	case status >= 400:
		e.Class = ClassBadRequest
	default:
		// No HTTP response (connection refused, reset, DNS, timeout) or an unknown failure:
		// transient, so it is retried and never deactivates anything.
		e.Class = ClassTransient
		var ne net.Error
		if e.Code == "" && errors.As(err, &ne) {
			e.Code = "NetworkError"
		}
	}
	return e
}
