package lineage

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// DefaultReactivationWindow is how long after a revocation a returning key reactivates its
// apps by itself (B1); later, an operator must.
const DefaultReactivationWindow = 10 * 24 * time.Hour

// FindGenerationsByKey returns every generation (of any app, in any state) whose key is
// keyARN, through all pages of the GSI1 query (eventually consistent), ordered by app and
// generation.
func (s *Store) FindGenerationsByKey(ctx context.Context, keyARN string) ([]Generation, error) {
	if keyARN == "" {
		return nil, invalid("key ARN is empty")
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(s.table),
		IndexName:                 aws.String(GSI1),
		KeyConditionExpression:    aws.String("#pk = :pk"),
		ExpressionAttributeNames:  map[string]string{"#pk": attrGSI1PK},
		ExpressionAttributeValues: item{":pk": str(keyPK(keyARN))},
	}
	if s.limit > 0 {
		in.Limit = aws.Int32(s.limit)
	}
	var out []Generation
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("lineage: find generations of key %s: %w", keyARN, err)
		}
		for _, m := range page.Items {
			var g Generation
			if err := unmarshal(m, &g); err != nil {
				return nil, err
			}
			out = append(out, g)
		}
	}
	return out, nil
}

// forEachApp groups generations by app and runs fn for each app with at most s.par at once.
func (s *Store) forEachApp(ctx context.Context, gens []Generation, fn func(ctx context.Context, gens []Generation) ([]AffectedApp, error)) ([]AffectedApp, error) {
	byApp := map[string][]Generation{}
	var units [][]Generation
	for _, g := range gens {
		byApp[g.AppID] = append(byApp[g.AppID], g)
	}
	for _, g := range gens {
		if u, ok := byApp[g.AppID]; ok {
			units = append(units, u)
			delete(byApp, g.AppID)
		}
	}
	return s.forEach(ctx, units, fn)
}

// forEach runs fn for each unit with at most s.par at once. It returns what fn reported,
// ordered by app and generation, and the errors joined.
func (s *Store) forEach(ctx context.Context, units [][]Generation, fn func(ctx context.Context, gens []Generation) ([]AffectedApp, error)) ([]AffectedApp, error) {
	work := make(chan []Generation)
	var (
		mu       sync.Mutex
		affected []AffectedApp
		errs     []error
		wg       sync.WaitGroup
	)
	for range min(s.par, len(units)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				out, err := fn(ctx, u)
				mu.Lock()
				affected = append(affected, out...)
				if err != nil {
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		}()
	}
feed:
	for _, u := range units {
		select {
		case work <- u:
		case <-ctx.Done():
			mu.Lock()
			errs = append(errs, ctx.Err())
			mu.Unlock()
			break feed
		}
	}
	close(work)
	wg.Wait()
	sort.Slice(affected, func(i, j int) bool {
		if affected[i].AppID != affected[j].AppID {
			return affected[i].AppID < affected[j].AppID
		}
		return affected[i].Generation < affected[j].Generation
	})
	if len(errs) > 10 {
		errs = append(errs[:10], fmt.Errorf("… and %d more errors", len(errs)-10))
	}
	return affected, errors.Join(errs...)
}

