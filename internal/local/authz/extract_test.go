package authz_test

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	ebtypes "github.com/aws/aws-sdk-go-v2/service/eventbridge/types"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/local/authz"
	"github.com/keyline/keyline/internal/local/endpoint"
)

type schemas map[string]authz.TableKeys

func (s schemas) TableKeys(_ context.Context, t string) (authz.TableKeys, error) {
	k, ok := s[t]
	if !ok {
		return authz.TableKeys{}, errors.New("no table " + t)
	}
	return k, nil
}

// recorder denies every check and keeps them, so a test sees what each request needs.
type recorder struct{ checks []authz.Check }

func (r *recorder) Authorize(_ context.Context, p authz.Principal, c authz.Check) authz.Decision {
	r.checks = append(r.checks, c)
	return authz.Decision{Message: "User: " + p.ARN + " is not authorized to perform: " + c.Action + " on resource: " + c.Resource}
}

// TestChecksOfDynamoDBEventsAndStates sends real SDK requests through an endpoint whose
// authorizer denies everything: each request's checks are what AWS evaluates, and each
// denial arrives as the SDK's AccessDeniedException.
func TestChecksOfDynamoDBEventsAndStates(t *testing.T) {
	srv := endpoint.New(endpoint.Options{Addr: "127.0.0.1:0"})
	never := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		t.Error("a denied request reached its service")
		w.WriteHeader(500)
	})
	for _, s := range []string{endpoint.ServiceDynamoDB, endpoint.ServiceEvents, endpoint.ServiceStates} {
		srv.Register(s, never)
	}
	srv.RegisterExtractor(endpoint.ServiceDynamoDB, authz.DynamoDBExtractor(authz.KeylineAccount,
		schemas{"lineage": {HashKey: "PK", Indexes: map[string]string{"byKey": "KeyArn"}}}))
	srv.RegisterExtractor(endpoint.ServiceEvents, authz.EventsExtractor(authz.KeylineAccount))
	srv.RegisterExtractor(endpoint.ServiceStates, authz.StatesExtractor())
	rec := &recorder{}
	srv.SetAuthorizer(rec, authz.NewPrincipals(authz.KeylineAccount, []string{"backuplease"}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{url: srv.URL()}
	cfg := e.cfg(authz.FunctionAccessKeyID("backuplease"))
	ddb := awsddb.NewFromConfig(cfg)
	s := func(v string) ddbtypes.AttributeValue { return &ddbtypes.AttributeValueMemberS{Value: v} }
	table := "arn:aws:dynamodb:us-east-1:000000000000:table/lineage"

	cases := []struct {
		name string
		call func() error
		want []authz.Check
	}{
		{"TransactWriteItems", func() error {
			_, err := ddb.TransactWriteItems(ctx, &awsddb.TransactWriteItemsInput{TransactItems: []ddbtypes.TransactWriteItem{
				{Put: &ddbtypes.Put{TableName: aws.String("lineage"), Item: map[string]ddbtypes.AttributeValue{"PK": s("APP#a"), "SK": s("META")}}},
				{ConditionCheck: &ddbtypes.ConditionCheck{TableName: aws.String("lineage"), Key: map[string]ddbtypes.AttributeValue{"PK": s("KEY#k"), "SK": s("META")}, ConditionExpression: aws.String("attribute_exists(PK)")}},
			}})
			return err
		}, []authz.Check{
			{Action: "dynamodb:PutItem", Resource: table, Context: map[string]authz.Value{authz.CtxLeadingKeys: authz.Set("APP#a")}},
			{Action: "dynamodb:ConditionCheckItem", Resource: table, Context: map[string]authz.Value{authz.CtxLeadingKeys: authz.Set("KEY#k")}},
		}},
		{"Query on an index", func() error {
			_, err := ddb.Query(ctx, &awsddb.QueryInput{TableName: aws.String("lineage"), IndexName: aws.String("byKey"),
				KeyConditionExpression:    aws.String("#k = :k"),
				ExpressionAttributeNames:  map[string]string{"#k": "KeyArn"},
				ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":k": s("arn:k")}})
			return err
		}, []authz.Check{{Action: "dynamodb:Query", Resource: table + "/index/byKey", Context: map[string]authz.Value{authz.CtxLeadingKeys: authz.Set("arn:k")}}}},
		{"BatchWriteItem", func() error {
			_, err := ddb.BatchWriteItem(ctx, &awsddb.BatchWriteItemInput{RequestItems: map[string][]ddbtypes.WriteRequest{"lineage": {
				{PutRequest: &ddbtypes.PutRequest{Item: map[string]ddbtypes.AttributeValue{"PK": s("APP#b"), "SK": s("X")}}},
				{DeleteRequest: &ddbtypes.DeleteRequest{Key: map[string]ddbtypes.AttributeValue{"PK": s("APP#a"), "SK": s("Y")}}},
			}}})
			return err
		}, []authz.Check{{Action: "dynamodb:BatchWriteItem", Resource: table, Context: map[string]authz.Value{authz.CtxLeadingKeys: authz.Set("APP#a", "APP#b")}}}},
		{"PutEvents", func() error {
			_, err := eventbridge.NewFromConfig(cfg).PutEvents(ctx, &eventbridge.PutEventsInput{Entries: []ebtypes.PutEventsRequestEntry{
				{EventBusName: aws.String("keyline"), Source: aws.String("keyline"), DetailType: aws.String("App Deactivated"), Detail: aws.String("{}")}}})
			return err
		}, []authz.Check{{Action: "events:PutEvents", Resource: "arn:aws:events:us-east-1:000000000000:event-bus/keyline",
			Context: map[string]authz.Value{authz.CtxEventsSource: authz.Set("keyline"), authz.CtxEventsDetailType: authz.Set("App Deactivated")}}}},
		{"StartExecution", func() error {
			_, err := sfn.NewFromConfig(cfg).StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String("arn:aws:states:us-east-1:000000000000:stateMachine:backup")})
			return err
		}, []authz.Check{{Action: "states:StartExecution", Resource: "arn:aws:states:us-east-1:000000000000:stateMachine:backup"}}},
	}
	for _, c := range cases {
		rec.checks = nil
		err := c.call()
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "AccessDeniedException" {
			t.Fatalf("%s: %v, want AccessDeniedException", c.name, err)
		}
		if len(rec.checks) == 0 {
			t.Fatalf("%s: no checks", c.name)
		}
		// The authorizer stops at the first denial: compare what was asked, in order.
		for i, got := range rec.checks {
			w := c.want[i]
			if got.Action != w.Action || got.Resource != w.Resource || got.ResourceAccount != authz.KeylineAccount {
				t.Fatalf("%s check %d: %s on %s (%s), want %s on %s", c.name, i, got.Action, got.Resource, got.ResourceAccount, w.Action, w.Resource)
			}
			for k, v := range w.Context {
				if !reflect.DeepEqual(got.Context[k], v) {
					t.Fatalf("%s check %d: %s = %+v, want %+v", c.name, i, k, got.Context[k], v)
				}
			}
		}
	}
	// The transaction's second action is checked once the first is allowed.
	srv.SetAuthorizer(authz.AuthorizerFunc(func(ctx context.Context, p authz.Principal, c authz.Check) authz.Decision {
		if c.Action == "dynamodb:PutItem" {
			return authz.Decision{Allowed: true}
		}
		return rec.Authorize(ctx, p, c)
	}), authz.NewPrincipals(authz.KeylineAccount, []string{"backuplease"}))
	rec.checks = nil
	if err := cases[0].call(); err == nil || len(rec.checks) != 1 || rec.checks[0].Action != "dynamodb:ConditionCheckItem" {
		t.Fatalf("transaction's condition check: %v %+v", err, rec.checks)
	}
}
