package testenv_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/testenv"
)

func TestDynamoDBNewTable(t *testing.T) {
	client := testenv.DynamoDB(t)
	a := testenv.NewTable(t, client)
	b := testenv.NewTable(t, client)
	if a == b {
		t.Fatalf("two tables share the name %q", a)
	}
	ctx := context.Background()
	out, err := client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(a)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Table.TableStatus != types.TableStatusActive {
		t.Fatalf("table status %s", out.Table.TableStatus)
	}
	if len(out.Table.GlobalSecondaryIndexes) != 1 || aws.ToString(out.Table.GlobalSecondaryIndexes[0].IndexName) != "GSI1" {
		t.Fatalf("want one GSI named GSI1, got %+v", out.Table.GlobalSecondaryIndexes)
	}
	ttl, err := client.DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(a)})
	if err != nil {
		t.Fatal(err)
	}
	if d := ttl.TimeToLiveDescription; d == nil || aws.ToString(d.AttributeName) != "ExpiresAt" ||
		(d.TimeToLiveStatus != types.TimeToLiveStatusEnabled && d.TimeToLiveStatus != types.TimeToLiveStatusEnabling) {
		t.Fatalf("TTL not enabled on ExpiresAt: %+v", d)
	}
	// A write to one table is not visible in the other.
	if _, err := client.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(a), Item: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "x"}, "SK": &types.AttributeValueMemberS{Value: "y"},
	}}); err != nil {
		t.Fatal(err)
	}
	got, err := client.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(b), Key: map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "x"}, "SK": &types.AttributeValueMemberS{Value: "y"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got.Item != nil {
		t.Fatalf("table %s sees table %s's item", b, a)
	}
}

func TestDynamoDBEndpointIsShared(t *testing.T) {
	if a, b := testenv.DynamoDBEndpoint(t), testenv.DynamoDBEndpoint(t); a != b {
		t.Fatalf("endpoint changed between calls: %s then %s", a, b)
	}
}

func TestMain(m *testing.M) { testenv.Main(m) }

func TestDynamoDBEndpointFromEnvironment(t *testing.T) {
	t.Setenv(testenv.DynamoDBEndpointEnv, " http://127.0.0.1:1 ")
	if got := testenv.DynamoDBEndpoint(t); got != "http://127.0.0.1:1" {
		t.Fatalf("endpoint %q, want the one from %s", got, testenv.DynamoDBEndpointEnv)
	}
}

// TestDynamoDBLoopbackOnly: the tests' DynamoDB Local (started here or by
// scripts/with-dynamodb.sh) is reachable from loopback only.
func TestDynamoDBLoopbackOnly(t *testing.T) {
	port := testenv.DynamoDBPort(t)
	problems, err := testenv.LoopbackOnlyProblems(port)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("the tests' DynamoDB Local is reachable beyond loopback: %s", p)
	}
}
