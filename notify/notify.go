// Package notify tells merchants what happened: status changes are written
// to a durable outbox in the same transaction as the change, and a worker
// delivers them, signed, to the merchant's notify_url with retries spread
// over more than 25 hours.
//
// A notify_url is the merchant's to choose, so every delivery goes through
// an egress.Guard: it connects only to the addresses the platform's
// configuration admits, judged after DNS resolution at every attempt. A
// refused attempt is recorded and retried like a failed one, with the
// reason in last_error, and never connects. CheckURL applies the same rule
// when a notify_url is saved.
//
// A trade's notifications are numbered 1, 2, 3… in the transactions that
// made them, and the worker starts a trade's next first attempt only after
// the previous one's first attempt finished; retries may overtake, and the
// sequence number tells the merchant the order.
//
// The worker only ever reads committed rows, so a crash at any point leaves a
// row that says what to do next. Several zhifu processes may share one
// database: a worker claims a row by moving its lease forward with a
// conditional UPDATE, and only the holder of the current lease may record the
// attempt's outcome. A lease outlives the longest attempt by a wide margin,
// so two processes deliver the same attempt at once only if one of them
// stalls for longer than the lease; merchants must accept duplicates anyway
// (API.md: the same notify_id may arrive more than once).
package notify

import (
	"context"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
	"zhifu/egress"
	"zhifu/ledger"
)

// Limits of delivery. Together they bound the worker's memory, its
// goroutines and the load it puts on any one merchant.
const (
	// PollInterval is how often (in real time) Run looks for due rows when
	// nothing else wakes it. A finished delivery wakes it at once, so a busy
	// outbox drains at the speed of the merchants, not of the ticker.
	PollInterval = 250 * time.Millisecond
	// BatchMax bounds the rows one poll reads as candidates.
	BatchMax = 256
	// InFlightMax bounds the deliveries one worker makes at once.
	InFlightMax = 128
	// MerchantInFlightMax bounds the deliveries to one merchant at once, so
	// a slow merchant holds at most this many slots and never all of them.
	MerchantInFlightMax = 8
	// DestinationInFlightMax bounds the deliveries to one destination (the
	// host and port of a notify_url) at once, whoever's they are, so that
	// an endpoint that hangs holds at most this many of its merchant's
	// slots and leaves the rest to the merchant's other URLs. The
	// per-destination counts live only while deliveries are in flight, so
	// there are never more than InFlightMax of them.
	DestinationInFlightMax = 4
	// AttemptTimeout bounds one attempt: connecting, sending, and reading
	// the answer.
	AttemptTimeout = 10 * time.Second
	// LeaseDuration is how long a claimed row is ours. A row is claimed only
	// when a delivery slot is free, so the attempt starts at once; the lease
	// covers AttemptTimeout plus recordTimeout several times over.
	LeaseDuration = 60 * time.Second

	// recordTimeout bounds writing an attempt's outcome. It runs even after
	// shutdown began, so a delivered notification is not sent again.
	recordTimeout = 5 * time.Second
	dialTimeout   = 5 * time.Second
	tlsTimeout    = 5 * time.Second
	// responseBytesMax is how much of a merchant's answer is read: enough
	// for "success" and an error page's first lines.
	responseBytesMax = 4 << 10
	// responseHeaderBytesMax bounds the headers a merchant may send back.
	responseHeaderBytesMax = 16 << 10
	// lastErrorBytesMax bounds the error kept on the row.
	lastErrorBytesMax = 256
	// secretCacheMax bounds the cached merchant secrets; secretCacheTTL is
	// how long one is trusted before it is read again.
	secretCacheMax = 10_000
	secretCacheTTL = 5 * time.Minute
)

