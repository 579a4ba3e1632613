package objects

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/decl"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/sealing"
)

// ContextKeyScope is the encryption-context entry that marks a managed-scope data key.
const ContextKeyScope = decl.ContextKeyScope

// GenerationContext is the encryption context of an app generation's data key
// (Generation.WrappedDataKey): org, app, generation, purpose "data".
func GenerationContext(orgID, appID string, generation int) map[string]string {
	return keys.EncryptionContext(orgID, appID, generation, keys.PurposeData)
}

// ManagedScopeContext is the encryption context of an app's managed-scope data key (wrapped
// under the provider key).
func ManagedScopeContext(orgID, appID string) map[string]string {
	c := keys.EncryptionContext(orgID, appID, 0, keys.PurposeData)
	c[ContextKeyScope] = string(ScopeManaged)
	return c
}

// NewGenerationKey generates the data key of an org's app generation under keyARN (one KMS
// call) and returns it wrapped, for lineage.Store.CreateApp and BeginReencrypt. The plaintext
// is destroyed before returning.
func NewGenerationKey(ctx context.Context, p keys.Provider, orgID, appID string, generation int, keyARN string) ([]byte, error) {
	dk, err := p.GenerateDataKey(ctx, keyARN, GenerationContext(orgID, appID, generation))
	if err != nil {
		return nil, err
	}
	defer dk.Destroy()
	return append([]byte(nil), dk.Wrapped...), nil
}

// wrappedKey is a wrapped data key with what unwraps it.
type wrappedKey struct {
	KeyARN     string
	Context    map[string]string
	Wrapped    []byte
	Generation int // header generation: n for CMK scope, 0 for managed scope
	// Revoked: the key of the generation is revoked (read for opening only): nothing new
	// may be sealed under it, whatever a cache still holds (B9).
	Revoked bool
}

func (k wrappedKey) header() *sealing.Header {
	return &sealing.Header{KeyARN: k.KeyARN, EncryptionContext: k.Context, WrappedKey: k.Wrapped, Generation: k.Generation}
}

// scopeKeys keeps each app's managed-scope wrapped key (through the lineage store: PK
// APP#id, SK SCOPEKEY#managed), creating it on first use with a conditional put.
type scopeKeys struct {
	store       Lineage
	providerKey string
	keys        keys.Provider
	now         func() time.Time

	mu    sync.Mutex
	cache map[string]wrappedKey
}

func (s *scopeKeys) get(ctx context.Context, orgID, appID string, create bool) (wrappedKey, error) {
	s.mu.Lock()
	k, ok := s.cache[appID]
	s.mu.Unlock()
	if ok {
		return k, nil
	}
	k, found, err := s.read(ctx, orgID, appID)
	if err != nil {
		return wrappedKey{}, err
	}
	if !found {
		if !create {
			return wrappedKey{}, fmt.Errorf("%w: app %s has no managed-scope key", ErrNotFound, appID)
		}
		if k, err = s.create(ctx, orgID, appID); err != nil {
			return wrappedKey{}, err
		}
	}
	s.mu.Lock()
	s.cache[appID] = k
	s.mu.Unlock()
	return k, nil
}

func (s *scopeKeys) read(ctx context.Context, orgID, appID string) (wrappedKey, bool, error) {
	k, err := s.store.GetScopeKey(ctx, appID, string(ScopeManaged))
	if errors.Is(err, lineage.ErrNotFound) {
		return wrappedKey{}, false, nil
	}
	if err != nil {
		return wrappedKey{}, false, fmt.Errorf("objects: read managed-scope key of %s: %w", appID, err)
	}
	return wrappedKey{KeyARN: k.KeyARN, Context: ManagedScopeContext(orgID, appID), Wrapped: k.WrappedKey}, true, nil
}

func (s *scopeKeys) create(ctx context.Context, orgID, appID string) (wrappedKey, error) {
	if s.providerKey == "" {
		return wrappedKey{}, errors.New("objects: no provider key ARN configured for managed-scope data")
	}
	encCtx := ManagedScopeContext(orgID, appID)
	dk, err := s.keys.GenerateDataKey(ctx, s.providerKey, encCtx)
	if err != nil {
		return wrappedKey{}, err
	}
	wrapped := append([]byte(nil), dk.Wrapped...)
	dk.Destroy()
	err = s.store.CreateScopeKey(ctx, lineage.ScopeKey{AppID: appID, Scope: string(ScopeManaged), KeyARN: s.providerKey,
		WrappedKey: wrapped, CreatedAt: s.now()})
	if errors.Is(err, lineage.ErrDuplicate) {
		// Someone else created it first: use theirs.
		k, found, err := s.read(ctx, orgID, appID)
		if err != nil {
			return wrappedKey{}, err
		}
		if !found {
			return wrappedKey{}, fmt.Errorf("objects: managed-scope key of %s vanished", appID)
		}
		return k, nil
	}
	if err != nil {
		return wrappedKey{}, fmt.Errorf("objects: store managed-scope key of %s: %w", appID, err)
	}
	return wrappedKey{KeyARN: s.providerKey, Context: encCtx, Wrapped: wrapped}, nil
}

// orgCache remembers each app's org (an app never changes org), so reads of managed-scope
// objects need no app lookup after the first.
type orgCache struct {
	mu   sync.Mutex
	orgs map[string]string
}

// orgOf returns the org of appID.
func (s *S3Source) orgOf(ctx context.Context, appID string) (string, error) {
	s.orgs.mu.Lock()
	org, ok := s.orgs.orgs[appID]
	s.orgs.mu.Unlock()
	if ok {
		return org, nil
	}
	app, err := s.cfg.Lineage.GetApp(ctx, appID)
	if err != nil {
		return "", mapLineage(err)
	}
	s.orgs.mu.Lock()
	s.orgs.orgs[appID] = app.OrgID
	s.orgs.mu.Unlock()
	return app.OrgID, nil
}
