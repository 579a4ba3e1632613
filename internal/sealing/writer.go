package sealing

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/tink-crypto/tink-go/v2/streamingaead/subtle"

	"github.com/keyline/keyline/internal/keys"
)

// Domain-separated subkeys of the data key.
const (
	commitInfo = "keyline commitment v1"
	bodyInfo   = "keyline body v1"
)

// trailer: after the body, uint64 body length then trailerMagic. It lets the reader tell a
// stream that was cut short (ErrTruncated) from one whose bytes were altered (ErrTampered).
const trailerMagic = "KLSEALOK"
const trailerLen = 8 + len(trailerMagic)

func subkey(dk []byte, info string) ([]byte, error) {
	return hkdf.Key(sha256.New, dk, nil, info, 32)
}

func commitment(dk, headerBeforeCommitment []byte) ([]byte, error) {
	ck, err := subkey(dk, commitInfo)
	if err != nil {
		return nil, err
	}
	defer clear(ck)
	m := hmac.New(sha256.New, ck)
	m.Write(headerBeforeCommitment)
	return m.Sum(nil), nil
}

func newAEAD(dk []byte) (*subtle.AESGCMHKDF, error) {
	bk, err := subkey(dk, bodyInfo)
	if err != nil {
		return nil, err
	}
	defer clear(bk)
	// AES256_GCM_HKDF_1MB: 32-byte derived keys, 1 MiB ciphertext segments. The sealed header is
	// read separately, so Tink's stream starts at offset 0.
	return subtle.NewAESGCMHKDF(bk, "SHA256", 32, SegmentSize, 0)
}

// NewWriter returns a writer that seals everything written to it into dst under dk. The header is
// written at once; Close writes the last segment and the end marker (it does not close dst).
// The writer keeps no reference to dk: the caller may reuse it for more objects and must
// Destroy it when done. HeaderFields.KeyARN and EncryptionContext, when set, must equal dk's.
func NewWriter(ctx context.Context, dst io.Writer, dk *keys.DataKey, h HeaderFields) (io.WriteCloser, error) {
	if dk == nil || dk.Destroyed() {
		return nil, errors.New("sealing: no data key (nil or destroyed)")
	}
	pt := dk.Plaintext()
	if len(pt) != keys.DataKeySize {
		return nil, fmt.Errorf("sealing: data key of %d bytes, want %d", len(pt), keys.DataKeySize)
	}
	keyARN := h.KeyARN
	if keyARN == "" {
		keyARN = dk.KeyARN
	} else if keyARN != dk.KeyARN {
		return nil, fmt.Errorf("%w: header names %s but the data key is wrapped under %s", ErrWrongKey, keyARN, dk.KeyARN)
	}
	encCtx := h.EncryptionContext
	if encCtx == nil {
		encCtx = dk.EncryptionContext
	} else if !maps.Equal(encCtx, dk.EncryptionContext) {
		return nil, fmt.Errorf("%w: header context differs from the data key's", ErrWrongContext)
	}
	raw, off, err := encodeHeader(keyARN, h.Generation, encCtx, dk.Wrapped)
	if err != nil {
		return nil, err
	}
	c, err := commitment(pt, raw[:off])
	if err != nil {
		return nil, err
	}
	copy(raw[off:], c)
	finishHeader(raw)
	aead, err := newAEAD(pt)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if _, err := dst.Write(raw); err != nil {
		return nil, fmt.Errorf("sealing: writing header: %w", err)
	}
	cw := &countingWriter{w: dst}
	tw, err := aead.NewEncryptingWriter(cw, raw)
	if err != nil {
		return nil, fmt.Errorf("sealing: starting body: %w", err)
	}
	return &writer{ctx: ctx, tw: tw, cw: cw}, nil
}

// Seal generates a data key with p for keyARN and encCtx (one KMS call) and returns a writer that
// seals into dst with it, plus the data key, which the caller may reuse and must Destroy.
func Seal(ctx context.Context, dst io.Writer, p keys.Provider, keyARN string, generation int, encCtx map[string]string) (io.WriteCloser, *keys.DataKey, error) {
	dk, err := p.GenerateDataKey(ctx, keyARN, encCtx)
	if err != nil {
		return nil, nil, err
	}
	w, err := NewWriter(ctx, dst, dk, HeaderFields{KeyARN: keyARN, Generation: generation, EncryptionContext: encCtx})
	if err != nil {
		dk.Destroy()
		return nil, nil, err
	}
	return w, dk, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type writer struct {
	ctx    context.Context
	tw     io.WriteCloser
	cw     *countingWriter
	err    error
	closed bool
}

func (w *writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("sealing: write after Close")
	}
	if w.err != nil {
		return 0, w.err
	}
	if err := w.ctx.Err(); err != nil {
		w.err = err
		return 0, err
	}
	n, err := w.tw.Write(p)
	if err != nil {
		w.err = fmt.Errorf("sealing: %w", err)
	}
	return n, w.err
}

// Close seals the last segment and writes the end marker. A writer that failed earlier
// returns its error and writes no end marker, so the output never looks complete.
func (w *writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	if err := w.tw.Close(); err != nil {
		w.err = fmt.Errorf("sealing: %w", err)
		return w.err
	}
	var t [trailerLen]byte
	binary.BigEndian.PutUint64(t[:8], uint64(w.cw.n))
	copy(t[8:], trailerMagic)
	if _, err := w.cw.w.Write(t[:]); err != nil {
		w.err = fmt.Errorf("sealing: writing end marker: %w", err)
	}
	return w.err
}
