package admission

// Class is a request's priority: under overload the platform refuses the
// lowest classes first. Probes (health, readiness, metrics) have no class:
// they never reach the limiter.
type Class uint8

// The classes, highest first.
const (
	// Pay moves money that someone is waiting on now: paying, collecting,
	// confirming, refunds, the banks' callbacks (a lost one costs an
	// inquiry later), the gateway.
	Pay Class = iota
	// Change creates or changes something: trades, top-ups, withdrawals,
	// transfers, deposits, cards, sessions.
	Change
	// Query reads: trades, refunds, wallets, statements, lists.
	Query
	// Bulk reads much at once: bills, reports, exports, the ledger check.
	Bulk

	// Classes is the number of classes.
	Classes = int(Bulk) + 1
)

var classNames = [Classes]string{"pay", "change", "query", "bulk"}

func (c Class) String() string {
	if int(c) < Classes {
		return classNames[c]
	}
	return "unknown"
}

// Reason is why a request was refused; the metrics count refusals by it.
type Reason string

// The reasons for a refusal.
const (
	// QueueFull: the request would have had to wait, and its class's queue
	// was full.
	QueueFull Reason = "queue_full"
	// QueueTimeout: the request waited as long as its class may.
	QueueTimeout Reason = "queue_timeout"
	// Overloaded: the request would have had to wait, and a request of its
	// class had lately waited its whole time: the queue is standing.
	Overloaded Reason = "overloaded"
	// Canceled: the client went away while the request waited.
	Canceled Reason = "canceled"
	// RateLimited: the caller spent its token bucket.
	RateLimited Reason = "rate_limited"
	// Maintenance: the operation is closed for an announced window.
	Maintenance Reason = "maintenance"
)

// Reasons lists every reason, for metrics that are exported from the start.
var Reasons = []Reason{QueueFull, QueueTimeout, Overloaded, Canceled, RateLimited, Maintenance}