// retrySchedule is the gap before each retry: after attempt n fails (n from
// 1), attempt n+1 is due retrySchedule[n-1] later. The gaps grow so that a
// merchant that is down for a short while is caught up quickly and one that
// is down for a day is not hammered. Ten attempts span 25 h 45 min 15 s,
// beyond API.md's "at least 8 attempts over at least 25 hours". There is no
// jitter: notifications reach the outbox spread over time, so their retries
// are spread already, and tests replay the schedule exactly.
var retrySchedule = [...]time.Duration{
	15 * time.Second,
	1 * time.Minute,
	4 * time.Minute,
	10 * time.Minute,
	30 * time.Minute,
	1 * time.Hour,
	2 * time.Hour,
	6 * time.Hour,
	16 * time.Hour,
}

// AttemptsMax is the number of attempts before a notification is failed.
const AttemptsMax = len(retrySchedule) + 1

// RetrySchedule returns a copy of the gaps between attempts: element i is
// the wait after attempt i+1 failed.
func RetrySchedule() []time.Duration { return append([]time.Duration(nil), retrySchedule[:]...) }

// Outcome is what became of one attempt.
type Outcome string

// Outcomes of an attempt.
const (
	Delivered   Outcome = "delivered"   // the merchant accepted it
	Retry       Outcome = "retry"       // refused or unreachable; due again at Attempt.Next
	Failed      Outcome = "failed"      // refused for the last time; no more attempts
	Interrupted Outcome = "interrupted" // the worker stopped mid-attempt; not counted, lease released
	LostLease   Outcome = "lost_lease"  // the lease expired and another worker took the row
)

// Attempt describes one finished attempt, for metrics and tests.
type Attempt struct {
	NotifyID   string
	MerchantID string
	Number     int // 1 for the first attempt
	Outcome    Outcome
	Err        string    // what went wrong, as kept in last_error
	Refused    bool      // the guard refused the destination: nothing was sent
	Next       time.Time // when Outcome is Retry: when the next attempt is due
	Duration   time.Duration
}

// Config is what the worker needs. Store is required.
type Config struct {
	Store  ledger.Store
	Clock  zhifu.Clock  // nil: the system clock
	Logger *slog.Logger // nil: no logs
	// Egress is the guard every delivery connects through; nil admits only
	// the internet. The HTTP client is built on it, with a bound on every
	// phase of a call, no proxy, and no redirects followed: a notification
	// goes to the URL the merchant registered and nowhere else.
	Egress *egress.Guard
	// AlipaySigner signs a FormatAlipay notification: it receives the
	// unsigned form fields and returns them with sign_type and sign added
	// (RSA2 with the platform's key). Until it is set, such notifications
	// fail with "alipay signer not configured" and are retried on the usual
	// schedule.
	AlipaySigner func(form url.Values) (url.Values, error)
	// Observe, if set, is called after each attempt's outcome is recorded.
	// It runs on the delivering goroutine and must not block.
	Observe func(Attempt)
	// Holder names this process (its node incarnation) on the rows it
	// claims, so that its leases are freed at once if it dies
	// (ReleaseHolder).
	Holder string
}

// Worker delivers the outbox.
type Worker struct {
	q       ledger.Querier
	clock   zhifu.Clock
	log     *slog.Logger
	client  *nethttp.Client
	sign    func(url.Values) (url.Values, error)
	holder  string // written in leased_by
	observe func(Attempt)
	secrets secretCache

	mu             sync.Mutex
	inFlight       int
	perMerchant    map[string]int
	perDestination map[string]int
	// delivering holds the notify_ids this worker is delivering. If the
	// clock jumps past a lease while its attempt is still running, the row
	// looks free again; this keeps the worker from racing itself for it.
	delivering map[string]bool

	// wake is poked when a delivery finishes: a slot is free, so Run polls
	// again at once instead of waiting for the ticker.
	wake chan struct{}
}

