// Package admission decides, at the platform's edge, which requests are
// served now, which wait a moment, and which are refused at once with a time
// to retry, so that a surge turns into quick refusals instead of slow answers
// for everyone.
//
// Three parts, each pure logic over an injected clock:
//
//   - Limiter: an adaptive limit on the requests in progress, with a short
//     queue in front of it. Every request has a Class; the highest, Pay, may
//     fill the whole limit, and each lower class only a smaller share of it,
//     so under overload the lowest classes are refused first and a payment is
//     refused only when even payments cannot be served. Requests beyond
//     their share wait in their class's queue, which is bounded in length
//     and in time, and are let in highest class first; a request whose queue
//     is full or whose wait runs out is refused.
//   - Gradient: the limit itself. Each window it compares the latency of
//     the requests served with the best latency seen for their class and
//     shrinks the limit when latency grows past a tolerance, or grows it
//     while latency holds and the limit is in use (the gradient algorithm of
//     Netflix's concurrency-limits, with the no-load latency kept per class
//     so that a change in the mix of classes does not read as congestion).
//   - Callers: a token bucket per caller (merchant, user, client address),
//     in a table of bounded size that forgets the least recently seen.
//
// The buckets are golang.org/x/time/rate limiters, which take the time as an
// argument. The limiter is written here because the Go ports of
// concurrency-limits that exist queue first-in first-out or last-in
// first-out without priorities, time their queues on the real clock, and
// cannot be driven by a test clock; priorities and a bounded, timed queue
// are the point of this package.
//
// Nothing here knows HTTP: package http maps routes to classes and answers
// the refusals.
package admission
