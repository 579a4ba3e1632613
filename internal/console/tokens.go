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
	"sync"
	"time"

	"github.com/keyline/keyline/internal/console/api"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/secret"
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

// Tokens authenticates bearer tokens. The operator token is read from its secret (Secrets
// Manager; never from the environment) and kept in memory as its SHA-256 for at most
// OperatorTokenCacheTTL, so a rotated token takes effect within that time. Org tokens are
// stored as SHA-256 hashes (tokens are 256-bit random values, so an unsalted hash is as strong
// as the token) through the lineage store, and expire.
type Tokens struct {
	store    TokenStore
	operator secret.Source
	now      func() time.Time

	mu     sync.Mutex
	opHash []byte
	opRead time.Time
}

// OperatorTokenCacheTTL is how long the operator token's hash is used before its secret is
// read again.
const OperatorTokenCacheTTL = 5 * time.Minute

// MinOperatorTokenLen is the shortest operator token accepted (a generated one is longer).
const MinOperatorTokenLen = 32

// ErrOperatorSecret is wrapped when the operator token's secret cannot be read or is unusable:
// nobody authenticates as the operator then (org tokens still work).
var ErrOperatorSecret = errors.New("console: the operator token's secret")

// NewTokens returns a token authority: org tokens through store, the operator's from its secret.
func NewTokens(store TokenStore, operator secret.Source, now func() time.Time) (*Tokens, error) {
	if operator == nil {
		return nil, fmt.Errorf("%w: no source given", ErrOperatorSecret)
	}
	if now == nil {
		now = time.Now
	}
	return &Tokens{store: store, operator: operator, now: now}, nil
}

// operatorHash returns the SHA-256 of the operator token, read from its secret at most once
// per OperatorTokenCacheTTL.
func (t *Tokens) operatorHash(ctx context.Context) ([]byte, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.opHash != nil && t.now().Sub(t.opRead) < OperatorTokenCacheTTL {
		return t.opHash, nil
	}
	v, err := t.operator.Value(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOperatorSecret, err)
	}
	if len(v) < MinOperatorTokenLen {
		return nil, fmt.Errorf("%w: shorter than %d characters", ErrOperatorSecret, MinOperatorTokenLen)
	}
	sum := sha256.Sum256([]byte(v))
	t.opHash, t.opRead = sum[:], t.now()
	return t.opHash, nil
}

// HashToken returns the hex SHA-256 of a token, as the lineage store keeps org tokens.
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
	opHash, opErr := t.operatorHash(ctx)
	if opErr == nil && subtle.ConstantTimeCompare(sum[:], opHash) == 1 {
		return Principal{Operator: true}, nil
	}
	if !strings.HasPrefix(token, orgTokenPrefix) {
		if opErr != nil {
			// Not an org token, and the operator's cannot be checked: an error, not a 401.
			return Principal{}, opErr
		}
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
