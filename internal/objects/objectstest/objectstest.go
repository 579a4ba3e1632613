// Package objectstest sets up the real parts the data plane's tests run against: DynamoDB
// Local (a fresh lineage table), local-kms and gofakes3, reached through the real SDK clients,
// with a lineage store, a counting KMS provider and the S3 data source on top.
package objectstest

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/keys/keystest"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/testenv"
)

// Buckets used by the fixture.
const (
	DataBucket   = "keyline-data"
	BackupBucket = "keyline-backups"
)

// Env is one test's real parts.
type Env struct {
	DDB         *dynamodb.Client
	Table       string
	Store       *lineage.Store
	KMS         *kms.Client
	Keys        *keystest.CountingProvider
	ProviderKey string
	S3          *testenv.S3Env
	Source      *objects.S3Source
	Logger      *slog.Logger
}

// New builds the fixture for t.
func New(t testing.TB) *Env {
	t.Helper()
	ddb := testenv.DynamoDB(t)
	table := testenv.NewTable(t, ddb)
	kc, _ := testenv.KMS(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	kp := keystest.Counting(keys.NewKMS(kc, keys.Options{MaxAttempts: 2, Logger: logger}))
	s3env := testenv.S3(t, DataBucket, BackupBucket)
	store := lineage.New(ddb, table, lineage.Options{Logger: logger})
	e := &Env{DDB: ddb, Table: table, Store: store, KMS: kc, Keys: kp, ProviderKey: testenv.NewKMSKey(t, kc), S3: s3env, Logger: logger}
	src, err := objects.NewS3(objects.Config{S3: s3env.Client, Bucket: DataBucket, Lineage: store, Keys: kp, ProviderKeyARN: e.ProviderKey, PartSize: 5 << 20, Concurrency: 2, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	e.Source = src
	return e
}

// Org creates an org.
func (e *Env) Org(t testing.TB, orgID string) {
	t.Helper()
	if _, err := e.Store.CreateOrg(context.Background(), lineage.Org{ID: orgID, Name: orgID, Accounts: []string{testenv.KMSAccountID}}); err != nil {
		t.Fatalf("create org %s: %v", orgID, err)
	}
}

// CMKApp creates a CMK app of org on a new customer key and returns the key's ARN.
func (e *Env) CMKApp(t testing.TB, orgID, appID string) string {
	t.Helper()
	keyARN := testenv.NewKMSKey(t, e.KMS)
	e.app(t, orgID, appID, lineage.KeyModelCMK, keyARN)
	return keyARN
}

// ManagedApp creates a provider-managed app of org.
func (e *Env) ManagedApp(t testing.TB, orgID, appID string) {
	t.Helper()
	e.app(t, orgID, appID, lineage.KeyModelManaged, e.ProviderKey)
}

func (e *Env) app(t testing.TB, orgID, appID string, model lineage.KeyModel, keyARN string) {
	t.Helper()
	ctx := context.Background()
	wrapped, err := objects.NewGenerationKey(ctx, e.Keys, orgID, appID, 1, keyARN)
	if err != nil {
		t.Fatalf("generation key of %s: %v", appID, err)
	}
	if _, err := e.Store.CreateApp(ctx, lineage.App{ID: appID, OrgID: orgID, KeyModel: model}, keyARN, wrapped, lineage.Cause{Actor: "test"}); err != nil {
		t.Fatalf("create app %s: %v", appID, err)
	}
}

// Put stores data as an object of the app.
func (e *Env) Put(t testing.TB, appID string, scope objects.Scope, path string, data []byte) objects.Info {
	t.Helper()
	info, err := e.Source.Put(context.Background(), appID, scope, path, bytes.NewReader(data))
	if err != nil {
		t.Fatalf("put %s/%s/%s: %v", appID, scope, path, err)
	}
	return info
}

// Get reads an object's plaintext.
func (e *Env) Get(t testing.TB, appID string, scope objects.Scope, path string) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := e.Source.Get(context.Background(), appID, scope, path, &b); err != nil {
		t.Fatalf("get %s/%s/%s: %v", appID, scope, path, err)
	}
	return b.Bytes()
}

// Raw returns an object's bytes as stored.
func (e *Env) Raw(t testing.TB, bucket, key string) []byte {
	t.Helper()
	out, err := e.S3.Client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// PutRaw overwrites an object's bytes as stored (to tamper with it).
func (e *Env) PutRaw(t testing.TB, bucket, key string, data []byte) {
	t.Helper()
	if _, err := e.S3.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data)))}); err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
}

// Keys lists the keys under prefix in bucket.
func (e *Env) KeysUnder(t testing.TB, bucket, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(e.S3.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}
