package endpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	awslambda "github.com/aws/aws-sdk-go-v2/service/lambda"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
	"github.com/keyline/keyline/internal/local/dynamodb"
	"github.com/keyline/keyline/internal/local/endpoint"
	"github.com/keyline/keyline/internal/local/kms"
	"github.com/keyline/keyline/internal/local/lambda"
	"github.com/keyline/keyline/internal/local/s3"
	"github.com/keyline/keyline/internal/testenv/logsink"
)

// fakeJSON is a stand-in for the EventBridge / Step Functions handlers built elsewhere:
// it records the X-Amz-Target it was reached with and answers a fixed JSON body.
type fakeJSON struct {
	mu      sync.Mutex
	targets []string
	answer  string
}

func (f *fakeJSON) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.targets = append(f.targets, r.Header.Get("X-Amz-Target"))
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	io.WriteString(w, f.answer)
}

func (f *fakeJSON) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.targets...)
}

func startServer(t *testing.T, logs io.Writer) *endpoint.Server {
	t.Helper()
	if logs == nil {
		logs = io.Discard
	}
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0", MaxBodyBytes: 1 << 20,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	ctx, cancel := context.WithCancel(context.Background())
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cancel)
	return srv
}

func TestEveryRouteWithSDKClients(t *testing.T) {
	dir := t.TempDir()
	logs := &logsink.Buffer{}
	srv := startServer(t, logs)

	kmsSvc, err := kms.New(kms.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kmsSvc.Close() })
	s3Svc, err := s3.New(s3.Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ddb, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ddb.Stop() })
	fns := lambda.New(lambda.Options{})
	fns.Register("echo", func(_ context.Context, v map[string]any) (map[string]any, error) { return v, nil })
	events := &fakeJSON{answer: `{"FailedEntryCount":0,"Entries":[{"EventId":"e-1"}]}`}
	states := &fakeJSON{answer: `{"executionArn":"arn:aws:states:us-east-1:000000000000:execution:sm:x","startDate":1700000000}`}
	srv.Register(endpoint.ServiceKMS, kmsSvc)
	srv.Register(endpoint.ServiceS3, s3Svc)
	srv.Register(endpoint.ServiceDynamoDB, ddb)
	srv.Register(endpoint.ServiceLambda, fns)
	srv.Register(endpoint.ServiceEvents, events)
	srv.Register(endpoint.ServiceStates, states)

	// Clients find the endpoint as Lambda code does: through AWS_ENDPOINT_URL.
	t.Setenv("AWS_ENDPOINT_URL", srv.URL())
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")))
	if err != nil {
		t.Fatal(err)
	}

	k, err := awskms.NewFromConfig(cfg).CreateKey(ctx, &awskms.CreateKeyInput{})
	if err != nil {
		t.Fatalf("kms: %v", err)
	}
	if _, err := awskms.NewFromConfig(cfg).GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: k.KeyMetadata.KeyId,
		NumberOfBytes: aws.Int32(32), EncryptionContext: map[string]string{"app": "a"}}); err != nil {
		t.Fatalf("kms GenerateDataKey: %v", err)
	}

	s3c := awss3.NewFromConfig(cfg, func(o *awss3.Options) { o.UsePathStyle = true })
	if _, err := s3c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String("routed")}); err != nil {
		t.Fatalf("s3 CreateBucket: %v", err)
	}
	if _, err := s3c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String("routed"), Key: aws.String("a/b"), Body: strings.NewReader("data")}); err != nil {
		t.Fatalf("s3 PutObject: %v", err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 11<<16) // 11 MiB: three parts
	tm := transfermanager.New(s3c, func(o *transfermanager.Options) { o.PartSizeBytes = 5 << 20; o.MultipartUploadThreshold = 5 << 20 })
	if _, err := tm.UploadObject(ctx, &transfermanager.UploadObjectInput{Bucket: aws.String("routed"), Key: aws.String("big"), Body: bytes.NewReader(big)}); err != nil {
		t.Fatalf("s3 multipart through the router: %v", err)
	}
	got, err := s3c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String("routed"), Key: aws.String("big")})
	if err != nil {
		t.Fatal(err)
	}
	gb, _ := io.ReadAll(got.Body)
	got.Body.Close()
	if !bytes.Equal(gb, big) {
		t.Fatal("multipart object through the router differs")
	}
	lb, err := s3c.ListBuckets(ctx, &awss3.ListBucketsInput{})
	if err != nil || len(lb.Buckets) != 1 {
		t.Fatalf("s3 ListBuckets: %v", err)
	}

	ddbc := awsddb.NewFromConfig(cfg)
	if _, err := ddbc.CreateTable(ctx, &awsddb.CreateTableInput{TableName: aws.String("routed"),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest}); err != nil {
		t.Fatalf("dynamodb: %v", err)
	}
	lt, err := ddbc.ListTables(ctx, &awsddb.ListTablesInput{})
	if err != nil || len(lt.TableNames) != 1 {
		t.Fatalf("dynamodb ListTables: %v %v", err, lt)
	}

	pe, err := eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{{
		Source: aws.String("keyline.test"), DetailType: aws.String("t"), Detail: aws.String(`{}`)}}})
	if err != nil || *pe.Entries[0].EventId != "e-1" {
		t.Fatalf("events: %v", err)
	}
	se, err := sfn.NewFromConfig(cfg).StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:000000000000:stateMachine:sm")})
	if err != nil || !strings.HasSuffix(*se.ExecutionArn, ":x") {
		t.Fatalf("states: %v", err)
	}
	if got := events.seen(); len(got) != 1 || got[0] != "AWSEvents.PutEvents" {
		t.Fatalf("events handler saw %v", got)
	}
	if got := states.seen(); len(got) != 1 || got[0] != "AWSStepFunctions.StartExecution" {
		t.Fatalf("states handler saw %v", got)
	}

	inv, err := awslambda.NewFromConfig(cfg).Invoke(ctx, &awslambda.InvokeInput{FunctionName: aws.String("echo"), Payload: []byte(`{"x":1}`)})
	if err != nil || string(inv.Payload) != `{"x":1}` {
		t.Fatalf("lambda: %v %s", err, inv.Payload)
	}

	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil || *id.Account != endpoint.DefaultAccountID || *id.Arn != "arn:aws:iam::000000000000:root" {
		t.Fatalf("sts: %v", err)
	}

	// The access log names service, operation, status, duration and request id.
	for _, want := range []string{`"service":"kms","operation":"GenerateDataKey","status":200`, `"service":"s3"`,
		`"service":"dynamodb","operation":"CreateTable"`, `"service":"events","operation":"PutEvents"`,
		`"service":"states"`, `"service":"lambda"`, `"service":"sts","operation":"GetCallerIdentity"`, `"request_id":"`, `"duration":`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("access log lacks %s", want)
		}
	}
}

