package authz

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// KMS condition keys.
const (
	CtxEncryptionContextPrefix = "kms:EncryptionContext:"
	CtxEncryptionContextKeys   = "kms:EncryptionContextKeys"
	CtxCallerAccount           = "kms:CallerAccount"
	CtxResourceAccount         = "aws:ResourceAccount"
)

// KeyResolver turns a KMS key reference (id, ARN, alias name or alias ARN) into the key's
// ARN, and tells which key sealed a ciphertext blob; "" when it cannot.
type KeyResolver interface {
	ResolveKeyARN(ref string) string
	CiphertextKeyARN(blob []byte) string
}

// kmsBody holds the fields of a KMS request that name keys and contexts.
type kmsBody struct {
	KeyID                        *string           `json:"KeyId"`
	SourceKeyID                  *string           `json:"SourceKeyId"`
	DestinationKeyID             *string           `json:"DestinationKeyId"`
	TargetKeyID                  *string           `json:"TargetKeyId"`
	AliasName                    *string           `json:"AliasName"`
	CiphertextBlob               []byte            `json:"CiphertextBlob"`
	EncryptionContext            map[string]string `json:"EncryptionContext"`
	SourceEncryptionContext      map[string]string `json:"SourceEncryptionContext"`
	DestinationEncryptionContext map[string]string `json:"DestinationEncryptionContext"`
}

// kmsAccountActions act on the account, not on a key (resource "*").
var kmsAccountActions = map[string]bool{"CreateKey": true, "ListKeys": true, "ListAliases": true,
	"GenerateRandom": true, "CreateCustomKeyStore": true, "DescribeCustomKeyStores": true, "ListRetirableGrants": true}

// kmsContextActions carry an encryption context (the cryptographic operations).
var kmsContextActions = map[string]bool{"Encrypt": true, "Decrypt": true, "GenerateDataKey": true,
	"GenerateDataKeyWithoutPlaintext": true, "GenerateDataKeyPair": true, "GenerateDataKeyPairWithoutPlaintext": true,
	"ReEncryptFrom": true, "ReEncryptTo": true}

// KMSExtractor returns the checks of KMS requests: the action kms:<Operation> on the key's
// ARN (ReEncrypt: kms:ReEncryptFrom on the source key and kms:ReEncryptTo on the
// destination), with the encryption context as kms:EncryptionContext:<key> and
// kms:EncryptionContextKeys, kms:CallerAccount and aws:ResourceAccount.
func KMSExtractor(keys KeyResolver) Extractor {
	return ExtractorFunc(func(_ context.Context, r *Request) ([]Check, error) {
		op := r.Target
		if op == "" {
			return nil, fmt.Errorf("kms: no operation")
		}
		var b kmsBody
		if len(strings.TrimSpace(string(r.Body))) > 0 {
			if err := json.Unmarshal(r.Body, &b); err != nil {
				return nil, fmt.Errorf("kms %s: %w", op, err)
			}
		}
		check := func(action, keyRef string, blob []byte, ec map[string]string) (Check, error) {
			arn := ""
			if keyRef != "" {
				arn = keys.ResolveKeyARN(keyRef)
			} else if len(blob) > 0 {
				arn = keys.CiphertextKeyARN(blob)
			}
			if arn == "" {
				return Check{}, fmt.Errorf("kms %s: key %q not found", op, keyRef)
			}
			c := Check{Action: "kms:" + action, Resource: arn, ResourceAccount: ARNAccount(arn),
				Context: map[string]Value{CtxCallerAccount: One(r.Principal.Account)}}
			c.Context[CtxResourceAccount] = One(c.ResourceAccount)
			if kmsContextActions[action] {
				AddEncryptionContext(c.Context, ec)
			}
			return c, nil
		}
		switch {
		case kmsAccountActions[op]:
			return []Check{{Action: "kms:" + op, Resource: "*", ResourceAccount: r.Principal.Account,
				Context: map[string]Value{CtxCallerAccount: One(r.Principal.Account)}}}, nil
		case op == "ReEncrypt":
			src, err := check("ReEncryptFrom", deref(b.SourceKeyID), b.CiphertextBlob, b.SourceEncryptionContext)
			if err != nil {
				return nil, err
			}
			dst, err := check("ReEncryptTo", deref(b.DestinationKeyID), nil, b.DestinationEncryptionContext)
			if err != nil {
				return nil, err
			}
			return []Check{src, dst}, nil
		case op == "CreateAlias" || op == "UpdateAlias":
			c, err := check(op, deref(b.TargetKeyID), nil, nil)
			if err != nil {
				return nil, err
			}
			return []Check{c}, nil
		case op == "DeleteAlias":
			c, err := check(op, deref(b.AliasName), nil, nil)
			if err != nil {
				return nil, err
			}
			return []Check{c}, nil
		}
		c, err := check(op, deref(b.KeyID), b.CiphertextBlob, b.EncryptionContext)
		if err != nil {
			return nil, err
		}
		return []Check{c}, nil
	})
}

// AddEncryptionContext adds an encryption context's condition keys: one
// kms:EncryptionContext:<key> per pair and the set kms:EncryptionContextKeys (absent
// when the context is empty).
func AddEncryptionContext(ctx map[string]Value, ec map[string]string) {
	if len(ec) == 0 {
		return
	}
	names := make([]string, 0, len(ec))
	for k, v := range ec {
		ctx[CtxEncryptionContextPrefix+k] = One(v)
		names = append(names, k)
	}
	sort.Strings(names)
	ctx[CtxEncryptionContextKeys] = Set(names...)
}

// ARNAccount returns the account field of an ARN ("" when it has none).
func ARNAccount(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
