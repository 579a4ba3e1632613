package sealing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"maps"
	"testing"
)

// validHeader returns a well-formed header for fuzz seeds (no KMS needed to parse one).
func validHeader(tb testing.TB) []byte {
	raw, off, err := encodeHeader("arn:aws:kms:us-east-1:111122223333:key/fuzz", 3,
		map[string]string{"keyline:app": "a", "keyline:generation": "3", "keyline:purpose": "data"}, []byte("wrapped-key"))
	if err != nil {
		tb.Fatal(err)
	}
	copy(raw[off:], bytes.Repeat([]byte{0xC0}, commitmentLen))
	finishHeader(raw)
	return raw
}

// fixChecksum makes data's checksum right for the header length it claims, so the fuzzer also
// explores the field parser behind the checksum.
func fixChecksum(data []byte) []byte {
	if len(data) < prefixLen {
		return data
	}
	n := int(binary.BigEndian.Uint32(data[8:12]))
	if n < minHeaderLen || n > len(data) {
		return data
	}
	out := bytes.Clone(data)
	binary.BigEndian.PutUint32(out[n-checksumLen:n], crc32.Checksum(out[:n-checksumLen], crcTable))
	return out
}

var headerErrors = []error{ErrMalformedHeader, ErrUnsupportedVersion, ErrTampered, ErrTruncated}

func FuzzReadHeader(f *testing.F) {
	v := validHeader(f)
	f.Add(v)
	f.Add(append(bytes.Clone(v), "body"...))
	f.Add(v[:prefixLen])
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, in := range [][]byte{data, fixChecksum(data)} {
			r := bytes.NewReader(in)
			h, err := ReadHeader(r)
			if err != nil {
				known := false
				for _, e := range headerErrors {
					known = known || errors.Is(err, e)
				}
				if !known {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			// A parsed header consumed exactly its bytes, and encodes back to them.
			if consumed := len(in) - r.Len(); consumed != h.Size() {
				t.Fatalf("consumed %d bytes for a %d-byte header", consumed, h.Size())
			}
			raw, off, err := encodeHeader(h.KeyARN, h.Generation, h.EncryptionContext, h.WrappedKey)
			if err != nil {
				t.Fatalf("parsed header does not re-encode: %v", err)
			}
			copy(raw[off:], h.Commitment)
			finishHeader(raw)
			if !bytes.Equal(raw, h.Bytes()) {
				t.Fatalf("re-encoded header differs:\n%x\n%x", raw, h.Bytes())
			}
			h2, err := ReadHeader(io.MultiReader(bytes.NewReader(raw)))
			if err != nil || h2.KeyARN != h.KeyARN || h2.Generation != h.Generation || !maps.Equal(h2.EncryptionContext, h.EncryptionContext) {
				t.Fatalf("round trip: %+v, %v", h2, err)
			}
		}
	})
}
