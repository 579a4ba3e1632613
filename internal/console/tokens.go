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
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/lineage"
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

// Tokens authenticates bearer tokens. Only SHA-256 hashes of tokens are stored (tokens are
// 256-bit random values, so an unsalted hash is as strong as the token): the operator's comes
// from configuration; each org token is two items of the lineage table, written and deleted
// together: PK `TOKEN#<sha256>`, SK `TOKEN` (what authentication reads) and PK `ORG#<orgId>`,
// SK `TOKEN#<tokenId>` (what the org's token list and revocation read). Org tokens expire.
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

// TokenBytes is the randomness of a token: 256 bits.
const TokenBytes = 32

// NewToken returns a fresh random token (TokenBytes of randomness) with a recognisable prefix.
func NewToken(prefix string) string {
	b := make([]byte, TokenBytes)
	_, _ = rand.Read(b)
	return prefix + base64.RawURLEncoding.EncodeToString(b)
}

// Org-token lifetimes (API.md: ttlHours, default 90 days).
const (
	DefaultTokenTTL = 90 * 24 * time.Hour
	MaxTokenTTL     = 366 * 24 * time.Hour
)

// orgTokenPrefix starts every org token.
const orgTokenPrefix = "klo_"

// ErrTokenNotFound is a token id the org does not have (or no longer has).
var ErrTokenNotFound = errors.New("console: no such token")

// TokenInfo describes an org token without its secret.
type TokenInfo struct {
	TokenID   string    `json:"tokenId"`
	OrgID     string    `json:"orgId"`
	CreatedAt time.Time `json:"createdAt"`
	ExpiresAt time.Time `json:"expiresAt"`
	Expired   bool      `json:"expired"`
}

// IssuedToken is a new org token: the secret is shown once, here.
type IssuedToken struct {
	TokenInfo
	Token string `json:"token"`
}

// Authenticate resolves a bearer token to its principal. The operator token is compared in
// constant time; an org token must exist (a revoked one does not) and be unexpired.
func (t *Tokens) Authenticate(ctx context.Context, token string) (Principal, error) {
	if token == "" {
		return Principal{}, errUnauthenticated
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare(sum[:], t.operatorHash) == 1 {
		return Principal{Operator: true}, nil
	}
	if !strings.HasPrefix(token, orgTokenPrefix) {
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
	exp, ok := out.Item["ExpiresAt"].(*types.AttributeValueMemberS)
	if !ok {
		return Principal{}, errUnauthenticated // a token without an expiry does not authenticate
	}
	until, err := time.Parse(time.RFC3339Nano, exp.Value)
	if err != nil || !t.now().Before(until) {
		return Principal{}, errUnauthenticated
	}
	return Principal{OrgID: org.Value}, nil
}

// IssueOrgToken creates a new token for an org, valid for ttl (DefaultTokenTTL when 0), and
// returns it; only its hash is stored.
func (t *Tokens) IssueOrgToken(ctx context.Context, orgID string, ttl time.Duration) (IssuedToken, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return IssuedToken{}, fmt.Errorf("console: token lifetime %s out of range", ttl)
	}
	token := NewToken(orgTokenPrefix)
	hash := HashToken(token)
	now := t.now().UTC()
	info := TokenInfo{TokenID: lineage.NewID(), OrgID: orgID, CreatedAt: now, ExpiresAt: now.Add(ttl)}
	common := func(item map[string]types.AttributeValue) map[string]types.AttributeValue {
		item["OrgID"] = &types.AttributeValueMemberS{Value: orgID}
		item["TokenID"] = &types.AttributeValueMemberS{Value: info.TokenID}
		item["CreatedAt"] = &types.AttributeValueMemberS{Value: info.CreatedAt.Format(time.RFC3339Nano)}
		item["ExpiresAt"] = &types.AttributeValueMemberS{Value: info.ExpiresAt.Format(time.RFC3339Nano)}
		// DynamoDB's TTL removes expired tokens eventually; Authenticate refuses them at once.
		item["TTL"] = &types.AttributeValueMemberN{Value: strconv.FormatInt(info.ExpiresAt.Unix(), 10)}
		return item
	}
	auth := common(tokenKey(hash))
	listed := common(orgTokenKey(orgID, info.TokenID))
	listed["TokenHash"] = &types.AttributeValueMemberS{Value: hash}
	_, err := t.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Put: &types.Put{TableName: aws.String(t.table), Item: auth, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
		{Put: &types.Put{TableName: aws.String(t.table), Item: listed, ConditionExpression: aws.String("attribute_not_exists(PK)")}},
	}})
	if err != nil {
		return IssuedToken{}, fmt.Errorf("store token: %w", err)
	}
	return IssuedToken{TokenInfo: info, Token: token}, nil
}

// ListOrgTokens returns the org's tokens (ids and expiry, never the secret), oldest first.
func (t *Tokens) ListOrgTokens(ctx context.Context, orgID string) ([]TokenInfo, error) {
	out := []TokenInfo{}
	var start map[string]types.AttributeValue
	for {
		page, err := t.client.Query(ctx, &dynamodb.QueryInput{
			TableName:              aws.String(t.table),
			KeyConditionExpression: aws.String("PK = :pk AND begins_with(SK, :sk)"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":pk": &types.AttributeValueMemberS{Value: orgTokenPK(orgID)},
				":sk": &types.AttributeValueMemberS{Value: orgTokenSKPrefix},
			},
			ConsistentRead:    aws.Bool(true),
			ExclusiveStartKey: start,
		})
		if err != nil {
			return nil, fmt.Errorf("list tokens of %s: %w", orgID, err)
		}
		for _, it := range page.Items {
			info := TokenInfo{OrgID: orgID, TokenID: str(it["TokenID"])}
			info.CreatedAt, _ = time.Parse(time.RFC3339Nano, str(it["CreatedAt"]))
			info.ExpiresAt, _ = time.Parse(time.RFC3339Nano, str(it["ExpiresAt"]))
			info.Expired = !t.now().Before(info.ExpiresAt)
			out = append(out, info)
		}
		if len(page.LastEvaluatedKey) == 0 {
			break
		}
		start = page.LastEvaluatedKey
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// RevokeOrgToken deletes an org token: it stops authenticating at once (authentication reads
// consistently). ErrTokenNotFound when the org has no such token.
func (t *Tokens) RevokeOrgToken(ctx context.Context, orgID, tokenID string) error {
	got, err := t.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(t.table), Key: orgTokenKey(orgID, tokenID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return fmt.Errorf("read token %s of %s: %w", tokenID, orgID, err)
	}
	hash := str(got.Item["TokenHash"])
	if got.Item == nil || hash == "" {
		return fmt.Errorf("%w: %s", ErrTokenNotFound, tokenID)
	}
	_, err = t.client.TransactWriteItems(ctx, &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: aws.String(t.table), Key: tokenKey(hash)}},
		{Delete: &types.Delete{TableName: aws.String(t.table), Key: orgTokenKey(orgID, tokenID)}},
	}})
	if err != nil {
		return fmt.Errorf("revoke token %s of %s: %w", tokenID, orgID, err)
	}
	return nil
}

func str(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func tokenKey(hash string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: decl.TokenPartitionPrefix + hash},
		"SK": &types.AttributeValueMemberS{Value: "TOKEN"},
	}
}

const orgTokenSKPrefix = "TOKEN#"

func orgTokenPK(orgID string) string { return "ORG#" + orgID }

func orgTokenKey(orgID, tokenID string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: orgTokenPK(orgID)},
		"SK": &types.AttributeValueMemberS{Value: orgTokenSKPrefix + tokenID},
	}
}
