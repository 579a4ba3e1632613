// Package esdk benchmarks the official AWS Encryption SDK for Go as the peer of keyline's sealed
// format: the same 256 MiB sealed with a raw AES keyring, one core (-cpu 1), in frames of
// keyline's segment size. What differs is said in the figure's name (esdk_oneshot_*) and in a
// note `make bench` prints after it: the Go SDK has no streaming API, so its Encrypt takes the
// whole plaintext and returns the whole ciphertext in memory.
//
// It is its own module so that the SDK and its Dafny runtime stay out of keyline's build.
package esdk

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	mpl "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	esdk "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"
)

// frameLength is the plaintext bytes per frame: keyline's plaintext per sealed segment, a
// 1 MiB ciphertext segment less its 16-byte GCM tag (internal/sealing SegmentSize; its
// TestESDKPeerFrameLength fails if the two drift apart).
const frameLength = 1<<20 - 16

// notesEnv names the file `make bench` collects figure notes in (internal/benchfmt NotesEnv;
// this module does not import keyline's).
const notesEnv = "KEYLINE_BENCH_NOTES"

// note records a note on a figure as internal/benchfmt's Note does: one line `<figure> <text>`
// appended to the notes file, or logged when there is none.
func note(b *testing.B, figure, text string) {
	path := os.Getenv(notesEnv)
	if path == "" {
		b.Logf("%s: %s", figure, text)
		return
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		b.Fatalf("note on %s: %v", figure, err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s %s\n", figure, text); err != nil {
		b.Fatalf("note on %s: %v", figure, err)
	}
}

func setup(b *testing.B) (*esdk.Client, mpltypes.IKeyring) {
	b.Helper()
	ctx := context.Background()
	matProv, err := mpl.NewClient(mpltypes.MaterialProvidersConfig{})
	if err != nil {
		b.Fatalf("material providers client: %v", err)
	}
	wrappingKey := make([]byte, 32)
	for i := range wrappingKey {
		wrappingKey[i] = byte(i * 7)
	}
	keyring, err := matProv.CreateRawAesKeyring(ctx, mpltypes.CreateRawAesKeyringInput{
		KeyNamespace: "keyline-bench",
		KeyName:      "bench-wrapping-key",
		WrappingKey:  wrappingKey,
		WrappingAlg:  mpltypes.AesWrappingAlgAlgAes256GcmIv12Tag16,
	})
	if err != nil {
		b.Fatalf("raw AES keyring: %v", err)
	}
	policy := mpltypes.ESDKCommitmentPolicyRequireEncryptRequireDecrypt
	client, err := esdk.NewClient(esdktypes.AwsEncryptionSdkConfig{CommitmentPolicy: &policy})
	if err != nil {
		b.Fatalf("ESDK client: %v", err)
	}
	return client, keyring
}

func plaintext(n int) []byte {
	p := make([]byte, n)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(p)
	return p
}

// benchSeal encrypts n bytes per op with the key-committing suite without signatures, the
// closest peer of keyline's format (AES-256-GCM, HKDF, key commitment, no ECDSA).
func benchSeal(b *testing.B, n int, metric string) {
	client, keyring := setup(b)
	pt := plaintext(n)
	suite := mpltypes.ESDKAlgorithmSuiteIdAlgAes256GcmHkdfSha512CommitKey
	ec := map[string]string{"keyline:app": "bench", "keyline:generation": "1", "keyline:purpose": "backup"}
	frame := int64(frameLength)
	b.SetBytes(int64(n))
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for range b.N {
		out, err := client.Encrypt(context.Background(), esdktypes.EncryptInput{
			Plaintext:         pt,
			Keyring:           keyring,
			EncryptionContext: ec,
			AlgorithmSuiteId:  &suite,
			FrameLength:       &frame,
		})
		if err != nil {
			b.Fatalf("Encrypt: %v", err)
		}
		if len(out.Ciphertext) <= n {
			b.Fatalf("ciphertext of %d bytes for %d of plaintext", len(out.Ciphertext), n)
		}
	}
	b.StopTimer()
	total := float64(n) * float64(b.N)
	if s := cpuSeconds() - cpu0; s > 0 {
		b.ReportMetric(total/s/1e6, metric)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(total/s/1e6, strings.TrimSuffix(metric, "_MBps")+"_wall_MBps")
	}
}

// cpuSeconds is the CPU time (user+system) this process has used. Throughput is reported per
// CPU second, like keyline's own figures and `openssl speed`, because the machine is shared.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// BenchmarkESDKSeal256MiB is the figure esdk_oneshot_seal_MBps, the peer of keyline's
// seal_MBps. The SDK's Encrypt is one-shot, so the 256 MiB plaintext and its ciphertext are
// both in memory (about 1.7 GB resident).
func BenchmarkESDKSeal256MiB(b *testing.B) {
	const metric = "esdk_oneshot_seal_MBps"
	benchSeal(b, 256<<20, metric)
	for _, m := range []string{metric, "esdk_oneshot_seal_wall_MBps"} {
		note(b, m, fmt.Sprintf("one-shot Encrypt (the Go ESDK has no streaming API): the 256 MiB plaintext and its ciphertext are in memory, where keyline's seal_MBps streams the same 256 MiB to io.Discard; same frame size (%d plaintext bytes), AES-256-GCM with a derived key and key commitment (HKDF-SHA512 in the ESDK suite, HKDF-SHA256 in keyline), no signature, no KMS call on either side", frameLength))
	}
}
