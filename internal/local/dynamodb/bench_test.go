package dynamodb_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/keyline/keyline/internal/local/dynamodb"
)

// BenchmarkConditionalWriteProxyOverhead compares a conditional PutItem through the
// reverse proxy with the same call made to DynamoDB Local directly.
func BenchmarkConditionalWriteProxyOverhead(b *testing.B) {
	p, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Stop()
	srv := httptest.NewServer(p)
	defer srv.Close()
	viaProxy, direct := client(srv.URL), client(p.Endpoint())
	ctx := context.Background()
	if _, err := direct.CreateTable(ctx, &awsddb.CreateTableInput{TableName: aws.String("bench"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest}); err != nil {
		b.Fatal(err)
	}
	n := 0
	put := func(c *awsddb.Client) {
		n++
		if _, err := c.PutItem(ctx, &awsddb.PutItemInput{TableName: aws.String("bench"),
			Item:                map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: fmt.Sprint(n)}},
			ConditionExpression: aws.String("attribute_not_exists(pk)")}, func(o *awsddb.Options) { o.RetryMaxAttempts = 1 }); err != nil {
			b.Fatalf("put %d via %v: %v", n, c == viaProxy, err)
		}
	}
	for range 50 {
		put(viaProxy)
		put(direct)
	}
	// Many alternating pairs per iteration (make bench runs one), medians of each side.
	const pairs = 200
	var proxied, directs []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for range pairs {
			s := time.Now()
			put(viaProxy)
			proxied = append(proxied, time.Since(s))
			s = time.Now()
			put(direct)
			directs = append(directs, time.Since(s))
		}
	}
	b.StopTimer()
	median := func(ds []time.Duration) float64 {
		slices.Sort(ds)
		return float64(ds[len(ds)/2]) / float64(time.Microsecond)
	}
	b.ReportMetric(median(proxied)-median(directs), "dynamodb_proxy_overhead_us")
	b.ReportMetric(median(directs), "dynamodb_direct_put_us")
}
