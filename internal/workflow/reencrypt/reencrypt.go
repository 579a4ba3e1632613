// Package reencrypt holds the steps of keyline's re-encryption workflow (DESIGN §4, R4,
// R5, R6, B7, B8), run by the "reencrypt" state machine: Validate the new key, Begin
// (generation n+1 PENDING, app REENCRYPTING), Batch (re-seal a batch of CMK-scope objects
// from n to n+1, the Distributed Map's children), Commit (n+1 ACTIVE, n RETIRED) and Abort
// (compensation to a defined state).
//
// Every step is idempotent, so the state machine may retry any of them. Steps return the
// error types of internal/workflow/wferr that the state machine's Retry and Catch match on.
package reencrypt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/fanout"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/objects"
	"github.com/keyline/keyline/internal/workflow/revocation"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// Store is what re-encryption needs of the lineage store (*lineage.Store satisfies it).
type Store interface {
	GetOrg(ctx context.Context, orgID string) (lineage.Org, error)
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	ActiveKey(ctx context.Context, appID string) (lineage.App, lineage.Generation, error)
	GetGeneration(ctx context.Context, appID string, n int) (lineage.Generation, error)
	BeginReencrypt(ctx context.Context, appID string, newGen int, newKeyARN string, wrappedDataKey []byte, cause lineage.Cause) (lineage.Generation, error)
	CommitReencrypt(ctx context.Context, appID string, gen int, cause lineage.Cause) (lineage.App, error)
	AbortReencrypt(ctx context.Context, appID string, gen int, reason string, cause lineage.Cause) (lineage.App, error)
}

var _ Store = (*lineage.Store)(nil)

// Objects is what re-encryption needs of the data source (objects.Source satisfies it):
// Batch moves objects (keeping each one's previous sealed bytes in a stash), Abort rolls
// them back from the stash and drops it, Commit drops it.
type Objects interface {
	ReencryptObject(ctx context.Context, appID, key string, toGeneration int) (objects.Info, error)
	RollbackReencrypt(ctx context.Context, appID string, from, to int) (objects.RollbackStats, error)
	DropReencryptStash(ctx context.Context, appID string, gen int) (int, error)
	SweepReencrypt(ctx context.Context, appID string, to int) (moved, at int, err error)
}

// Revoker is told about revoked-class KMS errors met while moving objects (B2, B8).
// *revocation.Service satisfies it.
type Revoker interface {
	RevokeFromKMSError(ctx context.Context, keyARN string, kmsErr error, cause string) (revocation.Result, error)
}

var _ Revoker = (*revocation.Service)(nil)

// Config configures a Service. Objects is needed by Batch, Commit and Abort; Revoker is
// optional.
type Config struct {
	Store   Store
	Keys    keys.Provider
	Objects Objects
	Revoker Revoker
	Emitter audit.Emitter
	// ProviderKeyARN is the provider's key, which a CMK app may never be re-encrypted to (R1).
	ProviderKeyARN string
	// Prefix roots the apps' objects in the data bucket (default "apps/").
	Prefix string
	// Concurrency is how many objects of a batch move at once (default 8).
	Concurrency int
	Clock       clock.Clock
	Logger      *slog.Logger
}

// Service runs the re-encryption steps. It is safe for concurrent use.
type Service struct{ cfg Config }

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("reencrypt: a store and a key provider are required")
	}
	if cfg.Emitter == nil {
		cfg.Emitter = audit.Discard{}
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "apps/"
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 8
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Service{cfg: cfg}, nil
}

// Request is the state machine's input, as the console starts it.
type Request struct {
	AppID        string `json:"appId"`
	KeyARN       string `json:"keyArn"`
	RequestedBy  string `json:"requestedBy,omitempty"`
	RequestID    string `json:"requestId,omitempty"`
	ExecutionArn string `json:"executionArn,omitempty"`
}

// AbortInput is the re-encryption machine's input for an operator's abort of the app's
// running or stuck re-encryption (the console's abort route): Route sends it straight to
// Abort, which reads it as a State.
type AbortInput struct {
	AppID         string    `json:"appId"`
	OperatorAbort bool      `json:"abort"`
	RequestedBy   string    `json:"requestedBy"`
	RequestID     string    `json:"requestId"`
	Error         StepError `json:"error"`
}

