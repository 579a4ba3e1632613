package eventbridge

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/smithy-go"
	"github.com/keyline/keyline/internal/clock/clocktest"
)

// sdkClient serves b over loopback HTTP and returns a real SDK client for it.
func sdkClient(t *testing.T, b *Bus) *eventbridge.Client {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return eventbridge.New(eventbridge.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	})
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode() + ": " + ae.ErrorMessage()
	}
	return ""
}

func TestSDKTestEventPattern(t *testing.T) {
	c := sdkClient(t, newBus(t, Options{}))
	ctx := context.Background()
	event := `{"id":"1","source":"aws.kms","detail-type":"AWS API Call via CloudTrail","account":"123456789012","region":"us-east-1","time":"2026-01-01T00:00:00Z","resources":[],"detail":{"eventName":"DisableKey"}}`
	for pattern, want := range map[string]bool{
		`{"source":["aws.kms"],"detail":{"eventName":[{"prefix":"Disable"}]}}`: true,
		`{"source":["aws.s3"]}`: false,
	} {
		out, err := c.TestEventPattern(ctx, &eventbridge.TestEventPatternInput{EventPattern: aws.String(pattern), Event: aws.String(event)})
		if err != nil {
			t.Fatal(err)
		}
		if out.Result != want {
			t.Errorf("%s: %v", pattern, out.Result)
		}
	}
	_, err := c.TestEventPattern(ctx, &eventbridge.TestEventPatternInput{EventPattern: aws.String(`{"source":"aws.kms"}`), Event: aws.String(event)})
	var ipe *types.InvalidEventPatternException
	if !errors.As(err, &ipe) || ipe.ErrorMessage() != `Event pattern is not valid. Reason: "source" must be an object or an array` {
		t.Fatalf("invalid pattern: %v", err)
	}
	_, err = c.TestEventPattern(ctx, &eventbridge.TestEventPatternInput{EventPattern: aws.String(`{"a":["b"]}`), Event: aws.String(`"plain"`)})
	if got := apiCode(err); got != "ValidationException: Parameter Event is not valid." {
		t.Fatalf("plain event: %q (%v)", got, err)
	}
}

