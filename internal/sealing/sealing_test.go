package sealing

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/keys/keystest"
	"github.com/keyline/keyline/internal/testenv"
)

// Plaintext sizes of Tink's segments: the first carries Tink's 40-byte stream header.
const (
	tinkHeaderLen = 1 + 32 + 7
	firstSegPT    = SegmentSize - 16 - tinkHeaderLen
	segPT         = SegmentSize - 16
)

type kmsEnv struct {
	client   *kms.Client
	provider *keystest.CountingProvider
	keyARN   string
}

func newKMSEnv(t testing.TB) *kmsEnv {
	t.Helper()
	c, _ := testenv.KMS(t)
	return &kmsEnv{client: c, provider: keystest.Counting(keys.NewKMS(c, keys.Options{})), keyARN: testenv.NewKMSKey(t, c)}
}

// gen returns n deterministic pseudo-random bytes as a stream.
func gen(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return io.LimitReader(rand.NewChaCha8(s), n)
}

func digest(r io.Reader) ([32]byte, int64, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	var d [32]byte
	copy(d[:], h.Sum(nil))
	return d, n, err
}

func sealBytes(t testing.TB, dk *keys.DataKey, gen int, pt io.Reader) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(context.Background(), &buf, dk, HeaderFields{Generation: gen})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, pt); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// open opens sealed twice, through Read (io.ReadAll) and through WriteTo (io.Copy), and fails
// the test if the two paths disagree.
func open(t testing.TB, sealed []byte, u Unwrapper, e Expect) ([]byte, error) {
	t.Helper()
	r, _, err := NewReader(context.Background(), bytes.NewReader(sealed), u, e)
	if err != nil {
		return nil, err
	}
	got, err := io.ReadAll(struct{ io.Reader }{r}) // hide WriteTo
	r2, _, err2 := NewReader(context.Background(), bytes.NewReader(sealed), u, e)
	if err2 != nil {
		t.Fatalf("second open: %v", err2)
	}
	var buf bytes.Buffer
	_, err2 = io.Copy(&buf, r2)
	if fmt.Sprint(err) != fmt.Sprint(err2) || !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("Read and WriteTo disagree: %d bytes, %v vs %d bytes, %v", len(got), err, buf.Len(), err2)
	}
	return got, err
}

func TestRoundTripSizes(t *testing.T) {
	env := newKMSEnv(t)
	ctx := context.Background()
	encCtx := keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeData)
	var sealed bytes.Buffer
	w, dk, err := Seal(ctx, &sealed, env.provider, env.keyARN, 1, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()
	unwrap := NewCachingUnwrapper(ProviderUnwrapper(env.provider))
	defer unwrap.Close()
	expect := Expect{KeyARN: env.keyARN, Generation: 1, EncryptionContext: encCtx}
	sizes := []int64{0, 1, 15, 16, 17, firstSegPT - 1, firstSegPT, firstSegPT + 1,
		firstSegPT + segPT - 1, firstSegPT + segPT, firstSegPT + segPT + 1, 3*SegmentSize + 12345}
	for i, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			want, _, _ := digest(gen(uint64(i), n))
			ct := sealBytes(t, dk, 1, gen(uint64(i), n))
			// The Tink body grows by one segment exactly past each boundary.
			segs := 1
			if n > firstSegPT {
				segs += int((n - firstSegPT + segPT - 1) / segPT)
			}
			h, err := ReadHeader(bytes.NewReader(ct))
			if err != nil {
				t.Fatal(err)
			}
			if wantLen := int64(h.Size()) + tinkHeaderLen + n + int64(16*segs) + int64(trailerLen); int64(len(ct)) != wantLen {
				t.Fatalf("sealed length %d, want %d (%d segments)", len(ct), wantLen, segs)
			}
			got, err := open(t, ct, unwrap, expect)
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(got)) != n || sha256.Sum256(got) != want {
				t.Fatalf("round trip of %d bytes returned %d different bytes", n, len(got))
			}
		})
	}
	// One GenerateDataKey for the whole generation and one Decrypt for every object.
	if c := env.provider.Counts(); c.GenerateDataKey != 1 || c.Decrypt != 1 {
		t.Fatalf("KMS calls %+v, want 1 GenerateDataKey and 1 Decrypt", c)
	}
}

