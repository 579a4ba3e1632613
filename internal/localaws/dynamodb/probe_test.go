package dynamodb_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/keyline/keyline/internal/localaws/dynamodb"
)

func TestProbe(t *testing.T) {
	if os.Getenv("PROBE") == "" {
		return
	}
	p, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	srv := httptest.NewServer(p)
	defer srv.Close()
	t.Logf("proxy %s direct %s", srv.URL, p.Endpoint())
	c := client(srv.URL)
	if os.Getenv("PROBE") == "direct" {
		c = client(p.Endpoint())
	}
	ctx := context.Background()
	if _, err := c.CreateTable(ctx, &awsddb.CreateTableInput{TableName: aws.String("bench"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest}); err != nil {
		t.Fatal(err)
	}
	for n := range 6000 {
		if _, err := c.PutItem(ctx, &awsddb.PutItemInput{TableName: aws.String("bench"),
			Item:                map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprint(n)}},
			ConditionExpression: aws.String("attribute_not_exists(pk)")}, func(o *awsddb.Options) { o.RetryMaxAttempts = 1 }); err != nil {
			t.Fatalf("put %d: %v", n, err)
		}
	}
}
