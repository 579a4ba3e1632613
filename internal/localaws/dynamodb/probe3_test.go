package dynamodb_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/keyline/keyline/internal/localaws/dynamodb"
)

func TestProbe3(t *testing.T) {
	v := os.Getenv("PROBE3")
	if v == "" {
		return
	}
	p, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	target, _ := url.Parse(p.Endpoint())
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }}
	switch v {
	case "default":
	case "flush0":
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 512}
	case "nokeepalive":
		rp.Transport = &http.Transport{DisableKeepAlives: true}
	}
	srv := httptest.NewServer(rp)
	defer srv.Close()
	c := client(srv.URL)
	ctx := context.Background()
	if _, err := c.CreateTable(ctx, &awsddb.CreateTableInput{TableName: aws.String("bench"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for n := range 6000 {
		if _, err := c.PutItem(ctx, &awsddb.PutItemInput{TableName: aws.String("bench"),
			Item:                map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprint(n)}},
			ConditionExpression: aws.String("attribute_not_exists(pk)")}, func(o *awsddb.Options) { o.RetryMaxAttempts = 1 }); err != nil {
			t.Fatalf("put %d after %s: %v", n, time.Since(start), err)
		}
	}
}