// TestRoundTrip100MiB streams 100 MiB through seal and open over a pipe: nothing holds the data.
func TestRoundTrip100MiB(t *testing.T) {
	env := newKMSEnv(t)
	ctx := context.Background()
	const n = 100 << 20
	encCtx := keys.EncryptionContext("org-1", "app-big", 2, keys.PurposeBackup)
	pr, pw := io.Pipe()
	var want [32]byte
	done := make(chan error, 1)
	go func() {
		w, dk, err := Seal(ctx, pw, env.provider, env.keyARN, 2, encCtx)
		if err != nil {
			pw.CloseWithError(err)
			done <- err
			return
		}
		defer dk.Destroy()
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), gen(42, n)); err != nil {
			pw.CloseWithError(err)
			done <- err
			return
		}
		copy(want[:], h.Sum(nil))
		err = w.Close()
		pw.CloseWithError(err)
		done <- err
	}()
	r, hdr, err := NewReader(ctx, pr, ProviderUnwrapper(env.provider), Expect{KeyARN: env.keyARN, Generation: 2, EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Generation != 2 || hdr.KeyARN != env.keyARN {
		t.Fatalf("header %+v", hdr)
	}
	got, size, err := digest(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if size != n || got != want {
		t.Fatalf("100 MiB round trip: %d bytes, digest match %v", size, got == want)
	}
}

// sealedSample seals a little over two segments under a fresh KMS data key.
func sealedSample(t *testing.T, env *kmsEnv, appID string, generation int) ([]byte, *keys.DataKey, Expect) {
	t.Helper()
	encCtx := keys.EncryptionContext("org-1", appID, generation, keys.PurposeData)
	dk, err := env.provider.GenerateDataKey(context.Background(), env.keyARN, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dk.Destroy)
	ct := sealBytes(t, dk, generation, gen(7, firstSegPT+segPT+1000))
	return ct, dk, Expect{KeyARN: env.keyARN, Generation: generation, EncryptionContext: encCtx}
}

func TestFlippedBitAnywhere(t *testing.T) {
	env := newKMSEnv(t)
	ct, _, expect := sealedSample(t, env, "app-1", 1)
	h, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	hl := h.Size()
	// Every header byte, then sample positions in the body and the end marker.
	var positions []int
	for i := range hl {
		positions = append(positions, i)
	}
	body := hl
	for _, off := range []int{0, 1, 20, 39, 40, 41, 1000, SegmentSize - tinkHeaderLen - 17, SegmentSize - tinkHeaderLen - 1,
		SegmentSize - tinkHeaderLen, SegmentSize - tinkHeaderLen + 1, 2*SegmentSize - tinkHeaderLen - 1,
		2*SegmentSize - tinkHeaderLen + 5} {
		positions = append(positions, body+off)
	}
	for i := len(ct) - trailerLen - 20; i < len(ct); i++ {
		positions = append(positions, i)
	}
	for _, pos := range positions {
		bad := bytes.Clone(ct)
		bad[pos] ^= 1 << (pos % 8)
		_, err := open(t, bad, ProviderUnwrapper(env.provider), expect)
		switch {
		case pos < len(Magic):
			if !errors.Is(err, ErrMalformedHeader) {
				t.Errorf("flip in magic at %d: %v, want ErrMalformedHeader", pos, err)
			}
		case pos >= 8 && pos < prefixLen: // the header length: any refusal, never success
			if !errors.Is(err, ErrMalformedHeader) && !errors.Is(err, ErrTampered) && !errors.Is(err, ErrTruncated) {
				t.Errorf("flip in header length at %d: %v", pos, err)
			}
		default:
			if !errors.Is(err, ErrTampered) {
				t.Errorf("flip at %d (header %d bytes, total %d): %v, want ErrTampered", pos, hl, len(ct), err)
			}
		}
	}
	// The intact stream still opens.
	if _, err := open(t, ct, ProviderUnwrapper(env.provider), expect); err != nil {
		t.Fatal(err)
	}
}

func TestTruncated(t *testing.T) {
	env := newKMSEnv(t)
	ct, _, expect := sealedSample(t, env, "app-1", 1)
	h, _ := ReadHeader(bytes.NewReader(ct))
	hl := h.Size()
	end := len(ct) - trailerLen // end of the Tink body
	for _, n := range []int{0, 3, 6, 11, 12, hl - 1, hl, hl + 1, hl + 20, hl + tinkHeaderLen, hl + tinkHeaderLen + 1,
		hl + 1000, hl + SegmentSize - 1, hl + SegmentSize, hl + SegmentSize + 1, hl + 2*SegmentSize,
		end - 1, end, end + 1, end + 8, len(ct) - 1} {
		_, err := open(t, ct[:n], ProviderUnwrapper(env.provider), expect)
		if !errors.Is(err, ErrTruncated) {
			t.Errorf("truncated to %d of %d bytes: %v, want ErrTruncated", n, len(ct), err)
		}
		if errors.Is(err, ErrTampered) {
			t.Errorf("truncated to %d: also matches ErrTampered", n)
		}
	}
}

func TestSwappedHeader(t *testing.T) {
	env := newKMSEnv(t)
	a, _, expect := sealedSample(t, env, "app-1", 1)
	b, _, _ := sealedSample(t, env, "app-1", 1) // same app, generation, key: another data key
	ha, _ := ReadHeader(bytes.NewReader(a))
	hb, _ := ReadHeader(bytes.NewReader(b))
	swapped := append(hb.Bytes(), a[ha.Size():]...)
	_, err := open(t, swapped, ProviderUnwrapper(env.provider), expect)
	if !errors.Is(err, ErrTampered) {
		t.Fatalf("header of another object: %v, want ErrTampered", err)
	}
}

// forge re-encodes a header with changes and a valid checksum (what an attacker with write
// access to the bucket can do), keeping the original commitment.
func forge(t *testing.T, ct []byte, keyARN string, generation int, encCtx map[string]string, wrapped []byte) []byte {
	t.Helper()
	h, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	raw, off, err := encodeHeader(keyARN, generation, encCtx, wrapped)
	if err != nil {
		t.Fatal(err)
	}
	copy(raw[off:], h.Commitment)
	finishHeader(raw)
	return append(raw, ct[h.Size():]...)
}

func TestWrongContext(t *testing.T) {
	env := newKMSEnv(t)
	ct, dk, expect := sealedSample(t, env, "app-1", 1)
	for _, e := range []Expect{
		{KeyARN: expect.KeyARN, EncryptionContext: keys.EncryptionContext("org-1", "app-2", 1, keys.PurposeData)},
		{KeyARN: expect.KeyARN, EncryptionContext: keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeBackup)},
		{KeyARN: expect.KeyARN, Generation: 2},
	} {
		before := env.provider.Counts().Decrypt
		_, err := open(t, ct, ProviderUnwrapper(env.provider), e)
		if !errors.Is(err, ErrWrongContext) {
			t.Errorf("expect %+v: %v, want ErrWrongContext", e, err)
		}
		if env.provider.Counts().Decrypt != before {
			t.Error("a context mismatch reached KMS")
		}
	}
	// A header rewritten to another app's context (valid checksum): KMS refuses the wrapped key.
	forged := forge(t, ct, env.keyARN, 1, keys.EncryptionContext("org-1", "app-2", 1, keys.PurposeData), dk.Wrapped)
	_, err := open(t, forged, ProviderUnwrapper(env.provider), Expect{})
	if !errors.Is(err, ErrTampered) || errors.Is(err, keys.ErrRevoked) {
		t.Fatalf("forged context: %v, want ErrTampered", err)
	}
}

func TestWrongKey(t *testing.T) {
	env := newKMSEnv(t)
	ct, _, expect := sealedSample(t, env, "app-1", 1)
	otherKey := testenv.NewKMSKey(t, env.client)

	// The caller expects the app's new key; the object is under the old one.
	_, err := open(t, ct, ProviderUnwrapper(env.provider), Expect{KeyARN: otherKey, EncryptionContext: expect.EncryptionContext})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("expected key differs: %v, want ErrWrongKey", err)
	}

	// A header carrying a data key of a different KMS key (valid for that key and this context):
	// KMS unwraps it, and the commitment refuses it.
	other, err := env.provider.GenerateDataKey(context.Background(), otherKey, expect.EncryptionContext)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Destroy()
	forged := forge(t, ct, otherKey, 1, expect.EncryptionContext, other.Wrapped)
	_, err = open(t, forged, ProviderUnwrapper(env.provider), Expect{EncryptionContext: expect.EncryptionContext})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("data key of another KMS key: %v, want ErrWrongKey", err)
	}
	for _, e := range []error{ErrTampered, ErrTruncated, ErrWrongContext, keys.ErrRevoked} {
		if errors.Is(err, e) {
			t.Fatalf("wrong key also matches %v", e)
		}
	}
}

