package testenv

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// S3Env is an in-memory S3 (gofakes3) served over HTTP on 127.0.0.1, with a real
// aws-sdk-go-v2 client that reaches it path-style.
type S3Env struct {
	// URL is the endpoint (http://127.0.0.1:port).
	URL string
	// Client is an S3 client for the endpoint (path-style, static credentials, us-east-1).
	Client *s3.Client
	// Config is the AWS configuration the client was built from; build more clients from it
	// with s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).
	Config aws.Config
}

// S3 starts gofakes3 for the test (stopped by t.Cleanup) and creates the given buckets.
func S3(t testing.TB, buckets ...string) *S3Env {
	t.Helper()
	faker := gofakes3.New(s3mem.New(), gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(faker.Server())
	t.Cleanup(srv.Close)
	cfg := aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(srv.URL),
		// gofakes3 does not speak the SDK's default flexible checksums on every route.
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	for _, b := range buckets {
		if _, err := client.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatalf("testenv: create bucket %s: %v", b, err)
		}
	}
	return &S3Env{URL: srv.URL, Client: client, Config: cfg}
}
