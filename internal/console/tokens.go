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

	"github.com/keyline/keyline/internal/console/api"
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

// TokenStore keeps org tokens' hashes: the lineage store, the table's one owner.
type TokenStore interface {
	PutToken(ctx context.Context, t lineage.Token) error
	GetToken(ctx context.Context, hash string) (lineage.Token, error)
	ListOrgTokens(ctx context.Context, orgID string) ([]lineage.Token, error)
	DeleteToken(ctx context.Context, orgID, tokenID string) error
}

// Tokens authenticates bearer tokens. Only SHA-256 hashes of tokens are stored (tokens are
// 256-bit random values, so an unsalted hash is as strong as the token): the operator's comes
// from configuration, org tokens through the lineage store. Org tokens expire.
type Tokens struct {
	store        TokenStore
	operatorHash []byte
	now          func() time.Time
}

// NewTokens returns a token authority. operatorTokenHash is the hex SHA-256 of the operator token.
func NewTokens(store TokenStore, operatorTokenHash string, now func() time.Time) (*Tokens, error) {
	h, err := hex.DecodeString(operatorTokenHash)
	if err != nil || len(h) != sha256.Size {
		return nil, fmt.Errorf("console: the operator token hash must be a hex SHA-256 (64 hex digits)")
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{store: store, operatorHash: h, now: now}, nil
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

func (t *Tokens) info(tok lineage.Token) api.TokenInfo {
	return api.TokenInfo{TokenID: tok.TokenID, OrgID: tok.OrgID, CreatedAt: tok.CreatedAt, ExpiresAt: tok.ExpiresAt, Expired: tok.Expired(t.now())}
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
	tok, err := t.store.GetToken(ctx, hex.EncodeToString(sum[:]))
	if errors.Is(err, lineage.ErrNotFound) {
		return Principal{}, errUnauthenticated
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up token: %w", err)
	}
	if tok.Expired(t.now()) {
		return Principal{}, errUnauthenticated
	}
	return Principal{OrgID: tok.OrgID}, nil
}

// IssueOrgToken creates a new token for an org, valid for ttl (DefaultTokenTTL when 0), and
// returns it; only its hash is stored. The expiry is kept to the second (the table's TTL).
func (t *Tokens) IssueOrgToken(ctx context.Context, orgID string, ttl time.Duration) (api.OrgToken, error) {
	if ttl == 0 {
		ttl = DefaultTokenTTL
	}
	if ttl < 0 || ttl > MaxTokenTTL {
		return api.OrgToken{}, fmt.Errorf("console: token lifetime %s out of range", ttl)
	}
	token := NewToken(orgTokenPrefix)
	now := t.now().UTC()
	tok := lineage.Token{
		Hash: HashToken(token), TokenID: lineage.NewID(), OrgID: orgID,
		CreatedAt: now, ExpiresAt: now.Add(ttl).Truncate(time.Second),
	}
	if err := t.store.PutToken(ctx, tok); err != nil {
		return api.OrgToken{}, fmt.Errorf("store token: %w", err)
	}
	return api.OrgToken{TokenInfo: t.info(tok), Token: token}, nil
}

// ListOrgTokens returns the org's tokens (ids and expiry, never the secret), oldest first.
func (t *Tokens) ListOrgTokens(ctx context.Context, orgID string) ([]api.TokenInfo, error) {
	list, err := t.store.ListOrgTokens(ctx, orgID)
	if err != nil {
		return nil, fmt.Errorf("list tokens of %s: %w", orgID, err)
	}
	out := make([]api.TokenInfo, 0, len(list))
	for _, tok := range list {
		out = append(out, t.info(tok))
	}
	return out, nil
}

// RevokeOrgToken deletes an org token: it stops authenticating at once (authentication reads
// consistently). ErrTokenNotFound when the org has no such token.
func (t *Tokens) RevokeOrgToken(ctx context.Context, orgID, tokenID string) error {
	err := t.store.DeleteToken(ctx, orgID, tokenID)
	if errors.Is(err, lineage.ErrNotFound) {
		return fmt.Errorf("%w: %s", ErrTokenNotFound, tokenID)
	}
	if err != nil {
		return fmt.Errorf("revoke token %s of %s: %w", tokenID, orgID, err)
	}
	return nil
}
