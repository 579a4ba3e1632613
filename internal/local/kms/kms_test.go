package kms_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskms "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/smithy-go"
	"github.com/keyline/keyline/internal/clock/clocktest"
	"github.com/keyline/keyline/internal/local/kms"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sink collects the CloudTrail events it receives.
type sink struct {
	mu  sync.Mutex
	evs []kms.CloudTrailEvent
}

func (s *sink) PublishCloudTrail(_ context.Context, ev kms.CloudTrailEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.evs = append(s.evs, ev)
	return nil
}

func (s *sink) events() []kms.CloudTrailEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]kms.CloudTrailEvent(nil), s.evs...)
}

func (s *sink) named(name string) []kms.CloudTrailEvent {
	var out []kms.CloudTrailEvent
	for _, ev := range s.events() {
		if ev.Detail.EventName == name {
			out = append(out, ev)
		}
	}
	return out
}

type env struct {
	svc    *kms.Service
	clk    *clocktest.Fake
	sink   *sink
	client *awskms.Client
	url    string
	dir    string
}

func newEnv(t *testing.T, dir string, mod func(*kms.Options)) *env {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	e := &env{clk: clocktest.NewFake(t0), sink: &sink{}, dir: dir}
	opts := kms.Options{DataDir: dir, Clock: e.clk, Sink: e.sink}
	if mod != nil {
		mod(&opts)
	}
	svc, err := kms.New(opts)
	if err != nil {
		t.Fatalf("kms.New: %v", err)
	}
	e.svc = svc
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); _ = svc.Close() })
	e.url = srv.URL
	e.client = newClient(srv.URL)
	return e
}

func newClient(url string) *awskms.Client {
	return awskms.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

var encCtx = map[string]string{"app": "test"}

func (e *env) createKey(t *testing.T) string {
	t.Helper()
	out, err := e.client.CreateKey(context.Background(), &awskms.CreateKeyInput{Description: aws.String("test key")})
	if err != nil {
		t.Fatalf("CreateKey: %v", err)
	}
	return *out.KeyMetadata.Arn
}

func wantAPIError(t *testing.T, err error, code, msg string) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want %s %q, got %v", code, msg, err)
	}
	if ae.ErrorCode() != code || ae.ErrorMessage() != msg {
		t.Fatalf("want %s: %q\n got %s: %q", code, msg, ae.ErrorCode(), ae.ErrorMessage())
	}
}

func TestDisabledKeyAnswersDisabledExceptionWithArn(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx := context.Background()
	arn := e.createKey(t)
	if _, err := e.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/dis"), TargetKeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	enc, err := e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("x"), EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	want := arn + " is disabled."
	_, err = e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String("alias/dis"), Plaintext: []byte("x"), EncryptionContext: encCtx})
	wantAPIError(t, err, "DisabledException", want)
	_, err = e.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(keyID(arn)), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	wantAPIError(t, err, "DisabledException", want)
	_, err = e.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	wantAPIError(t, err, "DisabledException", want)
	other := e.createKey(t)
	_, err = e.client.ReEncrypt(ctx, &awskms.ReEncryptInput{CiphertextBlob: enc.CiphertextBlob, SourceEncryptionContext: encCtx,
		DestinationKeyId: aws.String(other), DestinationEncryptionContext: encCtx})
	wantAPIError(t, err, "DisabledException", want)

	if _, err := e.client.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	dec, err := e.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	if err != nil || string(dec.Plaintext) != "x" {
		t.Fatalf("Decrypt after EnableKey: %v", err)
	}
}

func keyID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