func TestRevokedKeyPassesThrough(t *testing.T) {
	env := newKMSEnv(t)
	ct, _, expect := sealedSample(t, env, "app-1", 1)
	ctx := context.Background()
	if _, err := env.client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(env.keyARN)}); err != nil {
		t.Fatal(err)
	}
	_, err := open(t, ct, ProviderUnwrapper(env.provider), expect)
	if !errors.Is(err, keys.ErrRevoked) {
		t.Fatalf("disabled key: %v, want keys.ErrRevoked", err)
	}
	for _, e := range []error{ErrTampered, ErrWrongKey, ErrWrongContext, ErrTruncated} {
		if errors.Is(err, e) {
			t.Fatalf("revoked also matches %v", e)
		}
	}
	if _, err := env.client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(env.keyARN)}); err != nil {
		t.Fatal(err)
	}
	if _, err := open(t, ct, ProviderUnwrapper(env.provider), expect); err != nil {
		t.Fatalf("after EnableKey: %v", err)
	}
}

func TestOtherErrors(t *testing.T) {
	env := newKMSEnv(t)
	ct, _, expect := sealedSample(t, env, "app-1", 1)
	// Unsupported version with a valid checksum.
	v2 := bytes.Clone(ct)
	binary.BigEndian.PutUint16(v2[6:8], 2)
	h, _ := ReadHeader(bytes.NewReader(ct))
	n := h.Size() - checksumLen
	binary.BigEndian.PutUint32(v2[n:], crc32.Checksum(v2[:n], crcTable))
	if _, err := open(t, v2, ProviderUnwrapper(env.provider), expect); !errors.Is(err, ErrUnsupportedVersion) {
		t.Errorf("version 2: %v, want ErrUnsupportedVersion", err)
	}
	if _, err := open(t, []byte("PK\x03\x04 this is a zip file, not a sealed one"), ProviderUnwrapper(env.provider), expect); !errors.Is(err, ErrMalformedHeader) {
		t.Errorf("not sealed: %v, want ErrMalformedHeader", err)
	}
	// Extra bytes after the end marker are not silently accepted.
	if _, err := open(t, append(bytes.Clone(ct), 0), ProviderUnwrapper(env.provider), expect); err == nil {
		t.Error("trailing garbage accepted")
	}
}

