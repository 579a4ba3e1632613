package sealing

import (
	"context"
	"encoding/binary"
	"sync"

	"github.com/keyline/keyline/internal/keys"
)

// DefaultCacheSize is the number of keys a CachingUnwrapper keeps unless told otherwise.
const DefaultCacheSize = 1024

// CachingUnwrapper remembers unwrapped keys by (key ARN, encryption context, wrapped key), so
// that opening thousands of objects sealed under one data key costs one KMS Decrypt. Concurrent
// requests for the same key share one call. Errors are not cached. Close destroys every cached
// key. It is safe for concurrent use.
type CachingUnwrapper struct {
	next Unwrapper
	max  int

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	ready chan struct{}
	dk    *keys.DataKey
	err   error
}

// NewCachingUnwrapper wraps next, keeping up to DefaultCacheSize keys.
func NewCachingUnwrapper(next Unwrapper) *CachingUnwrapper {
	return NewCachingUnwrapperSize(next, DefaultCacheSize)
}

// NewCachingUnwrapperSize wraps next, keeping up to size keys (at least 1).
func NewCachingUnwrapperSize(next Unwrapper, size int) *CachingUnwrapper {
	return &CachingUnwrapper{next: next, max: max(size, 1), entries: map[string]*cacheEntry{}}
}

func cacheKey(h *Header) string {
	b := make([]byte, 0, 64+len(h.KeyARN)+len(h.WrappedKey))
	b = appendString(b, h.KeyARN)
	b = appendContext(b, h.EncryptionContext)
	b = binary.BigEndian.AppendUint32(b, uint32(len(h.WrappedKey)))
	b = append(b, h.WrappedKey...)
	return string(b)
}

// Unwrap implements Unwrapper; it returns a copy the caller destroys.
func (c *CachingUnwrapper) Unwrap(ctx context.Context, h *Header) (*keys.DataKey, error) {
	k := cacheKey(h)
	c.mu.Lock()
	e, ok := c.entries[k]
	if !ok {
		if len(c.entries) >= c.max {
			c.evictOneLocked()
		}
		e = &cacheEntry{ready: make(chan struct{})}
		c.entries[k] = e
	}
	c.mu.Unlock()

	if ok {
		select {
		case <-e.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if e.err != nil {
			return nil, e.err
		}
		if dk, err := c.copyOf(e); err == nil {
			return dk, nil
		}
		return c.next.Unwrap(ctx, h) // evicted or closed meanwhile: unwrap afresh
	}

	dk, err := c.next.Unwrap(ctx, h)
	c.mu.Lock()
	e.dk, e.err = dk, err
	if err != nil && c.entries[k] == e {
		delete(c.entries, k)
	}
	c.mu.Unlock()
	close(e.ready)
	if err != nil {
		return nil, err
	}
	if dk, err := c.copyOf(e); err == nil {
		return dk, nil
	}
	return c.next.Unwrap(ctx, h)
}

func (c *CachingUnwrapper) copyOf(e *cacheEntry) (*keys.DataKey, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dk := e.dk
	if dk.Destroyed() {
		return nil, errCacheClosed
	}
	return keys.NewDataKey(dk.KeyARN, dk.EncryptionContext, dk.Wrapped, dk.Plaintext()), nil
}

var errCacheClosed = cacheClosedError{}

type cacheClosedError struct{}

func (cacheClosedError) Error() string { return "sealing: key cache closed while in use" }

// evictOneLocked drops one finished entry (map order: arbitrary).
func (c *CachingUnwrapper) evictOneLocked() {
	for k, e := range c.entries {
		select {
		case <-e.ready:
			if e.dk != nil {
				e.dk.Destroy()
			}
			delete(c.entries, k)
			return
		default:
		}
	}
}

// Len is the number of cached keys.
func (c *CachingUnwrapper) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// Close destroys all cached keys; later calls unwrap afresh.
func (c *CachingUnwrapper) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.entries {
		select {
		case <-e.ready:
			if e.dk != nil {
				e.dk.Destroy()
			}
		default:
		}
		delete(c.entries, k)
	}
}
