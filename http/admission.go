package http

import (
	"log/slog"
	"math"
	"net"
	nethttp "net/http"
	"strconv"
	"sync"
	"time"

	"zhifu"
	"zhifu/admission"
)

// Admission at the edge: every route has a class (routeClasses, the one
// table); a request is refused at once when its operation is closed for a
// platform maintenance window or its caller has spent its token bucket, and
// otherwise waits for a slot under the adaptive limit. Refusals are 429 or
// 503 with Retry-After, never a request left to time out.

const (
	// shedLogEvery bounds the log to one line per class and reason a second.
	shedLogEvery = time.Second
	// windowsRefresh is how often the platform's maintenance windows are
	// re-read from the announcements; an announcement made through this
	// server is seen at once.
	windowsRefresh = time.Second
)

// Per-caller defaults: a merchant, a user or an unauthenticated client
// address may make this many requests a second, in bursts of twice as many.
const (
	MerchantRateDefault = 1000
	UserRateDefault     = 100
	AddressRateDefault  = 100
)

// callerKind says who a route's per-caller limit is keyed on.
type callerKind uint8

const (
	// callerSigned routes authenticate their caller (user, merchant,
	// operator) and are limited, and admitted, once it is known.
	callerSigned callerKind = iota
	// callerAddr routes are unauthenticated: limited by client address.
	callerAddr
	// callerNone routes carry a signature their handler checks but whose
	// signer the edge cannot name cheaply: the banks' callbacks (a bank
	// sends many, and a lost one costs an inquiry) and the gateway (its RSA
	// signature is checked in package gateway). The class limit bounds them.
	callerNone
)

// routeAdmission is how the edge treats one route.
type routeAdmission struct {
	class  admission.Class
	probe  bool // never limited, never refused: health, readiness, metrics
	caller callerKind
	// open: served during a platform maintenance window although it is a
	// payment or a change (operators, logins, the banks' callbacks).
	open bool
}

var (
	pay    = routeAdmission{class: admission.Pay}
	change = routeAdmission{class: admission.Change}
	query  = routeAdmission{class: admission.Query}
	bulk   = routeAdmission{class: admission.Bulk}
	probe  = routeAdmission{probe: true}
)

// by returns r keyed on another kind of caller; opened, r served during a
// platform window.
func (r routeAdmission) by(k callerKind) routeAdmission { r.caller = k; return r }
func (r routeAdmission) opened() routeAdmission         { r.open = true; return r }

