package endpoint

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/sigv4"
)

// accessDenied is the error code of a denial in every protocol but DynamoDB's.
const accessDenied = "AccessDeniedException"

// ddbAccessDenied is DynamoDB's (JSON 1.0 protocol) name of the same error.
const ddbAccessDenied = "com.amazonaws.dynamodb.v20120810#AccessDeniedException"

// s3AccessDenied is S3's error code.
const s3AccessDenied = "AccessDenied"

// maxAuthzBodyBytes bounds the S3 bodies read for authorization (DeleteObjects' XML).
const maxAuthzBodyBytes = 2 << 20

// RegisterExtractor tells the endpoint which checks a service's requests need. A service
// without one is not authorized (Lambda, STS).
func (s *Server) RegisterExtractor(service string, ex authz.Extractor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.extractors[service] = ex
}

// SetAuthorizer turns enforcement on (nil turns it off).
func (s *Server) SetAuthorizer(a authz.Authorizer, principals *authz.Principals) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authorizer, s.principals = a, principals
}

// Principal returns who signed r.
func (s *Server) Principal(r *http.Request) authz.Principal {
	s.mu.RLock()
	p := s.principals
	s.mu.RUnlock()
	sc, _ := sigv4.FromRequest(r)
	return p.Resolve(sc.AccessKeyID)
}

// authorize asks the authorizer about every check r needs. It answers the denial itself
// and returns false when one is denied.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, service, reqID string) bool {
	s.mu.RLock()
	a, ex, principals := s.authorizer, s.extractors[service], s.principals
	s.mu.RUnlock()
	if a == nil || ex == nil {
		return true
	}
	sc, _ := sigv4.FromRequest(r)
	p := principals.Resolve(sc.AccessKeyID)
	req := &authz.Request{Principal: p, Region: sc.Region, Method: r.Method, Path: r.URL.Path,
		Query: r.URL.Query(), Header: r.Header, Target: operation(service, r)}
	if req.Region == "" {
		req.Region = "us-east-1"
	}
	if r.Header.Get("X-Amz-Target") == "" {
		req.Target = ""
	}
	if needsBody(service, r) && r.Body != nil {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxAuthzBodyBytes+1))
		if err != nil {
			writeError(w, service, http.StatusBadRequest, "SerializationException", "cannot read the request body", reqID)
			return false
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		req.Body = body
	}
	checks, err := ex.Checks(r.Context(), req)
	if err != nil {
		// Not understood: the service answers with its own validation error.
		s.log.Debug("authz: request not understood; left to the service", "service", service, "error", err, "request_id", reqID)
		return true
	}
	for _, c := range checks {
		d := a.Authorize(r.Context(), p, c)
		if d.Allowed {
			continue
		}
		s.log.Warn("access denied", "function", p.Function, "principal", p.ARN, "action", c.Action, "resource", c.Resource,
			"statement", d.Statement, "missing", d.Missing, "service", service, "request_id", reqID)
		writeAccessDenied(w, service, d.Message, reqID)
		return false
	}
	return true
}

// needsBody reports whether the checks of r depend on its body: every JSON protocol, and
// S3's DeleteObjects (the keys it deletes).
func needsBody(service string, r *http.Request) bool {
	if service != ServiceS3 {
		return true
	}
	_, del := r.URL.Query()["delete"]
	return r.Method == http.MethodPost && del
}

// writeAccessDenied answers a denial in the shape of the service's protocol.
func writeAccessDenied(w http.ResponseWriter, service, msg, reqID string) {
	switch service {
	case ServiceS3:
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, xml.Header)
		_ = xml.NewEncoder(w).Encode(struct {
			XMLName   xml.Name `xml:"Error"`
			Code      string   `xml:"Code"`
			Message   string   `xml:"Message"`
			RequestID string   `xml:"RequestId"`
			HostID    string   `xml:"HostId"`
		}{Code: s3AccessDenied, Message: msg, RequestID: reqID, HostID: reqID})
	case ServiceDynamoDB:
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.Header().Set("X-Amzn-Errortype", accessDenied)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":%q,"Message":%q}`, ddbAccessDenied, msg)
	default:
		ct := "application/x-amz-json-1.1"
		if service == ServiceStates {
			ct = "application/x-amz-json-1.0"
		}
		w.Header().Set("Content-Type", ct)
		w.Header().Set("X-Amzn-Errortype", accessDenied)
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"__type":%q,"message":%q}`, accessDenied, msg)
	}
}

// DeniedMessage renders AWS's AccessDenied message for a check the policies do not allow.
func DeniedMessage(p authz.Principal, c authz.Check, explicit bool, policyKind string) string {
	head := "User: " + p.ARN + " is not authorized to perform: " + c.Action + " on resource: " + c.Resource
	if explicit {
		return head + " with an explicit deny in " + article(policyKind) + " " + policyKind + " policy"
	}
	return head + " because no " + policyKind + " policy allows the " + c.Action + " action"
}

func article(kind string) string {
	if strings.HasPrefix(kind, "i") {
		return "an"
	}
	return "a"
}