func TestWriterRefusesBadInput(t *testing.T) {
	dk := keys.NewDataKey("arn:aws:kms:us-east-1:111122223333:key/a", map[string]string{"a": "b"}, []byte("w"), make([]byte, 32))
	var buf bytes.Buffer
	ctx := context.Background()
	if _, err := NewWriter(ctx, &buf, dk, HeaderFields{KeyARN: "arn:other"}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("mismatched ARN: %v", err)
	}
	if _, err := NewWriter(ctx, &buf, dk, HeaderFields{EncryptionContext: map[string]string{"a": "c"}}); !errors.Is(err, ErrWrongContext) {
		t.Errorf("mismatched context: %v", err)
	}
	if _, err := NewWriter(ctx, &buf, dk, HeaderFields{Generation: -1}); err == nil {
		t.Error("negative generation accepted")
	}
	noCtx := keys.NewDataKey("arn:k", nil, []byte("w"), make([]byte, 32))
	if _, err := NewWriter(ctx, &buf, noCtx, HeaderFields{}); err == nil {
		t.Error("empty encryption context accepted")
	}
	dk.Destroy()
	if _, err := NewWriter(ctx, &buf, dk, HeaderFields{}); err == nil {
		t.Error("destroyed key accepted")
	}
	if buf.Len() != 0 {
		t.Errorf("refused writers wrote %d bytes", buf.Len())
	}
}