// New returns a delivery worker; Run starts it.
func New(cfg Config) *Worker {
	w := &Worker{
		q:              cfg.Store.Reader(),
		clock:          cfg.Clock,
		log:            cfg.Logger,
		sign:           cfg.AlipaySigner,
		observe:        cfg.Observe,
		holder:         cfg.Holder,
		perMerchant:    make(map[string]int),
		perDestination: make(map[string]int),
		delivering:     make(map[string]bool),
		wake:           make(chan struct{}, 1),
	}
	if w.clock == nil {
		w.clock = zhifu.SystemClock{}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	guard := cfg.Egress
	if guard == nil {
		guard = strict
	}
	w.client = newClient(guard)
	return w
}

// newClient connects only through guard, has a bound on every phase of a
// call, never follows a redirect, and keeps a few idle connections per
// destination for the next notification.
func newClient(guard *egress.Guard) *nethttp.Client {
	tr := guard.Transport(dialTimeout)
	tr.TLSHandshakeTimeout = tlsTimeout
	tr.ResponseHeaderTimeout = AttemptTimeout
	tr.ExpectContinueTimeout = time.Second
	tr.MaxIdleConns = InFlightMax
	tr.MaxIdleConnsPerHost = DestinationInFlightMax
	tr.IdleConnTimeout = 90 * time.Second
	tr.MaxResponseHeaderBytes = responseHeaderBytesMax
	return &nethttp.Client{
		Timeout:       AttemptTimeout,
		Transport:     tr,
		CheckRedirect: func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse },
	}
}