func TestScheduleKeyDeletionWindowAndCancelLeavesDisabled(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx := context.Background()
	arn := e.createKey(t)
	for _, days := range []int32{6, 31, 0} {
		_, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(days)})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" || !strings.Contains(ae.ErrorMessage(), "pendingWindowInDays") {
			t.Fatalf("window %d: want ValidationException, got %v", days, err)
		}
	}
	d, err := e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil || d.KeyMetadata.KeyState != types.KeyStateEnabled {
		t.Fatalf("refused schedule changed the key: %v %v", err, d.KeyMetadata.KeyState)
	}

	out, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(keyID(arn)), PendingWindowInDays: aws.Int32(7)})
	if err != nil {
		t.Fatal(err)
	}
	wantDate := t0.Add(7 * 24 * time.Hour)
	if !out.DeletionDate.Equal(wantDate) || *out.KeyId != arn || out.KeyState != types.KeyStatePendingDeletion || *out.PendingWindowInDays != 7 {
		t.Fatalf("ScheduleKeyDeletion answered %v %v %v %v", out.DeletionDate, *out.KeyId, out.KeyState, out.PendingWindowInDays)
	}
	d, err = e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyMetadata.KeyState != types.KeyStatePendingDeletion || d.KeyMetadata.Enabled || !d.KeyMetadata.DeletionDate.Equal(wantDate) {
		t.Fatalf("DescribeKey: %v enabled=%v %v", d.KeyMetadata.KeyState, d.KeyMetadata.Enabled, d.KeyMetadata.DeletionDate)
	}
	pending := arn + " is pending deletion."
	_, err = e.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(arn), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	wantAPIError(t, err, "KMSInvalidStateException", pending)
	_, err = e.client.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "KMSInvalidStateException", pending)
	_, err = e.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "KMSInvalidStateException", pending)
	_, err = e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)})
	wantAPIError(t, err, "KMSInvalidStateException", pending)

	c, err := e.client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(keyID(arn))})
	if err != nil || *c.KeyId != arn {
		t.Fatalf("CancelKeyDeletion: %v", err)
	}
	d, err = e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if d.KeyMetadata.KeyState != types.KeyStateDisabled || d.KeyMetadata.Enabled || d.KeyMetadata.DeletionDate != nil {
		t.Fatalf("after cancel: %v enabled=%v deletion=%v", d.KeyMetadata.KeyState, d.KeyMetadata.Enabled, d.KeyMetadata.DeletionDate)
	}
	_, err = e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("x"), EncryptionContext: encCtx})
	wantAPIError(t, err, "DisabledException", arn+" is disabled.")
	_, err = e.client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "KMSInvalidStateException", arn+" is not pending deletion.")
}

func TestKeyPastItsWindowIsGone(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx := context.Background()
	arn := e.createKey(t)
	if _, err := e.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/gone"), TargetKeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	enc, err := e.client.Encrypt(ctx, &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte("x"), EncryptionContext: encCtx})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(7*24*time.Hour - time.Second)
	d, err := e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	if err != nil || d.KeyMetadata.KeyState != types.KeyStatePendingDeletion {
		t.Fatalf("one second before the end: %v", err)
	}
	if len(e.sink.named("DeleteKey")) != 0 {
		t.Fatal("DeleteKey event before the window ended")
	}
	e.clk.Advance(time.Second)
	gone := "Key '" + arn + "' does not exist"
	_, err = e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "NotFoundException", gone)
	_, err = e.client.Decrypt(ctx, &awskms.DecryptInput{KeyId: aws.String(arn), CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	wantAPIError(t, err, "NotFoundException", gone)
	// Without a KeyId, local-kms answers AWS's text for a ciphertext whose key it cannot find.
	_, err = e.client.Decrypt(ctx, &awskms.DecryptInput{CiphertextBlob: enc.CiphertextBlob, EncryptionContext: encCtx})
	wantAPIError(t, err, "AccessDeniedException", "The ciphertext refers to a customer master key that does not exist, does not exist in this region, or you are not allowed to access.")
	_, err = e.client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "NotFoundException", gone)
	al, err := e.client.ListAliases(ctx, &awskms.ListAliasesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range al.Aliases {
		if *a.AliasName == "alias/gone" {
			t.Fatal("alias of a deleted key survived")
		}
	}
	del := e.sink.named("DeleteKey")
	if len(del) != 1 || del[0].Detail.EventType != "AwsServiceEvent" || del[0].Detail.Resources[0].ARN != arn ||
		del[0].DetailType != kms.DetailTypeServiceEvent || del[0].Detail.EventTime != t0.Add(7*24*time.Hour).Format("2006-01-02T15:04:05.000Z07:00") {
		t.Fatalf("DeleteKey events: %+v", del)
	}
}

func TestLayerStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, dir, nil)
	ctx := context.Background()
	a := e.createKey(t)
	b := e.createKey(t)
	if _, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(a), PendingWindowInDays: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(b), PendingWindowInDays: aws.Int32(10)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(b)}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Close(); err != nil {
		t.Fatal(err)
	}
	e2 := newEnv(t, dir, nil)
	da, err := e2.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(a)})
	if err != nil || da.KeyMetadata.KeyState != types.KeyStatePendingDeletion || !da.KeyMetadata.DeletionDate.Equal(t0.Add(10*24*time.Hour)) {
		t.Fatalf("pending key after restart: %v %+v", err, da)
	}
	db, err := e2.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(b)})
	if err != nil || db.KeyMetadata.KeyState != types.KeyStateDisabled {
		t.Fatalf("cancelled key after restart: %v %+v", err, db)
	}
	e2.clk.Advance(10 * 24 * time.Hour)
	if n := e2.svc.Sweep(ctx); n != 1 {
		t.Fatalf("Sweep deleted %d keys, want 1", n)
	}
	_, err = e2.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(a)})
	wantAPIError(t, err, "NotFoundException", "Key '"+a+"' does not exist")
}

