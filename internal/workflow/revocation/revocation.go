// Package revocation is keyline's key-revocation path (DESIGN R8, B1, B2, B3, B6, B8): it
// turns CloudTrail KMS key events (DisableKey, ScheduleKeyDeletion, EnableKey,
// CancelKeyDeletion, delivered by an EventBridge rule), revoked-class KMS errors met by the
// workflows and failed key-health checks into changes of the key item (lineage, K1-K7).
//
// A revocation or reactivation is one conditional write of the key item, whatever the
// number of apps on the key (B6: only the apps whose active generation uses it change, by
// derivation). Events with an errorCode change nothing; events are deduplicated by id and
// the key item refuses one older than the last applied (B3). Reactivation (B1) verifies the
// key with a test round trip first and never brings back a generation retired by
// re-encryption. After a change, the handler aborts the re-encryptions whose pending
// generation uses the key (B8) and hands the notifications to the notify function: one
// per-key event with the number of apps, then per-app events, page by page (Notifier).
package revocation

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/keys"
	"github.com/keyline/keyline/internal/lineage"
	"github.com/keyline/keyline/internal/workflow/wferr"
)

// DefaultWindow is how long after a revocation a key's return reactivates its apps by itself (B1).
const DefaultWindow = lineage.DefaultReactivationWindow

// ActionAwaitingEnable is the audit action recorded when CancelKeyDeletion leaves a key
// Disabled: nothing changes until EnableKey.
const ActionAwaitingEnable = "key.awaiting_enable"

// Store is what the revocation path needs of the lineage store (*lineage.Store satisfies it).
type Store interface {
	GetApp(ctx context.Context, appID string) (lineage.App, error)
	GetOrg(ctx context.Context, orgID string) (lineage.Org, error)
	ActiveKey(ctx context.Context, appID string) (lineage.App, lineage.Generation, error)
	GetKey(ctx context.Context, keyARN string) (lineage.Key, error)
	RevokeKey(ctx context.Context, keyARN, cause string, ev lineage.KeyEventRef, by lineage.Cause) (lineage.KeyChangeResult, error)
	ReactivateKey(ctx context.Context, keyARN string, window time.Duration, ev lineage.KeyEventRef, by lineage.Cause) (lineage.KeyChangeResult, error)
	NoteKeyEvent(ctx context.Context, keyARN, action, note string, ev lineage.KeyEventRef, by lineage.Cause) (lineage.KeyChangeResult, error)
	ReactivateApp(ctx context.Context, appID string, cause lineage.Cause) (lineage.App, error)
	FindPendingOnKey(ctx context.Context, keyARN string) ([]lineage.Generation, error)
	NotePendingRevoked(ctx context.Context, g lineage.Generation, eventID string, by lineage.Cause) error
	CountAppsOnKey(ctx context.Context, keyARN string) (int, error)
	AppsOnKey(ctx context.Context, keyARN, cursor string, limit int) (lineage.KeyAppsPage, error)
	MarkEventSeen(ctx context.Context, eventID string, ttl time.Duration) error
	KeyOrgs(ctx context.Context, keyARN string) ([]string, error)
	AppendAudit(ctx context.Context, e lineage.AuditEntry) (lineage.AuditEntry, error)
}

var _ Store = (*lineage.Store)(nil)

// The data plane's workflows report revoked-class KMS errors through this interface.
var _ wferr.RevocationReporter = (*Service)(nil)

// Config configures a Service.
type Config struct {
	Store   Store
	Keys    keys.Provider
	Emitter audit.Emitter
	// Window is the reactivation window (default DefaultWindow).
	Window time.Duration
	// DedupeTTL is how long event ids are remembered (default 7 days).
	DedupeTTL time.Duration
	Clock     clock.Clock
	Logger    *slog.Logger
}

// Service applies key events. It is safe for concurrent use.
type Service struct {
	store   Store
	keys    keys.Provider
	emitter audit.Emitter
	window  time.Duration
	ttl     time.Duration
	clock   clock.Clock
	log     *slog.Logger
	// seq and nonce make the ids of the changes this process finds itself unique (nowRef).
	seq   atomic.Int64
	nonce string
}

