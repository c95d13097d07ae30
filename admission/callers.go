package admission

import (
	"container/list"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// callersMaxDefault bounds the bucket table: at about 200 bytes a bucket,
// 65,536 callers cost some 13 MB.
const callersMaxDefault = 1 << 16

// Rate is one kind of caller's token bucket: PerSecond requests a second on
// average, up to Burst at once. A PerSecond of zero or less is no limit.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Callers keeps a token bucket per caller. The table holds at most its
// bound; the caller seen least recently is forgotten first, and a forgotten
// caller starts again with a full bucket, which only an idle caller's
// bucket already is. It is safe for concurrent use.
type Callers struct {
	max   int
	mu    sync.Mutex
	order *list.List // of *callerBucket, most recently seen first
	table map[string]*list.Element
}

type callerBucket struct {
	key string
	lim *rate.Limiter
}

// NewCallers returns a table of at most max buckets (0 takes 65,536).
func NewCallers(max int) *Callers {
	if max <= 0 {
		max = callersMaxDefault
	}
	return &Callers{max: max, order: list.New(), table: make(map[string]*list.Element)}
}

// Allow takes a token from key's bucket at now. Refused, it says how long
// until a token is there. key names the kind of caller as well as the
// caller ("user:…", "addr:…"), so each kind keeps its own buckets.
func (c *Callers) Allow(key string, r Rate, now time.Time) (bool, time.Duration) {
	if r.PerSecond <= 0 {
		return true, 0
	}
	c.mu.Lock()
	b := c.bucket(key, r)
	res := b.lim.ReserveN(now, 1)
	c.mu.Unlock()
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// bucket finds or makes key's bucket and marks it seen, under c.mu.
func (c *Callers) bucket(key string, r Rate) *callerBucket {
	if e, ok := c.table[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*callerBucket)
	}
	for c.order.Len() >= c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.table, old.Value.(*callerBucket).key)
	}
	burst := r.Burst
	if burst <= 0 {
		burst = max(1, int(math.Ceil(r.PerSecond)))
	}
	b := &callerBucket{key: key, lim: rate.NewLimiter(rate.Limit(r.PerSecond), burst)}
	c.table[key] = c.order.PushFront(b)
	return b
}

// Len is the number of buckets kept.
func (c *Callers) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// LogGate lets one log line through per key and interval, and counts the
// ones it held back, so that a flood of refusals does not flood the log. Its
// keys must come from a small fixed set (class and reason).
type LogGate struct {
	every time.Duration
	mu    sync.Mutex
	last  map[string]time.Time
	held  map[string]int
}

// NewLogGate returns a gate that opens once per every for each key.
func NewLogGate(every time.Duration) *LogGate {
	return &LogGate{every: every, last: make(map[string]time.Time), held: make(map[string]int)}
}

// Allow reports whether a line for key may be logged at now and, if so, how
// many were held back since the last one.
func (g *LogGate) Allow(key string, now time.Time) (bool, int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if last, ok := g.last[key]; ok && now.Sub(last) < g.every {
		g.held[key]++
		return false, 0
	}
	held := g.held[key]
	g.last[key], g.held[key] = now, 0
	return true, held
}
