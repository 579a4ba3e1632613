// Package sigv4 reads the parts of an AWS Signature Version 4 request that the local
// endpoint needs to route it: the credential scope (access key, date, region, service).
// It does not verify signatures; the local endpoint accepts any static credentials.
package sigv4

import (
	"net/http"
	"strings"
)

// Scope is the credential scope of a SigV4-signed request
// (`Credential=AKID/DATE/REGION/SERVICE/aws4_request`).
type Scope struct {
	AccessKeyID string
	Date        string
	Region      string
	Service     string
}

// FromRequest returns the credential scope of r, read from the Authorization header
// or, for presigned URLs, from the X-Amz-Credential query parameter. ok is false when
// the request carries no well-formed SigV4 credential.
func FromRequest(r *http.Request) (s Scope, ok bool) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		if s, ok = FromAuthorization(auth); ok {
			return s, true
		}
	}
	if c := r.URL.Query().Get("X-Amz-Credential"); c != "" {
		return parseCredential(c)
	}
	return Scope{}, false
}

// FromAuthorization parses an Authorization header value such as
// `AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/kms/aws4_request, SignedHeaders=…, Signature=…`.
func FromAuthorization(auth string) (Scope, bool) {
	i := strings.Index(auth, "Credential=")
	if i < 0 {
		return Scope{}, false
	}
	rest := auth[i+len("Credential="):]
	if j := strings.IndexAny(rest, ", "); j >= 0 {
		rest = rest[:j]
	}
	return parseCredential(rest)
}

func parseCredential(c string) (Scope, bool) {
	parts := strings.Split(c, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" || parts[3] == "" {
		return Scope{}, false
	}
	return Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}, true
}