// routeClasses is the one table of every route's class. A route registered
// without a row panics at start (and in TestEveryRouteHasAClass).
var routeClasses = map[string]routeAdmission{
	"GET /healthz":      probe,
	"GET /readyz":       probe,
	"GET /metrics":      probe,
	"GET /openapi.json": query.by(callerAddr),
	"/":                 query.by(callerAddr),

	"POST /v1/admin/ledger/accounts":             change.opened(),
	"POST /v1/admin/ledger/transfers":            change.opened(),
	"GET /v1/admin/ledger/accounts/{id}":         query,
	"GET /v1/admin/ledger/accounts/{id}/entries": query,
	"GET /v1/admin/ledger/check":                 bulk,

	"POST /v1/users":     change.opened(),
	"POST /v1/merchants": change.opened(),
	"POST /v1/sessions":  change.by(callerAddr).opened(),
	"GET /v1/merchant":   query,

	"GET /v1/wallet":          query,
	"POST /v1/admin/deposits": change.opened(),
	"POST /v1/admin/capital":  change.opened(),
	"POST /v1/transfers":      change,
	"GET /v1/statement":       query,

	"POST /v1/trades":                                    change,
	"GET /v1/trades":                                     query,
	"GET /v1/trades/{trade_no}":                          query,
	"POST /v1/trades/{trade_no}/close":                   change,
	"POST /v1/trades/{trade_no}/collect":                 pay,
	"POST /v1/trades/{trade_no}/ship":                    change,
	"POST /v1/trades/{trade_no}/refunds":                 pay,
	"GET /v1/trades/{trade_no}/refunds/{out_request_no}": query,
	"GET /v1/bills":                                      bulk,
	"POST /v1/trades/{trade_no}/pay":                     pay,
	"POST /v1/trades/{trade_no}/confirm":                 pay,
	"POST /v1/paycodes":                                  pay,

	"POST /v1/cards":                      change,
	"GET /v1/cards":                       query,
	"DELETE /v1/cards/{card_id}":          change,
	"POST /v1/topups":                     change,
	"GET /v1/topups":                      query,
	"GET /v1/topups/{topup_id}":           query,
	"POST /v1/withdrawals":                change,
	"GET /v1/withdrawals":                 query,
	"GET /v1/withdrawals/{withdrawal_id}": query,
	"GET /v1/channels":                    query.by(callerAddr),
	"GET /v1/announcements":               query.by(callerAddr),
	"POST /v1/admin/announcements":        change.opened(),
	"GET /v1/admin/channels/overdue":      query,
	"POST /v1/channels/{bank}/callback":   pay.by(callerNone).opened(),
	"GET /v1/channels/{bank}/return":      query.by(callerAddr),

	"POST /v1/card-repayments":               pay,
	"GET /v1/card-repayments/{repayment_id}": query,
	"POST /v1/bill-payments":                 pay,
	"GET /v1/bill-payments/{payment_id}":     query,
	"GET /v1/billers":                        query,
	"POST /v1/admin/billers":                 change.opened(),

	"GET /gateway.do":                    pay.by(callerNone),
	"POST /gateway.do":                   pay.by(callerNone),
	"GET /v1/bills/download":             bulk.by(callerAddr),
	"GET /cashier/{trade_no}":            query.by(callerAddr),
	"POST /cashier/{trade_no}":           pay.by(callerAddr),
	"POST /v1/admin/gateway/keys/rotate": change.opened(),

	"GET /v1/admin/reports/banks": bulk,

	"POST /v1/admin/recon/runs":                    bulk.opened(),
	"GET /v1/admin/recon/runs":                     query,
	"GET /v1/admin/recon/runs/{run_id}":            query,
	"GET /v1/admin/recon/items":                    query,
	"GET /v1/admin/recon/items/{item_id}":          query,
	"POST /v1/admin/recon/items/{item_id}/resolve": change.opened(),
	"GET /v1/admin/custody":                        query,

	"POST /v1/admin/operators":                       change.opened(),
	"GET /v1/admin/operators":                        query,
	"POST /v1/admin/sessions":                        change.by(callerAddr).opened(),
	"GET /v1/admin/audit":                            query,
	"GET /v1/admin/approvals":                        query,
	"GET /v1/admin/approvals/{approval_id}":          query,
	"POST /v1/admin/approvals/{approval_id}/approve": change.opened(),
	"POST /v1/admin/approvals/{approval_id}/reject":  change.opened(),

	"POST /v1/admin/campaigns":                       change.opened(),
	"GET /v1/admin/campaigns":                        query,
	"GET /v1/admin/campaign-limits":                  query,
	"GET /v1/admin/campaigns/{campaign_id}":          query,
	"PUT /v1/admin/campaigns/{campaign_id}":          change.opened(),
	"POST /v1/admin/campaigns/{campaign_id}/approve": change.opened(),
	"POST /v1/admin/campaigns/{campaign_id}/pause":   change.opened(),
	"POST /v1/admin/campaigns/{campaign_id}/kill":    change.opened(),
	"POST /v1/admin/campaigns/{campaign_id}/dry-run": bulk.opened(),
}

// AdmissionConfig configures admission at the edge. The zero value admits
// with the adaptive limit and the default rates.
type AdmissionConfig struct {
	// Off serves every request as it comes, with no concurrency limit and
	// no queue (per-caller rates still apply unless zero): for comparison.
	Off     bool
	Limiter admission.Config
	// Rates per kind of caller; a zero PerSecond takes the default, a
	// negative one is no limit.
	Merchant, User, Address admission.Rate
	// CallersMax bounds the bucket table (0: the package default).
	CallersMax int
}

// rateOrDefault fills in a default rate, with a burst of two seconds' worth.
func rateOrDefault(r admission.Rate, perSecond float64) admission.Rate {
	if r.PerSecond == 0 {
		r.PerSecond = perSecond
	}
	if r.Burst <= 0 {
		r.Burst = max(1, int(math.Ceil(2*r.PerSecond)))
	}
	return r
}

