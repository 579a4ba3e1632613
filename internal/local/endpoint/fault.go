package endpoint

import (
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/keyline/keyline/internal/local/fault"
)

// injectFault applies the fault the injector decides for r: added latency, then a throttling
// error or a 500 in the service's own shape, or a timeout (the request is held, then its
// connection dropped unanswered). It reports whether the request goes on to its service.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request, service, reqID string) bool {
	op := Operation(service, r)
	f := s.opts.Faults.Request(service, op)
	if f.Latency > 0 && !sleepCtx(r, f.Latency) {
		return false
	}
	switch f.Kind {
	case fault.KindThrottle:
		status, code := throttleShape(service)
		writeError(w, service, status, code, "Rate exceeded (injected fault)", reqID)
		return false
	case fault.KindServerError:
		writeError(w, service, http.StatusInternalServerError, serverErrorCode(service), "We encountered an internal error. Please try again. (injected fault)", reqID)
		return false
	case fault.KindTimeout:
		if !sleepCtx(r, f.TimeoutAfter) {
			return false
		}
		dropConnection(w)
		return false
	}
	return true
}

func sleepCtx(r *http.Request, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// throttleShape is the status and error code a service throttles with.
func throttleShape(service string) (int, string) {
	switch service {
	case ServiceS3:
		return http.StatusServiceUnavailable, "SlowDown"
	case ServiceDynamoDB:
		return http.StatusBadRequest, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
	case ServiceLambda:
		return http.StatusTooManyRequests, "TooManyRequestsException"
	case ServiceSTS:
		return http.StatusBadRequest, "Throttling"
	default: // kms, events, states
		return http.StatusBadRequest, "ThrottlingException"
	}
}

// serverErrorCode is the code of a service's 500.
func serverErrorCode(service string) string {
	switch service {
	case ServiceS3:
		return "InternalError"
	case ServiceDynamoDB:
		return "com.amazonaws.dynamodb.v20120810#InternalServerError"
	case ServiceKMS:
		return "KMSInternalException"
	case ServiceLambda:
		return "ServiceException"
	default:
		return "InternalFailure"
	}
}

// dropConnection closes the client's connection without an answer (reset, not a clean
// close), as a lost response looks to a client.
func dropConnection(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // net/http closes the connection without a response
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// Operation names the API operation of a request: the X-Amz-Target's operation for JSON
// protocols, the Action of query protocols, Invoke for Lambda, and S3's operation told from
// its method, path and query.
func Operation(service string, r *http.Request) string {
	switch service {
	case ServiceS3:
		return s3Operation(r)
	case ServiceLambda:
		if strings.HasSuffix(r.URL.Path, "/invocations") {
			return "Invoke"
		}
	}
	return operation(service, r)
}

func s3Operation(r *http.Request) string {
	path := strings.TrimPrefix(r.URL.Path, "/")
	i := strings.IndexByte(path, '/')
	hasKey := i >= 0 && i < len(path)-1
	q := r.URL.Query()
	switch r.Method {
	case http.MethodGet:
		switch {
		case !hasKey && path == "":
			return "ListBuckets"
		case !hasKey && q.Has("uploads"):
			return "ListMultipartUploads"
		case !hasKey:
			return "ListObjectsV2"
		case q.Has("uploadId"):
			return "ListParts"
		}
		return "GetObject"
	case http.MethodHead:
		if !hasKey {
			return "HeadBucket"
		}
		return "HeadObject"
	case http.MethodPut:
		switch {
		case !hasKey:
			return "CreateBucket"
		case q.Has("partNumber"):
			return "UploadPart"
		case r.Header.Get("X-Amz-Copy-Source") != "":
			return "CopyObject"
		}
		return "PutObject"
	case http.MethodPost:
		switch {
		case q.Has("uploads"):
			return "CreateMultipartUpload"
		case q.Has("uploadId"):
			return "CompleteMultipartUpload"
		case q.Has("delete"):
			return "DeleteObjects"
		}
	case http.MethodDelete:
		switch {
		case !hasKey:
			return "DeleteBucket"
		case q.Has("uploadId"):
			return "AbortMultipartUpload"
		}
		return "DeleteObject"
	}
	return r.Method + " " + r.URL.Path
}
