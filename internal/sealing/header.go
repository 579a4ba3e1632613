package sealing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"slices"
	"sort"
)

// Header layout, version 1 (all integers big-endian):
//
//	magic        6   "KLSEAL"
//	version      2   uint16
//	headerLen    4   uint32, the whole header including the checksum
//	keyARN       2+n uint16 length, bytes
//	generation   4   uint32 (<= MaxInt32)
//	context      2   uint16 pair count, then per pair (keys strictly ascending):
//	                 uint16 length, key, uint16 length, value
//	wrappedKey   2+n uint16 length, bytes
//	commitment   32  HMAC-SHA256(HKDF(dataKey, "keyline commitment v1"), header bytes before it)
//	checksum     4   CRC-32C of all header bytes before it
//
// Every version keeps magic, version and headerLen first and the checksum last, so corruption is
// recognised as such (ErrTampered) before the version is interpreted and before any KMS call.
const (
	prefixLen      = 6 + 2 + 4
	commitmentLen  = 32
	checksumLen    = 4
	minHeaderLen   = prefixLen + 2 + 1 + 4 + 2 + 2 + 1 + commitmentLen + checksumLen
	maxHeaderLen   = 64 << 10
	maxKeyARNLen   = 2048
	maxContextKeys = 64
	maxContextLen  = 8192 // total bytes of keys and values, as KMS allows
	maxWrappedLen  = 6144 // KMS CiphertextBlob maximum
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeHeader returns the header bytes with room for the commitment (zero) and no checksum
// yet, and the commitment's offset. Callers fill the commitment, then finishHeader.
func encodeHeader(keyARN string, generation int, encCtx map[string]string, wrapped []byte) ([]byte, int, error) {
	if err := validateFields(keyARN, generation, encCtx, wrapped); err != nil {
		return nil, 0, err
	}
	b := make([]byte, 0, 256+len(keyARN)+len(wrapped))
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint16(b, Version1)
	b = binary.BigEndian.AppendUint32(b, 0) // headerLen, filled below
	b = appendString(b, keyARN)
	b = binary.BigEndian.AppendUint32(b, uint32(generation))
	b = appendContext(b, encCtx)
	b = binary.BigEndian.AppendUint16(b, uint16(len(wrapped)))
	b = append(b, wrapped...)
	off := len(b)
	b = append(b, make([]byte, commitmentLen+checksumLen)...)
	binary.BigEndian.PutUint32(b[8:12], uint32(len(b)))
	if len(b) > maxHeaderLen {
		return nil, 0, fmt.Errorf("%w: header of %d bytes exceeds %d", ErrMalformedHeader, len(b), maxHeaderLen)
	}
	return b, off, nil
}

// finishHeader writes the checksum into the last bytes of b.
func finishHeader(b []byte) {
	n := len(b) - checksumLen
	binary.BigEndian.PutUint32(b[n:], crc32.Checksum(b[:n], crcTable))
}

func validateFields(keyARN string, generation int, encCtx map[string]string, wrapped []byte) error {
	switch {
	case keyARN == "" || len(keyARN) > maxKeyARNLen:
		return fmt.Errorf("%w: key ARN of %d bytes (want 1..%d)", ErrMalformedHeader, len(keyARN), maxKeyARNLen)
	case generation < 0 || generation > math.MaxInt32:
		return fmt.Errorf("%w: generation %d out of range", ErrMalformedHeader, generation)
	case len(encCtx) == 0 || len(encCtx) > maxContextKeys:
		return fmt.Errorf("%w: encryption context of %d entries (want 1..%d)", ErrMalformedHeader, len(encCtx), maxContextKeys)
	case len(wrapped) == 0 || len(wrapped) > maxWrappedLen:
		return fmt.Errorf("%w: wrapped key of %d bytes (want 1..%d)", ErrMalformedHeader, len(wrapped), maxWrappedLen)
	}
	total := 0
	for k, v := range encCtx {
		if k == "" {
			return fmt.Errorf("%w: empty encryption-context key", ErrMalformedHeader)
		}
		total += len(k) + len(v)
	}
	if total > maxContextLen {
		return fmt.Errorf("%w: encryption context of %d bytes exceeds %d", ErrMalformedHeader, total, maxContextLen)
	}
	return nil
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendContext(b []byte, encCtx map[string]string) []byte {
	ks := make([]string, 0, len(encCtx))
	for k := range encCtx {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	b = binary.BigEndian.AppendUint16(b, uint16(len(ks)))
	for _, k := range ks {
		b = appendString(b, k)
		b = appendString(b, encCtx[k])
	}
	return b
}

// ReadHeader reads and parses a sealed header from r, consuming exactly the header's bytes.
//
// Errors: ErrTruncated (r ends inside the header), ErrMalformedHeader (not a sealed stream, or a
// header that cannot be parsed), ErrTampered (checksum mismatch), ErrUnsupportedVersion.
func ReadHeader(r io.Reader) (*Header, error) {
	var prefix [prefixLen]byte
	n, err := io.ReadFull(r, prefix[:])
	if err != nil {
		if m := min(n, len(Magic)); !bytes.Equal(prefix[:m], []byte(Magic)[:m]) {
			return nil, fmt.Errorf("%w: bad magic", ErrMalformedHeader)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: stream ends after %d header bytes", ErrTruncated, n)
		}
		return nil, fmt.Errorf("sealing: reading header: %w", err)
	}
	if !bytes.Equal(prefix[:6], []byte(Magic)) {
		return nil, fmt.Errorf("%w: bad magic", ErrMalformedHeader)
	}
	hlen := int(binary.BigEndian.Uint32(prefix[8:12]))
	if hlen < minHeaderLen || hlen > maxHeaderLen {
		return nil, fmt.Errorf("%w: header length %d out of range", ErrMalformedHeader, hlen)
	}
	raw := make([]byte, hlen)
	copy(raw, prefix[:])
	if n, err := io.ReadFull(r, raw[prefixLen:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: stream ends after %d of %d header bytes", ErrTruncated, prefixLen+n, hlen)
		}
		return nil, fmt.Errorf("sealing: reading header: %w", err)
	}
	return parseHeader(raw)
}

// parseHeader parses a complete header (raw is kept by the result).
func parseHeader(raw []byte) (*Header, error) {
	n := len(raw) - checksumLen
	if binary.BigEndian.Uint32(raw[n:]) != crc32.Checksum(raw[:n], crcTable) {
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrTampered)
	}
	h := &Header{Version: int(binary.BigEndian.Uint16(raw[6:8])), raw: raw}
	if h.Version != Version1 {
		return nil, fmt.Errorf("%w: %d (this build reads %d)", ErrUnsupportedVersion, h.Version, Version1)
	}
	p := parser{b: raw[:n-commitmentLen], off: prefixLen}
	h.KeyARN = p.str()
	gen := p.u32()
	if gen > math.MaxInt32 {
		p.fail("generation out of range")
	}
	h.Generation = int(gen)
	count := int(p.u16())
	if count == 0 || count > maxContextKeys {
		p.fail("encryption context entry count out of range")
	}
	h.EncryptionContext = make(map[string]string, count)
	prev := ""
	for i := 0; i < count && p.err == nil; i++ {
		k, v := p.str(), p.str()
		if p.err == nil && (k == "" || (i > 0 && k <= prev)) {
			p.fail("encryption context keys not strictly ascending")
		}
		h.EncryptionContext[k] = v
		prev = k
	}
	wl := int(p.u16())
	h.WrappedKey = slices.Clone(p.take(wl))
	if p.err == nil && p.off != len(p.b) {
		p.fail("trailing bytes before commitment")
	}
	if p.err != nil {
		return nil, p.err
	}
	if err := validateFields(h.KeyARN, h.Generation, h.EncryptionContext, h.WrappedKey); err != nil {
		return nil, err
	}
	h.Commitment = slices.Clone(raw[n-commitmentLen : n])
	return h, nil
}

// commitmentOffset is where the commitment starts in the header.
func (h *Header) commitmentOffset() int { return len(h.raw) - checksumLen - commitmentLen }

type parser struct {
	b   []byte
	off int
	err error
}

func (p *parser) fail(msg string) {
	if p.err == nil {
		p.err = fmt.Errorf("%w: %s at offset %d", ErrMalformedHeader, msg, p.off)
	}
}

func (p *parser) take(n int) []byte {
	if p.err != nil {
		return nil
	}
	if n < 0 || len(p.b)-p.off < n {
		p.fail("field runs past the header")
		return nil
	}
	s := p.b[p.off : p.off+n]
	p.off += n
	return s
}

func (p *parser) u16() uint16 {
	if s := p.take(2); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (p *parser) u32() uint32 {
	if s := p.take(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (p *parser) str() string { return string(p.take(int(p.u16()))) }
