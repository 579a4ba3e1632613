package lineage

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/keyline/keyline/internal/decl"
)

// Two kinds of item hold key material or credentials rather than lineage: org API tokens
// (only their SHA-256 is stored) and each app's managed-scope wrapped data key. They live
// in the same table, written here like every other item, each created once with a
// conditional put.
const (
	typeToken    = "TOKEN"
	typeOrgToken = "ORGTOKEN"
	typeScopeKey = "SCOPEKEY"

	orgTokenSKPrefix = "TOKEN#"
)

func tokenPK(hash string) string     { return decl.TokenPartitionPrefix + hash }
func scopeKeySK(scope string) string { return "SCOPEKEY#" + scope }
func orgTokenSK(id string) string    { return orgTokenSKPrefix + id }

// validHash reports whether hash is a hex SHA-256 in lower case.
func validHash(hash string) bool {
	if len(hash) != 2*sha256.Size {
		return false
	}
	for _, c := range hash {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Token is an org API token as stored: the hex SHA-256 of the token, never the token itself.
// It is two items, written and deleted together: PK `TOKEN#<sha256>`, SK `TOKEN` (what
// authentication reads) and PK `ORG#<orgId>`, SK `TOKEN#<tokenId>` (what the org's token list
// and revocation read). Both carry the expiry as the table's TTL attribute (whole seconds), so
// DynamoDB removes expired tokens eventually; readers refuse them at once.
type Token struct {
	Hash      string
	TokenID   string
	OrgID     string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Expired reports whether the token no longer authenticates at now.
func (t Token) Expired(now time.Time) bool { return !now.Before(t.ExpiresAt) }

// tokenRecord is a token item's attributes.
type tokenRecord struct {
	OrgID     string    `json:"OrgID"`
	TokenID   string    `json:"TokenID"`
	TokenHash string    `json:"TokenHash,omitempty"`
	CreatedAt time.Time `json:"CreatedAt"`
	ExpiresAt int64     `json:"ExpiresAt"`
}

func (r tokenRecord) token(hash string) Token {
	return Token{Hash: hash, TokenID: r.TokenID, OrgID: r.OrgID, CreatedAt: r.CreatedAt, ExpiresAt: time.Unix(r.ExpiresAt, 0).UTC()}
}

// PutToken stores a new token (both items) for an org; ErrDuplicate when the hash or the
// token id is stored. CreatedAt defaults to now; ExpiresAt is required and kept to the second.
func (s *Store) PutToken(ctx context.Context, t Token) error {
	if !validHash(t.Hash) {
		return invalid("a token hash is 64 lower-case hex digits")
	}
	if err := validID("org", t.OrgID); err != nil {
		return err
	}
	if err := validID("token", t.TokenID); err != nil {
		return err
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = s.clock.Now()
	}
	if !t.ExpiresAt.After(t.CreatedAt) {
		return invalid("a token must expire after it is created")
	}
	rec := tokenRecord{OrgID: t.OrgID, TokenID: t.TokenID, CreatedAt: t.CreatedAt.UTC(), ExpiresAt: t.ExpiresAt.Unix()}
	auth, err := marshal(rec, typeToken, tokenPK(t.Hash), typeToken)
	if err != nil {
		return err
	}
	rec.TokenHash = t.Hash
	listed, err := marshal(rec, typeOrgToken, orgPK(t.OrgID), orgTokenSK(t.TokenID))
	if err != nil {
		return err
	}
	err = s.transact(ctx, []types.TransactWriteItem{s.putNew(auth), s.putNew(listed)})
	var tf *txFailure
	if errors.As(err, &tf) && (tf.failed(0) || tf.failed(1)) {
		return fmt.Errorf("%w: token exists", ErrDuplicate)
	}
	if err != nil {
		return fmt.Errorf("lineage: store token of org %s: %w", t.OrgID, err)
	}
	return nil
}

// GetToken returns the token stored under a hash, or ErrNotFound. An expired token is
// returned too: the caller decides with Expired.
func (s *Store) GetToken(ctx context.Context, hash string) (Token, error) {
	if !validHash(hash) {
		return Token{}, notFound("token")
	}
	m, err := s.getItem(ctx, tokenPK(hash), typeToken)
	if err != nil {
		return Token{}, err
	}
	if m == nil {
		return Token{}, notFound("token")
	}
	var r tokenRecord
	if err := unmarshal(m, &r); err != nil {
		return Token{}, err
	}
	if r.OrgID == "" || r.ExpiresAt == 0 {
		return Token{}, fmt.Errorf("lineage: token item %s has no org or no expiry", hash[:8])
	}
	return r.token(hash), nil
}

// ListOrgTokens returns an org's tokens, oldest first.
func (s *Store) ListOrgTokens(ctx context.Context, orgID string) ([]Token, error) {
	if err := validID("org", orgID); err != nil {
		return nil, err
	}
	out := []Token{}
	err := s.queryPrefix(ctx, orgPK(orgID), orgTokenSKPrefix, func(m item) error {
		var r tokenRecord
		if err := unmarshal(m, &r); err != nil {
			return err
		}
		out = append(out, r.token(r.TokenHash))
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].CreatedAt.Before(out[j].CreatedAt) })
	return out, nil
}

// DeleteToken removes an org's token (both items): it stops authenticating at once for
// consistent readers. ErrNotFound when the org has no such token.
func (s *Store) DeleteToken(ctx context.Context, orgID, tokenID string) error {
	if err := validID("org", orgID); err != nil {
		return err
	}
	if err := validID("token", tokenID); err != nil {
		return notFound("token %s of org %s", tokenID, orgID)
	}
	m, err := s.getItem(ctx, orgPK(orgID), orgTokenSK(tokenID))
	if err != nil {
		return err
	}
	var r tokenRecord
	if m != nil {
		if err := unmarshal(m, &r); err != nil {
			return err
		}
	}
	if m == nil || r.TokenHash == "" {
		return notFound("token %s of org %s", tokenID, orgID)
	}
	err = s.transact(ctx, []types.TransactWriteItem{
		{Delete: &types.Delete{TableName: aws.String(s.table), Key: keyOf(tokenPK(r.TokenHash), typeToken)}},
		{Delete: &types.Delete{TableName: aws.String(s.table), Key: keyOf(orgPK(orgID), orgTokenSK(tokenID))}},
	})
	if err != nil {
		return fmt.Errorf("lineage: revoke token %s of org %s: %w", tokenID, orgID, err)
	}
	return nil
}

// ScopeKey is an app's wrapped data key for one scope of its data that is not sealed
// under a key generation (the provider-managed scope): PK `APP#<id>`, SK `SCOPEKEY#<scope>`.
type ScopeKey struct {
	AppID      string    `json:"-"`
	Scope      string    `json:"-"`
	KeyARN     string    `json:"KeyARN"`
	WrappedKey []byte    `json:"WrappedKey"`
	CreatedAt  time.Time `json:"CreatedAt"`
}

// CreateScopeKey stores an app's scope key once; ErrDuplicate when one is stored (the
// caller then reads the stored one: whoever wrote first wins).
func (s *Store) CreateScopeKey(ctx context.Context, k ScopeKey) error {
	if err := validID("app", k.AppID); err != nil {
		return err
	}
	if k.Scope == "" || k.KeyARN == "" || len(k.WrappedKey) == 0 {
		return invalid("a scope key needs a scope, a key ARN and a wrapped key")
	}
	if k.CreatedAt.IsZero() {
		k.CreatedAt = s.clock.Now()
	}
	k.CreatedAt = k.CreatedAt.UTC()
	m, err := marshal(k, typeScopeKey, appPK(k.AppID), scopeKeySK(k.Scope))
	if err != nil {
		return err
	}
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: aws.String(s.table), Item: m, ConditionExpression: aws.String("attribute_not_exists(PK)"),
	})
	if isCondFailed(err) {
		return fmt.Errorf("%w: scope key %s of app %s exists", ErrDuplicate, k.Scope, k.AppID)
	}
	if err != nil {
		return fmt.Errorf("lineage: store scope key %s of app %s: %w", k.Scope, k.AppID, err)
	}
	return nil
}

// GetScopeKey returns an app's scope key, or ErrNotFound.
func (s *Store) GetScopeKey(ctx context.Context, appID, scope string) (ScopeKey, error) {
	if err := validID("app", appID); err != nil {
		return ScopeKey{}, err
	}
	m, err := s.getItem(ctx, appPK(appID), scopeKeySK(scope))
	if err != nil {
		return ScopeKey{}, err
	}
	if m == nil {
		return ScopeKey{}, notFound("scope key %s of app %s", scope, appID)
	}
	k := ScopeKey{AppID: appID, Scope: scope}
	if err := unmarshal(m, &k); err != nil {
		return ScopeKey{}, err
	}
	if k.KeyARN == "" || len(k.WrappedKey) == 0 {
		return ScopeKey{}, fmt.Errorf("lineage: scope key item %s of app %s is malformed", scope, appID)
	}
	return k, nil
}
