package sealing

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/keys"
)

// Benchmarks: pure crypto with a fixed in-memory data key, no KMS. Run with -cpu 1.

const benchSize = 256 << 20

func benchKey() *keys.DataKey {
	pt := make([]byte, 32)
	for i := range pt {
		pt[i] = byte(i * 7)
	}
	return keys.NewDataKey("arn:aws:kms:us-east-1:111122223333:key/bench",
		keys.EncryptionContext("org-1", "bench", 1, keys.PurposeBackup), []byte("wrapped-key-for-benchmarks"), pt)
}

// benchChunk is a random 1 MiB plaintext block written repeatedly (cheap to produce, so the
// benchmark measures sealing, not the generator).
var benchChunk = func() []byte {
	b := make([]byte, 1<<20)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(b)
	return b
}()

// sealStream writes size bytes of plaintext through a sealing writer into dst.
func sealStream(dk *keys.DataKey, dst io.Writer, size int64) error {
	w, err := NewWriter(context.Background(), dst, dk, HeaderFields{Generation: 1})
	if err != nil {
		return err
	}
	for left := size; left > 0; {
		n := min(left, int64(len(benchChunk)))
		if _, err := w.Write(benchChunk[:n]); err != nil {
			return err
		}
		left -= n
	}
	return w.Close()
}

// cpuSeconds is the CPU time (user+system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// reportMBps reports throughput in MB/s (10^6 bytes, as openssl counts) per CPU second: the
// machine is shared, and `openssl speed` divides by CPU time too (its default without -elapsed),
// so the two are compared on the same footing. The wall-clock figure is reported alongside
// (<name> with _wall), and in the standard MB/s column.
func reportMBps(b *testing.B, bytesPerOp int64, name string, cpu0 float64) {
	total := float64(bytesPerOp) * float64(b.N)
	if s := cpuSeconds() - cpu0; s > 0 {
		b.ReportMetric(total/s/1e6, name)
	}
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(total/s/1e6, strings.TrimSuffix(name, "_MBps")+"_wall_MBps")
	}
}

func BenchmarkSeal256MiB(b *testing.B) {
	dk := benchKey()
	defer dk.Destroy()
	b.SetBytes(benchSize)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for range b.N {
		if err := sealStream(dk, io.Discard, benchSize); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportMBps(b, benchSize, "seal_MBps", cpu0)
}

func BenchmarkOpen256MiB(b *testing.B) {
	dk := benchKey()
	defer dk.Destroy()
	var sealed bytes.Buffer
	sealed.Grow(benchSize + benchSize/64)
	if err := sealStream(dk, &sealed, benchSize); err != nil {
		b.Fatal(err)
	}
	ct := sealed.Bytes()
	b.SetBytes(benchSize)
	b.ResetTimer()
	cpu0 := cpuSeconds()
	for range b.N {
		r, _, err := NewReader(context.Background(), bytes.NewReader(ct), fixedKey{dk}, Expect{})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, r) // through WriteTo, as io.Copy consumers read it
		if err != nil || n != benchSize {
			b.Fatalf("opened %d bytes: %v", n, err)
		}
	}
	b.StopTimer()
	reportMBps(b, benchSize, "open_MBps", cpu0)
}

// heapInUse is HeapInuse from runtime/metrics (no stop-the-world).
func heapInUse(s []metrics.Sample) uint64 {
	metrics.Read(s)
	return s[0].Value.Uint64() + s[1].Value.Uint64()
}

func BenchmarkSeal1GiBPeakHeap(b *testing.B) {
	const size = 1 << 30
	dk := benchKey()
	defer dk.Destroy()
	b.SetBytes(size)
	var peakMiB float64
	for range b.N {
		runtime.GC()
		samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
		var peak atomic.Uint64
		peak.Store(heapInUse(samples))
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/memory/classes/heap/unused:bytes"}}
			t := time.NewTicker(time.Millisecond)
			defer t.Stop()
			for {
				if h := heapInUse(s); h > peak.Load() {
					peak.Store(h)
				}
				select {
				case <-stop:
					return
				case <-t.C:
				}
			}
		}()
		err := sealStream(dk, io.Discard, size)
		close(stop)
		<-done
		if err != nil {
			b.Fatal(err)
		}
		peakMiB = max(peakMiB, float64(peak.Load())/(1<<20))
	}
	b.ReportMetric(peakMiB, "seal_1GiB_peak_heap_MiB")
}

var opensslRow = regexp.MustCompile(`(?m)^AES-256-GCM\s+([0-9.]+)k\s*$`)

// BenchmarkOpensslAESGCM measures the ceiling: OpenSSL's AES-256-GCM on 16 KiB blocks, one core
// (openssl speed is single-threaded without -multi; it divides by CPU time, like reportMBps).
func BenchmarkOpensslAESGCM(b *testing.B) {
	path, err := exec.LookPath("openssl")
	if err != nil {
		b.Fatalf("openssl is not installed (needed for openssl_aes256gcm_MBps): %v", err)
	}
	var mbps float64
	for range b.N {
		out, err := exec.Command(path, "speed", "-evp", "aes-256-gcm", "-bytes", "16384", "-seconds", "3").Output()
		if err != nil {
			b.Fatalf("openssl speed: %v", err)
		}
		m := opensslRow.FindSubmatch(out)
		if m == nil {
			b.Fatalf("cannot find the AES-256-GCM row in openssl output:\n%s", out)
		}
		kbps, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			b.Fatal(err)
		}
		mbps = kbps / 1000 // openssl reports 1000s of bytes per second
	}
	b.ReportMetric(mbps, "openssl_aes256gcm_MBps")
}

func TestOpensslRowParse(t *testing.T) {
	out := "version: 3.0.19\n" +
		"The 'numbers' are in 1000s of bytes per second processed.\n" +
		"type          16384 bytes\n" +
		"AES-256-GCM    6543210.12k\n"
	m := opensslRow.FindStringSubmatch(out)
	if m == nil || m[1] != "6543210.12" {
		t.Fatalf("parse: %q", m)
	}
	if strings.Contains(fmt.Sprint(m), "type") {
		t.Fatal("matched the header")
	}
}

// esdkFrame is the ESDK peer benchmark's frame length declaration (bench/esdk, its own module).
var esdkFrame = regexp.MustCompile(`(?m)^const frameLength = 1<<20 - (\d+)$`)

// TestESDKPeerFrameLength guards the peer's "same frame size": the ESDK benchmark frames
// its plaintext in keyline's plaintext per segment, SegmentSize less the GCM tag.
func TestESDKPeerFrameLength(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "bench", "esdk", "esdk_test.go"))
	if err != nil {
		t.Fatal(err)
	}
	m := esdkFrame.FindSubmatch(src)
	if m == nil {
		t.Fatal("bench/esdk/esdk_test.go declares no `const frameLength = 1<<20 - <tag>`")
	}
	tag, _ := strconv.Atoi(string(m[1]))
	if got, want := 1<<20-tag, SegmentSize-tagLen; got != want {
		t.Fatalf("the ESDK peer frames %d plaintext bytes, keyline seals %d per segment", got, want)
	}
}
