package revocation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyline/keyline/internal/audit"
	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/lineage"
)

// Notifications of a key change (B5). The key-event function changes the key item and
// returns: it does not wait for the apps on the key, whatever their number. It emits one
// Key Notification Page event; the notify function, triggered by it through the event bus,
// sends the per-key event (Key Revoked / Key Reactivated / Reactivation Awaiting Operator,
// with the key ARN and the number of apps on it) and then, one page of apps per
// invocation, the per-app events (App Deactivated / App Reactivated / Reactivation
// Awaiting Operator), each page ending with the Key Notification Page event of the next.
// Delivery is at least once: a page that fails is retried whole (the bus retries the
// invocation), so an app may be notified twice, never not at all. A page of a change that
// a newer change of the key superseded stops: the newer change sends its own.

// DefaultNotifyPageSize is how many apps one notify invocation notifies.
const DefaultNotifyPageSize = 500

// NotifyPage is the detail of a Key Notification Page event: one page of a key change's
// notifications.
type NotifyPage struct {
	KeyARN string `json:"keyArn"`
	// Change is ChangeRevoked, ChangeReactivated or ChangeAwaitingOperator.
	Change string `json:"change"`
	// Since is the key's Since at the change: a page whose key has moved on stops.
	Since time.Time     `json:"since"`
	Cause lineage.Cause `json:"cause"`
	// Reason is the key's reason at the change.
	Reason string `json:"reason,omitempty"`
	// Cursor is where the page starts ("": the first page, which sends the per-key event).
	Cursor string `json:"cursor,omitempty"`
	// Page counts the pages of the change (1 for the first).
	Page int `json:"page"`
}

// NotifyResult is what one page did.
type NotifyResult struct {
	KeyARN string `json:"keyArn"`
	Change string `json:"change"`
	Page   int    `json:"page"`
	// AppsOnKey is the number of apps on the key (first page only).
	AppsOnKey int `json:"appsOnKey,omitempty"`
	// Notified is how many per-app events this page sent.
	Notified int `json:"notified"`
	// Next is the cursor of the next page ("" when this was the last).
	Next string `json:"next,omitempty"`
	// Superseded: the key changed again since; nothing was sent.
	Superseded bool `json:"superseded,omitempty"`
}

// NotifierConfig configures a Notifier.
type NotifierConfig struct {
	Store   Store
	Emitter audit.Emitter
	// PageSize is how many apps one page notifies (default DefaultNotifyPageSize).
	PageSize int
	Clock    clock.Clock
	Logger   *slog.Logger
}

// Notifier sends a key change's notifications, page by page.
type Notifier struct {
	cfg NotifierConfig
}

