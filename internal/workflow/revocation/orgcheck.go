package revocation

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyline/keyline/internal/keys"
)

// OrgFinder lists the orgs with apps on a key (*lineage.Store satisfies it, with one query
// of the key's org items, whatever the number of apps on the key).
type OrgFinder interface {
	KeyOrgs(ctx context.Context, keyARN string) ([]string, error)
}

// KeyOrgs returns the distinct orgs whose apps have a generation on keyARN, sorted.
func KeyOrgs(ctx context.Context, store OrgFinder, keyARN string) ([]string, error) {
	orgs, err := store.KeyOrgs(ctx, keyARN)
	if err != nil {
		return nil, fmt.Errorf("revocation: orgs on key %s: %w", keyARN, err)
	}
	return orgs, nil
}

// CheckInOrgs runs the key's test round trip in the encryption context of each org in orgs (B10:
// a key policy pinned to an org admits exactly that org's context, so a check in any other
// context would look like a revocation). It returns nil when every check passes; otherwise a
// revoked-class error when one is met, else the first error. With no org there is nothing to
// check: nil.
func CheckInOrgs(ctx context.Context, kp keys.Provider, orgs []string, keyARN string) error {
	var first error
	for _, org := range orgs {
		err := kp.Check(ctx, org, keyARN)
		switch {
		case err == nil:
		case isRevokedClass(err):
			return err
		case first == nil:
			first = err
		}
	}
	return first
}

// checkKey is CheckInOrgs for the orgs with apps on keyARN.
func (s *Service) checkKey(ctx context.Context, keyARN string) error {
	orgs, err := KeyOrgs(ctx, s.store, keyARN)
	if err != nil {
		return err
	}
	return CheckInOrgs(ctx, s.keys, orgs, keyARN)
}

func isRevokedClass(err error) bool { return errors.Is(err, keys.ErrRevoked) }
