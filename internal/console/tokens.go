package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/decl"
)

// Principal is who a request comes from: the operator, or one org.
type Principal struct {
	Operator bool
	OrgID    string
}

// Actor names the principal in audit entries.
func (p Principal) Actor() string {
	if p.Operator {
		return "operator"
	}
	return "org:" + p.OrgID
}

// mayAccessOrg reports whether the principal may see the org's apps.
func (p Principal) mayAccessOrg(orgID string) bool { return p.Operator || p.OrgID == orgID }

// errUnauthenticated is a missing or unknown token.
var errUnauthenticated = errors.New("console: unauthenticated")

// Tokens authenticates bearer tokens. Only SHA-256 hashes of tokens are stored: the
// operator's comes from configuration, org tokens live in the lineage table
// (PK `TOKEN#<sha256>`, SK `TOKEN`).
type Tokens struct {
	client       *dynamodb.Client
	table        string
	operatorHash []byte
	now          func() time.Time
}

// NewTokens returns a token authority. operatorTokenHash is the hex SHA-256 of the operator token.
func NewTokens(client *dynamodb.Client, table, operatorTokenHash string, now func() time.Time) (*Tokens, error) {
	h, err := hex.DecodeString(operatorTokenHash)
	if err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("console: the operator token hash must be a hex SHA-256 (64 hex digits)")
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{client: client, table: table, operatorHash: h, now: now}, nil
}

// HashToken returns the hex SHA-256 of a token, as configuration stores the operator's.
func HashToken(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

// NewToken returns a fresh random token with a recognisable prefix.
func NewToken(prefix string) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Authenticate resolves a bearer token to its principal.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, errUnauthenticated
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], t.operatorHash) == 1 {
		return Principal{Operator: true}, nil
	}
	if !strings.HasPrefix(token, "klo_") {
		return Principal{}, errUnauthenticated
	}
	out, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      aws.String(t.table),
		Key:            tokenKey(hex.EncodeToString(sum[:])),
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return Principal{}, fmt.Errorf("look up token: %w", err)
	}
	org, ok := out.Item["OrgID"].(*types.AttributeValueMemberS)
	if !ok {
		return Principal{}, errUnauthenticated
	}
	return Principal{OrgID: org.Value}, nil
}

// IssueOrgToken creates a new token for an org and returns it; only its hash is stored.
func (t *Tokens) IssueOrgToken(ctx context.Context, orgID string) (string, error) {
	token := NewToken("klo_")
	item := tokenKey(HashToken(token))
	item["OrgID"] = &types.AttributeValueMemberS{Value: orgID}
	item["CreatedAt"] = &types.AttributeValueMemberS{Value: t.now().UTC().Format(time.RFC3339Nano)}
	_, err := t.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           aws.String(t.table),
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if err != nil {
		return "", fmt.Errorf("store token: %w", err)
	}
	return token, nil
}

func tokenKey(hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: decl.TokenPartitionPrefix + hash},
		"SK": &types.AttributeValueMemberS{Value: "TOKEN"},
	}
}
