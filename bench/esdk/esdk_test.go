// Package esdk benchmarks the official AWS Encryption SDK for Go as the peer of keyline's sealed
// format: the same 256 MiB sealed with a raw AES keyring, one core (-cpu 1).
//
// It is its own module so that the SDK and its Dafny runtime stay out of keyline's build.
package esdk

import (
	"context"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	mpl "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygenerated"
	mpltypes "github.com/aws/aws-cryptographic-material-providers-library/releases/go/mpl/awscryptographymaterialproviderssmithygeneratedtypes"
	esdk "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygenerated"
	esdktypes "github.com/aws/aws-encryption-sdk/releases/go/encryption-sdk/awscryptographyencryptionsdksmithygeneratedtypes"
)

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
	b.SetBytes(int64(n))
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for range b.N {
		out, err := client.Encrypt(context.Background(), esdktypes.EncryptInput{
			Plaintext:         pt,
			Keyring:           keyring,
			EncryptionContext: ec,
			AlgorithmSuiteId:  &suite,
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

// BenchmarkESDKSeal256MiB is the figure esdk_seal_MBps. The SDK's Encrypt is one-shot, so the
// 256 MiB plaintext and its ciphertext are both in memory (about 1.7 GB resident).
func BenchmarkESDKSeal256MiB(b *testing.B) { benchSeal(b, 256<<20, "esdk_seal_MBps") }