func TestRouteFallbacksWithoutSignature(t *testing.T) {
	cases := []struct {
		method, path, target, want string
	}{
		{"POST", "/", "TrentService.ListKeys", "kms"},
		{"POST", "/", "DynamoDB_20120810.ListTables", "dynamodb"},
		{"POST", "/", "AWSEvents.PutEvents", "events"},
		{"POST", "/", "AWSStepFunctions.StartExecution", "states"},
		{"POST", "/2015-03-31/functions/f/invocations", "", "lambda"},
		{"GET", "/bucket/key", "", "s3"},
		{"PUT", "/bucket", "", "s3"},
		{"POST", "/", "Unknown_2020.Op", ""},
	}
	for _, c := range cases {
		r, _ := http.NewRequest(c.method, "http://127.0.0.1"+c.path, nil)
		if c.target != "" {
			r.Header.Set("X-Amz-Target", c.target)
		}
		if got := endpoint.Route(r); got != c.want {
			t.Errorf("%s %s %s: routed to %q, want %q", c.method, c.path, c.target, got, c.want)
		}
	}
	// The credential scope wins over everything else.
	r, _ := http.NewRequest("POST", "http://127.0.0.1/", nil)
	r.Header.Set("X-Amz-Target", "TrentService.ListKeys")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=00")
	if got := endpoint.Route(r); got != "dynamodb" {
		t.Errorf("scope routing: %q", got)
	}
	// Presigned URLs carry it in the query.
	r, _ = http.NewRequest("GET", "http://127.0.0.1/b/k?X-Amz-Credential=AKID%2F20240101%2Fus-east-1%2Fs3%2Faws4_request", nil)
	if got := endpoint.Route(r); got != "s3" {
		t.Errorf("presigned routing: %q", got)
	}
}