// New returns a Service.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Keys == nil {
		return nil, errors.New("revocation: a store and a key provider are required")
	}
	if cfg.Emitter == nil {
		cfg.Emitter = audit.Discard{}
	}
	if cfg.Window <= 0 {
		cfg.Window = DefaultWindow
	}
	if cfg.DedupeTTL <= 0 {
		cfg.DedupeTTL = 7 * 24 * time.Hour
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	return &Service{store: cfg.Store, keys: cfg.Keys, emitter: cfg.Emitter, window: cfg.Window,
		ttl: cfg.DedupeTTL, clock: cfg.Clock, log: cfg.Logger, nonce: hex.EncodeToString(nonce[:])}, nil
}

// ParseWindow parses a reactivation window: a Go duration ("240h") or whole days ("10d").
// An empty string gives DefaultWindow.
func ParseWindow(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return DefaultWindow, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 {
			return 0, fmt.Errorf("revocation: reactivation window %q: want a positive number of days or a duration", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("revocation: reactivation window %q: want a positive duration (e.g. 240h) or days (10d)", s)
	}
	return d, nil
}

// Outcome says what handling an event did.
type Outcome string

const (
	// OutcomeRevoked: the key is REVOKED, its apps deactivated (Apps lists the re-encryptions
	// aborted, B8).
	OutcomeRevoked Outcome = "revoked"
	// OutcomeReactivated: the key was verified and its apps reactivated or left for an operator.
	OutcomeReactivated Outcome = "reactivated"
	// OutcomeAwaitingEnable: CancelKeyDeletion leaves the key Disabled; recorded, nothing changed.
	OutcomeAwaitingEnable Outcome = "awaiting-enable"
	// OutcomeFailedCall: the event has an errorCode: the call failed, nothing changed (B3).
	OutcomeFailedCall Outcome = "ignored-failed-call"
	// OutcomeDuplicate: the event id was seen before; nothing changed (B3).
	OutcomeDuplicate Outcome = "ignored-duplicate"
	// OutcomeOutOfOrder: a newer event for the key was applied already; nothing changed (B3).
	OutcomeOutOfOrder Outcome = "ignored-out-of-order"
	// OutcomeNotVerified: EnableKey, but the key does not work yet (test round trip failed
	// with a revoked-class error): nothing reactivated.
	OutcomeNotVerified Outcome = "not-verified"
	// OutcomeKeyWorks: a revoked-class error was reported but the key checks out: nothing changed.
	OutcomeKeyWorks Outcome = "key-works"
	// OutcomeNotRevoked: an error that is not of the revoked class: nothing changed (B2).
	OutcomeNotRevoked Outcome = "not-revoked-class"
)

// Result is what handling one event or report did.
type Result struct {
	EventID   string  `json:"eventId,omitempty"`
	EventName string  `json:"eventName,omitempty"`
	KeyARN    string  `json:"keyArn,omitempty"`
	Outcome   Outcome `json:"outcome"`
	Reason    string  `json:"reason,omitempty"`
	// Key is the key's state after the call; Changed says whether this call changed it.
	Key     lineage.Key `json:"key"`
	Changed bool        `json:"changed,omitempty"`
	// Apps lists the apps acted on one by one: re-encryptions aborted (B8). The apps whose
	// active generation uses the key change with the key item and are not listed: the
	// notify function sends their events.
	Apps []lineage.AffectedApp `json:"apps,omitempty"`
}

// Count returns how many of the result's apps had the given effect.
func (r Result) Count(effect lineage.Effect) int {
	n := 0
	for _, a := range r.Apps {
		if a.Effect == effect {
			n++
		}
	}
	return n
}

// HandleCloudTrail applies one CloudTrail KMS event as EventBridge delivers it. A malformed
// event is a *MalformedError and changes nothing.
//
// Dedupe and order (B3): a delivery of an event id that was applied (or is being applied by
// a concurrent delivery) is a duplicate and changes nothing (lineage MarkEventSeen); an
// event older than the last applied one for its key is refused by the key item's write
// itself (lineage K3), whatever order concurrent handlers run in.
// Applying is idempotent, so a delivery that failed midway is retried by Lambda and finishes
// the work.
func (s *Service) HandleCloudTrail(ctx context.Context, raw []byte) (Result, error) {
	ev, err := ParseEvent(raw)
	if err != nil {
		return Result{}, err
	}
	return s.HandleEvent(ctx, ev)
}

// HandleEvent applies a parsed key event (see HandleCloudTrail).
func (s *Service) HandleEvent(ctx context.Context, ev KeyEvent) (Result, error) {
	res := Result{EventID: ev.ID, EventName: ev.Name, KeyARN: ev.KeyARN}
	log := s.log.With(slog.String("event_id", ev.ID), slog.String("event_name", ev.Name), slog.String("key_arn", ev.KeyARN))
	if ev.ErrorCode != "" {
		res.Outcome, res.Reason = OutcomeFailedCall, "the "+ev.Name+" call failed with "+ev.ErrorCode
		log.InfoContext(ctx, "key event ignored: failed call", slog.String("error_code", ev.ErrorCode))
		return res, nil
	}
	if ev.ID == "" || ev.KeyARN == "" || ev.Time.IsZero() {
		return Result{}, &MalformedError{EventID: ev.ID, What: "an event needs an id, a key ARN and a time"}
	}
	// B10: only an event from the key's own, enrolled account counts; the check comes before
	// the event id is claimed, so a forged event cannot spend a real event's id.
	if reason, err := s.CheckEvent(ctx, ev); err != nil {
		return Result{}, err
	} else if reason != "" {
		return s.refuseEvent(ctx, ev, reason)
	}
	switch dup, err := s.claim(ctx, ev.ID); {
	case err != nil:
		return Result{}, err
	case dup:
		res.Outcome, res.Reason = OutcomeDuplicate, "event "+ev.ID+" was applied before, or is being applied"
		log.InfoContext(ctx, "key event ignored: duplicate")
		return res, nil
	}
	cause := lineage.Cause{EventID: ev.ID, Actor: "cloudtrail"}
	ref := lineage.KeyEventRef{ID: ev.ID, Time: ev.Time}
	var (
		r   Result
		err error
	)
	switch ev.Name {
	case EventDisableKey, EventScheduleKeyDeletion:
		r, err = s.revoke(ctx, ev.KeyARN, ev.Name, ref, cause)
	case EventEnableKey:
		r, err = s.reactivate(ctx, ev.KeyARN, ref, cause)
	case EventCancelKeyDeletion:
		r, err = s.awaitingEnable(ctx, ev.KeyARN, ref, cause)
	default:
		return Result{}, &MalformedError{EventID: ev.ID, What: "eventName " + ev.Name + " is not acted on"}
	}
	if err != nil {
		return Result{}, err
	}
	res.Outcome, res.Reason, res.Apps, res.Key, res.Changed = r.Outcome, r.Reason, r.Apps, r.Key, r.Changed
	if res.Outcome == OutcomeOutOfOrder {
		log.InfoContext(ctx, "key event ignored: not newer than the last applied one", slog.Time("event_time", ev.Time))
		return s.done(ctx, ev, res)
	}
	log.InfoContext(ctx, "key event applied", slog.String("outcome", string(res.Outcome)), slog.Int("apps", len(res.Apps)))
	return s.done(ctx, ev, res)
}

// Dedupe markers (B3). MarkEventSeen refuses an id whose record has not expired, and
// accepts it again once it has: "<id>#done" is recorded for DedupeTTL once the event was
// applied; "<id>" is a short claim taken before applying, so concurrent deliveries apply it
// once, while a delivery that failed midway is applied again by its retry (Lambda's async
// retries come a minute or more later, after the claim expired).
const claimTTL = 30 * time.Second

// claim reports dup=true when the event was applied before (its done marker is live) or
// another delivery is applying it right now (its claim is live).
func (s *Service) claim(ctx context.Context, eventID string) (dup bool, err error) {
	// A probe: a marker recorded with a 1ns lifetime has expired by the next call, so this
	// fails only when a live done marker exists and otherwise leaves nothing live behind.
	switch err := s.store.MarkEventSeen(ctx, eventID+"#done", time.Nanosecond); {
	case errors.Is(err, lineage.ErrDuplicate):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("revocation: dedupe event %s: %w", eventID, err)
	}
	switch err := s.store.MarkEventSeen(ctx, eventID, claimTTL); {
	case errors.Is(err, lineage.ErrDuplicate):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("revocation: claim event %s: %w", eventID, err)
	}
	return false, nil
}

// done records the event as applied.
func (s *Service) done(ctx context.Context, ev KeyEvent, res Result) (Result, error) {
	if err := s.store.MarkEventSeen(ctx, ev.ID+"#done", s.ttl); err != nil && !errors.Is(err, lineage.ErrDuplicate) {
		// Applied, but not recorded: a retry applies it again, which changes nothing.
		return res, fmt.Errorf("revocation: record event %s as applied: %w", ev.ID, err)
	}
	return res, nil
}
