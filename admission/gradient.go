package admission

import (
	"math"
	"time"
)

// Defaults of the adaptive limit.
const (
	limitInitialDefault = 128
	limitMinDefault     = 64
	limitMaxDefault     = 2048
	// windowDefault is how often the limit is recomputed.
	windowDefault = 100 * time.Millisecond
	// toleranceDefault is how much slower than its best a class may get
	// before the limit shrinks.
	toleranceDefault = 2.0
	// smoothingDefault is how far one window moves the limit toward its
	// new estimate.
	smoothingDefault = 0.2
	// latencyFloorDefault: latencies at or below it are never taken for
	// congestion, so that a class answered in microseconds does not shrink
	// the limit for the jitter of a shared machine.
	latencyFloorDefault = 5 * time.Millisecond
	// windowSamplesMin is how many answers of a class a window needs for
	// the class to count in it.
	windowSamplesMin = 5
	// noLoadRise is how far, each window, a class's baseline latency moves
	// up toward a slower window (it moves down to a faster one at once):
	// about ten seconds of sustained slowness, at 100 ms windows, and the
	// baseline has followed it. Slowness that the platform's own
	// concurrency causes is cut long before that; slowness from outside
	// (a busy machine, a slower disk) is not cured by refusing requests, and
	// the limit must not collapse for it.
	noLoadRise = 0.01
	// gradientMin bounds how far one window can cut the estimate, so that
	// one slow window does not halve the platform.
	gradientMin = 0.5
	// dropGradient is the cut of a window in which a request failed for
	// lack of capacity (a timeout, a full ledger queue).
	dropGradient = 0.9
)

// GradientConfig tunes the adaptive limit; zero fields take the defaults.
type GradientConfig struct {
	Initial, Min, Max int
	Window            time.Duration
	Tolerance         float64
	Smoothing         float64
	LatencyFloor      time.Duration
}

func (c GradientConfig) withDefaults() GradientConfig {
	if c.Min <= 0 {
		c.Min = limitMinDefault
	}
	if c.Max <= 0 {
		c.Max = limitMaxDefault
	}
	c.Max = max(c.Max, c.Min)
	if c.Initial <= 0 {
		c.Initial = limitInitialDefault
	}
	c.Initial = min(max(c.Initial, c.Min), c.Max)
	if c.Window <= 0 {
		c.Window = windowDefault
	}
	if c.Tolerance < 1 {
		c.Tolerance = toleranceDefault
	}
	if c.Smoothing <= 0 || c.Smoothing > 1 {
		c.Smoothing = smoothingDefault
	}
	if c.LatencyFloor <= 0 {
		c.LatencyFloor = latencyFloorDefault
	}
	return c
}

// Gradient is an adaptive concurrency limit. Each window it takes, for the
// highest class with enough answers and for queries, the ratio of
// tolerance × the class's baseline latency (its best, followed slowly
// upward) to its average latency in the window; the smallest ratio,
// kept within [0.5, 1], is the gradient. The new estimate is
// limit × gradient + √limit: it grows by √limit while latency holds, and
// settles where queueing inside the platform costs about that much. A window
// whose requests used less than half the limit does not grow it, since it
// says nothing about more. A window in which a request failed for lack of
// capacity cuts the limit by a tenth at least. Gradient is not safe for concurrent use; Limiter
// holds it under its lock.
type Gradient struct {
	cfg   GradientConfig
	limit float64

	start       time.Time
	sum         [Classes]time.Duration
	n           [Classes]int
	noLoad      [Classes]float64 // nanoseconds; 0 until a class is seen
	inFlightMax int
	dropped     bool
}

// NewGradient returns a limit at cfg.Initial.
func NewGradient(cfg GradientConfig) *Gradient {
	cfg = cfg.withDefaults()
	return &Gradient{cfg: cfg, limit: float64(cfg.Initial)}
}

// Limit is the number of requests that may be in progress at once.
func (g *Gradient) Limit() int { return int(g.limit) }

// Sample records one answered request: its class, how long it was in
// progress, how many were in progress when it ended, and whether it failed
// for lack of capacity. It reports whether the limit was recomputed.
func (g *Gradient) Sample(now time.Time, c Class, took time.Duration, inFlight int, dropped bool) bool {
	if g.start.IsZero() {
		g.start = now
	}
	if int(c) < Classes {
		g.sum[c] += took
		g.n[c]++
	}
	g.inFlightMax = max(g.inFlightMax, inFlight)
	g.dropped = g.dropped || dropped
	if now.Sub(g.start) < g.cfg.Window {
		return false
	}
	g.update()
	g.start, g.sum, g.n, g.inFlightMax, g.dropped = now, [Classes]time.Duration{}, [Classes]int{}, 0, false
	return true
}

func (g *Gradient) update() {
	floor := float64(g.cfg.LatencyFloor)
	gradient, measured := 1.0, false
	for c := range Classes {
		if g.n[c] < windowSamplesMin {
			continue
		}
		avg := float64(g.sum[c]) / float64(g.n[c])
		if g.noLoad[c] == 0 || avg < g.noLoad[c] {
			g.noLoad[c] = avg
		} else {
			g.noLoad[c] += (avg - g.noLoad[c]) * noLoadRise
		}
		if !measured || Class(c) == Query {
			// The highest class answered in the window steers: the limit
			// exists to keep its latency, and a lower class that is slow
			// (a withdrawal waiting for its bank's lane) must not shrink
			// the limit that payments need. Queries steer too: they
			// wait on nothing outside the platform, so a slower query is
			// the platform's own congestion; with payments alone
			// steering, fast payments let the limit grow while queries
			// within their share of it slowed to seconds.
			gradient = min(gradient, g.cfg.Tolerance*max(g.noLoad[c], floor)/max(avg, floor))
			measured = true
		}
	}
	if g.dropped {
		gradient = min(gradient, dropGradient)
	} else if !measured {
		return
	}
	gradient = max(gradient, gradientMin)
	if gradient >= 1 && float64(g.inFlightMax) < g.limit/2 {
		return
	}
	estimate := g.limit * gradient
	if !g.dropped {
		estimate += math.Sqrt(g.limit)
	}
	next := g.limit*(1-g.cfg.Smoothing) + estimate*g.cfg.Smoothing
	g.limit = min(max(next, float64(g.cfg.Min)), float64(g.cfg.Max))
}