func rawPost(t *testing.T, url, target, scope string, body io.Reader) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, body)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	if scope != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKID/20240101/us-east-1/"+scope+"/aws4_request, SignedHeaders=host, Signature=00")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

func TestUnknownServicePanicsAndBodyCap(t *testing.T) {
	logs := &logsink.Buffer{}
	srv := startServer(t, logs)
	srv.Register("kms", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("bug in a service") }))
	srv.Register("dynamodb", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))

	resp, m := rawPost(t, srv.URL(), "Nope_2020.Op", "", strings.NewReader("{}"))
	if resp.StatusCode != 400 || m["__type"] != "UnknownOperationException" {
		t.Fatalf("unknown target: %d %v", resp.StatusCode, m)
	}
	resp, m = rawPost(t, srv.URL(), "", "sqs", strings.NewReader("{}"))
	if resp.StatusCode != 400 || m["__type"] != "UnknownOperationException" {
		t.Fatalf("unknown scope: %d %v", resp.StatusCode, m)
	}

	resp, m = rawPost(t, srv.URL(), "TrentService.ListKeys", "kms", strings.NewReader("{}"))
	if resp.StatusCode != 500 || m["__type"] != "InternalFailure" {
		t.Fatalf("panicking handler: %d %v", resp.StatusCode, m)
	}
	if !strings.Contains(logs.String(), "panic in service handler") || !strings.Contains(logs.String(), "bug in a service") {
		t.Fatalf("no log line for the panic: %s", logs.String())
	}
	// The server survives.
	resp, _ = rawPost(t, srv.URL(), "", "dynamodb", strings.NewReader("{}"))
	if resp.StatusCode != 200 {
		t.Fatalf("after panic: %d", resp.StatusCode)
	}

	big := bytes.Repeat([]byte("x"), 2<<20)
	resp, m = rawPost(t, srv.URL(), "", "dynamodb", bytes.NewReader(big))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || m["__type"] != "RequestEntityTooLarge" {
		t.Fatalf("declared oversize body: %d %v", resp.StatusCode, m)
	}
	// A body without a declared length is cut off by the reader.
	resp, _ = rawPost(t, srv.URL(), "", "dynamodb", io.MultiReader(bytes.NewReader(big)))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("streamed oversize body: %d", resp.StatusCode)
	}

	// S3 answers in XML.
	req, _ := http.NewRequest(http.MethodGet, srv.URL()+"/bucket/key", nil)
	resp2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != 400 || !strings.Contains(string(b), "<Code>UnknownOperationException</Code>") {
		t.Fatalf("unregistered s3: %d %s", resp2.StatusCode, b)
	}
}

func TestRefusesNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:4566", ":4566", "192.0.2.1:4566", "[::]:4566", "example.com:4566"} {
		err := endpoint.New(endpoint.Options{Addr: addr}).Start(context.Background())
		if !errors.Is(err, endpoint.ErrNotLoopback) {
			t.Errorf("%s: want ErrNotLoopback, got %v", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		if err := endpoint.CheckLoopback(addr); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
}

func TestSTSRefusesOtherActions(t *testing.T) {
	srv := startServer(t, nil)
	c := sts.NewFromConfig(aws.Config{Region: "us-east-1", BaseEndpoint: aws.String(srv.URL()),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")})
	_, err := c.GetSessionToken(context.Background(), &sts.GetSessionTokenInput{})
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidAction" {
		t.Fatalf("GetSessionToken: %v", err)
	}
}