// detail returns the event's detail as generic JSON, as a rule would see it.
func detail(t *testing.T, ev kms.CloudTrailEvent) map[string]any {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["detail-type"] != "AWS API Call via CloudTrail" || m["source"] != "aws.kms" || m["version"] != "0" {
		t.Fatalf("envelope: %s", b)
	}
	if r, ok := m["resources"].([]any); !ok || len(r) != 0 {
		t.Fatalf("top-level resources must be []: %s", b)
	}
	return m["detail"].(map[string]any)
}

func TestCloudTrailEventsOfManagementCalls(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx := context.Background()
	arn := e.createKey(t)
	id := keyID(arn)
	if _, err := e.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(id)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(arn)})
	if err == nil {
		t.Fatal("EnableKey on a pending-deletion key succeeded")
	}
	if _, err := e.client.CancelKeyDeletion(ctx, &awskms.CancelKeyDeletionInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	// Reads are not management write events.
	if _, err := e.client.DescribeKey(ctx, &awskms.DescribeKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ev := range e.sink.events() {
		names = append(names, ev.Detail.EventName)
	}
	if strings.Join(names, ",") != "CreateKey,DisableKey,ScheduleKeyDeletion,EnableKey,CancelKeyDeletion" {
		t.Fatalf("events: %v", names)
	}
	common := func(d map[string]any, name string) {
		t.Helper()
		want := map[string]any{"eventVersion": "1.08", "eventSource": "kms.amazonaws.com", "eventName": name,
			"awsRegion": "us-east-1", "readOnly": false, "eventType": "AwsApiCall", "managementEvent": true,
			"recipientAccountId": "000000000000", "eventCategory": "Management", "eventTime": t0.Format("2006-01-02T15:04:05.000Z07:00"),
			"sourceIPAddress": "127.0.0.1"}
		for k, v := range want {
			if d[k] != v {
				t.Errorf("%s: %s = %v, want %v", name, k, d[k], v)
			}
		}
		if s, _ := d["eventID"].(string); len(s) != 36 {
			t.Errorf("%s: eventID %v", name, d["eventID"])
		}
		if s, _ := d["requestID"].(string); s == "" {
			t.Errorf("%s: no requestID", name)
		}
		if ua, _ := d["userAgent"].(string); !strings.Contains(ua, "aws-sdk-go-v2") {
			t.Errorf("%s: userAgent %q", name, ua)
		}
		res, _ := d["resources"].([]any)
		if len(res) != 1 || res[0].(map[string]any)["ARN"] != arn || res[0].(map[string]any)["type"] != "AWS::KMS::Key" ||
			res[0].(map[string]any)["accountId"] != "000000000000" {
			t.Errorf("%s: resources %v", name, d["resources"])
		}
		ui, _ := d["userIdentity"].(map[string]any)
		if ui["accountId"] != "000000000000" || ui["accessKeyId"] != "AKIDTEST" {
			t.Errorf("%s: userIdentity %v", name, ui)
		}
	}

	dis := detail(t, e.sink.named("DisableKey")[0])
	common(dis, "DisableKey")
	if rp := dis["requestParameters"].(map[string]any); rp["keyId"] != id {
		t.Errorf("DisableKey requestParameters %v", rp)
	}
	if v, ok := dis["responseElements"]; !ok || v != nil {
		t.Errorf("DisableKey responseElements must be null, got %v (present %v)", v, ok)
	}

	sch := detail(t, e.sink.named("ScheduleKeyDeletion")[0])
	common(sch, "ScheduleKeyDeletion")
	if rp := sch["requestParameters"].(map[string]any); rp["keyId"] != id || rp["pendingWindowInDays"] != float64(7) {
		t.Errorf("ScheduleKeyDeletion requestParameters %v", rp)
	}
	re := sch["responseElements"].(map[string]any)
	if re["keyId"] != arn || re["keyState"] != "PendingDeletion" || re["deletionDate"] != "Mar 8, 2026, 12:00:00 PM" || len(re) != 3 {
		t.Errorf("ScheduleKeyDeletion responseElements %v", re)
	}

	en := detail(t, e.sink.named("EnableKey")[0])
	common(en, "EnableKey")
	if en["errorCode"] != "KMSInvalidStateException" || en["errorMessage"] != arn+" is pending deletion." {
		t.Errorf("failed EnableKey: %v %v", en["errorCode"], en["errorMessage"])
	}
	if _, ok := en["responseElements"]; ok {
		t.Errorf("failed call has responseElements")
	}

	can := detail(t, e.sink.named("CancelKeyDeletion")[0])
	common(can, "CancelKeyDeletion")
	if re := can["responseElements"].(map[string]any); re["keyId"] != arn || len(re) != 1 {
		t.Errorf("CancelKeyDeletion responseElements %v", re)
	}
	if _, ok := can["errorCode"]; ok {
		t.Errorf("successful call has errorCode")
	}
}

func TestCloudTrailDelayAndDrop(t *testing.T) {
	e := newEnv(t, "", func(o *kms.Options) {
		o.CloudTrailDelay = time.Minute
		o.CloudTrailDrop = func(name string) bool { return name == "DisableKey" }
	})
	ctx := context.Background()
	arn := e.createKey(t)
	if _, err := e.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.EnableKey(ctx, &awskms.EnableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.sink.events()); n != 0 {
		t.Fatalf("%d events delivered before the delay", n)
	}
	for e.clk.Waiters() < 2 {
		time.Sleep(time.Millisecond)
	}
	e.clk.Advance(time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for len(e.sink.events()) < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var names []string
	for _, ev := range e.sink.events() {
		names = append(names, ev.Detail.EventName)
	}
	if len(names) != 2 || strings.Contains(strings.Join(names, ","), "DisableKey") {
		t.Fatalf("delivered %v, want CreateKey and EnableKey only", names)
	}
}

func rawCall(t *testing.T, url, target, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	if target != "" {
		req.Header.Set("X-Amz-Target", target)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("non-JSON answer %d: %s", resp.StatusCode, b)
	}
	return resp.StatusCode, m
}

func TestBadInputGetsAWSErrors(t *testing.T) {
	e := newEnv(t, "", nil)
	cases := []struct{ target, body, typ string }{
		{"TrentService.Encrypt", `{not json`, "SerializationException"},
		{"TrentService.Encrypt", `[1,2]`, "SerializationException"},
		{"TrentService.ScheduleKeyDeletion", `{"KeyId": 5}`, "SerializationException"},
		{"TrentService.ScheduleKeyDeletion", `{"KeyId": "x", "PendingWindowInDays": "seven"}`, "SerializationException"},
		{"TrentService.NoSuchOperation", `{}`, "UnknownOperationException"},
		{"", `{}`, "UnknownOperationException"},
		{"TrentService.DescribeKey", `{}`, "ValidationException"},
		{"TrentService.CreateAlias", `{"AliasName": "alias/x"}`, "ValidationException"},
		{"TrentService.DescribeKey", `{"KeyId": "does-not-exist"}`, "NotFoundException"},
	}
	for _, c := range cases {
		code, m := rawCall(t, e.url, c.target, c.body)
		if code != 400 || m["__type"] != c.typ {
			t.Errorf("%s %s: %d %v, want 400 %s", c.target, c.body, code, m, c.typ)
		}
	}
	arn := e.createKey(t)
	_, err := e.client.Encrypt(context.Background(), &awskms.EncryptInput{KeyId: aws.String(arn), Plaintext: []byte(strings.Repeat("s", 4097)), EncryptionContext: encCtx})
	wantAPIError(t, err, "ValidationException", "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: Member must have length less than or equal to 4096")
	_, err = e.client.DescribeKey(context.Background(), &awskms.DescribeKeyInput{KeyId: aws.String("alias/none")})
	wantAPIError(t, err, "NotFoundException", "Alias arn:aws:kms:us-east-1:000000000000:alias/none is not found.")
	_, err = e.client.DescribeKey(context.Background(), &awskms.DescribeKeyInput{KeyId: aws.String("0c3f5a3e-0000-4000-8000-000000000000")})
	wantAPIError(t, err, "NotFoundException", "Key 'arn:aws:kms:us-east-1:000000000000:key/0c3f5a3e-0000-4000-8000-000000000000' does not exist")
}

func TestAliasArnResolves(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx := context.Background()
	arn := e.createKey(t)
	if _, err := e.client.CreateAlias(ctx, &awskms.CreateAliasInput{AliasName: aws.String("alias/mrk"), TargetKeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	aliasArn := "arn:aws:kms:us-east-1:000000000000:alias/mrk"
	g, err := e.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(aliasArn), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	if err != nil || *g.KeyId != arn {
		t.Fatalf("GenerateDataKey by alias ARN: %v", err)
	}
	if _, err := e.client.DisableKey(ctx, &awskms.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.GenerateDataKey(ctx, &awskms.GenerateDataKeyInput{KeyId: aws.String(aliasArn), KeySpec: types.DataKeySpecAes256, EncryptionContext: encCtx})
	wantAPIError(t, err, "DisabledException", arn+" is disabled.")
}

func TestSecondServiceIsRefusedClearly(t *testing.T) {
	e := newEnv(t, "", nil)
	_, err := kms.New(kms.Options{DataDir: t.TempDir(), AccountID: "999999999999"})
	if !errors.Is(err, kms.ErrConfigConflict) {
		t.Fatalf("other account: want ErrConfigConflict, got %v", err)
	}
	_, err = kms.New(kms.Options{DataDir: e.dir})
	if !errors.Is(err, kms.ErrOpenDatabase) {
		t.Fatalf("same data dir twice: want ErrOpenDatabase, got %v", err)
	}
}

func TestRunDeletesKeyWhenWindowEndsWithoutRequests(t *testing.T) {
	e := newEnv(t, "", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { e.svc.Run(ctx); close(done) }()
	arn := e.createKey(t)
	if _, err := e.client.ScheduleKeyDeletion(ctx, &awskms.ScheduleKeyDeletionInput{KeyId: aws.String(arn), PendingWindowInDays: aws.Int32(7)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.clk.Waiters() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	e.clk.Advance(7 * 24 * time.Hour)
	for len(e.sink.named("DeleteKey")) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	del := e.sink.named("DeleteKey")
	if len(del) != 1 || del[0].Detail.Resources[0].ARN != arn {
		t.Fatalf("DeleteKey events: %+v", del)
	}
	cancel()
	<-done
	_, err := e.client.DescribeKey(context.Background(), &awskms.DescribeKeyInput{KeyId: aws.String(arn)})
	wantAPIError(t, err, "NotFoundException", "Key '"+arn+"' does not exist")
}
