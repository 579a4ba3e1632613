package fault

import (
	"context"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/clock"
)

// PublishFunc delivers one CloudTrail event (its EventBridge envelope) to the bus.
type PublishFunc func(ctx context.Context, envelope []byte) error

// CloudTrailPath is the path of CloudTrail events from KMS to the bus with the injector's
// faults on it: an event may be lost, delivered twice, held for a while, or held until the
// next event has overtaken it.
type CloudTrailPath struct {
	in      *Injector
	publish PublishFunc
	clk     clock.Clock

	mu     sync.Mutex
	held   []heldEvent // reordered events waiting for the next one
	wg     sync.WaitGroup
	closed chan struct{}
	once   sync.Once
}

type heldEvent struct {
	envelope []byte
	id       *struct{ _ byte } // identity: release finds its own event
}

// CloudTrail returns the faulty path to publish (clk drives the holds; nil: the real clock).
func (in *Injector) CloudTrail(publish PublishFunc, clk clock.Clock) *CloudTrailPath {
	if clk == nil {
		clk = clock.Real()
	}
	return &CloudTrailPath{in: in, publish: publish, clk: clk, closed: make(chan struct{})}
}

// Publish sends one event along the path. eventName is the CloudTrail eventName.
func (p *CloudTrailPath) Publish(ctx context.Context, eventName string, envelope []byte) error {
	f := p.in.CloudTrailEvent(eventName)
	ctx = context.WithoutCancel(ctx)
	switch f.Kind {
	case KindDrop:
		return nil
	case KindDuplicate:
		if err := p.deliver(ctx, envelope); err != nil {
			return err
		}
		return p.deliver(ctx, envelope)
	case KindDelay:
		p.later(f.Hold, func() { _ = p.publish(ctx, envelope) })
		return nil
	case KindReorder:
		h := heldEvent{envelope: envelope, id: new(struct{ _ byte })}
		p.mu.Lock()
		p.held = append(p.held, h)
		p.mu.Unlock()
		// Released by the next event, or when the window ends without one.
		p.later(f.Hold, func() { p.release(ctx, h) })
		return nil
	}
	return p.deliver(ctx, envelope)
}

// deliver publishes envelope, then every event held for reordering (they are overtaken).
func (p *CloudTrailPath) deliver(ctx context.Context, envelope []byte) error {
	err := p.publish(ctx, envelope)
	p.mu.Lock()
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, h := range held {
		p.flush(ctx, h)
	}
	return err
}

// release publishes h if it is still held.
func (p *CloudTrailPath) release(ctx context.Context, h heldEvent) {
	p.mu.Lock()
	for i, x := range p.held {
		if x.id == h.id {
			p.held = append(p.held[:i:i], p.held[i+1:]...)
			p.mu.Unlock()
			p.flush(ctx, h)
			return
		}
	}
	p.mu.Unlock()
}

// flush publishes a held event; whoever took it off the held list (deliver or release) does.
func (p *CloudTrailPath) flush(ctx context.Context, h heldEvent) {
	_ = p.publish(ctx, h.envelope)
}

// later runs f after d on the path's clock, unless the path is closed first.
func (p *CloudTrailPath) later(d time.Duration, f func()) {
	select {
	case <-p.closed:
		return
	default:
	}
	due := p.clk.After(d)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		select {
		case <-due:
			f()
		case <-p.closed:
		}
	}()
}

// Close drops what is still held (as a process that stops would) and waits for the timers.
func (p *CloudTrailPath) Close() {
	p.once.Do(func() { close(p.closed) })
	p.wg.Wait()
}