func TestCachingUnwrapperOneDecrypt(t *testing.T) {
	env := newKMSEnv(t)
	encCtx := keys.EncryptionContext("org-1", "app-1", 1, keys.PurposeData)
	dk, err := env.provider.GenerateDataKey(context.Background(), env.keyARN, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()
	var objects [][]byte
	for i := range 200 {
		objects = append(objects, sealBytes(t, dk, 1, gen(uint64(i), int64(i*31))))
	}
	cache := NewCachingUnwrapper(ProviderUnwrapper(env.provider))
	env.provider.Reset()
	for i, o := range objects {
		got, err := open(t, o, cache, Expect{KeyARN: env.keyARN, Generation: 1, EncryptionContext: encCtx})
		if err != nil || len(got) != i*31 {
			t.Fatalf("object %d: %d bytes, %v", i, len(got), err)
		}
	}
	if c := env.provider.Counts(); c.Decrypt != 1 {
		t.Fatalf("%d Decrypt calls for 200 objects, want 1", c.Decrypt)
	}
	cache.Close()
	if cache.Len() != 0 {
		t.Fatal("Close kept entries")
	}
	if _, err := open(t, objects[1], cache, Expect{}); err != nil {
		t.Fatal(err)
	}
	if c := env.provider.Counts(); c.Decrypt != 2 {
		t.Fatalf("after Close: %d Decrypt calls, want 2", c.Decrypt)
	}
}

// TestBodyIsTinkFormat checks keyline's segment reader against Tink's own reader of the format.
func TestBodyIsTinkFormat(t *testing.T) {
	dk := keys.NewDataKey("arn:aws:kms:us-east-1:111122223333:key/x", map[string]string{"a": "b"}, []byte("w"), bytes.Repeat([]byte{9}, 32))
	for _, n := range []int64{0, 1, firstSegPT, firstSegPT + 1, firstSegPT + segPT, 2*SegmentSize + 77} {
		ct := sealBytes(t, dk, 1, gen(uint64(n), n))
		h, err := ReadHeader(bytes.NewReader(ct))
		if err != nil {
			t.Fatal(err)
		}
		body := ct[h.Size() : len(ct)-trailerLen]
		aead, err := newAEAD(dk.Plaintext())
		if err != nil {
			t.Fatal(err)
		}
		tr, err := aead.NewDecryptingReader(bytes.NewReader(body), h.raw)
		if err != nil {
			t.Fatal(err)
		}
		viaTink, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%d bytes: Tink's reader refuses the body: %v", n, err)
		}
		want, _, _ := digest(gen(uint64(n), n))
		if sha256.Sum256(viaTink) != want {
			t.Fatalf("%d bytes: Tink's reader returns other bytes", n)
		}
		ours, err := open(t, ct, fixedKey{dk}, Expect{})
		if err != nil || !bytes.Equal(ours, viaTink) {
			t.Fatalf("%d bytes: ours %d bytes, %v", n, len(ours), err)
		}
	}
}