func TestSDKRulesTargetsAndPutEvents(t *testing.T) {
	rec := newRecorder()
	b := newBus(t, Options{Invoker: rec, Clock: clocktest.NewFake(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC))})
	c := sdkClient(t, b)
	ctx := context.Background()

	put, err := c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("orders"), EventPattern: aws.String(`{"source":["shop"],"detail":{"total":[{"numeric":[">",100]}]}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(put.RuleArn) != "arn:aws:events:us-east-1:000000000000:rule/orders" {
		t.Fatalf("arn %s", aws.ToString(put.RuleArn))
	}
	if _, err := c.PutTargets(ctx, &eventbridge.PutTargetsInput{Rule: aws.String("orders"), Targets: []types.Target{
		{Id: aws.String("big"), Arn: aws.String(lambdaArn("big-orders"))},
	}}); err != nil {
		t.Fatal(err)
	}
	out, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []types.PutEventsRequestEntry{
		{Source: aws.String("shop"), DetailType: aws.String("Order"), Detail: aws.String(`{"total":150}`), Time: aws.Time(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
		{Source: aws.String("shop"), DetailType: aws.String("Order"), Detail: aws.String(`{"total":50}`)},
		{Source: aws.String("aws.kms"), DetailType: aws.String("AWS API Call via CloudTrail"), Detail: aws.String(`{}`)},
		{Source: aws.String("shop"), DetailType: aws.String("Order"), Detail: aws.String(`not json`)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if out.FailedEntryCount != 2 || len(out.Entries) != 4 {
		t.Fatalf("PutEvents: %+v", out)
	}
	if aws.ToString(out.Entries[0].EventId) == "" || out.Entries[0].ErrorCode != nil {
		t.Fatalf("entry 0: %+v", out.Entries[0])
	}
	if aws.ToString(out.Entries[2].ErrorCode) != "NotAuthorizedForSourceException" || aws.ToString(out.Entries[2].ErrorMessage) != "Not authorized for the source." {
		t.Fatalf("aws. source: %+v", out.Entries[2])
	}
	if aws.ToString(out.Entries[3].ErrorCode) != "MalformedDetail" {
		t.Fatalf("bad detail: %+v", out.Entries[3])
	}
	drain(t, b)
	calls := rec.got("big-orders")
	if len(calls) != 1 {
		t.Fatalf("deliveries: %d", len(calls))
	}
	var env Envelope
	if err := json.Unmarshal(calls[0], &env); err != nil {
		t.Fatal(err)
	}
	if env.ID != aws.ToString(out.Entries[0].EventId) || env.Time != "2026-01-02T03:04:05Z" || env.Source != "shop" || string(env.Detail) != `{"total":150}` {
		t.Fatalf("envelope: %+v", env)
	}

	desc, err := c.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("orders")})
	if err != nil || desc.State != types.RuleStateEnabled || aws.ToString(desc.EventBusName) != "default" {
		t.Fatalf("DescribeRule: %+v %v", desc, err)
	}
	list, err := c.ListRules(ctx, &eventbridge.ListRulesInput{NamePrefix: aws.String("ord")})
	if err != nil || len(list.Rules) != 1 || aws.ToString(list.Rules[0].Name) != "orders" {
		t.Fatalf("ListRules: %+v %v", list, err)
	}
	targets, err := c.ListTargetsByRule(ctx, &eventbridge.ListTargetsByRuleInput{Rule: aws.String("orders")})
	if err != nil || len(targets.Targets) != 1 || aws.ToString(targets.Targets[0].Arn) != lambdaArn("big-orders") {
		t.Fatalf("ListTargetsByRule: %+v %v", targets, err)
	}
	_, err = c.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("orders")})
	if got := apiCode(err); got != "ValidationException: Rule can't be deleted since it has targets." {
		t.Fatalf("DeleteRule with targets: %q", got)
	}
	if _, err := c.RemoveTargets(ctx, &eventbridge.RemoveTargetsInput{Rule: aws.String("orders"), Ids: []string{"big"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRule(ctx, &eventbridge.DeleteRuleInput{Name: aws.String("orders")}); err != nil {
		t.Fatal(err)
	}
	_, err = c.DescribeRule(ctx, &eventbridge.DescribeRuleInput{Name: aws.String("orders")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) || nf.ErrorMessage() != "Rule orders does not exist on EventBus default." {
		t.Fatalf("DescribeRule after delete: %v", err)
	}
	_, err = c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("bad"), EventPattern: aws.String(`{"a":[]}`)})
	var ipe *types.InvalidEventPatternException
	if !errors.As(err, &ipe) || ipe.ErrorMessage() != "Event pattern is not valid. Reason: Empty arrays are not allowed" {
		t.Fatalf("PutRule with a bad pattern: %v", err)
	}
	_, err = c.PutRule(ctx, &eventbridge.PutRuleInput{Name: aws.String("bad"), ScheduleExpression: aws.String("rate(5 minute)")})
	if got := apiCode(err); got != "ValidationException: Parameter ScheduleExpression is not valid." {
		t.Fatalf("PutRule with a bad schedule: %q", got)
	}
	if _, err := c.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: make([]types.PutEventsRequestEntry, 11)}); err == nil {
		t.Fatal("11 entries accepted")
	}

	bus, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("audit")})
	if err != nil || !strings.HasSuffix(aws.ToString(bus.EventBusArn), ":event-bus/audit") {
		t.Fatalf("CreateEventBus: %+v %v", bus, err)
	}
	if _, err := c.CreateEventBus(ctx, &eventbridge.CreateEventBusInput{Name: aws.String("audit")}); !strings.HasPrefix(apiCode(err), "ResourceAlreadyExistsException") {
		t.Fatalf("CreateEventBus twice: %v", err)
	}
	if d, err := c.DescribeEventBus(ctx, &eventbridge.DescribeEventBusInput{Name: aws.String("audit")}); err != nil || aws.ToString(d.Name) != "audit" {
		t.Fatalf("DescribeEventBus: %+v %v", d, err)
	}
}

func TestHTTPProtocolErrors(t *testing.T) {
	srv := httptest.NewServer(newBus(t, Options{}))
	defer srv.Close()
	do := func(target, body string) (int, map[string]string) {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		req.Header.Set("X-Amz-Target", target)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]string
		json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := do("AWSEvents.Nope", "{}"); code != 400 || m["__type"] != "UnknownOperationException" {
		t.Errorf("unknown op: %d %v", code, m)
	}
	if code, m := do("AWSEvents.PutRule", "{not json"); code != 400 || m["__type"] != "SerializationException" {
		t.Errorf("bad json: %d %v", code, m)
	}
	if code, m := do("AWSEvents.PutRule", `{"Name":"x"}`); code != 400 || m["__type"] != "ValidationException" {
		t.Errorf("missing pattern: %d %v", code, m)
	}
	if code, m := do("Other.PutRule", `{}`); code != 400 || m["__type"] != "UnknownOperationException" {
		t.Errorf("other service: %d %v", code, m)
	}
}
