package sealing

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
)

// The body is Tink's AES-GCM-HKDF streaming format (AES256_GCM_HKDF_1MB), written by Tink's
// own writer. Reading uses this reader of the same format, which decrypts each segment in place
// and, through WriteTo, hands it on without a further copy (Tink's reader copies every segment
// once more). The tests check it against Tink's reader.
//
//	header   1 byte length (40), 32-byte salt, 7-byte nonce prefix
//	segments AES-GCM under HKDF-SHA256(bodyKey, salt, info = sealed header), nonce =
//	         prefix || uint32 segment number || 1 if last else 0; ciphertext segments of
//	         SegmentSize bytes, the first SegmentSize-40, the last shorter or equal.
const (
	tinkSaltLen    = 32
	tinkPrefixLen  = 7
	tinkHeaderSize = 1 + tinkSaltLen + tinkPrefixLen
	tagLen         = 16
)

// errAuth is any failure of the body to authenticate; bodyReader decides what it means.
var errAuth = errors.New("segment failed authentication")

type segmentReader struct {
	r       io.Reader
	aead    cipher.AEAD
	nonce   [12]byte
	buf     []byte // SegmentSize+1: a segment plus one byte of look-ahead
	carry   int    // look-ahead bytes at buf[0] (0 or 1)
	look    byte   // look-ahead byte kept while pt still occupies buf
	hasLook bool
	seg     uint64
	pt      []byte // decrypted, not yet handed out
	last    bool   // the last segment was decrypted
	failed  error
}

// newSegmentReader reads the body header from r and prepares to decrypt under bodyKey with the
// sealed header as associated data.
func newSegmentReader(r io.Reader, bodyKey, aad []byte) (*segmentReader, error) {
	var h [tinkHeaderSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	if h[0] != tinkHeaderSize {
		return nil, errAuth
	}
	k, err := hkdf.Key(sha256.New, bodyKey, h[1:1+tinkSaltLen], string(aad), 32)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	s := &segmentReader{r: r, aead: aead, buf: make([]byte, SegmentSize+1)}
	copy(s.nonce[:], h[1+tinkSaltLen:])
	return s, nil
}

// next decrypts the next segment into s.pt; io.EOF after the last one.
func (s *segmentReader) next() error {
	if s.failed != nil {
		return s.failed
	}
	if s.last {
		return io.EOF
	}
	if s.seg >= 1<<32-1 {
		s.failed = errAuth
		return s.failed
	}
	want := SegmentSize + 1 // one more than a segment, to see whether another follows
	if s.seg == 0 {
		want -= tinkHeaderSize
	}
	n, err := io.ReadFull(s.r, s.buf[s.carry:want])
	n += s.carry
	segLen := n
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		s.last = true
	case err != nil:
		s.failed = err
		return err
	default:
		segLen = n - 1
	}
	if segLen < tagLen {
		s.failed = errAuth
		return s.failed
	}
	binary.BigEndian.PutUint32(s.nonce[tinkPrefixLen:], uint32(s.seg))
	s.nonce[11] = 0
	if s.last {
		s.nonce[11] = 1
	}
	look := s.buf[segLen] // look-ahead byte (meaningless when last)
	pt, err := s.aead.Open(s.buf[:0], s.nonce[:], s.buf[:segLen], nil)
	if err != nil {
		s.failed = errAuth
		return s.failed
	}
	s.pt = pt
	s.seg++
	// pt occupies buf[:segLen-16]; the look-ahead byte goes to buf[0] once pt is consumed.
	s.carry, s.look, s.hasLook = 0, look, !s.last
	return nil
}

// refill puts the look-ahead byte back at buf[0] before the next segment is read.
func (s *segmentReader) refill() {
	if s.hasLook {
		s.buf[0] = s.look
		s.carry, s.hasLook = 1, false
	}
}

// fill makes sure s.pt holds data, reading and decrypting the next segment if needed; it
// returns io.EOF after the last segment.
func (s *segmentReader) fill() error {
	for len(s.pt) == 0 {
		s.refill()
		if err := s.next(); err != nil {
			return err
		}
	}
	return nil
}
