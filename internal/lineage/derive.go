package lineage

import (
	"context"
	"fmt"
	"strings"
)

// Derived state (K1): an app's DEACTIVATED status, a generation's usability and a backup's
// restorability are computed on every read from the app item, the generation's stored
// state (ACTIVE, PENDING, RETIRED), the key item and the app's hold; none of them is stored.

// deriveApp sets app.Status and app.StatusReason from its stored state, its hold and the
// state of its active key (keys holds at least that key when it has one).
func deriveApp(app *App, keys map[string]Key) {
	legacy := app.Status == AppDeactivated // written before the key item existed
	legacyReason := app.StatusReason
	app.Status = storedStatus(*app)
	if app.Status == AppActive {
		app.StatusReason = ""
	} else if !strings.HasPrefix(app.StatusReason, "re-encrypting") {
		app.StatusReason = fmt.Sprintf("re-encrypting from generation %d to generation %d", app.ActiveGeneration, app.PendingGeneration)
	}
	k, ok := keys[app.ActiveKeyARN]
	switch {
	case app.Hold != "":
		app.Status, app.StatusReason = AppDeactivated, "held by an operator: "+app.Hold
	case ok && !k.Usable():
		app.Status, app.StatusReason = AppDeactivated, k.Reason()
	case legacy && (!ok || k.Version == 0):
		// A revocation recorded per app by the previous code, on a key that has no key item
		// yet: read as it was written until Migrate moves it onto the key item.
		app.Status, app.StatusReason = AppDeactivated, legacyReason
	}
}

// deriveGen sets the generation's derived key fields, and maps the legacy REVOKED state onto
// the state the app gives it (ACTIVE when it is the app's active generation, PENDING when
// pending, RETIRED otherwise).
func deriveGen(g *Generation, app *App, keys map[string]Key) {
	if g.State == GenRevoked {
		switch {
		case app != nil && app.ActiveGeneration == g.Number:
			g.State = GenActive
		case app != nil && app.PendingGeneration == g.Number:
			g.State = GenPending
		default:
			g.State = GenRetired
		}
		if k, ok := keys[g.KeyARN]; g.KeyARN != "" && (!ok || k.Version == 0) {
			g.KeyRevoked, g.KeyReason = true, "key "+g.KeyARN+" is revoked ("+g.StateReason+")"
			return
		}
	}
	if k, ok := keys[g.KeyARN]; ok && !k.Usable() {
		g.KeyRevoked, g.KeyReason = true, k.Reason()
	}
}

// getAppRaw reads the app item as stored (strongly consistent), filling ActiveKeyARN and
// PendingKeyARN from the generations for items written before they existed.
func (s *Store) getAppRaw(ctx context.Context, appID string) (App, error) {
	if err := validID("app", appID); err != nil {
		return App{}, err
	}
	m, err := s.getItem(ctx, appPK(appID), skMeta)
	if err != nil {
		return App{}, err
	}
	if m == nil {
		return App{}, notFound("app %s", appID)
	}
	var a App
	if err := unmarshal(m, &a); err != nil {
		return App{}, err
	}
	if err := s.fillKeyARNs(ctx, &a); err != nil {
		return App{}, err
	}
	return a, nil
}

// fillKeyARNs fills a legacy app's key ARNs from its generations.
func (s *Store) fillKeyARNs(ctx context.Context, a *App) error {
	if a.ActiveKeyARN == "" && a.ActiveGeneration > 0 {
		g, err := s.getGenRaw(ctx, a.ID, a.ActiveGeneration)
		if err != nil {
			return err
		}
		a.ActiveKeyARN = g.KeyARN
	}
	if a.PendingKeyARN == "" && a.PendingGeneration > 0 {
		g, err := s.getGenRaw(ctx, a.ID, a.PendingGeneration)
		if err != nil {
			return err
		}
		a.PendingKeyARN = g.KeyARN
	}
	return nil
}

// getAppKeys reads the app and the keys of its active and pending generations (one
// BatchGetItem), and derives its status.
func (s *Store) getAppKeys(ctx context.Context, appID string) (App, map[string]Key, error) {
	a, err := s.getAppRaw(ctx, appID)
	if err != nil {
		return App{}, nil, err
	}
	keys, err := s.getKeys(ctx, []string{a.ActiveKeyARN, a.PendingKeyARN})
	if err != nil {
		return App{}, nil, err
	}
	deriveApp(&a, keys)
	return a, keys, nil
}

func (s *Store) getGenRaw(ctx context.Context, appID string, n int) (Generation, error) {
	m, err := s.getItem(ctx, appPK(appID), genSK(n))
	if err != nil {
		return Generation{}, err
	}
	if m == nil {
		return Generation{}, notFound("generation %d of app %s", n, appID)
	}
	var g Generation
	return g, unmarshal(m, &g)
}

// deriveApps derives the status of a page of apps with one BatchGetItem of their keys.
func (s *Store) deriveApps(ctx context.Context, apps []App) error {
	var arns []string
	for i := range apps {
		if err := s.fillKeyARNs(ctx, &apps[i]); err != nil {
			return err
		}
		arns = append(arns, apps[i].ActiveKeyARN)
	}
	keys, err := s.getKeys(ctx, arns)
	if err != nil {
		return err
	}
	for i := range apps {
		deriveApp(&apps[i], keys)
	}
	return nil
}