// RevokeKey applies a key revocation (R8): every app whose ACTIVE generation uses keyARN gets
// that generation REVOKED and is DEACTIVATED with reason (e.g. "DisableKey"); a PENDING
// generation on the key is REVOKED too (its re-encryption must then abort, B8). Each app's
// change (generation, app with Version+1, audit entry) is one all-or-nothing set of writes:
// one TransactWriteItems per app, or Options.RevokeBatch apps per transaction; they run
// with Options.Parallelism at once. Backups are never written: the writes grow with the
// apps on the key, not with their backups. Returns the apps changed by this call, ordered
// by app id (none when repeated: idempotent). On partial failure it returns the apps
// changed so far and the errors; calling it again finishes the job.
func (s *Store) RevokeKey(ctx context.Context, keyARN, reason string, cause Cause) ([]AffectedApp, error) {
	started := time.Now()
	gens, err := s.FindGenerationsByKey(ctx, keyARN)
	found := time.Since(started)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		reason = "key revoked"
	}
	var live []Generation
	for _, g := range gens {
		if g.State == GenActive || g.State == GenPending {
			live = append(live, g)
		}
	}
	// Apps with one live generation on the key go in batches of s.batch apps per
	// transaction; an app with two (re-encrypting to the same key) gets its own, in order.
	count := map[string]int{}
	for _, g := range live {
		count[g.AppID]++
	}
	var units [][]Generation
	var batch []Generation
	for _, g := range live {
		if count[g.AppID] > 1 {
			continue
		}
		batch = append(batch, g)
		if len(batch) == s.batch {
			units, batch = append(units, batch), nil
		}
	}
	if len(batch) > 0 {
		units = append(units, batch)
	}
	byApp := map[string][]Generation{}
	for _, g := range live {
		if count[g.AppID] > 1 {
			byApp[g.AppID] = append(byApp[g.AppID], g)
		}
	}
	for _, gs := range byApp {
		sort.Slice(gs, func(i, j int) bool { return gs[i].Number < gs[j].Number })
		units = append(units, gs)
	}
	affected, err := s.forEach(ctx, units, func(ctx context.Context, gens []Generation) ([]AffectedApp, error) {
		if len(gens) > 1 && gens[0].AppID == gens[1].AppID {
			var out []AffectedApp
			for _, g := range gens {
				eff, err := s.revokeGeneration(ctx, g, keyARN, reason, cause, false)
				if err != nil {
					return out, err
				}
				if eff != "" {
					out = append(out, AffectedApp{AppID: g.AppID, OrgID: g.OrgID, Generation: g.Number, KeyARN: keyARN, Effect: eff})
				}
			}
			return out, nil
		}
		return s.revokeBatch(ctx, gens, keyARN, reason, cause)
	})
	if err != nil {
		return affected, fmt.Errorf("lineage: revoke key %s: %w", keyARN, err)
	}
	if len(affected) > 0 {
		s.log.InfoContext(ctx, "key revoked", "keyArn", keyARN, "reason", reason, "eventId", cause.EventID, "apps", len(affected),
			"generations", len(gens), "find", found, "total", time.Since(started))
	}
	return affected, nil
}

// revokeItems builds the writes that revoke generation g (as last read): the generation,
// its app and an audit entry. The effect is "" when g needs nothing (already revoked or
// retired).
func (s *Store) revokeItems(g Generation, keyARN, reason string, cause Cause, now time.Time) ([]types.TransactWriteItem, Effect, error) {
	eventID := cause.EventID
	why := reason
	if eventID != "" {
		why += ", event " + eventID
	}
	var (
		eff    Effect
		appUpd types.TransactWriteItem
		action string
	)
	names := map[string]string{"#sr": "statusReason", "#v": "version"}
	switch g.State {
	case GenActive:
		eff, action = EffectDeactivated, ActionKeyRevoked
		names["#st"], names["#ag"] = "status", "activeGeneration"
		appUpd = s.update(keyOf(appPK(g.AppID), skMeta),
			"SET #st = :d, #sr = :sr ADD #v :one",
			"attribute_exists(PK) AND #ag = :n AND #st <> :d", names,
			item{":d": str(string(AppDeactivated)), ":sr": str(fmt.Sprintf("key %s revoked (%s)", keyARN, why)),
				":one": num(1), ":n": num(int64(g.Number))})
	case GenPending:
		eff, action = EffectPendingRevoked, ActionPendingKeyRevoked
		names["#pg"] = "pendingGeneration"
		appUpd = s.update(keyOf(appPK(g.AppID), skMeta),
			"SET #sr = :sr ADD #v :one",
			"attribute_exists(PK) AND #pg = :n", names,
			item{":sr": str(fmt.Sprintf("the new key %s of generation %d was revoked (%s); the re-encryption must abort", keyARN, g.Number, why)),
				":one": num(1), ":n": num(int64(g.Number))})
	default:
		return nil, "", nil
	}
	audit, err := s.auditItem(AuditEntry{AppID: g.AppID, Action: action, Cause: cause, Detail: map[string]string{
		"keyArn": keyARN, "generation": strconv.Itoa(g.Number), "reason": reason, "previousState": string(g.State),
	}}, now)
	if err != nil {
		return nil, "", err
	}
	return []types.TransactWriteItem{
		s.genStateUpdate(g.AppID, g.Number, []GenerationState{g.State}, GenRevoked, reason, now, &eventID, nil),
		appUpd, audit,
	}, eff, nil
}

