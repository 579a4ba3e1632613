package endpoint_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/fault"
	"github.com/keyline/keyline/internal/local/kms"
	"github.com/keyline/keyline/internal/local/lambda"
	"github.com/keyline/keyline/internal/local/s3"
	"github.com/keyline/keyline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startFaultStack starts an endpoint with the faults of in and real KMS, S3 and (if asked)
// DynamoDB Local behind it, a Lambda registry, and stand-ins for events and states.
func startFaultStack(t *testing.T, in *fault.Injector, withDynamoDB bool) aws.Config {
	t.Helper()
	dir := t.TempDir()
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0", Faults: in, Logger: slog.New(slog.DiscardHandler)})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	kmsSvc, err := kms.New(kms.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kmsSvc.Close() })
	s3Svc, err := s3.New(s3.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(endpoint.ServiceKMS, kmsSvc)
	srv.Register(endpoint.ServiceS3, s3Svc)
	if withDynamoDB {
		// The DynamoDB Local the package's tests share, behind this endpoint.
		u, err := url.Parse(testenv.DynamoDBEndpoint(t))
		if err != nil {
			t.Fatal(err)
		}
		srv.Register(endpoint.ServiceDynamoDB, httputil.NewSingleHostReverseProxy(u))
	}
	fns := lambda.New(lambda.Options{})
	fns.Register("echo", func(_ context.Context, v map[string]any) (map[string]any, error) { return v, nil })
	srv.Register(endpoint.ServiceLambda, fns)
	srv.Register(endpoint.ServiceEvents, &fakeJSON{answer: `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`})
	srv.Register(endpoint.ServiceStates, &fakeJSON{answer: `{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:sm:x","startDate":1700000000}`})
	return aws.Config{
		Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials:                credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	}
}

// noRetries makes the SDK give up after one attempt, so the test sees the raw fault.
func noRetries(cfg aws.Config) aws.Config {
	cfg.Retryer = func() aws.Retryer { return aws.NopRetryer{} }
	return cfg
}

// patientRetries is the SDK's standard retryer with more attempts, no retry quota and short
// back-off: what a client under a heavy fault rate needs.
func patientRetries(cfg aws.Config) aws.Config {
	cfg.Retryer = func() aws.Retryer {
		return retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 10
			o.RateLimiter = ratelimit.None
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 5 * time.Millisecond, nil })
		})
	}
	return cfg
}

