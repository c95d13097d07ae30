package identity

import (
	"sync"
	"time"
)

// cache is a small map with a size bound and per-entry expiry, read by the
// service's clock. When full it first drops expired entries, then arbitrary
// ones: it only saves database reads, so losing an entry costs one query.
type cache[K comparable, V any] struct {
	mu  sync.Mutex
	max int
	m   map[K]cacheEntry[V]
}

type cacheEntry[V any] struct {
	v     V
	until time.Time
}

func newCache[K comparable, V any](max int) *cache[K, V] {
	return &cache[K, V]{max: max, m: make(map[K]cacheEntry[V])}
}

// get returns k's value if it is there and not expired at now.
func (c *cache[K, V]) get(k K, now time.Time) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !now.Before(e.until) {
		var zero V
		return zero, false
	}
	return e.v, true
}

// put keeps v for k until the given time.
func (c *cache[K, V]) put(k K, v V, until time.Time, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= c.max {
		c.evict(now)
	}
	c.m[k] = cacheEntry[V]{v: v, until: until}
}

// evict makes room for one entry.
func (c *cache[K, V]) evict(now time.Time) {
	for k, e := range c.m {
		if !now.Before(e.until) {
			delete(c.m, k)
		}
	}
	for k := range c.m {
		if len(c.m) < c.max {
			return
		}
		delete(c.m, k)
	}
}

// len returns the number of entries, expired or not.
func (c *cache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
