// Package notify tells merchants what happened: status changes are written
// to a durable outbox in the same transaction as the change, and a worker
// delivers them, signed, to the merchant's notify_url with retries spread
// over more than 25 hours.
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
	"net"
	nethttp "net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"zhifu"
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
	InFlightMax = 64
	// MerchantInFlightMax bounds the deliveries to one merchant at once, so
	// a slow merchant holds at most this many slots and never all of them.
	MerchantInFlightMax = 4
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
	Next       time.Time // when Outcome is Retry: when the next attempt is due
	Duration   time.Duration
}

// Config is what the worker needs. Store is required.
type Config struct {
	Store  ledger.Store
	Clock  zhifu.Clock  // nil: the system clock
	Logger *slog.Logger // nil: no logs
	// Client makes the calls; nil picks one with bounded timeouts. Whatever
	// the client, redirects are never followed: a notification goes to the
	// URL the merchant registered and nowhere else.
	Client *nethttp.Client
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

	mu          sync.Mutex
	inFlight    int
	perMerchant map[string]int
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
		q:           cfg.Store.Reader(),
		clock:       cfg.Clock,
		log:         cfg.Logger,
		sign:        cfg.AlipaySigner,
		observe:     cfg.Observe,
		holder:      cfg.Holder,
		perMerchant: make(map[string]int),
		delivering:  make(map[string]bool),
		wake:        make(chan struct{}, 1),
	}
	if w.clock == nil {
		w.clock = zhifu.SystemClock{}
	}
	if w.log == nil {
		w.log = slog.New(slog.DiscardHandler)
	}
	if cfg.Client == nil {
		w.client = defaultClient()
	} else {
		c := *cfg.Client
		w.client = &c
	}
	w.client.CheckRedirect = func(*nethttp.Request, []*nethttp.Request) error { return nethttp.ErrUseLastResponse }
	return w
}

// defaultClient has a bound on every phase of a call, and keeps a few idle
// connections per merchant for the next notification.
func defaultClient() *nethttp.Client {
	return &nethttp.Client{
		Timeout: AttemptTimeout,
		Transport: &nethttp.Transport{
			Proxy:                  nethttp.ProxyFromEnvironment,
			DialContext:            (&net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:    tlsTimeout,
			ResponseHeaderTimeout:  AttemptTimeout,
			ExpectContinueTimeout:  time.Second,
			MaxIdleConns:           InFlightMax,
			MaxIdleConnsPerHost:    MerchantInFlightMax,
			IdleConnTimeout:        90 * time.Second,
			MaxResponseHeaderBytes: responseHeaderBytesMax,
			ForceAttemptHTTP2:      true,
		},
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
	attempts   int   // attempts made before this one
	leaseUntil int64 // the lease as read, then as claimed
}

// dispatch claims due rows while delivery slots are free and starts a
// delivery for each. delivered, if not nil, counts accepted deliveries.
func (w *Worker) dispatch(ctx context.Context, wg *sync.WaitGroup, delivered *atomic.Int64) (claimed int, err error) {
	now := w.clock.Now()
	busy, free := w.capacity()
	if free == 0 {
		return 0, nil
	}
	rows, err := w.candidates(ctx, now, busy)
	if err != nil {
		return 0, err
	}
	lease := now.Add(LeaseDuration).UnixNano()
	for _, r := range rows {
		if !w.reserve(r.MerchantID, r.NotifyID) {
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
			w.release(r.MerchantID, r.NotifyID)
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
			w.release(r.MerchantID, r.NotifyID)
			select {
			case w.wake <- struct{}{}:
			default:
			}
		}()
	}
	return claimed, nil
}

// candidates reads due, unleased rows, oldest first, leaving out merchants
// that already have all their slots.
func (w *Worker) candidates(ctx context.Context, now time.Time, busy []string) ([]row, error) {
	var b strings.Builder
	b.WriteString(`SELECT notify_id, merchant_id, url, format, body, attempts, lease_until FROM notifications
		WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until <= ?`)
	args := []any{now.UnixNano(), now.UnixNano()}
	if len(busy) > 0 {
		b.WriteString(` AND merchant_id NOT IN (?`)
		b.WriteString(strings.Repeat(`, ?`, len(busy)-1))
		b.WriteString(`)`)
		for _, m := range busy {
			args = append(args, m)
		}
	}
	b.WriteString(` ORDER BY next_attempt_at LIMIT ?`)
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
		if err := rs.Scan(&r.NotifyID, &r.MerchantID, &r.URL, &r.Format, &r.Body, &attempts, &r.leaseUntil); err != nil {
			return nil, fmt.Errorf("notify: due rows: %w", err)
		}
		r.attempts = int(attempts)
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("notify: due rows: %w", err)
	}
	return out, nil
}

// capacity returns the merchants whose slots are all taken and the number
// of free slots overall.
func (w *Worker) capacity() (busy []string, free int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for m, n := range w.perMerchant {
		if n >= MerchantInFlightMax {
			busy = append(busy, m)
		}
	}
	return busy, InFlightMax - w.inFlight
}

// reserve takes a slot to deliver notification id to merchant m, if both
// bounds allow it and the worker is not delivering id already.
func (w *Worker) reserve(m, id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight >= InFlightMax || w.perMerchant[m] >= MerchantInFlightMax || w.delivering[id] {
		return false
	}
	w.inFlight++
	w.perMerchant[m]++
	w.delivering[id] = true
	return true
}

func (w *Worker) release(m, id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.inFlight <= 0 || w.perMerchant[m] <= 0 || !w.delivering[id] {
		panic("notify: released a delivery slot that was not taken")
	}
	w.inFlight--
	if w.perMerchant[m]--; w.perMerchant[m] == 0 {
		delete(w.perMerchant, m)
	}
	delete(w.delivering, id)
}

func (w *Worker) full() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.inFlight >= InFlightMax
}
