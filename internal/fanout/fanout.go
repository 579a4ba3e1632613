// Package fanout is the one helper for bounded fan-outs: run a function over items with
// at most a given number at once (errgroup with SetLimit), under one error rule.
//
// The error rule: every item runs, whatever happens to the others — each item's work is
// independent and idempotent, so one failure is no reason to leave the rest undone —
// until ctx ends, after which no further item starts. The result joins every item's
// error and the context's (errors.Join), so errors.Is and errors.As find any of them;
// it is nil only when every item ran and none failed.
package fanout

import (
	"context"
	"errors"
	"sync"

	"golang.org/x/sync/errgroup"
)

// Each runs fn for every item, at most limit at once (limit < 1 means one at a time), and
// returns when all started calls have returned.
func Each[T any](ctx context.Context, limit int, items []T, fn func(ctx context.Context, item T) error) error {
	if limit < 1 {
		limit = 1
	}
	var (
		g    errgroup.Group
		mu   sync.Mutex
		errs []error
	)
	g.SetLimit(limit)
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if ctx.Err() != nil {
				return nil // ctx ended while this item waited for a slot: it does not start
			}
			if err := fn(ctx, it); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait() // the goroutines return nil: their errors are collected above
	if err := ctx.Err(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
