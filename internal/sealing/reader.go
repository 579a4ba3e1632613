package sealing

import (
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"

	"github.com/keyline/keyline/internal/keys"
)

// NewReader reads the header from src, checks it against expect (before any KMS call), unwraps
// its key with unwrap, verifies the key commitment, and returns a reader of the plaintext.
//
// Errors from NewReader: those of ReadHeader; ErrWrongKey / ErrWrongContext for a header that does
// not match expect; key errors from unwrap (keys.ErrRevoked, keys.ErrTransient pass through;
// a ciphertext KMS refuses is ErrTampered, a key KMS says is the wrong one is ErrWrongKey);
// ErrWrongKey when the unwrapped key does not match the commitment. Read returns ErrTampered or
// ErrTruncated for a bad body; it returns data only once its segment authenticated, and io.EOF
// only after the end marker checked out.
func NewReader(ctx context.Context, src io.Reader, unwrap Unwrapper, expect Expect) (io.Reader, *Header, error) {
	h, err := ReadHeader(src)
	if err != nil {
		return nil, nil, err
	}
	if err := expect.check(h); err != nil {
		return nil, h, err
	}
	dk, err := unwrap.Unwrap(ctx, h)
	if err != nil {
		return nil, h, unwrapError(err)
	}
	defer dk.Destroy()
	pt := dk.Plaintext()
	if len(pt) != keys.DataKeySize {
		return nil, h, fmt.Errorf("%w: unwrapped key of %d bytes", ErrWrongKey, len(pt))
	}
	off := h.commitmentOffset()
	c, err := commitment(pt, h.raw[:off])
	if err != nil {
		return nil, h, err
	}
	if !hmac.Equal(c, h.Commitment) {
		return nil, h, fmt.Errorf("%w: data key does not match the header's commitment", ErrWrongKey)
	}
	bk, err := subkey(pt, bodyInfo)
	if err != nil {
		return nil, h, err
	}
	defer clear(bk)
	tr := &tailReader{r: src}
	br := &bodyReader{ctx: ctx, tail: tr}
	seg, err := newSegmentReader(tr, bk, h.raw)
	if err != nil {
		return nil, h, br.classify(err)
	}
	br.seg = seg
	return br, h, nil
}

func (e Expect) check(h *Header) error {
	if e.KeyARN != "" && e.KeyARN != h.KeyARN {
		return fmt.Errorf("%w: sealed under %s, expected %s", ErrWrongKey, h.KeyARN, e.KeyARN)
	}
	if e.Generation != 0 && e.Generation != h.Generation {
		return fmt.Errorf("%w: generation %d, expected %d", ErrWrongContext, h.Generation, e.Generation)
	}
	if e.EncryptionContext != nil && !maps.Equal(e.EncryptionContext, h.EncryptionContext) {
		return fmt.Errorf("%w: header context %v, expected %v", ErrWrongContext, h.EncryptionContext, e.EncryptionContext)
	}
	return nil
}

// unwrapError maps a KMS refusal of the ciphertext onto the sealing errors; revoked and transient
// key errors keep their class (errors.Is(err, keys.ErrRevoked) still holds).
func unwrapError(err error) error {
	var ke *keys.KeyError
	if errors.As(err, &ke) && ke.Class == keys.ClassBadRequest {
		switch ke.Code {
		case "InvalidCiphertextException":
			return fmt.Errorf("%w: KMS rejected the wrapped key or its context: %w", ErrTampered, err)
		case "IncorrectKeyException", "InvalidKeyUsageException":
			return fmt.Errorf("%w: %w", ErrWrongKey, err)
		}
	}
	return fmt.Errorf("sealing: unwrapping data key: %w", err)
}

// bodyReader hands out authenticated plaintext and turns body failures into ErrTampered /
// ErrTruncated.
type bodyReader struct {
	ctx  context.Context
	tail *tailReader
	seg  *segmentReader
	err  error
}

// fill makes sure b.seg.pt holds data; at the end it checks the end marker.
func (b *bodyReader) fill() error {
	if b.err != nil {
		return b.err
	}
	if err := b.ctx.Err(); err != nil {
		return err
	}
	err := b.seg.fill()
	switch {
	case err == nil:
		return nil
	case err == io.EOF:
		// The last segment authenticated; the end marker must agree.
		if !b.tail.complete() {
			b.err = fmt.Errorf("%w: bad end marker", ErrTampered)
		} else {
			b.err = io.EOF
		}
	default:
		b.err = b.classify(err)
	}
	return b.err
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if err := b.fill(); err != nil {
		return 0, err
	}
	n := copy(p, b.seg.pt)
	b.seg.pt = b.seg.pt[n:]
	return n, nil
}

// WriteTo writes the plaintext to w segment by segment, without an intermediate copy.
func (b *bodyReader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if err := b.fill(); err != nil {
			if err == io.EOF {
				return total, nil
			}
			return total, err
		}
		n, err := w.Write(b.seg.pt)
		total += int64(n)
		b.seg.pt = b.seg.pt[n:]
		if err != nil {
			return total, err
		}
	}
}

// classify decides what a failure of the body means.
func (b *bodyReader) classify(err error) error {
	if b.tail.err != nil && errors.Is(err, b.tail.err) {
		return fmt.Errorf("sealing: reading body: %w", err) // the source failed; not our verdict
	}
	// A segment that fails before the end of the stream was altered, not cut.
	if !b.tail.eof {
		return fmt.Errorf("%w: body failed authentication", ErrTampered)
	}
	if !b.tail.present() {
		return fmt.Errorf("%w: stream ends before its end marker", ErrTruncated)
	}
	return fmt.Errorf("%w: body failed authentication", ErrTampered)
}

// tailReader passes src through but holds back its last trailerLen bytes (the end marker).
type tailReader struct {
	r       io.Reader
	tail    [trailerLen]byte
	n       int   // bytes held in tail
	body    int64 // bytes passed on
	eof     bool
	err     error // a non-EOF error of r
	scratch [2 * trailerLen]byte
}

func (t *tailReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if t.eof {
			return 0, io.EOF
		}
		if t.err != nil {
			return 0, t.err
		}
		// buf starts with the held bytes, then what r gives.
		var buf []byte
		if len(p) > trailerLen {
			buf = p
		} else {
			buf = t.scratch[:trailerLen+len(p)]
		}
		copy(buf, t.tail[:t.n])
		m, err := t.r.Read(buf[t.n:])
		total := t.n + m
		out := max(total-trailerLen, 0)
		if &buf[0] != &p[0] {
			copy(p, buf[:out])
		}
		t.n = copy(t.tail[:], buf[out:total])
		t.body += int64(out)
		if err == io.EOF {
			t.eof = true
		} else if err != nil {
			t.err = err
		}
		if out > 0 {
			return out, nil
		}
	}
}

// present reports whether the held-back bytes look like an end marker: its magic or its length
// is right. A cut stream leaves ciphertext there, which matches neither (2^-64 each); a flipped
// bit cannot spoil both.
func (t *tailReader) present() bool {
	if t.n != trailerLen {
		return false
	}
	return bytes.Equal(t.tail[8:], []byte(trailerMagic)) || binary.BigEndian.Uint64(t.tail[:8]) == uint64(t.body)
}

// complete reports whether the stream ended with an exact end marker for the bytes passed on.
func (t *tailReader) complete() bool {
	return t.eof && t.n == trailerLen && bytes.Equal(t.tail[8:], []byte(trailerMagic)) &&
		binary.BigEndian.Uint64(t.tail[:8]) == uint64(t.body)
}
