package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	localkms "github.com/nsmithuk/local-kms/src"
	kmsconfig "github.com/nsmithuk/local-kms/src/config"
	kmsdata "github.com/nsmithuk/local-kms/src/data"
)

// KMSRegion and KMSAccountID are the region and account of the in-process local-kms; key ARNs
// look like arn:aws:kms:us-east-1:111122223333:key/<uuid>.
const (
	KMSRegion    = "us-east-1"
	KMSAccountID = "111122223333"
)

// local-kms keeps its settings in package globals, so one server serves the whole test binary.
var (
	kmsOnce     sync.Once
	kmsEndpoint string
	kmsErr      error
)

func kmsStart() {
	dir, err := os.MkdirTemp("", "keyline-localkms-")
	if err != nil {
		kmsErr = err
		return
	}
	kmsconfig.AWSRegion = KMSRegion
	kmsconfig.AWSAccountId = KMSAccountID
	kmsconfig.DatabasePath = dir
	db := kmsdata.NewDatabase(dir)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		localkms.HandleRequest(w, r, db)
	}))
	srv.Start() // httptest listens on 127.0.0.1
	kmsEndpoint = srv.URL
}

// KMS returns an aws-sdk-go-v2 KMS client talking to an in-process local-kms (one per test
// binary, on 127.0.0.1) and the endpoint URL. Keys created by one test are visible to others:
// create your own keys (NewKMSKey) rather than listing.
func KMS(t testing.TB) (*kms.Client, string) {
	t.Helper()
	kmsOnce.Do(kmsStart)
	if kmsErr != nil {
		t.Fatalf("testenv: starting local-kms: %v", kmsErr)
	}
	return kms.NewFromConfig(KMSConfig(t, kmsEndpoint)), kmsEndpoint
}

// KMSConfig returns an aws.Config for a local endpoint: region us-east-1, static test
// credentials, BaseEndpoint set to endpoint.
func KMSConfig(t testing.TB, endpoint string) aws.Config {
	t.Helper()
	return aws.Config{
		Region:       KMSRegion,
		Credentials:  credentials.NewStaticCredentialsProvider("AKIAKEYLINETEST", "keyline-test-secret", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// NewKMSKey creates a symmetric encryption key and returns its ARN.
func NewKMSKey(t testing.TB, client *kms.Client) string {
	t.Helper()
	out, err := client.CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("keyline test key " + t.Name())})
	if err != nil {
		t.Fatalf("testenv: CreateKey: %v", err)
	}
	return aws.ToString(out.KeyMetadata.Arn)
}