// ErrOperatorAbort is the error name an operator's abort records.
const ErrOperatorAbort = "OperatorAbort"

// StepError is a caught error as the state machine's Catch puts it at $.error.
type StepError struct {
	Error string `json:"Error"`
	Cause string `json:"Cause"`
}

// State is what flows between the steps.
type State struct {
	Request
	// OldKeyARN and FromGeneration are the app's active key and generation when validated.
	OldKeyARN      string `json:"oldKeyArn"`
	FromGeneration int    `json:"fromGeneration"`
	// ToGeneration is the PENDING generation Begin introduced (0 before Begin).
	ToGeneration int `json:"toGeneration,omitempty"`
	// Prefix is the app's CMK-scope prefix in the data bucket, which the Map lists.
	Prefix string `json:"prefix"`
	// Error is set by the state machine's Catch before Abort.
	Error *StepError `json:"error,omitempty"`
	// OperatorAbort marks an operator's request to abort the app's running or stuck
	// re-encryption, whatever its key (the console's abort route): the state machine goes
	// straight to Abort.
	OperatorAbort bool `json:"abort,omitempty"`
	// AcceptStranded is set by the state machine once it has retried an Abort that left
	// objects stranded (wferr.Stranded) for as long as it waits for a key to come back: the
	// abort then ends, listing them in its outcome.
	AcceptStranded bool `json:"acceptStranded,omitempty"`
}

func (s State) cause() lineage.Cause {
	return lineage.Cause{RequestID: s.RequestID, ExecutionArn: s.ExecutionArn, Actor: s.RequestedBy}
}

// Outcome is the result of Commit and Abort.
type Outcome struct {
	AppID            string            `json:"appId"`
	Status           lineage.AppStatus `json:"status"`
	ActiveGeneration int               `json:"activeGeneration"`
	KeyARN           string            `json:"keyArn,omitempty"`
	// RetiredGeneration is the generation retired by a commit, or the pending generation an
	// abort retired.
	RetiredGeneration int    `json:"retiredGeneration,omitempty"`
	Reason            string `json:"reason,omitempty"`
	// Rollback is what an abort did to the objects already moved (B8): every one is back
	// under the previous generation, except stranded ones (written by a client during the
	// re-encryption under the aborted generation, whose key cannot open them now), which are
	// left as they are and listed.
	Rollback *objects.RollbackStats `json:"rollback,omitempty"`
	// StashDropped is how many stashed previous versions of moved objects were deleted.
	StashDropped int `json:"stashDropped,omitempty"`
	// MovedBySweep is how many objects the check before the commit found still under an
	// older generation (written while the Map listed) and moved.
	MovedBySweep int `json:"movedBySweep,omitempty"`
	// Committed is set by an Abort that found the re-encryption committed already (the
	// commit landed but its step failed): the switch happened and nothing is undone.
	Committed bool `json:"committed"`
}

