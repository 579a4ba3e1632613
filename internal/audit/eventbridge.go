package audit

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge/types"

	"github.com/keyline/keyline/internal/clock"
	"github.com/keyline/keyline/internal/fanout"
)

// PutEventsAPI is the subset of *eventbridge.Client the emitter uses.
type PutEventsAPI interface {
	PutEvents(ctx context.Context, in *eventbridge.PutEventsInput, optFns ...func(*eventbridge.Options)) (*eventbridge.PutEventsOutput, error)
}

var _ PutEventsAPI = (*eventbridge.Client)(nil)

// MaxBatch is the most entries one PutEvents call carries (an EventBridge limit).
const MaxBatch = 10

// EventBridgeOptions configure the EventBridge emitter. The zero value is usable.
type EventBridgeOptions struct {
	// MaxAttempts bounds the attempts for one batch (failed entries and failed calls; default 5).
	MaxAttempts int
	// BaseDelay is the first backoff delay (default 50ms), doubled per attempt up to MaxDelay
	// (default 2s), with full jitter.
	BaseDelay, MaxDelay time.Duration
	// Concurrency is how many PutEvents calls run at once (default 8).
	Concurrency int
	// Clock waits between attempts (default clock.Real()).
	Clock clock.Clock
	// Logger receives a record per retried or failed batch (default slog.Default()).
	Logger *slog.Logger
}

// EventBridge emits events with PutEvents on one bus, `source: keyline`.
type EventBridge struct {
	client PutEventsAPI
	bus    string
	opts   EventBridgeOptions
}

var _ Emitter = (*EventBridge)(nil)

// NewEventBridge returns an emitter that puts events on the bus named busName (a name or ARN).
func NewEventBridge(client PutEventsAPI, busName string, opts EventBridgeOptions) (*EventBridge, error) {
	if client == nil {
		return nil, fmt.Errorf("audit: no eventbridge client")
	}
	if busName == "" {
		return nil, fmt.Errorf("audit: no event bus name")
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = 5
	}
	if opts.BaseDelay <= 0 {
		opts.BaseDelay = 50 * time.Millisecond
	}
	if opts.MaxDelay < opts.BaseDelay {
		opts.MaxDelay = max(2*time.Second, opts.BaseDelay)
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &EventBridge{client: client, bus: busName, opts: opts}, nil
}

// Emit implements Emitter: events go out in batches of at most MaxBatch, several batches
// at once; entries EventBridge reports as failed (and whole failed calls) are retried with
// backoff. Invalid events are refused before anything is sent.
func (e *EventBridge) Emit(ctx context.Context, events ...Event) error {
	entries := make([]types.PutEventsRequestEntry, 0, len(events))
	for _, ev := range events {
		detail, err := ev.detailJSON()
		if err != nil {
			return err
		}
		if ev.DetailType == "" {
			return fmt.Errorf("%w: an event needs a detail type", ErrInvalidEvent)
		}
		entry := types.PutEventsRequestEntry{
			EventBusName: aws.String(e.bus),
			Source:       aws.String(Source),
			DetailType:   aws.String(ev.DetailType),
			Detail:       aws.String(detail),
			Resources:    ev.Resources,
		}
		if !ev.Time.IsZero() {
			entry.Time = aws.Time(ev.Time)
		}
		entries = append(entries, entry)
	}
	if len(entries) == 0 {
		return nil
	}

	var batches [][]types.PutEventsRequestEntry
	for start := 0; start < len(entries); start += MaxBatch {
		batches = append(batches, entries[start:min(start+MaxBatch, len(entries))])
	}
	var (
		mu        sync.Mutex
		delivered int
		codes     = map[string]int{}
	)
	// A batch that ctx kept from starting counts as not delivered, like one that ran out of
	// attempts: failed is the total less what was delivered.
	err := fanout.Each(ctx, e.opts.Concurrency, batches, func(ctx context.Context, batch []types.PutEventsRequestEntry) error {
		n, c, err := e.send(ctx, batch)
		mu.Lock()
		defer mu.Unlock()
		delivered += len(batch) - n
		for k, v := range c {
			codes[k] += v
		}
		return err
	})
	if failed := len(entries) - delivered; failed > 0 {
		return &EmitError{Failed: failed, Total: len(entries), Codes: codes, Err: err}
	}
	return nil
}

// send delivers one batch, retrying failed entries; it returns how many were not delivered.
func (e *EventBridge) send(ctx context.Context, batch []types.PutEventsRequestEntry) (int, map[string]int, error) {
	pending := batch
	var codes map[string]int
	var lastErr error
	for attempt := 1; ; attempt++ {
		out, err := e.client.PutEvents(ctx, &eventbridge.PutEventsInput{Entries: pending})
		codes = map[string]int{}
		if err != nil {
			lastErr = err
			codes["CallFailed"] = len(pending)
		} else {
			lastErr = nil
			var retry []types.PutEventsRequestEntry
			if out.FailedEntryCount > 0 {
				for i, r := range out.Entries {
					if i < len(pending) && r.ErrorCode != nil {
						retry = append(retry, pending[i])
						codes[aws.ToString(r.ErrorCode)]++
					}
				}
				// A response that reports failures without saying which: resend them all.
				if len(retry) == 0 {
					retry = pending
					codes["Unspecified"] = len(pending)
				}
			}
			pending = retry
		}
		if len(pending) == 0 {
			return 0, nil, nil
		}
		if attempt >= e.opts.MaxAttempts || ctx.Err() != nil {
			e.opts.Logger.LogAttrs(ctx, slog.LevelError, "audit events not delivered",
				slog.Int("failed", len(pending)), slog.Int("attempts", attempt), slog.Any("codes", codes))
			if lastErr == nil {
				lastErr = ctx.Err()
			}
			return len(pending), codes, lastErr
		}
		d := e.backoff(attempt)
		e.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "audit events retried",
			slog.Int("pending", len(pending)), slog.Int("attempt", attempt), slog.Duration("delay", d), slog.Any("codes", codes))
		select {
		case <-ctx.Done():
		case <-e.opts.Clock.After(d):
		}
	}
}

func (e *EventBridge) backoff(attempt int) time.Duration {
	ceil := e.opts.BaseDelay
	for i := 1; i < attempt && ceil < e.opts.MaxDelay; i++ {
		ceil *= 2
	}
	ceil = min(ceil, e.opts.MaxDelay)
	return time.Duration(rand.Int64N(int64(ceil) + 1))
}