// NewNotifier returns a Notifier.
func NewNotifier(cfg NotifierConfig) (*Notifier, error) {
	if cfg.Store == nil || cfg.Emitter == nil {
		return nil, errors.New("revocation: a notifier needs a store and an emitter")
	}
	if cfg.PageSize <= 0 {
		cfg.PageSize = DefaultNotifyPageSize
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Notifier{cfg: cfg}, nil
}

// ParseNotifyPage reads a Key Notification Page event (the EventBridge envelope, or its
// detail alone).
func ParseNotifyPage(raw []byte) (NotifyPage, error) {
	var env struct {
		DetailType string          `json:"detail-type"`
		Detail     json.RawMessage `json:"detail"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return NotifyPage{}, &MalformedError{What: "not a JSON event: " + err.Error()}
	}
	body := raw
	if len(env.Detail) > 0 {
		if env.DetailType != audit.DetailKeyNotificationPage {
			return NotifyPage{}, &MalformedError{What: fmt.Sprintf("detail-type %q is not %q", env.DetailType, audit.DetailKeyNotificationPage)}
		}
		body = env.Detail
	}
	var p NotifyPage
	if err := json.Unmarshal(body, &p); err != nil {
		return NotifyPage{}, &MalformedError{What: "not a notification page: " + err.Error()}
	}
	if !IsKeyARN(p.KeyARN) {
		return NotifyPage{}, &MalformedError{What: fmt.Sprintf("keyArn %q is not a KMS key ARN", p.KeyARN)}
	}
	switch p.Change {
	case ChangeRevoked, ChangeReactivated, ChangeAwaitingOperator:
	default:
		return NotifyPage{}, &MalformedError{What: fmt.Sprintf("change %q is not one of %s, %s, %s", p.Change, ChangeRevoked, ChangeReactivated, ChangeAwaitingOperator)}
	}
	if p.Page <= 0 {
		p.Page = 1
	}
	return p, nil
}

// startNotify emits the first Key Notification Page event of a key change. When it fails,
// the handler fails and its retry (the same event, a Repeat for the key item) starts the
// notifications again: at least once.
func (s *Service) startNotify(ctx context.Context, keyARN, change string, k lineage.Key, cause lineage.Cause) error {
	p := NotifyPage{KeyARN: keyARN, Change: change, Since: k.Since, Cause: cause, Reason: k.Reason(), Page: 1}
	if err := s.emitter.Emit(ctx, pageEvent(p, s.clock.Now().UTC())); err != nil {
		return fmt.Errorf("revocation: start the notifications of key %s (%s): %w", keyARN, change, err)
	}
	return nil
}

// FirstPage is the notification page a change of the key to k starts with (for callers
// that drain the notifications themselves, such as tests and benchmarks).
func FirstPage(keyARN, change string, k lineage.Key, cause lineage.Cause) NotifyPage {
	return NotifyPage{KeyARN: keyARN, Change: change, Since: k.Since, Cause: cause, Reason: k.Reason(), Page: 1}
}

func pageEvent(p NotifyPage, now time.Time) audit.Event {
	return audit.Event{DetailType: audit.DetailKeyNotificationPage, Resources: []string{p.KeyARN}, Time: now, Detail: p}
}

func (p NotifyPage) keyDetail() string {
	switch p.Change {
	case ChangeRevoked:
		return audit.DetailKeyRevoked
	case ChangeReactivated:
		return audit.DetailKeyReactivated
	}
	return audit.DetailKeyAwaitingOperator
}

func (p NotifyPage) appDetail() (string, lineage.Effect) {
	switch p.Change {
	case ChangeRevoked:
		return audit.DetailAppDeactivated, lineage.EffectDeactivated
	case ChangeReactivated:
		return audit.DetailAppReactivated, lineage.EffectReactivated
	}
	return audit.DetailReactivationWaiting, lineage.EffectAwaitingOperator
}

// current reports whether the key is still in the state the change put it in.
func (p NotifyPage) current(k lineage.Key) bool {
	if !k.Since.Equal(p.Since) {
		return false
	}
	switch p.Change {
	case ChangeRevoked:
		return k.State == lineage.KeyRevoked
	case ChangeReactivated:
		return k.State == lineage.KeyUsable
	}
	return k.State == lineage.KeyRevoked && k.AwaitingOperator
}

// Page sends one page of a key change's notifications and emits the event of the next.
func (n *Notifier) Page(ctx context.Context, p NotifyPage) (NotifyResult, error) {
	return n.page(ctx, p, true)
}

// Drain sends every page of a key change's notifications in this call, without the
// continuation events; it returns the number of apps on the key and of app events sent.
func (n *Notifier) Drain(ctx context.Context, p NotifyPage) (apps, notified int, err error) {
	for {
		res, err := n.page(ctx, p, false)
		if err != nil {
			return apps, notified, err
		}
		if p.Cursor == "" {
			apps = res.AppsOnKey
		}
		notified += res.Notified
		if res.Superseded || res.Next == "" {
			return apps, notified, nil
		}
		p.Cursor, p.Page = res.Next, p.Page+1
	}
}

func (n *Notifier) page(ctx context.Context, p NotifyPage, emitNext bool) (NotifyResult, error) {
	res := NotifyResult{KeyARN: p.KeyARN, Change: p.Change, Page: p.Page}
	log := n.cfg.Logger.With(slog.String("key_arn", p.KeyARN), slog.String("change", p.Change), slog.Int("page", p.Page))
	k, err := n.cfg.Store.GetKey(ctx, p.KeyARN)
	if err != nil {
		return res, fmt.Errorf("revocation: notify: %w", err)
	}
	if !p.current(k) {
		res.Superseded = true
		log.InfoContext(ctx, "key notifications superseded by a newer change of the key")
		return res, nil
	}
	now := n.cfg.Clock.Now().UTC()
	if p.Cursor == "" {
		count, err := n.cfg.Store.CountAppsOnKey(ctx, p.KeyARN)
		if err != nil {
			return res, fmt.Errorf("revocation: notify: %w", err)
		}
		res.AppsOnKey = count
		if err := n.cfg.Emitter.Emit(ctx, audit.Event{DetailType: p.keyDetail(), Resources: []string{p.KeyARN}, Time: now,
			Detail: map[string]any{"keyArn": p.KeyARN, "apps": count, "state": k.State, "since": k.Since, "reason": p.Reason, "cause": p.Cause}}); err != nil {
			return res, fmt.Errorf("revocation: notify: per-key event: %w", err)
		}
	}
	page, err := n.cfg.Store.AppsOnKey(ctx, p.KeyARN, p.Cursor, n.cfg.PageSize)
	if err != nil {
		return res, fmt.Errorf("revocation: notify: %w", err)
	}
	detail, effect := p.appDetail()
	events := make([]audit.Event, 0, len(page.Apps))
	for _, a := range page.Apps {
		events = append(events, audit.Event{DetailType: detail, Resources: []string{p.KeyARN}, Time: now, Detail: map[string]any{
			"appId": a.AppID, "orgId": a.OrgID, "keyArn": p.KeyARN, "generation": a.Generation,
			"effect": effect, "reason": p.Reason, "cause": p.Cause,
		}})
	}
	if err := n.cfg.Emitter.Emit(ctx, events...); err != nil {
		return res, fmt.Errorf("revocation: notify: %d app events: %w", len(events), err)
	}
	res.Notified, res.Next = len(events), page.Next
	if page.Next != "" && emitNext {
		next := p
		next.Cursor, next.Page = page.Next, p.Page+1
		if err := n.cfg.Emitter.Emit(ctx, pageEvent(next, now)); err != nil {
			return res, fmt.Errorf("revocation: notify: next page: %w", err)
		}
	}
	log.InfoContext(ctx, "key notifications sent", slog.Int("apps", res.Notified), slog.Bool("more", res.Next != ""))
	return res, nil
}

// HandlePage is the notify function's handler: one Key Notification Page event.
func (n *Notifier) HandlePage(ctx context.Context, raw []byte) (NotifyResult, error) {
	p, err := ParseNotifyPage(raw)
	if err != nil {
		return NotifyResult{}, err
	}
	return n.Page(ctx, p)
}