// revokeGeneration revokes one generation with one transaction of three writes (generation,
// app, audit), without reading the app first; when a condition fails it re-reads the
// generation and decides again. It returns the effect, or "" when nothing was left to do.
func (s *Store) revokeGeneration(ctx context.Context, g Generation, keyARN, reason string, cause Cause, reread bool) (Effect, error) {
	for attempt := 0; attempt < maxAttempts; attempt++ {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return "", err
			}
		}
		if attempt > 0 || reread {
			fresh, err := s.GetGeneration(ctx, g.AppID, g.Number)
			if err != nil {
				return "", err
			}
			g = fresh
		}
		items, eff, err := s.revokeItems(g, keyARN, reason, cause, s.clock.Now().UTC())
		if err != nil || eff == "" {
			return "", err
		}
		err = s.transact(ctx, items)
		if err == nil {
			return eff, nil
		}
		var f *txFailure
		if errors.As(err, &f) && f.retryable() {
			if f.failed(1) && !f.failed(0) && attempt >= 2 {
				app, aerr := s.GetApp(ctx, g.AppID)
				if aerr == nil && g.State == GenActive && app.ActiveGeneration != g.Number {
					return "", invariant("app %s: generation %d is ACTIVE but the app's active generation is %d", g.AppID, g.Number, app.ActiveGeneration)
				}
			}
			continue
		}
		return "", fmt.Errorf("app %s generation %d: %w", g.AppID, g.Number, err)
	}
	return "", &ConflictError{AppID: g.AppID, What: fmt.Sprintf("revoking generation %d: the app kept changing concurrently", g.Number)}
}

// revokeBatch revokes the generations of several apps (one live generation each) in one
// transaction; each app's writes stay all-or-nothing either way. If the transaction is
// canceled (one app changed meanwhile), every app falls back to its own transaction.
func (s *Store) revokeBatch(ctx context.Context, gens []Generation, keyARN, reason string, cause Cause) ([]AffectedApp, error) {
	affected := func(g Generation, eff Effect) AffectedApp {
		return AffectedApp{AppID: g.AppID, OrgID: g.OrgID, Generation: g.Number, KeyARN: keyARN, Effect: eff}
	}
	var out []AffectedApp
	if len(gens) > 1 {
		now := s.clock.Now().UTC()
		var all []types.TransactWriteItem
		var effs []Effect
		for _, g := range gens {
			items, eff, err := s.revokeItems(g, keyARN, reason, cause, now)
			if err != nil {
				return nil, err
			}
			all = append(all, items...)
			effs = append(effs, eff)
		}
		err := s.transact(ctx, all)
		if err == nil {
			for i, g := range gens {
				out = append(out, affected(g, effs[i]))
			}
			return out, nil
		}
		var f *txFailure
		if !errors.As(err, &f) {
			return nil, err
		}
	}
	var errs []error
	for _, g := range gens {
		eff, err := s.revokeGeneration(ctx, g, keyARN, reason, cause, len(gens) > 1)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if eff != "" {
			out = append(out, affected(g, eff))
		}
	}
	return out, errors.Join(errs...)
}

// ReactivateKey applies a key's return (B1), after the caller verified the key works: every
// REVOKED generation on keyARN that is still its app's active generation becomes ACTIVE and
// the app ACTIVE, unless it was revoked longer than window ago: then it is left for an
// operator (EffectAwaitingOperator, audited once, reported every time). Generations RETIRED
// by re-encryption are never touched. window <= 0 means DefaultReactivationWindow.
func (s *Store) ReactivateKey(ctx context.Context, keyARN string, cause Cause, window time.Duration) ([]AffectedApp, error) {
	if window <= 0 {
		window = DefaultReactivationWindow
	}
	gens, err := s.FindGenerationsByKey(ctx, keyARN)
	if err != nil {
		return nil, err
	}
	var revoked []Generation
	for _, g := range gens {
		if g.State == GenRevoked {
			revoked = append(revoked, g)
		}
	}
	affected, err := s.forEachApp(ctx, revoked, func(ctx context.Context, gens []Generation) ([]AffectedApp, error) {
		var out []AffectedApp
		for _, g := range gens {
			eff, _, err := s.reactivate(ctx, g.AppID, g.Number, window, cause)
			if err != nil {
				return out, err
			}
			if eff != "" {
				out = append(out, AffectedApp{AppID: g.AppID, OrgID: g.OrgID, Generation: g.Number, KeyARN: keyARN, Effect: eff})
			}
		}
		return out, nil
	})
	if err != nil {
		return affected, fmt.Errorf("lineage: reactivate key %s: %w", keyARN, err)
	}
	return affected, nil
}