type fixedKey struct{ dk *keys.DataKey }

func (u fixedKey) Unwrap(context.Context, *Header) (*keys.DataKey, error) {
	return keys.NewDataKey(u.dk.KeyARN, u.dk.EncryptionContext, u.dk.Wrapped, u.dk.Plaintext()), nil
}

func TestCachingUnwrapperConcurrent(t *testing.T) {
	env := newKMSEnv(t)
	encCtx := keys.EncryptionContext("org-1", "app-c", 1, keys.PurposeData)
	dk, err := env.provider.GenerateDataKey(context.Background(), env.keyARN, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()
	obj := sealBytes(t, dk, 1, gen(5, 5000))
	cache := NewCachingUnwrapperSize(ProviderUnwrapper(env.provider), 4)
	defer cache.Close()
	env.provider.Reset()
	errs := make(chan error, 16)
	for range 16 {
		go func() {
			r, _, err := NewReader(context.Background(), bytes.NewReader(obj), cache, Expect{KeyARN: env.keyARN, EncryptionContext: encCtx})
			if err == nil {
				var n int64
				n, err = io.Copy(io.Discard, r)
				if err == nil && n != 5000 {
					err = fmt.Errorf("%d bytes", n)
				}
			}
			errs <- err
		}()
	}
	for range 16 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if c := env.provider.Counts(); c.Decrypt != 1 {
		t.Fatalf("%d Decrypt calls for 16 concurrent opens, want 1", c.Decrypt)
	}
}

// TestCachingUnwrapperAgeAndForget: a cached key is used at most MaxCachedKeyAge, and
// ForgetKey drops the keys of a revoked KMS key from every cache of the process at once (B9).
func TestCachingUnwrapperAgeAndForget(t *testing.T) {
	env := newKMSEnv(t)
	encCtx := keys.EncryptionContext("org-1", "app-age", 1, keys.PurposeData)
	dk, err := env.provider.GenerateDataKey(context.Background(), env.keyARN, encCtx)
	if err != nil {
		t.Fatal(err)
	}
	defer dk.Destroy()
	obj := sealBytes(t, dk, 1, gen(7, 100))
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cache := NewCachingUnwrapper(ProviderUnwrapper(env.provider))
	defer cache.Close()
	other := NewCachingUnwrapper(ProviderUnwrapper(env.provider))
	defer other.Close()
	cache.SetClock(func() time.Time { return now }, 0)
	env.provider.Reset()
	exp := Expect{KeyARN: env.keyARN, EncryptionContext: encCtx}
	decrypts := func() int { return int(env.provider.Counts().Decrypt) }
	for range 3 {
		if _, err := open(t, obj, cache, exp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := open(t, obj, other, exp); err != nil {
		t.Fatal(err)
	}
	if d := decrypts(); d != 2 {
		t.Fatalf("%d Decrypt calls, want 2 (one per cache)", d)
	}
	now = now.Add(MaxCachedKeyAge - time.Second)
	if _, err := open(t, obj, cache, exp); err != nil || decrypts() != 2 {
		t.Fatalf("within the age: %d Decrypt calls, %v", decrypts(), err)
	}
	now = now.Add(2 * time.Second)
	if _, err := open(t, obj, cache, exp); err != nil || decrypts() != 3 {
		t.Fatalf("past %v the key must be unwrapped afresh: %d Decrypt calls, %v", MaxCachedKeyAge, decrypts(), err)
	}
	if n := ForgetKey(env.keyARN); n < 2 {
		t.Fatalf("ForgetKey dropped %d keys, want at least 2 (both caches)", n)
	}
	if cache.Len() != 0 || other.Len() != 0 {
		t.Fatalf("after ForgetKey: %d and %d keys still cached", cache.Len(), other.Len())
	}
	if n := ForgetKey("arn:aws:kms:us-east-1:111122223333:key/none"); n != 0 {
		t.Fatalf("ForgetKey of an unused key dropped %d", n)
	}
}
