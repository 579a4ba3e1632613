package revocation

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
)

// GenerationFinder lists the generations naming a key (*lineage.Store satisfies it).
type GenerationFinder interface {
	FindGenerationsByKey(ctx context.Context, keyARN string) ([]lineage.Generation, error)
}

// KeyOrgs returns the distinct orgs whose apps have a generation on keyARN, sorted.
func KeyOrgs(ctx context.Context, store GenerationFinder, keyARN string) ([]string, error) {
	gens, err := store.FindGenerationsByKey(ctx, keyARN)
	if err != nil {
		return nil, fmt.Errorf("revocation: find generations of %s: %w", keyARN, err)
	}
	var orgs []string
	for _, g := range gens {
		if g.OrgID != "" && !slices.Contains(orgs, g.OrgID) {
			orgs = append(orgs, g.OrgID)
		}
	}
	slices.Sort(orgs)
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
