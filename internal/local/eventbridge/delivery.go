package eventbridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// errPermanent marks a delivery failure that retrying cannot fix.
var errPermanent = errors.New("permanent delivery failure")

// delivery is one event (or schedule input) on its way to one target.
type delivery struct {
	eventID string
	rule    string
	target  Target
	event   []byte // the envelope, or the schedule's input
	delay   time.Duration
}

// enqueueLocked starts an asynchronous delivery. Caller holds b.mu.
func (b *Bus) enqueueLocked(d delivery) {
	b.pending++
	b.wg.Add(1)
	go b.deliver(d)
}

// done marks one delivery finished. Caller must not hold b.mu.
func (b *Bus) done() {
	b.mu.Lock()
	b.pending--
	b.notifyLocked()
	b.mu.Unlock()
	b.wg.Done()
}

// notifyLocked wakes everything waiting in Drain. Caller holds b.mu.
func (b *Bus) notifyLocked() {
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *Bus) wait(d time.Duration) bool {
	if d <= 0 {
		return b.ctx.Err() == nil
	}
	select {
	case <-b.clock.After(d):
		return true
	case <-b.ctx.Done():
		return false
	}
}

func (b *Bus) deliver(d delivery) {
	defer b.done()
	if !b.wait(d.delay) {
		return
	}
	payload, err := targetPayload(d.target, d.event)
	attempts := 0
	if err == nil {
		for {
			attempts++
			select {
			case b.sem <- struct{}{}:
			case <-b.ctx.Done():
				return
			}
			err = b.invoke(b.ctx, d.target.Arn, payload)
			<-b.sem
			if err == nil {
				b.log.Debug("eventbridge: delivered", "event", d.eventID, "rule", d.rule, "target", d.target.Arn, "attempts", attempts)
				return
			}
			if b.ctx.Err() != nil {
				return
			}
			if errors.Is(err, errPermanent) || attempts >= b.opts.MaxAttempts {
				break
			}
			b.log.Warn("eventbridge: delivery failed, will retry", "event", d.eventID, "rule", d.rule, "target", d.target.Arn, "attempt", attempts, "err", err)
			if !b.wait(b.backoff(attempts)) {
				return
			}
		}
	}
	b.log.Error("eventbridge: delivery dead-lettered", "event", d.eventID, "rule", d.rule, "target", d.target.Arn, "attempts", attempts, "err", err)
	b.mu.Lock()
	b.dead = append(b.dead, DeadLetter{EventID: d.eventID, Rule: d.rule, TargetArn: d.target.Arn,
		Payload: payload, Attempts: attempts, Err: err.Error(), Time: b.clock.Now()})
	b.mu.Unlock()
}

// backoff is the wait before retry number `attempt`: RetryBase doubled per
// failed attempt, at most RetryMax.
func (b *Bus) backoff(attempt int) time.Duration {
	d := b.opts.RetryBase
	for i := 1; i < attempt && d < b.opts.RetryMax; i++ {
		d *= 2
	}
	return min(d, b.opts.RetryMax)
}

// invoke calls a Lambda function or starts a state machine by target ARN.
func (b *Bus) invoke(ctx context.Context, arn string, payload []byte) error {
	parts := strings.SplitN(arn, ":", 7)
	if len(parts) < 6 {
		return fmt.Errorf("%w: target %s is not an ARN", errPermanent, arn)
	}
	switch parts[2] {
	case "lambda":
		if b.opts.Invoker == nil {
			return fmt.Errorf("%w: no Lambda invoker for %s", errPermanent, arn)
		}
		// arn:aws:lambda:region:account:function:NAME[:qualifier]
		name := arn
		if len(parts) == 7 && parts[5] == "function" {
			name, _, _ = strings.Cut(parts[6], ":")
		}
		_, err := b.opts.Invoker.Invoke(ctx, name, payload)
		return err
	case "states":
		if b.opts.StartExecution == nil {
			return fmt.Errorf("%w: no Step Functions for %s", errPermanent, arn)
		}
		return b.opts.StartExecution(ctx, arn, payload)
	}
	return fmt.Errorf("%w: targets of service %q are not supported locally", errPermanent, parts[2])
}

// targetPayload applies a target's Input or InputPath to an event.
func targetPayload(t Target, event []byte) ([]byte, error) {
	switch {
	case t.Input != "":
		return []byte(t.Input), nil
	case t.InputPath != "" && t.InputPath != "$":
		path, err := parsePath(t.InputPath)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errPermanent, err)
		}
		var v any
		if err := json.Unmarshal(event, &v); err != nil {
			return nil, fmt.Errorf("%w: event is not JSON: %v", errPermanent, err)
		}
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				v = nil
				break
			}
			v = m[k]
		}
		return json.Marshal(v)
	}
	return event, nil
}

// parsePath parses the simple JSONPath ($.a.b) that InputPath takes.
func parsePath(p string) ([]string, error) {
	if p == "$" {
		return nil, nil
	}
	rest, ok := strings.CutPrefix(p, "$.")
	if !ok || rest == "" {
		return nil, fmt.Errorf("InputPath %q must look like $.field.field", p)
	}
	keys := strings.Split(rest, ".")
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("InputPath %q has an empty field", p)
		}
	}
	return keys, nil
}

// Drain waits until every accepted event has been delivered or dead-lettered
// and, while the scheduler runs, no schedule is due; or until ctx is done.
func (b *Bus) Drain(ctx context.Context) error {
	for {
		b.mu.Lock()
		idle := b.pending == 0 && !(b.running && b.dueLocked(b.clock.Now()))
		ch := b.changed
		b.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitIdle is Drain.
func (b *Bus) WaitIdle(ctx context.Context) error { return b.Drain(ctx) }

// Close stops the scheduler and abandons deliveries still waiting (for a
// delay or a retry), then waits for running ones to return.
func (b *Bus) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.wg.Wait()
	return nil
}
