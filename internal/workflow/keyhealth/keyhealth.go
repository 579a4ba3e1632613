// Package keyhealth is keyline's scheduled key-health check (DESIGN B2): CloudTrail delivery
// is best effort, so every distinct key that an active app (or a running re-encryption)
// depends on is checked with DescribeKey and a test data-key round trip. A key that fails
// with a revoked-class error goes down the same revocation path as a DisableKey event;
// throttling, 5xx and network errors are transient and never deactivate anything.
//
// The other way round (B1), the keys of apps deactivated by a revocation are tried too: a key
// that passes its round trip again (its EnableKey event lost, or access restored by a key
// policy change, which sends no EnableKey) reactivates its apps within the window, or leaves
// them for an operator once, exactly as EnableKey does.
package keyhealth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strconv"

	"github.com/keyline/keyline/internal/fanout"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/revocation"
)

// Actor is the actor named in the audit trail of a revocation found by the check.
const Actor = "key-health"

// Store is what the check needs of the lineage store (*lineage.Store satisfies it).
type Store interface {
	ListApps(ctx context.Context, cursor string, limit int) (lineage.Page[lineage.App], error)
	GetKey(ctx context.Context, keyARN string) (lineage.Key, error)
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	ListAudit(ctx context.Context, appID string) ([]lineage.AuditEntry, error)
}

// ExecutionRunning is the status of an execution that has not ended.
const ExecutionRunning = "RUNNING"

// ErrExecutionNotFound is returned by Executions.ExecutionStatus for an unknown execution.
var ErrExecutionNotFound = errors.New("keyhealth: execution not found")

// Executions tells an execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED),
// or ErrExecutionNotFound.
type Executions interface {
	ExecutionStatus(ctx context.Context, executionArn string) (string, error)
}

var _ Store = (*lineage.Store)(nil)

// Revoker applies a revocation found by the check (*revocation.Service satisfies it).
type Revoker interface {
	RevokeKey(ctx context.Context, keyARN, reason string, cause lineage.Cause) (revocation.Result, error)
	ReactivateKey(ctx context.Context, keyARN string, cause lineage.Cause) (revocation.Result, error)
}

var _ Revoker = (*revocation.Service)(nil)

// Config configures a Checker.
type Config struct {
	Store   Store
	Keys    keys.Provider
	Revoker Revoker
	// Executions, when set, lets the check report apps left REENCRYPTING without a running
	// re-encryption execution (I7): an operator aborts them (POST .../reencryptions/abort).
	Executions Executions
	// Concurrency bounds the keys checked at once (default 4: KMS request quotas) and, times
	// four, the app reads at once.
	Concurrency int
	Logger      *slog.Logger
}

// Checker runs the key-health check.
type Checker struct{ cfg Config }

