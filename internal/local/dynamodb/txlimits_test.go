package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/keyline/keyline/internal/testenv"
)

// Transaction quotas of DynamoDB: at most 100 actions and 4 MB per transaction.
const (
	maxTransactItems = 100
	maxTransactBytes = 4 << 20
)

// TestTransactionQuotas checks that the local DynamoDB refuses what DynamoDB refuses:
// 100 actions pass and 101 are a ValidationException; a transaction over 4 MB is refused.
func TestTransactionQuotas(t *testing.T) {
	c := testenv.DynamoDB(t)
	table := testenv.NewTable(t, c)
	ctx := context.Background()
	puts := func(n, size int, prefix string) []types.TransactWriteItem {
		out := make([]types.TransactWriteItem, n)
		for i := range out {
			out[i] = types.TransactWriteItem{Put: &types.Put{TableName: aws.String(table), Item: map[string]types.AttributeValue{
				"PK":   &types.AttributeValueMemberS{Value: fmt.Sprintf("%s-%03d", prefix, i)},
				"SK":   &types.AttributeValueMemberS{Value: "META"},
				"data": &types.AttributeValueMemberS{Value: strings.Repeat("d", size)},
			}}}
		}
		return out
	}
	if _, err := c.TransactWriteItems(ctx, &awsddb.TransactWriteItemsInput{TransactItems: puts(maxTransactItems, 10, "ok")}); err != nil {
		t.Fatalf("%d actions: %v", maxTransactItems, err)
	}
	_, err := c.TransactWriteItems(ctx, &awsddb.TransactWriteItemsInput{TransactItems: puts(maxTransactItems+1, 10, "many")})
	wantValidation(t, fmt.Sprintf("%d actions", maxTransactItems+1), err)

	// 10 items of 399 KB each: under the 400 KB item limit, together over 4 MB.
	_, err = c.TransactWriteItems(ctx, &awsddb.TransactWriteItemsInput{TransactItems: puts(11, 399_000, "big")})
	wantValidation(t, "a transaction over 4 MB", err)
	out, err := c.Scan(ctx, &awsddb.ScanInput{TableName: aws.String(table), Select: types.SelectCount})
	if err != nil {
		t.Fatal(err)
	}
	if out.Count != maxTransactItems {
		t.Fatalf("%d items in the table, want %d: a refused transaction wrote something", out.Count, maxTransactItems)
	}
}

func wantValidation(t *testing.T, what string, err error) {
	t.Helper()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "ValidationException" {
		t.Fatalf("%s: %v, want a ValidationException", what, err)
	}
	t.Logf("%s: %s", what, ae.ErrorMessage())
}

// TestMain stops the shared DynamoDB Local the quota test may have started.
func TestMain(m *testing.M) { testenv.Main(m) }
