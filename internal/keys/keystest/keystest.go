// Package keystest instruments key providers for tests: a Provider that counts its calls.
package keystest

import (
	"context"
	"sync/atomic"

	"github.com/keyline/keyline/internal/keys"
)

// CallCounts are the calls a CountingProvider has seen.
type CallCounts struct {
	GenerateDataKey int64
	Decrypt         int64
	Check           int64
}

// Total is the sum of all calls.
func (c CallCounts) Total() int64 { return c.GenerateDataKey + c.Decrypt + c.Check }

// CountingProvider wraps a Provider and counts its calls (failed ones included). It is safe
// for concurrent use.
type CountingProvider struct {
	p                        keys.Provider
	generate, decrypt, check atomic.Int64
}

var _ keys.Provider = (*CountingProvider)(nil)

// Counting wraps p.
func Counting(p keys.Provider) *CountingProvider { return &CountingProvider{p: p} }

// GenerateDataKey implements keys.Provider.
func (c *CountingProvider) GenerateDataKey(ctx context.Context, keyARN string, encCtx map[string]string) (*keys.DataKey, error) {
	c.generate.Add(1)
	return c.p.GenerateDataKey(ctx, keyARN, encCtx)
}

// Decrypt implements keys.Provider.
func (c *CountingProvider) Decrypt(ctx context.Context, keyARN string, wrapped []byte, encCtx map[string]string) (*keys.DataKey, error) {
	c.decrypt.Add(1)
	return c.p.Decrypt(ctx, keyARN, wrapped, encCtx)
}

// Check implements keys.Provider.
func (c *CountingProvider) Check(ctx context.Context, orgID, keyARN string) error {
	c.check.Add(1)
	return c.p.Check(ctx, orgID, keyARN)
}

// Counts returns the calls so far.
func (c *CountingProvider) Counts() CallCounts {
	return CallCounts{GenerateDataKey: c.generate.Load(), Decrypt: c.decrypt.Load(), Check: c.check.Load()}
}

// Reset sets all counts to zero.
func (c *CountingProvider) Reset() {
	c.generate.Store(0)
	c.decrypt.Store(0)
	c.check.Store(0)
}
