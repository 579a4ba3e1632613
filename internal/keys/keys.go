// Package keys holds keyline's key providers: the KMS data-key operations behind one small
// interface, the encryption context every call carries, and the classification of KMS errors
// into revoked, transient and bad-request.
//
// Customer-managed (CMK) and provider-managed keys use the same mechanism; they differ only in
// which KMS key ARN is used. A KeyRef says which model and which key; Resolve builds one and
// refuses to let a CMK app fall back to the provider's key.
package keys

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strconv"

	"github.com/keyline/keyline/internal/decl"
)

// Model is an app instance's key model.
type Model string

const (
	// ModelCustomer is a customer-managed key (a KMS key in the customer's account).
	ModelCustomer Model = "cmk"
	// ModelManaged is a provider-managed key (a KMS key in the provider's account).
	ModelManaged Model = "managed"
)

// ParseModel parses "cmk" or "managed".
func ParseModel(s string) (Model, error) {
	switch Model(s) {
	case ModelCustomer, ModelManaged:
		return Model(s), nil
	}
	return "", fmt.Errorf("%w: unknown key model %q (want %q or %q)", ErrInvalidKeyRef, s, ModelCustomer, ModelManaged)
}

// Valid reports whether m is a known model.
func (m Model) Valid() bool { return m == ModelCustomer || m == ModelManaged }

// Purpose says what a KMS call is for; it is part of the encryption context, so the
// customer's CloudTrail shows it and key policies can condition on it.
type Purpose string

const (
	// PurposeData seals an app's objects under one key generation.
	PurposeData Purpose = "data"
	// PurposeBackup seals one backup.
	PurposeBackup Purpose = "backup"
	// PurposeRestore seals data written into a target app by a restore.
	PurposeRestore Purpose = "restore"
	// PurposeKeyCheck is the test round trip of a key-health check or key validation.
	PurposeKeyCheck Purpose = "key-check"
	// PurposeReencrypt seals data written by a re-encryption.
	PurposeReencrypt Purpose = "reencrypt"
)

// Encryption-context key names, declared once in internal/decl (the IAM policies and the
// customer key policy are generated from that declaration). Customers' key policies condition
// on these (kms:EncryptionContextKeys / kms:EncryptionContext:<key>): never rename them.
const (
	// ContextKeyOrg names the org: a customer's key policy pins it
	// (kms:EncryptionContext:keyline:org) so that keyline may use the key for that org alone.
	ContextKeyOrg        = decl.ContextKeyOrg
	ContextKeyApp        = decl.ContextKeyApp
	ContextKeyGeneration = decl.ContextKeyGeneration
	ContextKeyPurpose    = decl.ContextKeyPurpose
)

// ContextKeys are the encryption-context keys keyline sets on every KMS call (other keys may be
// added per purpose, such as keyline:backup or keyline:scope).
var ContextKeys = []string{ContextKeyOrg, ContextKeyApp, ContextKeyGeneration, ContextKeyPurpose}

// KeyCheckApp is the app named in the context of a key check (key validation, key health,
// reactivation), which concerns a key and an org, not one app.
const KeyCheckApp = "keyline-key-check"

// EncryptionContext returns the encryption context of a KMS call for an org's app, a key
// generation and a purpose: the one place it is built. The map is new on every call; callers
// may add entries (for example a backup id).
func EncryptionContext(orgID, appID string, generation int, purpose Purpose) map[string]string {
	return map[string]string{
		ContextKeyOrg:        orgID,
		ContextKeyApp:        appID,
		ContextKeyGeneration: strconv.Itoa(generation),
		ContextKeyPurpose:    string(purpose),
	}
}

// ErrInvalidKeyRef is returned for a key reference that cannot be used (unknown model, a CMK
// without a key ARN, a missing provider key, or a CMK naming the provider's key).
var ErrInvalidKeyRef = errors.New("keys: invalid key reference")

// KeyRef names the KMS key an app uses and which model it belongs to.
type KeyRef struct {
	Model  Model
	KeyARN string
}

