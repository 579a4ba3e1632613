// Package provision creates app instances: it resolves the app's key model (R1), checks
// that a customer's key is usable, generates the first generation's data key under it and
// records the app with generation 1 ACTIVE in the lineage.
package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
)

// ErrKeyUnusable is returned when an org may not or cannot use a customer's key: it is outside
// the org's enrolled accounts (or key ARNs), or it fails the describe + round-trip check in the
// org's encryption context. Its text is lineage.KeyRefusedMessage, the same whatever the cause;
// the cause is wrapped for logs.
var ErrKeyUnusable = errors.New("provision: key is not usable")

// keyRefused is ErrKeyUnusable with its cause, for logs; its message is the generic one.
type keyRefused struct{ cause error }

func (e *keyRefused) Error() string { return lineage.KeyRefusedMessage }

// Unwrap returns ErrKeyUnusable and the cause.
func (e *keyRefused) Unwrap() []error { return []error{ErrKeyUnusable, e.cause} }

// Cause is the reason behind the refusal, for logs only.
func (e *keyRefused) Cause() error { return e.cause }

// Provisioner creates apps.
type Provisioner struct {
	Store          *lineage.Store
	Keys           keys.Provider
	ProviderKeyARN string
}

// Request describes a new app instance.
type Request struct {
	AppID    string
	OrgID    string
	KeyModel lineage.KeyModel
	KeyARN   string
}

// CreateApp creates the app. The key model is fixed here, once: a CMK app must name its
// customer's key and never falls back to the provider key (R1). Creating an app that already
// exists with the same settings returns it unchanged (idempotent); with other settings it is
// lineage.ErrDuplicate.
func (p *Provisioner) CreateApp(ctx context.Context, req Request, cause lineage.Cause) (lineage.App, error) {
	if req.KeyModel == "" {
		req.KeyModel = lineage.KeyModelManaged
	}
	model, err := keys.ParseModel(string(req.KeyModel))
	if err != nil {
		return lineage.App{}, fmt.Errorf("%w: %w", lineage.ErrInvalidInput, err)
	}
	ref, err := keys.Resolve(model, req.KeyARN, p.ProviderKeyARN)
	if err != nil {
		return lineage.App{}, fmt.Errorf("%w: %w", lineage.ErrInvalidInput, err)
	}
	if existing, err := p.Store.GetApp(ctx, req.AppID); err == nil {
		gen, gerr := p.Store.GetGeneration(ctx, existing.ID, 1)
		if gerr == nil && existing.OrgID == req.OrgID && existing.KeyModel == req.KeyModel && gen.KeyARN == ref.KeyARN {
			return existing, nil
		}
		return lineage.App{}, fmt.Errorf("%w: app %s already exists", lineage.ErrDuplicate, req.AppID)
	} else if !errors.Is(err, lineage.ErrNotFound) {
		return lineage.App{}, err
	}
	org, err := p.Store.GetOrg(ctx, req.OrgID)
	if err != nil {
		return lineage.App{}, err
	}
	if model == keys.ModelCustomer {
		// B10: only a key in the org's enrolled accounts, checked in the org's context.
		if err := org.CheckKey(ref.KeyARN); err != nil {
			return lineage.App{}, &keyRefused{cause: err}
		}
		if err := p.Keys.Check(ctx, org.ID, ref.KeyARN); err != nil {
			if errors.Is(err, keys.ErrTransient) {
				return lineage.App{}, fmt.Errorf("provision: checking the key: %w", err)
			}
			return lineage.App{}, &keyRefused{cause: err}
		}
	}
	wrapped, err := objects.NewGenerationKey(ctx, p.Keys, org.ID, req.AppID, 1, ref.KeyARN)
	if err != nil && model == keys.ModelCustomer && !errors.Is(err, keys.ErrTransient) {
		return lineage.App{}, &keyRefused{cause: err}
	}
	if err != nil {
		return lineage.App{}, fmt.Errorf("generate the data key of generation 1 under %s: %w", ref.KeyARN, err)
	}
	app := lineage.App{ID: req.AppID, OrgID: req.OrgID, KeyModel: req.KeyModel}
	return p.Store.CreateApp(ctx, app, ref.KeyARN, wrapped, cause)
}
