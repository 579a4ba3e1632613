package sealing

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/keyline/keyline/internal/keys"
)

// DefaultCacheSize is the number of keys a CachingUnwrapper keeps unless told otherwise.
const DefaultCacheSize = 1024

// MaxCachedKeyAge is how long a plaintext data key stays cached at most (B9): past it, the
// next use unwraps afresh through KMS, which refuses a revoked key.
const MaxCachedKeyAge = 5 * time.Minute

// live is every open CachingUnwrapper of the process, so that a revocation applied here
// drops the keys it names from all of them at once (ForgetKey).
var live sync.Map // *CachingUnwrapper → struct{}

// ForgetKey destroys every cached data key wrapped under keyARN, in every CachingUnwrapper
// of the process, and returns how many it dropped. The revocation path calls it as soon as
// it applies a revocation (B9); later reads unwrap through KMS again, which refuses.
func ForgetKey(keyARN string) int {
	n := 0
	live.Range(func(k, _ any) bool {
		n += k.(*CachingUnwrapper).Forget(keyARN)
		return true
	})
	return n
}

// CachingUnwrapper remembers unwrapped keys by (key ARN, encryption context, wrapped key), so
// that opening thousands of objects sealed under one data key costs one KMS Decrypt. Concurrent
// requests for the same key share one call. Errors are not cached. Close destroys every cached
// key. A key is kept at most MaxCachedKeyAge, and ForgetKey drops the keys of a revoked KMS
// key at once (B9). It is safe for concurrent use.
type CachingUnwrapper struct {
	next   Unwrapper
	max    int
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	ready  chan struct{}
	keyARN string
	born   time.Time
	dk     *keys.DataKey
	err    error
}

// NewCachingUnwrapper wraps next, keeping up to DefaultCacheSize keys.
func NewCachingUnwrapper(next Unwrapper) *CachingUnwrapper {
	return NewCachingUnwrapperSize(next, DefaultCacheSize)
}

// NewCachingUnwrapperSize wraps next, keeping up to size keys (at least 1).
func NewCachingUnwrapperSize(next Unwrapper, size int) *CachingUnwrapper {
	c := &CachingUnwrapper{next: next, max: max(size, 1), maxAge: MaxCachedKeyAge, now: time.Now, entries: map[string]*cacheEntry{}}
	live.Store(c, struct{}{})
	return c
}

// SetClock sets the clock that ages cached keys and their maximum age (≤ MaxCachedKeyAge;
// 0 keeps the default), for tests and for a clock the caller controls.
func (c *CachingUnwrapper) SetClock(now func() time.Time, maxAge time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now != nil {
		c.now = now
	}
	if maxAge > 0 && maxAge <= MaxCachedKeyAge {
		c.maxAge = maxAge
	}
}

// Forget destroys the cached keys wrapped under keyARN and returns how many it dropped.
func (c *CachingUnwrapper) Forget(keyARN string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for k, e := range c.entries {
		if e.keyARN != keyARN {
			continue
		}
		select {
		case <-e.ready:
			if e.dk != nil {
				e.dk.Destroy()
			}
		default:
			// Being unwrapped: drop the entry so that its result is not reused.
		}
		delete(c.entries, k)
		n++
	}
	return n
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
	if ok && c.expiredLocked(e) {
		if e.dk != nil {
			e.dk.Destroy()
		}
		delete(c.entries, k)
		ok = false
	}
	if !ok {
		if len(c.entries) >= c.max {
			c.evictOneLocked()
		}
		e = &cacheEntry{ready: make(chan struct{}), keyARN: h.KeyARN, born: c.now()}
		c.entries[k] = e
		live.Store(c, struct{}{})
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
	if err == nil && c.entries[k] != e {
		// Forgotten (its key revoked) or closed while being unwrapped: keep nothing, and
		// unwrap afresh, so that KMS decides whether the key may still be used.
		e.dk = nil
		c.mu.Unlock()
		dk.Destroy()
		close(e.ready)
		return c.next.Unwrap(ctx, h)
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

// expiredLocked reports whether a finished entry is older than the maximum age.
func (c *CachingUnwrapper) expiredLocked(e *cacheEntry) bool {
	select {
	case <-e.ready:
		return c.now().Sub(e.born) >= c.maxAge
	default:
		return false
	}
}

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
	live.Delete(c)
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
