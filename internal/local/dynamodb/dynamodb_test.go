package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/keyline/keyline/internal/local/dynamodb"
)

func client(url string) *awsddb.Client {
	return awsddb.NewFromConfig(aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""),
		BaseEndpoint: aws.String(url),
	})
}

func start(t *testing.T, dir string) (*dynamodb.Process, *awsddb.Client) {
	t.Helper()
	p, err := dynamodb.Start(context.Background(), dynamodb.Options{DataDir: dir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() { srv.Close(); _ = p.Stop() })
	return p, client(srv.URL)
}

func TestConditionalWritesThroughProxyAndPersistence(t *testing.T) {
	dir := t.TempDir()
	p, c := start(t, dir)
	ctx := context.Background()
	_, err := c.CreateTable(ctx, &awsddb.CreateTableInput{
		TableName:            aws.String("tbl"),
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		BillingMode:          types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatalf("CreateTable: %v", err)
	}
	// 64 writers race for the same 8 items; exactly one wins each.
	var wins, losses atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.PutItem(ctx, &awsddb.PutItemInput{
				TableName: aws.String("tbl"),
				Item: map[string]types.AttributeValue{
					"pk":     &types.AttributeValueMemberS{Value: fmt.Sprintf("item-%d", i%8)},
					"writer": &types.AttributeValueMemberN{Value: fmt.Sprint(i)},
				},
				ConditionExpression: aws.String("attribute_not_exists(pk)"),
			})
			var ccf *types.ConditionalCheckFailedException
			switch {
			case err == nil:
				wins.Add(1)
			case errors.As(err, &ccf):
				losses.Add(1)
			default:
				t.Errorf("PutItem: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins.Load() != 8 || losses.Load() != 56 {
		t.Fatalf("wins %d losses %d, want 8 and 56", wins.Load(), losses.Load())
	}
	_, err = c.GetItem(ctx, &awsddb.GetItemInput{TableName: aws.String("nope"), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "x"}}})
	var rnf *types.ResourceNotFoundException
	if !errors.As(err, &rnf) {
		t.Fatalf("missing table: want ResourceNotFoundException, got %v", err)
	}

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Exited():
	case <-time.After(10 * time.Second):
		t.Fatal("child still running after Stop")
	}
	_, c2 := start(t, dir)
	out, err := c2.GetItem(ctx, &awsddb.GetItemInput{TableName: aws.String("tbl"), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "item-3"}}})
	if err != nil || out.Item == nil {
		t.Fatalf("item lost across restart: %v", err)
	}
}

func TestProxyAnswersWhenChildIsGone(t *testing.T) {
	p, c := start(t, t.TempDir())
	_ = p.Stop()
	_, err := c.ListTables(context.Background(), &awsddb.ListTablesInput{}, func(o *awsddb.Options) { o.RetryMaxAttempts = 1 })
	if err == nil || !strings.Contains(err.Error(), "InternalServerError") {
		t.Fatalf("want InternalServerError from a stopped child, got %v", err)
	}
}

func TestClearErrorsWhenJavaOrJarMissing(t *testing.T) {
	_, err := dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true, JarDir: t.TempDir()})
	if !errors.Is(err, dynamodb.ErrJarMissing) || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("missing jar: %v", err)
	}
	_, err = dynamodb.Start(context.Background(), dynamodb.Options{InMemory: true, Java: "/nonexistent/java"})
	if !errors.Is(err, dynamodb.ErrJavaMissing) || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("missing java: %v", err)
	}
}
