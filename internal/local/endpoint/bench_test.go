package endpoint_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/kms"
)

func kmsClient(url string) *awskms.Client {
	return awskms.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(url),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")})
}

// BenchmarkKMSEndpointOverhead measures what the endpoint (router + fidelity layer) adds
// to a GenerateDataKey over calling local-kms's handler directly: both over HTTP on
// loopback with the real SDK client, on the same key. Reports kms_endpoint_overhead_us.
func BenchmarkKMSEndpointOverhead(b *testing.B) {
	svc, err := kms.New(kms.Options{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer svc.Close()
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0"})
	srv.Register(endpoint.ServiceKMS, svc)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		b.Fatal(err)
	}
	direct := httptest.NewServer(svc.Direct())
	defer direct.Close()

	viaEndpoint, viaDirect := kmsClient(srv.URL()), kmsClient(direct.URL)
	key, err := viaEndpoint.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		b.Fatal(err)
	}
	in := &awskms.GenerateDataKeyInput{KeyId: key.KeyMetadata.Arn, NumberOfBytes: aws.Int32(32),
		EncryptionContext: map[string]string{"app": "bench"}}
	call := func(c *awskms.Client) {
		if _, err := c.GenerateDataKey(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	// Warm both connections.
	for range 20 {
		call(viaEndpoint)
		call(viaDirect)
	}
	// `make bench` runs one iteration (-benchtime 1x): each iteration makes many
	// alternating pairs, so drift on a shared machine affects both sides alike, and the
	// figures are medians, so a stall on one call does not move them.
	const pairs = 400
	var endpoint, directs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range pairs {
			s := time.Now()
			call(viaEndpoint)
			endpoint = append(endpoint, time.Since(s))
			s = time.Now()
			call(viaDirect)
			directs = append(directs, time.Since(s))
		}
	}
	b.StopTimer()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(us(median(endpoint)-median(directs)), "kms_endpoint_overhead_us")
	b.ReportMetric(us(median(directs)), "kms_direct_us")
}

// median returns the median of ds (which it sorts).
func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}
