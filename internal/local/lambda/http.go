package lambda

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyline/keyline/internal/local/invoke"
)

// maxPayloadBytes is Lambda's synchronous invocation payload limit.
const maxPayloadBytes = invoke.MaxSyncRequestBytes

// ServeHTTP serves the Lambda Invoke API:
// `POST /2015-03-31/functions/{FunctionName}/invocations` with X-Amz-Invocation-Type
// RequestResponse (default), Event (202, run in the background) or DryRun (204).
// A function error answers 200 with `X-Amz-Function-Error: Unhandled` and the error body.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	const prefix = "/2015-03-31/functions/"
	path := req.URL.EscapedPath()
	if !strings.HasPrefix(path, prefix) || !strings.HasSuffix(path, "/invocations") || req.Method != http.MethodPost {
		writeErr(w, http.StatusBadRequest, "InvalidRequestContentException", "the local Lambda serves only Invoke (POST /2015-03-31/functions/{name}/invocations)")
		return
	}
	name, err := url.PathUnescape(strings.TrimSuffix(strings.TrimPrefix(path, prefix), "/invocations"))
	if err != nil || name == "" || strings.Contains(name, "/") {
		writeErr(w, http.StatusBadRequest, "ValidationException", "1 validation error detected: Value at 'functionName' failed to satisfy constraint: Member must satisfy regular expression pattern")
		return
	}
	if q := req.URL.Query().Get("Qualifier"); q != "" && q != "$LATEST" {
		name += ":" + q
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxPayloadBytes+1))
	if err != nil {
		writeErr(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not read the request body")
		return
	}
	if len(body) > maxPayloadBytes {
		writeErr(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", invoke.RequestTooLargeMessage)
		return
	}
	if len(body) == 0 {
		body = []byte("{}")
	}
	if !json.Valid(body) {
		writeErr(w, http.StatusBadRequest, "InvalidRequestContentException", "Could not parse request body into json: Unexpected character")
		return
	}
	if _, err := r.lookup(name); err != nil {
		writeErr(w, http.StatusNotFound, "ResourceNotFoundException", strings.TrimPrefix(err.Error(), "ResourceNotFoundException: "))
		return
	}
	switch req.Header.Get("X-Amz-Invocation-Type") {
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	case "Event":
		go func() {
			if _, _, err := r.invoke(context.WithoutCancel(req.Context()), name, body); err != nil {
				r.log.Warn("lambda: asynchronous invocation failed", "function", name, "err", err)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	}
	out, reqID, err := r.invoke(req.Context(), name, body)
	if reqID != "" {
		w.Header().Set("X-Amzn-Requestid", reqID)
	}
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	var fe *invoke.FunctionError
	switch {
	case errors.As(err, &fe):
		b, _ := json.Marshal(fe)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(b)
	case errors.Is(err, ErrTooManyRequests):
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-Errortype", "TooManyRequestsException")
		w.WriteHeader(http.StatusTooManyRequests)
		b, _ := json.Marshal(map[string]string{"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User",
			"message": "Rate Exceeded."})
		_, _ = w.Write(b)
	case err != nil:
		writeErr(w, http.StatusInternalServerError, "ServiceException", err.Error())
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(out)
	}
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"Type": "User", "message": msg})
	_, _ = w.Write(b)
}