func refused(code, format string, args ...any) error {
	return &wferr.Refused{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// keyError maps a KMS error of a step onto the workflow error types.
func keyError(err error, what string) error {
	var ke *keys.KeyError
	switch {
	case errors.Is(err, keys.ErrRevoked):
		arn := ""
		if errors.As(err, &ke) {
			arn = ke.KeyARN
		}
		return &wferr.KeyRevoked{KeyARN: arn, Msg: what + ": " + err.Error()}
	case errors.Is(err, keys.ErrTransient):
		return &wferr.Transient{Msg: what + ": " + err.Error()}
	}
	return wferr.From(fmt.Errorf("%s: %w", what, err))
}

// Validate checks a re-encryption request (nothing changes): the app exists, is a CMK app,
// is ACTIVE; the new key is a KMS key ARN, not the provider's key, not the app's active key,
// and passes DescribeKey and a test round trip.
func (s *Service) Validate(ctx context.Context, req Request) (State, error) {
	if req.AppID == "" || req.KeyARN == "" {
		return State{}, &wferr.Invalid{Msg: "a re-encryption needs appId and keyArn"}
	}
	if !revocation.IsKeyARN(req.KeyARN) {
		return State{}, refused("unprocessable", "keyArn %q is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>); aliases are not accepted", req.KeyARN)
	}
	if _, err := keys.Resolve(keys.ModelCustomer, req.KeyARN, s.cfg.ProviderKeyARN); err != nil {
		return State{}, refused("unprocessable", "keyArn %s cannot be used: %v", req.KeyARN, err)
	}
	app, gen, err := s.cfg.Store.ActiveKey(ctx, req.AppID)
	if err != nil {
		return State{}, wferr.From(fmt.Errorf("reencrypt: app %s: %w", req.AppID, err))
	}
	if app.KeyModel != lineage.KeyModelCMK {
		return State{}, refused("unprocessable", "app %s uses the provider-managed key; only a customer-managed (CMK) app is re-encrypted to a key of its own", req.AppID)
	}
	switch app.Status {
	case lineage.AppActive:
	case lineage.AppReencrypting:
		return State{}, refused("conflict", "app %s is already re-encrypting (to generation %d); wait for it to finish", req.AppID, app.PendingGeneration)
	case lineage.AppDeactivated:
		return State{}, refused("conflict", "app %s is deactivated (%s); its key must be reactivated before it can be re-encrypted", req.AppID, app.StatusReason)
	default:
		return State{}, refused("conflict", "app %s is %s", req.AppID, app.Status)
	}
	if gen.KeyARN == req.KeyARN {
		return State{}, refused("unprocessable", "key %s is already the active key of app %s (generation %d)", req.KeyARN, req.AppID, gen.Number)
	}
	// B10: only a key in the org's enrolled accounts, checked in the org's context; one generic
	// answer whatever the reason, so that the answer reveals nothing about the key.
	org, err := s.cfg.Store.GetOrg(ctx, app.OrgID)
	if err != nil {
		return State{}, wferr.From(fmt.Errorf("reencrypt: org %s of app %s: %w", app.OrgID, req.AppID, err))
	}
	if err := org.CheckKey(req.KeyARN); err != nil {
		s.cfg.Logger.InfoContext(ctx, "re-encryption refused: key outside the org's enrolment", slog.String("app_id", req.AppID), slog.String("org_id", app.OrgID))
		return State{}, refused("unprocessable", "%s", lineage.KeyRefusedMessage)
	}
	if err := s.cfg.Keys.Check(ctx, app.OrgID, req.KeyARN); err != nil {
		if errors.Is(err, keys.ErrTransient) {
			return State{}, &wferr.Transient{Msg: "checking the new key: a transient key service error; retrying"}
		}
		s.cfg.Logger.InfoContext(ctx, "re-encryption refused: the new key failed its check", slog.String("app_id", req.AppID), slog.String("org_id", app.OrgID), slog.Any("error", err))
		return State{}, refused("unprocessable", "%s", lineage.KeyRefusedMessage)
	}
	return State{Request: req, OldKeyARN: gen.KeyARN, FromGeneration: gen.Number,
		Prefix: s.cfg.Prefix + req.AppID + "/" + string(objects.ScopeCMK) + "/"}, nil
}

// Begin introduces generation n+1 PENDING under the new key (its data key generated with one
// KMS call) and sets the app REENCRYPTING, in one transaction refused while a backup lease is
// held (wferr.LeaseHeld: the state machine retries; leases expire). Repeating Begin returns
// the same pending generation.
func (s *Service) Begin(ctx context.Context, st State) (State, error) {
	if st.AppID == "" || st.KeyARN == "" || st.FromGeneration <= 0 {
		return st, &wferr.Invalid{Msg: "begin needs the validated state (appId, keyArn, fromGeneration)"}
	}
	app, err := s.cfg.Store.GetApp(ctx, st.AppID)
	if err != nil {
		return st, wferr.From(fmt.Errorf("reencrypt: app %s: %w", st.AppID, err))
	}
	if app.Status == lineage.AppReencrypting && app.PendingGeneration > 0 && app.ActiveGeneration == st.FromGeneration {
		pg, err := s.cfg.Store.GetGeneration(ctx, st.AppID, app.PendingGeneration)
		if err != nil {
			return st, wferr.From(fmt.Errorf("reencrypt: pending generation of %s: %w", st.AppID, err))
		}
		if pg.KeyARN == st.KeyARN && pg.State == lineage.GenPending {
			st.ToGeneration = pg.Number // begun already (a retried step)
			return st, nil
		}
	}
	switch {
	case app.Status == lineage.AppReencrypting:
		return st, refused("conflict", "app %s is already re-encrypting to generation %d", st.AppID, app.PendingGeneration)
	case app.Status != lineage.AppActive:
		return st, refused("conflict", "app %s is %s (%s)", st.AppID, app.Status, app.StatusReason)
	case app.ActiveGeneration != st.FromGeneration:
		return st, refused("conflict", "the active generation of app %s changed since validation (%d, was %d)", st.AppID, app.ActiveGeneration, st.FromGeneration)
	}
	to := app.LatestGeneration + 1
	wrapped, err := objects.NewGenerationKey(ctx, s.cfg.Keys, app.OrgID, st.AppID, to, st.KeyARN)
	if err != nil {
		return st, keyError(err, "generating the data key of generation "+fmt.Sprint(to))
	}
	gen, err := s.cfg.Store.BeginReencrypt(ctx, st.AppID, to, st.KeyARN, wrapped, st.cause())
	if err != nil {
		if errors.Is(err, lineage.ErrReencrypting) || errors.Is(err, lineage.ErrAppDeactivated) {
			return st, refused("conflict", "cannot begin re-encrypting app %s: %v", st.AppID, err)
		}
		return st, wferr.From(fmt.Errorf("reencrypt: begin %s: %w", st.AppID, err))
	}
	st.ToGeneration = gen.Number
	s.emit(ctx, audit.DetailReencryptBegun, st, app.OrgID, map[string]any{"status": lineage.AppReencrypting})
	return st, nil
}

// Item is one object of the Map's S3 listing (ItemReader s3:listObjectsV2).
type Item struct {
	Key  string `json:"Key"`
	Size int64  `json:"Size,omitempty"`
}

// BatchInput is what the Map's ItemBatcher adds to every batch.
type BatchInput struct {
	AppID          string `json:"appId"`
	KeyARN         string `json:"keyArn"`
	FromGeneration int    `json:"fromGeneration"`
	ToGeneration   int    `json:"toGeneration"`
	RequestID      string `json:"requestId,omitempty"`
	ExecutionArn   string `json:"executionArn,omitempty"`
}

// Batch is one child input of the Distributed Map.
type Batch struct {
	BatchInput BatchInput `json:"BatchInput"`
	Items      []Item     `json:"Items"`
}

// BatchResult counts what a batch did.
type BatchResult struct {
	Objects int `json:"objects"`
	// Missing objects were deleted since the listing.
	Missing int `json:"missing"`
}

// Batch moves a batch of CMK-scope objects to the pending generation (B7: each object stays
// readable, by the generation in its header, before and after). It first checks the
// re-encryption is still running: after an abort or a revocation of the old key (B8) it
// stops. A revoked-class KMS error is reported to the revocation path and returned as
// wferr.KeyRevoked (the state machine then aborts).
func (s *Service) Batch(ctx context.Context, b Batch) (BatchResult, error) {
	in := b.BatchInput
	if in.AppID == "" || in.ToGeneration <= 0 {
		return BatchResult{}, &wferr.Invalid{Msg: "a batch needs BatchInput.appId and BatchInput.toGeneration"}
	}
	if s.cfg.Objects == nil {
		return BatchResult{}, &wferr.Failed{Msg: "reencrypt: no data source configured"}
	}
	prefix := s.cfg.Prefix + in.AppID + "/" + string(objects.ScopeCMK) + "/"
	for _, it := range b.Items {
		if !strings.HasPrefix(it.Key, prefix) {
			return BatchResult{}, &wferr.Invalid{Msg: fmt.Sprintf("object %q is not in the CMK scope of app %s (%s): only CMK-scope objects are re-encrypted (R4)", it.Key, in.AppID, prefix)}
		}
	}
	app, err := s.cfg.Store.GetApp(ctx, in.AppID)
	if err != nil {
		return BatchResult{}, wferr.From(fmt.Errorf("reencrypt: app %s: %w", in.AppID, err))
	}
	if app.Status != lineage.AppReencrypting || app.PendingGeneration != in.ToGeneration {
		if app.Status == lineage.AppDeactivated {
			return BatchResult{}, &wferr.KeyRevoked{Msg: fmt.Sprintf("app %s was deactivated during its re-encryption: %s", in.AppID, app.StatusReason)}
		}
		return BatchResult{}, &wferr.Failed{Msg: fmt.Sprintf("app %s is no longer re-encrypting to generation %d (status %s, pending %d)", in.AppID, in.ToGeneration, app.Status, app.PendingGeneration)}
	}
	pending, err := s.cfg.Store.GetGeneration(ctx, in.AppID, in.ToGeneration)
	if err != nil {
		return BatchResult{}, wferr.From(fmt.Errorf("reencrypt: generation %d of %s: %w", in.ToGeneration, in.AppID, err))
	}
	if pending.KeyRevoked {
		// B8: the new key was revoked; stop moving objects to it.
		return BatchResult{}, &wferr.KeyRevoked{KeyARN: pending.KeyARN, Msg: fmt.Sprintf("the new key %s of app %s was revoked during the re-encryption", pending.KeyARN, in.AppID)}
	}

	// The first failure stops the batch (it cancels what is in flight and nothing more
	// starts): the step is retried or the machine aborts, as a whole.
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu  sync.Mutex
		res BatchResult
	)
	err = fanout.Each(ctx, s.cfg.Concurrency, b.Items, func(ctx context.Context, it Item) error {
		_, err := s.cfg.Objects.ReencryptObject(ctx, in.AppID, it.Key, in.ToGeneration)
		mu.Lock()
		switch {
		case err == nil:
			res.Objects++
		case errors.Is(err, objects.ErrNotFound):
			res.Missing++
		}
		mu.Unlock()
		if err == nil || errors.Is(err, objects.ErrNotFound) {
			return nil
		}
		cancel()
		return fmt.Errorf("object %s: %w", it.Key, err)
	})
	if err == nil {
		return res, nil
	}
	if errors.Is(err, keys.ErrRevoked) && s.cfg.Revoker != nil {
		// B2/B8: tell the revocation path; it confirms with a key check before deactivating.
		if _, rerr := s.cfg.Revoker.RevokeFromKMSError(context.WithoutCancel(parent), "", err, "reencrypt"); rerr != nil {
			s.cfg.Logger.ErrorContext(parent, "revocation path failed", slog.String("app_id", in.AppID), slog.Any("error", rerr))
		}
	}
	if parent.Err() != nil {
		return res, &wferr.Transient{Msg: err.Error()}
	}
	return res, keyError(err, "re-encrypting app "+in.AppID)
}

// Commit ends the re-encryption: n+1 ACTIVE, n RETIRED (its backups no longer restorable,
// R6), the app ACTIVE. If a key was revoked meanwhile it returns wferr.KeyRevoked and the
// state machine aborts (B8).
func (s *Service) Commit(ctx context.Context, st State) (Outcome, error) {
	if st.AppID == "" || st.ToGeneration <= 0 {
		return Outcome{}, &wferr.Invalid{Msg: "commit needs appId and toGeneration"}
	}
	before, err := s.cfg.Store.GetApp(ctx, st.AppID)
	if err != nil {
		return Outcome{}, wferr.From(fmt.Errorf("reencrypt: app %s: %w", st.AppID, err))
	}
	// A retried step after a commit that went through: same outcome, no second event.
	repeated := before.ActiveGeneration == st.ToGeneration && before.PendingGeneration == 0
	swept := 0
	sweep := !repeated && s.cfg.Objects != nil && before.Status == lineage.AppReencrypting && before.PendingGeneration == st.ToGeneration
	if sweep {
		pending, err := s.cfg.Store.GetGeneration(ctx, st.AppID, st.ToGeneration)
		if err != nil {
			return Outcome{}, wferr.From(fmt.Errorf("reencrypt: generation %d of %s: %w", st.ToGeneration, st.AppID, err))
		}
		sweep = pending.State == lineage.GenPending // else the commit below refuses (B8)
	}
	if sweep {
		// I3: a write that raced the Map's listing may still be under the old generation:
		// move it now, and commit only when every CMK-scope object is under the new one.
		// (A write that lands after this moves itself: the data source settles every write.)
		moved, at, err := s.cfg.Objects.SweepReencrypt(ctx, st.AppID, st.ToGeneration)
		if err != nil {
			if errors.Is(err, objects.ErrKeyRevoked) {
				// The lineage says a key the sweep needs is revoked (B8: the new key).
				return Outcome{}, &wferr.KeyRevoked{KeyARN: st.KeyARN, Msg: "verifying app " + st.AppID + " before commit: " + err.Error()}
			}
			if errors.Is(err, keys.ErrRevoked) {
				return Outcome{}, keyError(err, "verifying app "+st.AppID+" before commit")
			}
			return Outcome{}, &wferr.Transient{Msg: fmt.Sprintf("verifying that every object of app %s is under generation %d: %v", st.AppID, st.ToGeneration, err)}
		}
		swept = moved
		s.cfg.Logger.InfoContext(ctx, "re-encryption verified before commit", slog.String("app_id", st.AppID),
			slog.Int("generation", st.ToGeneration), slog.Int("objects", at+moved), slog.Int("moved_by_sweep", moved))
	}
	app, err := s.cfg.Store.CommitReencrypt(ctx, st.AppID, st.ToGeneration, st.cause())
	if err != nil {
		if errors.Is(err, lineage.ErrKeyRevoked) || errors.Is(err, lineage.ErrAppDeactivated) {
			return Outcome{}, &wferr.KeyRevoked{KeyARN: st.KeyARN, Msg: "cannot commit the re-encryption of app " + st.AppID + ": " + err.Error()}
		}
		return Outcome{}, wferr.From(fmt.Errorf("reencrypt: commit %s: %w", st.AppID, err))
	}
	if !repeated {
		s.emit(ctx, audit.DetailReencryptCommitted, st, app.OrgID, map[string]any{"status": app.Status, "retiredGeneration": st.FromGeneration})
	}
	out := Outcome{AppID: st.AppID, Status: app.Status, ActiveGeneration: app.ActiveGeneration, KeyARN: st.KeyARN,
		RetiredGeneration: st.FromGeneration, MovedBySweep: swept}
	if s.cfg.Objects != nil {
		// The previous versions of the moved objects are no longer needed. A failure here
		// must not fail a commit that went through (the state machine would then try to
		// abort it): the stash is invisible to readers, listings and backups, and a later
		// commit or abort of this generation drops it.
		n, err := s.cfg.Objects.DropReencryptStash(ctx, st.AppID, st.ToGeneration)
		if err != nil {
			s.cfg.Logger.ErrorContext(ctx, "re-encryption committed, its stash not dropped", slog.String("app_id", st.AppID),
				slog.Int("generation", st.ToGeneration), slog.Any("error", err))
		}
		out.StashDropped = n
	}
	return out, nil
}

// Abort compensates a failed re-encryption: the pending generation is retired (left REVOKED
// if its key was revoked), the app goes back to ACTIVE on its previous generation, or stays
// DEACTIVATED if that generation's key was revoked (B8). Then every object already moved to
// the pending generation is put back, at rest, under the previous one: from the stash the
// batches kept (no KMS call, so this works when the new key is revoked), or — for an object
// a client wrote during the re-encryption, which went under the pending generation — opened
// and sealed again if the pending key still opens it. Objects that cannot be opened are left
// as they are (never replaced with older data, never deleted), logged and listed in
// Outcome.Rollback as stranded: they are readable again if that key comes back. Finally the
// stash is dropped. With no pending generation of this request (Begin never committed)
// nothing changes. Repeating Abort is harmless: it carries on where a failed attempt stopped.
func (s *Service) Abort(ctx context.Context, st State) (Outcome, error) {
	if st.AppID == "" {
		return Outcome{}, &wferr.Invalid{Msg: "abort needs appId"}
	}
	reason := "re-encryption failed"
	if st.Error != nil {
		reason = strings.TrimSpace(st.Error.Error + ": " + st.Error.Cause)
	}
	if len(reason) > 500 {
		reason = reason[:500] + "…"
	}
	to := st.ToGeneration
	if done, out, err := s.committedAlready(ctx, st); err != nil || done {
		return out, err
	}
	if to <= 0 {
		app, err := s.cfg.Store.GetApp(ctx, st.AppID)
		if err != nil {
			return Outcome{}, wferr.From(fmt.Errorf("reencrypt: app %s: %w", st.AppID, err))
		}
		if st.OperatorAbort && app.Status == lineage.AppReencrypting && app.PendingGeneration > 0 {
			to = app.PendingGeneration
		} else if app.PendingGeneration > 0 && app.ActiveGeneration == st.FromGeneration {
			pg, err := s.cfg.Store.GetGeneration(ctx, st.AppID, app.PendingGeneration)
			if err != nil {
				return Outcome{}, wferr.From(fmt.Errorf("reencrypt: pending generation of %s: %w", st.AppID, err))
			}
			if pg.KeyARN == st.KeyARN {
				to = pg.Number
			}
		}
		if to <= 0 {
			return Outcome{AppID: st.AppID, Status: app.Status, ActiveGeneration: app.ActiveGeneration, Reason: "nothing begun: " + reason}, nil
		}
	}
	before, err := s.cfg.Store.GetApp(ctx, st.AppID)
	if err != nil {
		return Outcome{}, wferr.From(fmt.Errorf("reencrypt: app %s: %w", st.AppID, err))
	}
	app, err := s.cfg.Store.AbortReencrypt(ctx, st.AppID, to, reason, st.cause())
	if err != nil {
		return Outcome{}, wferr.From(fmt.Errorf("reencrypt: abort %s: %w", st.AppID, err))
	}
	st.ToGeneration = to
	if before.PendingGeneration == to {
		// Not aborted before (a retried step emits no second event).
		s.emit(ctx, audit.DetailReencryptAborted, st, app.OrgID, map[string]any{"status": app.Status, "reason": reason})
	}
	out := Outcome{AppID: st.AppID, Status: app.Status, ActiveGeneration: app.ActiveGeneration, RetiredGeneration: to, Reason: reason}
	if err := s.rollback(ctx, st.AppID, app.ActiveGeneration, to, st.AcceptStranded, &out); err != nil {
		return Outcome{}, err
	}
	return out, nil
}

// committedAlready reports whether the re-encryption st describes committed (its commit
// landed although the step failed, e.g. a timeout after the write): then an abort must not
// report a failed switch that happened. The outcome says so, and the state machine ends as
// committed.
func (s *Service) committedAlready(ctx context.Context, st State) (bool, Outcome, error) {
	if st.OperatorAbort || st.FromGeneration <= 0 || st.KeyARN == "" {
		return false, Outcome{}, nil
	}
	app, err := s.cfg.Store.GetApp(ctx, st.AppID)
	if err != nil {
		return false, Outcome{}, wferr.From(fmt.Errorf("reencrypt: app %s: %w", st.AppID, err))
	}
	if app.PendingGeneration != 0 || app.ActiveGeneration <= st.FromGeneration ||
		(st.ToGeneration > 0 && app.ActiveGeneration != st.ToGeneration) {
		return false, Outcome{}, nil
	}
	g, err := s.cfg.Store.GetGeneration(ctx, st.AppID, app.ActiveGeneration)
	if err != nil {
		return false, Outcome{}, wferr.From(fmt.Errorf("reencrypt: generation %d of %s: %w", app.ActiveGeneration, st.AppID, err))
	}
	if g.KeyARN != st.KeyARN {
		return false, Outcome{}, nil
	}
	out := Outcome{AppID: st.AppID, Status: app.Status, ActiveGeneration: app.ActiveGeneration, KeyARN: st.KeyARN,
		RetiredGeneration: st.FromGeneration, Committed: true,
		Reason: "the commit had landed before the step reported its failure: the app is on the new key, nothing undone"}
	if s.cfg.Objects != nil {
		n, err := s.cfg.Objects.DropReencryptStash(ctx, st.AppID, app.ActiveGeneration)
		if err != nil {
			return false, Outcome{}, &wferr.Transient{Msg: fmt.Sprintf("dropping the re-encryption stash of app %s: %v", st.AppID, err)}
		}
		out.StashDropped = n
	}
	s.cfg.Logger.WarnContext(ctx, "abort after a commit that landed: reporting the commit", slog.String("app_id", st.AppID),
		slog.Int("generation", app.ActiveGeneration))
	return true, out, nil
}

// rollback puts the objects moved to generation to back under from and drops the stash
// (see Abort). Its errors are Transient: the state machine retries Abort, which carries on.
//
// Objects a client wrote during the re-encryption that cannot be put back now (a key they
// need is revoked) make it return wferr.Stranded, stash kept, unless acceptStranded: the
// state machine retries while the key may come back (I3: when the abort ends, nothing is
// left under the aborted generation but what only its revoked key can open), then accepts
// and lists them.
func (s *Service) rollback(ctx context.Context, appID string, from, to int, acceptStranded bool, out *Outcome) error {
	if s.cfg.Objects == nil {
		return &wferr.Failed{Msg: "reencrypt: no data source configured to roll back app " + appID}
	}
	if from <= 0 || from >= to {
		return &wferr.Failed{Msg: fmt.Sprintf("reencrypt: cannot roll app %s back from generation %d to %d", appID, to, from)}
	}
	rb, err := s.cfg.Objects.RollbackReencrypt(ctx, appID, from, to)
	if err != nil {
		if errors.Is(err, objects.ErrInvalid) {
			return &wferr.Invalid{Msg: err.Error()}
		}
		return &wferr.Transient{Msg: fmt.Sprintf("rolling back the objects of app %s to generation %d: %v", appID, from, err)}
	}
	out.Rollback = &rb
	if rb.StrandedCount > 0 && !acceptStranded {
		s.cfg.Logger.InfoContext(ctx, "re-encryption abort: objects written during it cannot be put back yet; retrying while their key may come back",
			slog.String("app_id", appID), slog.Int("generation", to), slog.Int("stranded", rb.StrandedCount))
		return &wferr.Stranded{Msg: fmt.Sprintf("app %s: %d objects written during the re-encryption are still under the aborted generation %d: a key they need is revoked",
			appID, rb.StrandedCount, to)}
	}
	if rb.StrandedCount > 0 {
		s.cfg.Logger.WarnContext(ctx, "re-encryption aborted: objects written during it are left under the aborted generation, whose key cannot open them now",
			slog.String("app_id", appID), slog.Int("generation", to), slog.Int("stranded", rb.StrandedCount), slog.Any("keys", rb.Stranded))
	}
	n, err := s.cfg.Objects.DropReencryptStash(ctx, appID, to)
	if err != nil {
		return &wferr.Transient{Msg: fmt.Sprintf("dropping the re-encryption stash of app %s: %v", appID, err)}
	}
	out.StashDropped = n
	s.cfg.Logger.InfoContext(ctx, "re-encryption rolled back", slog.String("app_id", appID), slog.Int("from", to), slog.Int("to", from),
		slog.Int("checked", rb.Checked), slog.Int("restored", rb.Restored), slog.Int("resealed", rb.Resealed),
		slog.Int("stranded", rb.StrandedCount), slog.Int("stash_dropped", n))
	return nil
}

func (s *Service) emit(ctx context.Context, detailType string, st State, orgID string, extra map[string]any) {
	d := map[string]any{"appId": st.AppID, "orgId": orgID, "keyArn": st.KeyARN, "oldKeyArn": st.OldKeyARN,
		"fromGeneration": st.FromGeneration, "toGeneration": st.ToGeneration, "cause": st.cause()}
	for k, v := range extra {
		d[k] = v
	}
	resources := []string{st.KeyARN}
	if st.OldKeyARN != "" {
		resources = append(resources, st.OldKeyARN)
	}
	if err := s.cfg.Emitter.Emit(ctx, audit.Event{DetailType: detailType, Detail: d, Resources: resources, Time: s.cfg.Clock.Now().UTC()}); err != nil {
		s.cfg.Logger.ErrorContext(ctx, "audit event not emitted", slog.String("detail_type", detailType), slog.String("app_id", st.AppID), slog.Any("error", err))
	}
}
