// Package sealing holds keyline's sealed format (DESIGN §3): a versioned header naming the KMS
// key, key generation and encryption context, carrying the KMS-wrapped data key and a commitment
// to it, followed by a Tink AES256_GCM_HKDF_1MB streaming AEAD body bound to the whole header,
// and a short end marker.
//
// Sealing uses a data key obtained once (one KMS call per backup or per app generation, never per
// object or chunk); opening unwraps the header's key through an Unwrapper, of which the caching
// one costs one KMS Decrypt for any number of objects under the same wrapped key.
// Both directions stream with buffers of one segment, whatever the size.
//
// Errors are typed: ErrMalformedHeader, ErrUnsupportedVersion, ErrWrongContext, ErrWrongKey,
// ErrTampered, ErrTruncated, plus the keys package's classified errors (keys.ErrRevoked,
// keys.ErrTransient) passed through from KMS.
package sealing

import (
	"context"
	"errors"

	"github.com/keyline/keyline/internal/keys"
)

// Magic starts every sealed stream.
const Magic = "KLSEAL"

// Version1 is the only format version so far.
const Version1 = 1

// SegmentSize is the ciphertext segment size of the streaming AEAD body (AES256_GCM_HKDF_1MB).
const SegmentSize = 1 << 20

// Typed errors, matched with errors.Is.
var (
	// ErrMalformedHeader: the stream does not start with a well-formed sealed header.
	ErrMalformedHeader = errors.New("sealing: malformed header")
	// ErrUnsupportedVersion: the header's format version is unknown to this build.
	ErrUnsupportedVersion = errors.New("sealing: unsupported format version")
	// ErrWrongContext: the header's encryption context or generation differs from the expected one.
	ErrWrongContext = errors.New("sealing: wrong encryption context")
	// ErrWrongKey: the header names another key than expected, KMS refused the key for this
	// ciphertext, or the data key does not match the header's commitment.
	ErrWrongKey = errors.New("sealing: wrong key")
	// ErrTampered: the header or the body failed authentication.
	ErrTampered = errors.New("sealing: tampered")
	// ErrTruncated: the stream ends without its end marker (cut short; bytes appended after the
	// end also show up this way).
	ErrTruncated = errors.New("sealing: truncated")
)

// HeaderFields are the caller-chosen parts of a header.
type HeaderFields struct {
	// KeyARN is the KMS key the data key is wrapped under ("" = the data key's).
	KeyARN string
	// Generation is the app's key generation (>= 0).
	Generation int
	// EncryptionContext is the KMS encryption context the data key was wrapped with
	// (nil = the data key's). It must equal the data key's.
	EncryptionContext map[string]string
}

// Header is a parsed sealed header.
type Header struct {
	Version           int
	KeyARN            string
	Generation        int
	EncryptionContext map[string]string
	WrappedKey        []byte
	Commitment        []byte
	raw               []byte
}

// Size is the encoded length of the header in bytes.
func (h *Header) Size() int { return len(h.raw) }

// Bytes returns a copy of the encoded header.
func (h *Header) Bytes() []byte { return append([]byte(nil), h.raw...) }

// Unwrapper turns a header's wrapped key into a data key. The returned DataKey belongs to the
// caller, who destroys it.
type Unwrapper interface {
	Unwrap(ctx context.Context, h *Header) (*keys.DataKey, error)
}

// ProviderUnwrapper unwraps with one Provider.Decrypt per call, passing the header's key ARN
// and encryption context.
func ProviderUnwrapper(p keys.Provider) Unwrapper { return providerUnwrapper{p} }

type providerUnwrapper struct{ p keys.Provider }

func (u providerUnwrapper) Unwrap(ctx context.Context, h *Header) (*keys.DataKey, error) {
	return u.p.Decrypt(ctx, h.KeyARN, h.WrappedKey, h.EncryptionContext)
}

// Expect pins what the caller requires of a sealed stream. Empty fields are not checked; callers
// should pin at least KeyARN and EncryptionContext (a restore knows both from the backup record),
// so that a forged header is refused before any KMS call.
type Expect struct {
	// KeyARN the header must name ("" = any). Mismatch: ErrWrongKey.
	KeyARN string
	// Generation the header must carry (0 = any). Mismatch: ErrWrongContext.
	Generation int
	// EncryptionContext the header must carry exactly (nil = any). Mismatch: ErrWrongContext.
	EncryptionContext map[string]string
}