// Run delivers due notifications until ctx ends. It returns once every
// delivery it started has stopped: attempts cut short by ctx are not
// counted and their rows are released for the next worker.
func (w *Worker) Run(ctx context.Context) {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(PollInterval)
	defer tick.Stop()
	for {
		if _, err := w.dispatch(ctx, &wg, nil); err != nil && ctx.Err() == nil {
			w.log.Warn("notify: poll failed", slog.Any("err", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-w.wake:
		}
	}
}

// RunOnce makes one pass: it claims what is due now (as far as the
// concurrency bounds allow), delivers it, waits for those deliveries, and
// returns how many were accepted by the merchant. Tests drive the worker
// with it and a manual clock.
func (w *Worker) RunOnce(ctx context.Context) (delivered int, err error) {
	var wg sync.WaitGroup
	var n atomic.Int64
	_, err = w.dispatch(ctx, &wg, &n)
	wg.Wait()
	return int(n.Load()), err
}

// Pending counts the notifications not yet delivered and not given up on,
// for the operator's console.
func (w *Worker) Pending(ctx context.Context) (int, error) {
	var n int64
	if err := w.q.QueryRow(ctx, `SELECT COUNT(*) FROM notifications WHERE status = 'pending'`).Scan(&n); err != nil {
		return 0, fmt.Errorf("notify: count pending: %w", err)
	}
	return int(n), nil
}

// row is one claimed notification.
type row struct {
	Message
	destination string
	attempts    int   // attempts made before this one
	leaseUntil  int64 // the lease as read, then as claimed
}

// dispatch claims due rows while delivery slots are free and starts a
// delivery for each. delivered, if not nil, counts accepted deliveries.
func (w *Worker) dispatch(ctx context.Context, wg *sync.WaitGroup, delivered *atomic.Int64) (claimed int, err error) {
	now := w.clock.Now()
	busy, busyDest, free := w.capacity()
	if free == 0 {
		return 0, nil
	}
	rows, err := w.candidates(ctx, now, busy, busyDest)
	if err != nil {
		return 0, err
	}
	lease := now.Add(LeaseDuration).UnixNano()
	for _, r := range rows {
		if !w.reserve(r) {
			if w.full() {
				break
			}
			continue
		}
		// The claim succeeds only if nobody has attempted or claimed the
		// row since we read it: attempts and lease_until act as its version.
		n, err := w.q.Exec(ctx, `UPDATE notifications SET lease_until = ?, leased_by = ?
			WHERE notify_id = ? AND status = 'pending' AND attempts = ? AND lease_until = ? AND next_attempt_at <= ?`,
			lease, w.holder, r.NotifyID, r.attempts, r.leaseUntil, now.UnixNano())
		if err != nil || n == 0 {
			w.release(r)
			if err != nil {
				return claimed, fmt.Errorf("notify: claim: %w", err)
			}
			continue
		}
		r.leaseUntil = lease
		claimed++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if w.attempt(ctx, r) == Delivered && delivered != nil {
				delivered.Add(1)
			}
			w.release(r)
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}()
	}
	return claimed, nil
}

// candidates reads due, unleased rows, oldest first, leaving out merchants
// and destinations that already have all their slots, and first attempts
// that must wait for an earlier notification of their trade: one whose
// first attempt has not finished (it is pending with no attempt counted,
// whether due, leased, or interrupted and released).
func (w *Worker) candidates(ctx context.Context, now time.Time, busy, busyDest []string) ([]row, error) {
	var b strings.Builder
	b.WriteString(`SELECT n.notify_id, n.merchant_id, n.url, n.format, n.body, n.trade_no, n.sequence, n.destination,
		n.attempts, n.lease_until FROM notifications n
		WHERE n.status = 'pending' AND n.next_attempt_at <= ? AND n.lease_until <= ?
		AND (n.attempts > 0 OR n.trade_no = '' OR NOT EXISTS (SELECT 1 FROM notifications p
			WHERE p.trade_no = n.trade_no AND p.trade_no <> '' AND p.sequence < n.sequence
			AND p.status = 'pending' AND p.attempts = 0))`)
	args := []any{now.UnixNano(), now.UnixNano()}
	for _, ex := range []struct {
		column string
		values []string
	}{{"n.merchant_id", busy}, {"n.destination", busyDest}} {
		if len(ex.values) == 0 {
			continue
		}
		b.WriteString(` AND ` + ex.column + ` NOT IN (?`)
		b.WriteString(strings.Repeat(`, ?`, len(ex.values)-1))
		b.WriteString(`)`)
		for _, v := range ex.values {
			args = append(args, v)
		}
	}
	b.WriteString(` ORDER BY n.next_attempt_at LIMIT ?`)
	args = append(args, BatchMax)
	rs, err := w.q.Query(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("notify: due rows: %w", err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var r row
		var attempts int64
		if err := rs.Scan(&r.NotifyID, &r.MerchantID, &r.URL, &r.Format, &r.Body, &r.TradeNo, &r.Sequence,
			&r.destination, &attempts, &r.leaseUntil); err != nil {
			return nil, fmt.Errorf("notify: due rows: %w", err)
		}
		r.attempts = int(attempts)
		if r.destination == "" {
			// A row from before destinations were recorded.
			r.destination = destination(r.URL)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("notify: due rows: %w", err)
	}
	return out, nil
}

// capacity returns the merchants and the destinations whose slots are all
// taken and the number of free slots overall.
func (w *Worker) capacity() (busy, busyDest []string, free int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for m, n := range w.perMerchant {
		if n >= MerchantInFlightMax {
			busy = append(busy, m)
		}
	}
	for d, n := range w.perDestination {
		if n >= DestinationInFlightMax {
			busyDest = append(busyDest, d)
		}
	}
	return busy, busyDest, InFlightMax - w.inFlight
}

// reserve takes a slot to deliver r, if the bounds of the worker, of its
// merchant and of its destination allow it and the worker is not
// delivering it already.
func (w *Worker) reserve(r row) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight >= InFlightMax || w.perMerchant[r.MerchantID] >= MerchantInFlightMax ||
		w.perDestination[r.destination] >= DestinationInFlightMax || w.delivering[r.NotifyID] {
		return false
	}
	w.inFlight++
	w.perMerchant[r.MerchantID]++
	w.perDestination[r.destination]++
	w.delivering[r.NotifyID] = true
	return true
}

func (w *Worker) release(r row) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight <= 0 || w.perMerchant[r.MerchantID] <= 0 || w.perDestination[r.destination] <= 0 || !w.delivering[r.NotifyID] {
		panic("notify: released a delivery slot that was not taken")
	}
	w.inFlight--
	if w.perMerchant[r.MerchantID]--; w.perMerchant[r.MerchantID] == 0 {
		delete(w.perMerchant, r.MerchantID)
	}
	if w.perDestination[r.destination]--; w.perDestination[r.destination] == 0 {
		delete(w.perDestination, r.destination)
	}
	delete(w.delivering, r.NotifyID)
}

func (w *Worker) full() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFlight >= InFlightMax
}
