package lineage_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/keyline/keyline/internal/lineage"
)

func TestTokens(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	ctx := ctxT(t)
	hash := strings.Repeat("0a", 32)
	if _, err := e.store.GetToken(ctx, hash); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	if err := e.store.PutToken(ctx, lineage.Token{Hash: hash, OrgID: "acme"}); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.GetToken(ctx, hash)
	if err != nil || got.OrgID != "acme" || got.Hash != hash || !got.CreatedAt.Equal(t0) {
		t.Fatalf("GetToken: %+v, %v", got, err)
	}
	// A second token with the same hash changes nothing.
	if err := e.store.PutToken(ctx, lineage.Token{Hash: hash, OrgID: "globex"}); !errors.Is(err, lineage.ErrDuplicate) {
		t.Fatalf("second PutToken: %v", err)
	}
	if got, _ := e.store.GetToken(ctx, hash); got.OrgID != "acme" {
		t.Fatalf("after a duplicate the token belongs to %s", got.OrgID)
	}
	for _, bad := range []lineage.Token{{Hash: "short", OrgID: "acme"}, {Hash: strings.Repeat("AB", 32), OrgID: "acme"}, {Hash: hash, OrgID: "a#b"}} {
		if err := e.store.PutToken(ctx, bad); !errors.Is(err, lineage.ErrInvalidInput) {
			t.Errorf("PutToken(%+v): %v, want ErrInvalidInput", bad, err)
		}
	}
	if _, err := e.store.GetToken(ctx, "not-a-hash"); !errors.Is(err, lineage.ErrNotFound) {
		t.Errorf("GetToken of a malformed hash: %v", err)
	}
}

func TestScopeKeys(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	ctx := ctxT(t)
	if _, err := e.store.GetScopeKey(ctx, "app1", "managed"); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("missing scope key: %v", err)
	}
	k := lineage.ScopeKey{AppID: "app1", Scope: "managed", KeyARN: keyA, WrappedKey: []byte{1, 2, 3}}
	if err := e.store.CreateScopeKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.GetScopeKey(ctx, "app1", "managed")
	if err != nil || got.KeyARN != keyA || !bytes.Equal(got.WrappedKey, k.WrappedKey) || got.AppID != "app1" || got.Scope != "managed" {
		t.Fatalf("GetScopeKey: %+v, %v", got, err)
	}
	// Whoever wrote first wins: a second create is refused and changes nothing.
	k2 := k
	k2.WrappedKey, k2.KeyARN = []byte{9}, keyB
	if err := e.store.CreateScopeKey(ctx, k2); !errors.Is(err, lineage.ErrDuplicate) {
		t.Fatalf("second CreateScopeKey: %v", err)
	}
	if got, _ := e.store.GetScopeKey(ctx, "app1", "managed"); got.KeyARN != keyA {
		t.Fatalf("after a duplicate the scope key is %+v", got)
	}
	if err := e.store.CreateScopeKey(ctx, lineage.ScopeKey{AppID: "app1", Scope: "cmk"}); !errors.Is(err, lineage.ErrInvalidInput) {
		t.Errorf("incomplete scope key: %v", err)
	}
}
