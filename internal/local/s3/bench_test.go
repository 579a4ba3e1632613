package s3_test

import (
	"context"
	"io"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// patternReader yields size bytes without holding them.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := min(int64(len(b)), p.left)
	for i := range n {
		b[i] = byte(i * 7)
	}
	p.left -= n
	return int(n), nil
}

// BenchmarkS3LargeObjectMemory uploads (multipart, 16 MiB parts) and reads back an
// object of KEYLINE_S3_BENCH_MIB MiB (default 256) through the server in this process,
// and reports the process's peak heap: it stays near the parts in flight, not the object.
// Run with KEYLINE_S3_BENCH_MIB=1024 for the 1 GiB case.
func BenchmarkS3LargeObjectMemory(b *testing.B) {
	mib := int64(256)
	if v, err := strconv.ParseInt(os.Getenv("KEYLINE_S3_BENCH_MIB"), 10, 64); err == nil && v > 0 {
		mib = v
	}
	size := mib << 20
	c, _ := start(b, b.TempDir())
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("large")}); err != nil {
		b.Fatal(err)
	}
	tm := transfermanager.New(c, func(o *transfermanager.Options) {
		o.PartSizeBytes = 16 << 20
		o.Concurrency = 2
	})
	var peak atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String("large"), Key: aws.String("obj"),
			Body: &patternReader{left: size}}); err != nil {
			b.Fatal(err)
		}
		out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("large"), Key: aws.String("obj")})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if err != nil || n != size {
			b.Fatalf("read back %d bytes (%v), want %d", n, err, size)
		}
	}
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(peak.Load())/(1<<20), "s3_peak_heap_MiB")
	b.ReportMetric(float64(mib), "s3_object_MiB")
}