// Resolve returns the key an app of the given model uses. A CMK app must name its own key ARN
// (it never falls back to the provider key, and may not name the provider key); a managed app
// uses providerKeyARN, which comes from configuration, and must not name a key of its own.
func Resolve(model Model, keyARN, providerKeyARN string) (KeyRef, error) {
	switch model {
	case ModelCustomer:
		if keyARN == "" {
			return KeyRef{}, fmt.Errorf("%w: a customer-managed app needs a key ARN", ErrInvalidKeyRef)
		}
		if keyARN == providerKeyARN {
			return KeyRef{}, fmt.Errorf("%w: a customer-managed app cannot use the provider key %s", ErrInvalidKeyRef, keyARN)
		}
		return KeyRef{Model: ModelCustomer, KeyARN: keyARN}, nil
	case ModelManaged:
		if providerKeyARN == "" {
			return KeyRef{}, fmt.Errorf("%w: no provider key ARN configured", ErrInvalidKeyRef)
		}
		if keyARN != "" && keyARN != providerKeyARN {
			return KeyRef{}, fmt.Errorf("%w: a provider-managed app cannot name its own key %s", ErrInvalidKeyRef, keyARN)
		}
		return KeyRef{Model: ModelManaged, KeyARN: providerKeyARN}, nil
	}
	return KeyRef{}, fmt.Errorf("%w: unknown key model %q", ErrInvalidKeyRef, model)
}

// DataKey is a 256-bit data key: its plaintext (kept private, zeroed by Destroy) and its
// KMS-wrapped form with the key ARN and encryption context it was wrapped under.
// Printing or logging a DataKey never shows the plaintext.
type DataKey struct {
	KeyARN            string
	EncryptionContext map[string]string
	Wrapped           []byte
	plaintext         []byte
}

// DataKeySize is the size of a plaintext data key in bytes.
const DataKeySize = 32

// NewDataKey builds a DataKey from its parts; plaintext and wrapped are copied. It is meant for
// providers and for tests and benchmarks that use a fixed key.
func NewDataKey(keyARN string, encCtx map[string]string, wrapped, plaintext []byte) *DataKey {
	return &DataKey{
		KeyARN:            keyARN,
		EncryptionContext: maps.Clone(encCtx),
		Wrapped:           append([]byte(nil), wrapped...),
		plaintext:         append([]byte(nil), plaintext...),
	}
}

// Plaintext returns the plaintext key (not a copy: do not keep or modify it). It returns nil
// after Destroy.
func (k *DataKey) Plaintext() []byte {
	if k == nil {
		return nil
	}
	return k.plaintext
}

// Destroyed reports whether Destroy was called.
func (k *DataKey) Destroyed() bool { return k == nil || k.plaintext == nil }

// Destroy zeroes the plaintext key. It is safe to call more than once.
func (k *DataKey) Destroy() {
	if k == nil {
		return
	}
	clear(k.plaintext)
	k.plaintext = nil
}

// String redacts the plaintext. The formatting methods have value receivers so that a DataKey
// printed by value is redacted too.
func (k DataKey) String() string {
	return fmt.Sprintf("DataKey{KeyARN:%s Wrapped:%dB Plaintext:REDACTED}", k.KeyARN, len(k.Wrapped))
}

// GoString redacts the plaintext (for %#v).
func (k DataKey) GoString() string { return k.String() }

// Format redacts the plaintext for every fmt verb.
func (k DataKey) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue redacts the plaintext in slog output.
func (k DataKey) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("key_arn", k.KeyARN),
		slog.Int("wrapped_bytes", len(k.Wrapped)),
		slog.String("plaintext", "REDACTED"),
	)
}

// Provider is the data-key interface keyline's workflows and sealing use.
type Provider interface {
	// GenerateDataKey returns a new 32-byte data key, in plaintext and wrapped under keyARN
	// with encCtx.
	GenerateDataKey(ctx context.Context, keyARN string, encCtx map[string]string) (*DataKey, error)
	// Decrypt unwraps a data key wrapped under keyARN with encCtx. keyARN is always passed to KMS.
	Decrypt(ctx context.Context, keyARN string, wrapped []byte, encCtx map[string]string) (*DataKey, error)
	// Check verifies that keyARN is usable for orgID now: DescribeKey says Enabled, and a test
	// GenerateDataKey/Decrypt round trip in the org's PurposeKeyCheck context succeeds (so a
	// key policy pinned to the org admits it).
	Check(ctx context.Context, orgID, keyARN string) error
}
