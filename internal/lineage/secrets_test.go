package lineage_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyline/keyline/internal/lineage"
)

func TestTokens(t *testing.T) {
	e := newEnv(t, lineage.Options{})
	ctx := ctxT(t)
	hash := strings.Repeat("0a", 32)
	if _, err := e.store.GetToken(ctx, hash); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("unknown token: %v", err)
	}
	exp := t0.Add(24 * time.Hour)
	if err := e.store.PutToken(ctx, lineage.Token{Hash: hash, TokenID: "tok1", OrgID: "acme", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	got, err := e.store.GetToken(ctx, hash)
	if err != nil || got.OrgID != "acme" || got.Hash != hash || got.TokenID != "tok1" || !got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(exp) {
		t.Fatalf("GetToken: %+v, %v", got, err)
	}
	if got.Expired(exp.Add(-time.Second)) || !got.Expired(exp) {
		t.Errorf("Expired around %s is wrong", exp)
	}
	// A second token with the same hash, or the same id, changes nothing.
	for _, dup := range []lineage.Token{
		{Hash: hash, TokenID: "tok2", OrgID: "globex", ExpiresAt: exp},
		{Hash: strings.Repeat("0b", 32), TokenID: "tok1", OrgID: "acme", ExpiresAt: exp},
	} {
		if err := e.store.PutToken(ctx, dup); !errors.Is(err, lineage.ErrDuplicate) {
			t.Fatalf("PutToken(%+v): %v, want ErrDuplicate", dup, err)
		}
	}
	if got, _ := e.store.GetToken(ctx, hash); got.OrgID != "acme" {
		t.Fatalf("after a duplicate the token belongs to %s", got.OrgID)
	}
	if _, err := e.store.GetToken(ctx, strings.Repeat("0b", 32)); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("a refused duplicate left an item: %v", err)
	}
	for _, bad := range []lineage.Token{
		{Hash: "short", TokenID: "x", OrgID: "acme", ExpiresAt: exp},
		{Hash: strings.Repeat("AB", 32), TokenID: "x", OrgID: "acme", ExpiresAt: exp},
		{Hash: hash, TokenID: "x", OrgID: "a#b", ExpiresAt: exp},
		{Hash: strings.Repeat("0c", 32), TokenID: "", OrgID: "acme", ExpiresAt: exp},
		{Hash: strings.Repeat("0c", 32), TokenID: "x", OrgID: "acme"},
	} {
		if err := e.store.PutToken(ctx, bad); !errors.Is(err, lineage.ErrInvalidInput) {
			t.Errorf("PutToken(%+v): %v, want ErrInvalidInput", bad, err)
		}
	}
	if _, err := e.store.GetToken(ctx, "not-a-hash"); !errors.Is(err, lineage.ErrNotFound) {
		t.Errorf("GetToken of a malformed hash: %v", err)
	}

	// The org's list holds its tokens, oldest first, and no other org's.
	hash2 := strings.Repeat("0d", 32)
	if err := e.store.PutToken(ctx, lineage.Token{Hash: hash2, TokenID: "tok0", OrgID: "acme", CreatedAt: t0.Add(time.Minute), ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	if err := e.store.PutToken(ctx, lineage.Token{Hash: strings.Repeat("0e", 32), TokenID: "tok9", OrgID: "globex", ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	list, err := e.store.ListOrgTokens(ctx, "acme")
	if err != nil || len(list) != 2 || list[0].TokenID != "tok1" || list[1].TokenID != "tok0" || list[1].Hash != hash2 {
		t.Fatalf("ListOrgTokens(acme): %+v, %v", list, err)
	}

	// Deleting removes both items; a second delete, or another org's token, is not found.
	if err := e.store.DeleteToken(ctx, "globex", "tok1"); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("deleting another org's token: %v", err)
	}
	if err := e.store.DeleteToken(ctx, "acme", "tok1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.GetToken(ctx, hash); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("a deleted token still resolves: %v", err)
	}
	if err := e.store.DeleteToken(ctx, "acme", "tok1"); !errors.Is(err, lineage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	if list, _ := e.store.ListOrgTokens(ctx, "acme"); len(list) != 1 || list[0].TokenID != "tok0" {
		t.Fatalf("after the delete acme lists %+v", list)
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