func mustInjector(t *testing.T, c fault.Config) *fault.Injector {
	t.Helper()
	in, err := fault.New(c, fault.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// calls makes one call to each service and returns its error, by service.
func calls(ctx context.Context, cfg aws.Config, withDynamoDB bool) map[string]error {
	out := map[string]error{}
	_, out["kms"] = awskms.NewFromConfig(cfg).ListKeys(ctx, &awskms.ListKeysInput{})
	_, out["s3"] = awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &awss3.ListBucketsInput{})
	if withDynamoDB {
		_, out["dynamodb"] = awsddb.NewFromConfig(cfg).ListTables(ctx, &awsddb.ListTablesInput{})
	}
	_, out["lambda"] = awslambda.NewFromConfig(cfg).Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{}`)})
	_, out["events"] = eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
		{Source: aws.String("t"), DetailType: aws.String("t"), Detail: aws.String(`{}`)}}})
	_, out["states"] = sfn.NewFromConfig(cfg).StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:000000000000:stateMachine:sm")})
	return out
}

// Throttling answers in each service's own shape, which the SDK classifies as throttling
// (and retries); a 5xx is retryable too.
func TestFaultShapesAsTheSDKSeesThem(t *testing.T) {
	ctx := context.Background()
	wantThrottle := map[string]string{"kms": "ThrottlingException", "s3": "SlowDown", "dynamodb": "ProvisionedThroughputExceededException",
		"lambda": "TooManyRequestsException", "events": "ThrottlingException", "states": "ThrottlingException"}
	throttle := mustInjector(t, fault.Config{Rules: []fault.Rule{{Service: fault.Any, Throttle: 1}}})
	cfg := noRetries(startFaultStack(t, throttle, true))
	for svc, err := range calls(ctx, cfg, true) {
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != wantThrottle[svc] {
			t.Errorf("%s: throttled call answered %v, want %s", svc, err, wantThrottle[svc])
			continue
		}
		if retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) != aws.TrueTernary {
			t.Errorf("%s: the SDK does not see %s as throttling", svc, ae.ErrorCode())
		}
	}
	if c, n := throttle.Counts(); n != 6 || c[fault.KindThrottle] != 6 {
		t.Fatalf("counted %v", c)
	}

	fiveXX := mustInjector(t, fault.Config{Rules: []fault.Rule{{Service: fault.Any, ServerError: 1}}})
	cfg = noRetries(startFaultStack(t, fiveXX, false))
	for svc, err := range calls(ctx, cfg, false) {
		var re interface{ HTTPStatusCode() int }
		if !errors.As(err, &re) || re.HTTPStatusCode() != 500 {
			t.Errorf("%s: 5xx fault answered %v", svc, err)
			continue
		}
		if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) != aws.TrueTernary {
			t.Errorf("%s: the SDK does not retry %v", svc, err)
		}
	}

	timeout := mustInjector(t, fault.Config{Rules: []fault.Rule{{Service: "kms", Timeout: 1}}, TimeoutAfter: fault.Duration(50 * time.Millisecond)})
	cfg = noRetries(startFaultStack(t, timeout, false))
	start := time.Now()
	_, err := awskms.NewFromConfig(cfg).ListKeys(ctx, &awskms.ListKeysInput{})
	if err == nil || time.Since(start) < 50*time.Millisecond {
		t.Fatalf("timeout fault: err %v after %v", err, time.Since(start))
	}
	if retry.IsErrorRetryables(retry.DefaultRetryables).IsErrorRetryable(err) != aws.TrueTernary {
		t.Fatalf("the SDK does not retry a dropped connection: %v", err)
	}
}

// Under 30% transient faults of every kind (and added latency), the SDK's retries get every
// call through, and the data is intact.
func TestSDKRetriesRideOutTransientFaults(t *testing.T) {
	ctx := context.Background()
	in := mustInjector(t, fault.Config{Seed: 11, TimeoutAfter: fault.Duration(20 * time.Millisecond), Rules: []fault.Rule{
		{Service: fault.Any, Throttle: 0.1, ServerError: 0.1, Timeout: 0.1, Latency: fault.Duration(time.Millisecond)}}})
	cfg := patientRetries(startFaultStack(t, in, true))
	kc := awskms.NewFromConfig(cfg)
	sc := awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true })
	dc := awsddb.NewFromConfig(cfg)
	key, err := kc.CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("fault-bucket")}); err != nil {
		t.Fatal(err)
	}
	table := fmt.Sprintf("fault-table-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_, _ = dc.DeleteTable(context.Background(), &awsddb.DeleteTableInput{TableName: aws.String(table)})
	})
	if _, err := dc.CreateTable(ctx, &awsddb.CreateTableInput{TableName: aws.String(table), BillingMode: ddbtypes.BillingModePayPerRequest,
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}}}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("message %d", i)
		enc, err := kc.Encrypt(ctx, &awskms.EncryptInput{KeyId: key.KeyMetadata.KeyId, Plaintext: []byte(msg),
			EncryptionContext: map[string]string{"keyline:test": "fault"}})
		if err != nil {
			t.Fatalf("encrypt %d: %v", i, err)
		}
		dec, err := kc.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: map[string]string{"keyline:test": "fault"}})
		if err != nil || string(dec.Plaintext) != msg {
			t.Fatalf("decrypt %d: %v %q", i, err, dec.Plaintext)
		}
		k := fmt.Sprintf("o/%d", i)
		if _, err := sc.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("fault-bucket"), Key: aws.String(k), Body: bytes.NewReader([]byte(msg))}); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		obj, err := sc.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("fault-bucket"), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if string(body) != msg {
			t.Fatalf("object %d: %q", i, body)
		}
		if _, err := dc.PutItem(ctx, &awsddb.PutItemInput{TableName: aws.String(table), Item: map[string]ddbtypes.AttributeValue{
			"pk": &ddbtypes.AttributeValueMemberS{Value: k}, "v": &ddbtypes.AttributeValueMemberS{Value: msg}}}); err != nil {
			t.Fatalf("put item %d: %v", i, err)
		}
		it, err := dc.GetItem(ctx, &awsddb.GetItemInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true),
			Key: map[string]ddbtypes.AttributeValue{"pk": &ddbtypes.AttributeValueMemberS{Value: k}}})
		if err != nil {
			t.Fatalf("get item %d: %v", i, err)
		}
		if v, _ := it.Item["v"].(*ddbtypes.AttributeValueMemberS); v == nil || v.Value != msg {
			t.Fatalf("item %d: %v", i, it.Item)
		}
	}
	counts, total := in.Counts()
	// 6 calls × 20 rounds at 30%: far more than a handful of faults, of every kind.
	if total < 20 || counts[fault.KindThrottle] == 0 || counts[fault.KindServerError] == 0 || counts[fault.KindTimeout] == 0 {
		t.Fatalf("faults injected: %v (total %d)", counts, total)
	}
	t.Logf("faults injected and ridden out: %v", counts)
}

// A request marked as an observer's is never faulted.
func TestObserverRequestsAreExempt(t *testing.T) {
	in := mustInjector(t, fault.Config{Rules: []fault.Rule{{Service: fault.Any, ServerError: 1}}})
	cfg := noRetries(startFaultStack(t, in, false))
	c := awskms.NewFromConfig(cfg, func(o *awskms.Options) {
		o.APIOptions = append(o.APIOptions, fault.ObserverAPIOption)
	})
	if _, err := c.ListKeys(context.Background(), &awskms.ListKeysInput{}); err != nil {
		t.Fatalf("observer call: %v", err)
	}
	if _, err := awskms.NewFromConfig(cfg).ListKeys(context.Background(), &awskms.ListKeysInput{}); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("plain call: %v", err)
	}
}