// ReactivateApp is the operator's reactivation of one deactivated app whose active
// generation is REVOKED (after the key was verified), regardless of the window. Idempotent
// on an app already reactivated.
func (s *Store) ReactivateApp(ctx context.Context, appID string, cause Cause) (App, error) {
	app, err := s.GetApp(ctx, appID)
	if err != nil {
		return App{}, err
	}
	if app.Status != AppDeactivated {
		return app, nil
	}
	eff, app, err := s.reactivate(ctx, appID, app.ActiveGeneration, 0, cause)
	if err != nil {
		return App{}, err
	}
	if eff != EffectReactivated && app.Status == AppDeactivated {
		return App{}, conflict(appID, ErrAppDeactivated, "app cannot be reactivated: its active generation %d is not revoked", app.ActiveGeneration)
	}
	return app, nil
}

// reactivate brings generation n of the app back to ACTIVE (and the app with it) if it is
// REVOKED and the app's active generation; window > 0 applies the B1 window, 0 is the
// operator's override. It returns the effect ("" when nothing applied).
func (s *Store) reactivate(ctx context.Context, appID string, n int, window time.Duration, cause Cause) (Effect, App, error) {
	var eff Effect
	app, err := s.changeApp(ctx, appID, "reactivate", func(app *App, now time.Time) (appChange, error) {
		eff = ""
		if app.ActiveGeneration != n || app.Status != AppDeactivated {
			return appChange{noWrite: true}, nil // a pending generation's, or already reactivated
		}
		g, err := s.GetGeneration(ctx, appID, n)
		if err != nil {
			return appChange{}, err
		}
		if g.State != GenRevoked {
			return appChange{noWrite: true}, nil
		}
		if window > 0 && now.Sub(g.Since) > window {
			eff = EffectAwaitingOperator
			if g.AwaitingOperator {
				return appChange{noWrite: true}, nil
			}
			yes := true
			app.StatusReason = fmt.Sprintf("%s; the key came back more than %s after it was revoked: an operator must reactivate the app", app.StatusReason, window)
			return appChange{
				items: []types.TransactWriteItem{s.genStateUpdate(appID, n, []GenerationState{GenRevoked}, GenRevoked, g.StateReason, g.Since, &g.RevokedBy, &yes)},
				audit: &AuditEntry{AppID: appID, Action: ActionReactivationWaiting, Cause: cause, Detail: map[string]string{
					"keyArn": g.KeyARN, "generation": strconv.Itoa(n), "revokedAt": g.Since.Format(time.RFC3339), "window": window.String(),
				}},
			}, nil
		}
		eff = EffectReactivated
		no, none := false, ""
		app.Status, app.StatusReason = AppActive, ""
		if app.PendingGeneration != 0 {
			app.Status = AppReencrypting
			app.StatusReason = fmt.Sprintf("re-encrypting from generation %d to generation %d", n, app.PendingGeneration)
		}
		return appChange{
			items: []types.TransactWriteItem{s.genStateUpdate(appID, n, []GenerationState{GenRevoked}, GenActive, "reactivated: the key is usable again", now, &none, &no)},
			audit: &AuditEntry{AppID: appID, Action: ActionKeyReactivated, Cause: cause, Detail: map[string]string{
				"keyArn": g.KeyARN, "generation": strconv.Itoa(n), "revokedAt": g.Since.Format(time.RFC3339), "operator": strconv.FormatBool(window == 0),
			}},
		}, nil
	})
	return eff, app, err
}