// edge is the server's admission state.
type edge struct {
	limiter *admission.Limiter // nil: admission off
	callers *admission.Callers
	rates   [3]admission.Rate // by callerRate
	real    zhifu.Clock       // latency, waits, buckets: always real time
	gate    *admission.LogGate

	winMu     sync.Mutex
	windows   []admission.Window
	winLoaded time.Time // real time; zero: read again
}

// The per-caller rates, by kind.
const (
	rateMerchant = iota
	rateUser
	rateAddress
)

func newEdge(c AdmissionConfig) *edge {
	e := &edge{callers: admission.NewCallers(c.CallersMax), real: c.Limiter.Clock,
		gate: admission.NewLogGate(shedLogEvery)}
	if e.real == nil {
		e.real = zhifu.SystemClock{}
	}
	if !c.Off {
		c.Limiter.Clock = e.real
		e.limiter = admission.NewLimiter(c.Limiter)
	}
	e.rates[rateMerchant] = rateOrDefault(c.Merchant, MerchantRateDefault)
	e.rates[rateUser] = rateOrDefault(c.User, UserRateDefault)
	e.rates[rateAddress] = rateOrDefault(c.Address, AddressRateDefault)
	return e
}

// refusal is an admission refusal: its API error and how long to wait.
type refusal struct {
	err   *zhifu.Error
	retry time.Duration
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// retryAfterOf is a Retry-After in whole seconds, at least 1.
func retryAfterOf(d time.Duration) string {
	return strconv.FormatInt(max(1, int64(math.Ceil(d.Seconds()))), 10)
}

// handle registers h under pattern, behind admission by the pattern's row
// in routeClasses.
func (s *Server) handle(mux *nethttp.ServeMux, pattern string, h nethttp.Handler) {
	ra, ok := routeClasses[pattern]
	if !ok {
		panic("http: route " + pattern + " has no row in routeClasses")
	}
	mux.Handle(pattern, s.admit(ra, h))
}

// handleFunc is handle for a function.
func (s *Server) handleFunc(mux *nethttp.ServeMux, pattern string, h nethttp.HandlerFunc) {
	s.handle(mux, pattern, h)
}

// admit wraps a route's handler with its admission: maintenance, the
// per-address bucket of unauthenticated routes, and the limiter. Routes of
// signed callers are admitted once the caller is known (s.enter).
func (s *Server) admit(ra routeAdmission, next nethttp.Handler) nethttp.Handler {
	if ra.probe {
		return next
	}
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if !ra.open && (ra.class == admission.Pay || ra.class == admission.Change) {
			if end, closed := s.platformClosed(); closed {
				s.shed(w, r, ra.class, admission.Maintenance, end.Sub(s.clock.Now()))
				return
			}
		}
		sw, _ := w.(*statusWriter)
		if ra.caller == callerSigned && sw != nil {
			sw.class, sw.pending = ra.class, true
			next.ServeHTTP(w, r)
			return
		}
		key := ""
		if ra.caller == callerAddr {
			key = "addr:" + clientAddress(r)
		}
		release, err := s.enterKey(w, r, ra.class, key, rateAddress)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// enter admits a signed caller's request once its handler knows who sent
// it: the caller's bucket first, then the limiter. The release it returns
// must be called when the request is done. An error is a refusal to return.
func (s *Server) enter(w nethttp.ResponseWriter, r *nethttp.Request, key string, kind int) (func(), error) {
	sw, _ := w.(*statusWriter)
	if sw == nil || !sw.pending {
		return func() {}, nil // not behind admit (a handler called directly)
	}
	sw.pending = false
	return s.enterKey(w, r, sw.class, key, kind)
}

// enterKey takes a token from key's bucket (unless key is "") and a slot
// from the limiter, waiting in the class's queue if need be.
func (s *Server) enterKey(w nethttp.ResponseWriter, r *nethttp.Request, c admission.Class, key string, kind int) (func(), error) {
	e := s.edge
	if key != "" {
		if ok, retry := e.callers.Allow(key, e.rates[kind], e.real.Now()); !ok {
			return nil, s.refuse(r, c, admission.RateLimited, retry)
		}
	}
	if e.limiter == nil {
		return func() {}, nil
	}
	m := s.metrics
	tk, waiter, reason := e.limiter.Acquire(c)
	if waiter != nil {
		m.queued.WithLabelValues(c.String()).Inc()
		var waited time.Duration
		tk, waited, reason = waiter.Wait(r.Context())
		m.queueWait.WithLabelValues(c.String()).Observe(waited.Seconds())
	}
	if tk == nil {
		return nil, s.refuse(r, c, reason, time.Second)
	}
	m.admitted.WithLabelValues(c.String()).Inc()
	sw, _ := w.(*statusWriter)
	return func() { tk.Release(sw != nil && sw.code == zhifu.SystemBusy) }, nil
}

// shed answers a refusal at once.
func (s *Server) shed(w nethttp.ResponseWriter, r *nethttp.Request, c admission.Class, reason admission.Reason, retry time.Duration) {
	s.writeError(w, r, s.refuse(r, c, reason, retry))
}

// refuse counts and logs (at most once a second per class and reason) a
// refusal, and returns it as the error to answer.
func (s *Server) refuse(r *nethttp.Request, c admission.Class, reason admission.Reason, retry time.Duration) error {
	s.metrics.shed.WithLabelValues(c.String(), string(reason)).Inc()
	if ok, held := s.edge.gate.Allow(c.String()+"/"+string(reason), s.edge.real.Now()); ok {
		s.logger.LogAttrs(r.Context(), slog.LevelWarn, "request shed",
			slog.String("class", c.String()), slog.String("reason", string(reason)),
			slog.String("route", r.Pattern), slog.Int("held_back", held))
	}
	var e *zhifu.Error
	switch reason {
	case admission.RateLimited:
		e = zhifu.Errorf(zhifu.RateLimited, "too many requests from this caller; retry after the time in Retry-After")
	case admission.Maintenance:
		e = zhifu.Errorf(zhifu.Maintenance, "the platform is in announced maintenance; see GET /v1/announcements")
	default:
		e = zhifu.Errorf(zhifu.SystemBusy, "the platform is busy; retry shortly")
	}
	return &refusal{err: e, retry: retry}
}

// clientAddress is the host of the connection's remote address. Headers
// such as X-Forwarded-For are not trusted: any client can set them.
func clientAddress(r *nethttp.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// platformClosed returns the end of the platform maintenance window in
// force on the server's clock, if any.
func (s *Server) platformClosed() (time.Time, bool) {
	if s.svc.Channels == nil {
		return time.Time{}, false
	}
	e := s.edge
	now := e.real.Now()
	e.winMu.Lock()
	if e.winLoaded.IsZero() || now.Sub(e.winLoaded) >= windowsRefresh {
		e.windows = e.windows[:0]
		for _, a := range s.svc.Channels.Announcements() {
			if a.Bank == "" {
				e.windows = append(e.windows, admission.Window{Start: a.StartsAt, End: a.EndsAt})
			}
		}
		e.winLoaded = now
	}
	end, closed := admission.Closed(e.windows, s.clock.Now())
	e.winMu.Unlock()
	return end, closed
}

// windowsChanged makes the next request read the windows again.
func (s *Server) windowsChanged() {
	s.edge.winMu.Lock()
	s.edge.winLoaded = time.Time{}
	s.edge.winMu.Unlock()
}

// The scopes of a maintenance announcement.
const (
	scopeBank     = "bank"
	scopePlatform = "platform"
)

// announcementBank is the bank an announcement request names: "" for the
// whole platform. During a platform window payments and changes are
// refused with 503 MAINTENANCE; reads, logins, operators and the banks'
// callbacks are served.
func announcementBank(scope, bank string) (string, error) {
	switch scope {
	case "", scopeBank:
		if bank == "" {
			return "", invalidRequest("bank", `bank is required, or "scope":"platform" for the whole platform`)
		}
		return bank, nil
	case scopePlatform:
		if bank != "" {
			return "", invalidRequest("bank", "a platform window names no bank")
		}
		return "", nil
	}
	return "", invalidRequest("scope", `scope must be "bank" or "platform"`)
}