// New returns a Checker.
func New(cfg Config) (*Checker, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Revoker == nil {
		return nil, errors.New("keyhealth: a store, a key provider and a revoker are required")
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Checker{cfg: cfg}, nil
}

// KeyResult is the outcome of one key's check.
type KeyResult struct {
	KeyARN string `json:"keyArn"`
	// Status is "healthy", "revoked", "transient" or "error" for an active key, and
	// "reactivated" or "still-revoked" for the key of deactivated apps.
	Status string `json:"status"`
	Code   string `json:"code,omitempty"`
	Error  string `json:"error,omitempty"`
	// Deactivated counts the apps deactivated (or pending generations revoked) because of it.
	Deactivated int `json:"deactivated,omitempty"`
	// Reactivated counts the apps reactivated; AwaitingOperator those left for an operator.
	Reactivated      int `json:"reactivated,omitempty"`
	AwaitingOperator int `json:"awaitingOperator,omitempty"`
}

// StuckReencryption is an app REENCRYPTING whose re-encryption execution is not running.
type StuckReencryption struct {
	AppID      string `json:"appId"`
	Generation int    `json:"pendingGeneration"`
	// ExecutionArn is the execution that began the re-encryption ("" when none is recorded).
	ExecutionArn string `json:"executionArn,omitempty"`
	// ExecutionStatus is its status (NOT_FOUND when Step Functions does not know it).
	ExecutionStatus string `json:"executionStatus"`
}

// Report is the outcome of one run.
type Report struct {
	Apps int         `json:"apps"`
	Keys []KeyResult `json:"keys"`
	// StuckReencryptions lists the apps left re-encrypting without a running execution.
	StuckReencryptions []StuckReencryption `json:"stuckReencryptions,omitempty"`
	Healthy            int                 `json:"healthy"`
	Revoked            int                 `json:"revoked"`
	Transient          int                 `json:"transient"`
	Deactivated        int                 `json:"deactivated"`
	Reactivated        int                 `json:"reactivated"`
}

// Run checks every distinct key of the ACTIVE and REENCRYPTING apps (their active and
// pending generations) once. Revoked keys are revoked through the Revoker with cause
// "key-health". It returns the report and the errors met (a failed listing or revocation);
// transient key errors are reported, not returned.
func (c *Checker) Run(ctx context.Context) (Report, error) {
	keySet, revokedSet, keyOrgs, apps, reencrypting, err := c.activeKeys(ctx)
	if err != nil {
		return Report{}, err
	}
	arns := make([]string, 0, len(keySet)+len(revokedSet))
	for k := range keySet {
		arns = append(arns, k)
	}
	sort.Strings(arns)
	active := len(arns)
	var back []string
	for k := range revokedSet {
		if _, ok := keySet[k]; !ok {
			back = append(back, k)
		}
	}
	sort.Strings(back)
	arns = append(arns, back...)
	results := make([]KeyResult, len(arns))
	idx := make([]int, len(arns))
	for i := range idx {
		idx[i] = i
	}
	var errs []error
	err = fanout.Each(ctx, c.cfg.Concurrency, idx, func(ctx context.Context, i int) error {
		var err error
		if i < active {
			results[i], err = c.checkKey(ctx, arns[i], keyOrgs[arns[i]], keySet[arns[i]])
		} else {
			results[i], err = c.checkRevokedKey(ctx, arns[i], revokedSet[arns[i]])
		}
		return err
	})
	if err != nil {
		errs = append(errs, err)
	}
	rep := Report{Apps: apps, Keys: results}
	stuck, err := c.stuckReencryptions(ctx, reencrypting)
	if err != nil {
		errs = append(errs, err)
	}
	rep.StuckReencryptions = stuck
	for _, r := range results {
		switch r.Status {
		case "healthy":
			rep.Healthy++
		case "revoked":
			rep.Revoked++
		case "transient":
			rep.Transient++
		}
		rep.Deactivated += r.Deactivated
		rep.Reactivated += r.Reactivated
	}
	c.cfg.Logger.InfoContext(ctx, "key health checked", slog.Int("apps", rep.Apps), slog.Int("keys", len(arns)),
		slog.Int("healthy", rep.Healthy), slog.Int("revoked", rep.Revoked), slog.Int("transient", rep.Transient),
		slog.Int("deactivated", rep.Deactivated), slog.Int("reactivated", rep.Reactivated), slog.Int("stuckReencryptions", len(rep.StuckReencryptions)))
	return rep, errors.Join(errs...)
}

// checkKey checks arn (the key of apps active apps) in the context of each org with apps on
// it (B10: a key policy pinned to the org admits that context, so the check never mistakes
// the pin for a revocation).
func (c *Checker) checkKey(ctx context.Context, arn string, orgs []string, apps int) (KeyResult, error) {
	r := KeyResult{KeyARN: arn, Status: "healthy"}
	err := revocation.CheckInOrgs(ctx, c.cfg.Keys, orgs, arn)
	if err == nil {
		return r, nil
	}
	var ke *keys.KeyError
	if errors.As(err, &ke) {
		r.Code = ke.Code
	}
	r.Error = err.Error()
	switch {
	case errors.Is(err, keys.ErrRevoked):
		r.Status = "revoked"
		res, rerr := c.cfg.Revoker.RevokeKey(ctx, arn, "key-health check: "+codeOr(r.Code, "revoked"), lineage.Cause{Actor: Actor})
		if res.Changed {
			r.Deactivated = apps
		}
		c.cfg.Logger.WarnContext(ctx, "key health: key revoked", slog.String("key_arn", arn), slog.String("code", r.Code), slog.Int("apps", r.Deactivated))
		if rerr != nil {
			return r, fmt.Errorf("keyhealth: revoke %s: %w", arn, rerr)
		}
	case errors.Is(err, keys.ErrTransient):
		r.Status = "transient"
		c.cfg.Logger.WarnContext(ctx, "key health: transient error, nothing deactivated", slog.String("key_arn", arn), slog.String("code", r.Code))
	default:
		r.Status = "error"
		c.cfg.Logger.ErrorContext(ctx, "key health: check failed, nothing deactivated", slog.String("key_arn", arn), slog.Any("error", err))
	}
	return r, nil
}

// checkRevokedKey tries the key of deactivated apps: if it passes its round trip again, its
// apps are reactivated (B1, within the window).
func (c *Checker) checkRevokedKey(ctx context.Context, arn string, apps int) (KeyResult, error) {
	r := KeyResult{KeyARN: arn, Status: "still-revoked"}
	res, err := c.cfg.Revoker.ReactivateKey(ctx, arn, lineage.Cause{Actor: Actor})
	if res.Changed && res.Key.Usable() {
		r.Reactivated = apps
	}
	if res.Changed && res.Key.AwaitingOperator {
		r.AwaitingOperator = apps
	}
	switch {
	case err != nil && errors.Is(err, keys.ErrTransient):
		r.Status, r.Error = "transient", err.Error()
		return r, nil
	case err != nil:
		r.Status, r.Error = "error", err.Error()
		return r, fmt.Errorf("keyhealth: reactivate %s: %w", arn, err)
	case res.Outcome == revocation.OutcomeReactivated:
		r.Status = "reactivated"
		if res.Changed {
			c.cfg.Logger.InfoContext(ctx, "key health: revoked key usable again", slog.String("key_arn", arn),
				slog.Int("reactivated", r.Reactivated), slog.Int("awaiting_operator", r.AwaitingOperator))
		}
	}
	return r, nil
}

func codeOr(code, def string) string {
	if code == "" {
		return def
	}
	return code
}

// activeKeys lists all apps and returns the distinct keys of the ACTIVE and REENCRYPTING
// ones (active and pending generations) with their number of apps, the keys of the apps
// deactivated by a revocation that no operator is awaited for (with theirs), the orgs of
// the apps on each active key, and how many active apps there are. The apps carry their
// keys' ARNs and their derived status, so the listing is all it reads, plus one read per
// distinct revoked key.
func (c *Checker) activeKeys(ctx context.Context) (map[string]int, map[string]int, map[string][]string, int, []lineage.App, error) {
	set, revoked, orgs := map[string]int{}, map[string]int{}, map[string][]string{}
	var reencrypting []lineage.App
	active := 0
	addOrg := func(arn, org string) {
		if !slices.Contains(orgs[arn], org) {
			orgs[arn] = append(orgs[arn], org)
		}
	}
	for cursor := ""; ; {
		page, err := c.cfg.Store.ListApps(ctx, cursor, 100)
		if err != nil {
			return nil, nil, nil, 0, nil, fmt.Errorf("keyhealth: list apps: %w", err)
		}
		for _, a := range page.Items {
			switch a.Status {
			case lineage.AppActive, lineage.AppReencrypting:
				active++
				if a.Status == lineage.AppReencrypting {
					reencrypting = append(reencrypting, a)
				}
				if a.ActiveKeyARN != "" {
					set[a.ActiveKeyARN]++
					addOrg(a.ActiveKeyARN, a.OrgID)
				}
				if a.PendingKeyARN != "" {
					set[a.PendingKeyARN] += 0
					addOrg(a.PendingKeyARN, a.OrgID)
				}
			case lineage.AppDeactivated:
				if a.Hold == "" && a.ActiveKeyARN != "" {
					revoked[a.ActiveKeyARN]++
				}
			}
		}
		if page.Next == "" {
			break
		}
		cursor = page.Next
	}
	for arn := range revoked {
		k, err := c.cfg.Store.GetKey(ctx, arn)
		if err != nil {
			return nil, nil, nil, 0, nil, fmt.Errorf("keyhealth: key %s: %w", arn, err)
		}
		if k.AwaitingOperator {
			delete(revoked, arn)
		}
	}
	for _, o := range orgs {
		slices.Sort(o)
	}
	return set, revoked, orgs, active, reencrypting, nil
}

// executionNotFound is StuckReencryption.ExecutionStatus for an execution Step Functions
// does not know (or none recorded).
const executionNotFound = "NOT_FOUND"

// stuckReencryptions finds the apps among apps (listed REENCRYPTING) whose re-encryption
// execution is not running (I7). The execution is the one named by the audit entry of the
// Begin that introduced the pending generation (written in Begin's transaction). An app
// whose execution ended is read again before it is reported: the execution may have just
// committed or aborted.
func (c *Checker) stuckReencryptions(ctx context.Context, apps []lineage.App) ([]StuckReencryption, error) {
	if c.cfg.Executions == nil || len(apps) == 0 {
		return nil, nil
	}
	var stuck []StuckReencryption
	var errs []error
	for _, a := range apps {
		s, ok, err := c.stuck(ctx, a)
		if err != nil {
			errs = append(errs, fmt.Errorf("app %s: %w", a.ID, err))
			continue
		}
		if ok {
			c.cfg.Logger.WarnContext(ctx, "key health: app re-encrypting without a running execution; an operator should abort it",
				"app", s.AppID, "pendingGeneration", s.Generation, "execution", s.ExecutionArn, "executionStatus", s.ExecutionStatus)
			stuck = append(stuck, s)
		}
	}
	if len(errs) > 0 {
		return stuck, fmt.Errorf("keyhealth: stuck re-encryptions: %w", errors.Join(errs...))
	}
	return stuck, nil
}

func (c *Checker) stuck(ctx context.Context, a lineage.App) (StuckReencryption, bool, error) {
	entries, err := c.cfg.Store.ListAudit(ctx, a.ID)
	if err != nil {
		return StuckReencryption{}, false, err
	}
	s := StuckReencryption{AppID: a.ID, Generation: a.PendingGeneration, ExecutionStatus: executionNotFound}
	want := strconv.Itoa(a.PendingGeneration)
	for _, e := range entries {
		if e.Action == lineage.ActionReencryptBegun && e.Detail["generation"] == want {
			s.ExecutionArn = e.Cause.ExecutionArn
		}
	}
	if s.ExecutionArn != "" {
		status, err := c.cfg.Executions.ExecutionStatus(ctx, s.ExecutionArn)
		switch {
		case errors.Is(err, ErrExecutionNotFound):
		case err != nil:
			return StuckReencryption{}, false, err
		case status == ExecutionRunning:
			return StuckReencryption{}, false, nil
		default:
			s.ExecutionStatus = status
		}
	}
	now, err := c.cfg.Store.GetApp(ctx, a.ID)
	if err != nil {
		if errors.Is(err, lineage.ErrNotFound) {
			return StuckReencryption{}, false, nil
		}
		return StuckReencryption{}, false, err
	}
	if now.Status != lineage.AppReencrypting || now.PendingGeneration != a.PendingGeneration {
		return StuckReencryption{}, false, nil // it ended meanwhile
	}
	return s, true, nil
}
