package kms

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/sigv4"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/nsmithuk/local-kms/src/service"
)

// Keys in other accounts. local-kms knows one account (Options.AccountID); the layer lets a
// key belong to the account that created it: a caller signing with a 12-digit access key id
// acts as that account, its CreateKey makes a key of that account (with the default key
// policy naming that account's root), and the key's ARN names that account everywhere it
// is seen (responses, errors, CloudTrail). Requests name such a key by that ARN; the layer
// hands local-kms its internal ARN. A bare key id resolves in the caller's own account only,
// as in AWS, and an ARN naming the wrong account is a key that does not exist.

// keyARNPattern matches a KMS key ARN: region, account, key id.
var keyARNPattern = regexp.MustCompile(`arn:aws:kms:([a-z0-9-]+):([0-9]{12}):key/([0-9a-fA-F-]{36})`)

// callerAccount is the account of the caller of r (see authz.Principals.Resolve).
func callerAccount(r *http.Request) string {
	sc, _ := sigv4.FromRequest(r)
	return (*authz.Principals)(nil).Resolve(sc.AccessKeyID).Account
}

// ownerOf returns the account a key (by id) belongs to.
func (s *Service) ownerOf(keyID string) string {
	if a, ok := s.state.owner(keyID); ok {
		return a
	}
	return s.opts.AccountID
}

// externalARN is a key's ARN as its owner's account names it.
func (s *Service) externalARN(internal string) string {
	m := keyARNPattern.FindStringSubmatch(internal)
	if m == nil || m[2] != s.opts.AccountID {
		return internal
	}
	owner := s.ownerOf(m[3])
	if owner == s.opts.AccountID {
		return internal
	}
	return "arn:aws:kms:" + m[1] + ":" + owner + ":key/" + m[3]
}

// toExternal rewrites every internal key ARN in a response body to its owner's.
func (s *Service) toExternal(body string) string {
	if !s.state.hasOwners() {
		return body
	}
	return keyARNPattern.ReplaceAllStringFunc(body, s.externalARN)
}

// toInternal rewrites the key ARNs of a request body to local-kms's, and refuses a key
// named in an account it does not belong to, or by bare id from another account.
func (s *Service) toInternal(body []byte, caller string) ([]byte, *handler.Response) {
	var bad string
	out := keyARNPattern.ReplaceAllFunc(body, func(arn []byte) []byte {
		m := keyARNPattern.FindSubmatch(arn)
		acct, id := string(m[2]), string(m[3])
		if s.ownerOf(id) != acct {
			if bad == "" {
				bad = string(arn)
			}
			return arn
		}
		return []byte("arn:aws:kms:" + string(m[1]) + ":" + s.opts.AccountID + ":key/" + id)
	})
	if bad != "" {
		resp := errResponse(http.StatusBadRequest, "NotFoundException", fmt.Sprintf("Key '%s' does not exist", bad))
		return nil, &resp
	}
	return out, nil
}

// checkBareKeyID refuses a bare key id (not an ARN, not an alias) of another account's key.
func (s *Service) checkBareKeyID(ref *string, caller string) *handler.Response {
	if ref == nil || strings.HasPrefix(*ref, "arn:") || strings.HasPrefix(*ref, "alias/") {
		return nil
	}
	if owner := s.ownerOf(*ref); owner != caller {
		arn := "arn:aws:kms:" + s.opts.Region + ":" + caller + ":key/" + *ref
		resp := errResponse(http.StatusBadRequest, "NotFoundException", fmt.Sprintf("Key '%s' does not exist", arn))
		return &resp
	}
	return nil
}

// defaultKeyPolicy is the key policy AWS gives a key created without one: the key's
// account root may do everything, which delegates access to that account's IAM policies.
func defaultKeyPolicy(account string) string {
	return fmt.Sprintf(`{"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"kms:*","Resource":"*"}]}`, account)
}

// withDefaultPolicy adds the default key policy of account to a CreateKey body without one.
func withDefaultPolicy(body []byte, account string) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	if _, ok := m["Policy"]; ok {
		return body, nil
	}
	p, err := json.Marshal(defaultKeyPolicy(account))
	if err != nil {
		return nil, err
	}
	m["Policy"] = p
	return json.Marshal(m)
}

// fixAccountID sets KeyMetadata.AWSAccountId to the key's owner.
func (s *Service) fixAccountID(resp handler.Response) handler.Response {
	if resp.Code != http.StatusOK || !s.state.hasOwners() {
		return resp
	}
	var out map[string]map[string]any
	if err := json.Unmarshal([]byte(resp.Body), &out); err != nil || out["KeyMetadata"] == nil {
		return resp
	}
	md := out["KeyMetadata"]
	id, _ := md["KeyId"].(string)
	owner := s.ownerOf(id)
	if owner == s.opts.AccountID {
		return resp
	}
	md["AWSAccountId"] = owner
	return okResponse(out)
}

// ResolveKeyARN returns the ARN (as its owner names it) of the key a reference names, ""
// when there is none. A reference from the endpoint's authorization, like a request's.
func (s *Service) ResolveKeyARN(ref string) string {
	if m := keyARNPattern.FindStringSubmatch(ref); m != nil && s.ownerOf(m[3]) != m[2] {
		return ""
	}
	internal := keyARNPattern.ReplaceAllString(ref, "arn:aws:kms:$1:"+s.opts.AccountID+":key/$3")
	s.mu.RLock()
	arn, key := s.resolve(internal)
	s.mu.RUnlock()
	if key == nil {
		return ""
	}
	return s.externalARN(arn)
}

// CiphertextKeyARN returns the ARN of the key that sealed a ciphertext blob, "" when the
// blob is not local-kms's.
func (s *Service) CiphertextKeyARN(blob []byte) string {
	ident, _, _, ok := service.UnpackCiphertextBlob(blob)
	if !ok {
		return ""
	}
	return s.ResolveKeyARN(ident)
}

// KeyPolicy returns a key's policy document (by the key's ARN as its owner names it).
func (s *Service) KeyPolicy(arn string) (string, bool) {
	m := keyARNPattern.FindStringSubmatch(arn)
	if m == nil || s.ownerOf(m[3]) != m[2] {
		return "", false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, key := s.resolve("arn:aws:kms:" + m[1] + ":" + s.opts.AccountID + ":key/" + m[3])
	if key == nil {
		return "", false
	}
	return key.GetPolicy(), true
}
