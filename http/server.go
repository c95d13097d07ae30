// Package http serves zhifu's API over HTTP: routing on the standard
// library's ServeMux, JSON in and out, the one table from API error codes to
// HTTP status, admin authentication, admission at the edge (every route's
// class, per-caller rates, the adaptive concurrency limit from package
// admission, platform maintenance windows, bounded connections and
// timeouts), request logging and Prometheus metrics.
// It decides nothing about money itself; it parses, checks the caller, and
// hands the request to the ledger or a service.
package http

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net"
	nethttp "net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"zhifu"
	"zhifu/idempotency"
	"zhifu/ledger"
)

// Limits and timeouts of the HTTP server. A client that sends its headers
// or its body slowly, or holds a connection idle, is cut within these.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 30 * time.Second
	writeTimeout      = 60 * time.Second
	idleTimeout       = 60 * time.Second
	headerBytesMax    = 64 << 10
	// ConnsMaxDefault bounds the connections open at once; past it new
	// connections wait in the listen backlog until one closes.
	ConnsMaxDefault = 10_000
	// requestTimeout bounds how long one request may wait on the ledger. It
	// is below writeTimeout so the client always gets an answer.
	requestTimeout = 30 * time.Second
	// readyTimeout bounds the store probe behind /readyz.
	readyTimeout = 2 * time.Second
)

// Config is what a Server needs. Ledger and Batcher must share one store.
type Config struct {
	Addr       string // host:port to listen on; port 0 picks a free port
	Ledger     ledger.Store
	Batcher    *ledger.Batcher
	AdminToken string // empty refuses every admin request
	Logger     *slog.Logger
	Clock      zhifu.Clock
	Services   Services
	// Idempotency keeps the Idempotency-Key rules; nil makes one over
	// Ledger and Batcher that Close stops.
	Idempotency *idempotency.Keeper
	// Admission: the concurrency limit, its queues and the per-caller
	// rates. The zero value takes the defaults.
	Admission AdmissionConfig
	// ConnsMax bounds open connections (0: ConnsMaxDefault).
	ConnsMax int
	// ReadHeaderTimeout and IdleTimeout replace the defaults when set, so a
	// test can watch a slow client being cut.
	ReadHeaderTimeout, IdleTimeout time.Duration
	// Node names this process (its incarnation, package node) in every
	// answer's Zhifu-Node header; empty sends none.
	Node string
}

// Server is zhifu's HTTP server.
type Server struct {
	addr      string
	store     ledger.Store
	batcher   *ledger.Batcher
	adminHash [sha256.Size]byte
	hasAdmin  bool
	logger    *slog.Logger
	clock     zhifu.Clock
	svc       Services
	idem      *idempotency.Keeper
	ownsIdem  bool

	metrics  *metrics
	edge     *edge
	handler  nethttp.Handler
	draining atomic.Bool

	connsMax                       int
	readHeaderTimeout, idleTimeout time.Duration

	ln        net.Listener
	srv       *nethttp.Server
	closeOnce sync.Once
	closeErr  error
}

// NewServer builds a server and its routes. It does not listen until Open.
func NewServer(c Config) *Server {
	s := &Server{
		addr:    c.Addr,
		store:   c.Ledger,
		batcher: c.Batcher,
		logger:  c.Logger,
		clock:   c.Clock,
		svc:     c.Services,
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.clock == nil {
		s.clock = zhifu.SystemClock{}
	}
	s.idem = c.Idempotency
	if s.idem == nil && c.Ledger != nil && c.Batcher != nil {
		s.idem = idempotency.New(idempotency.Config{Batcher: c.Batcher, Reader: c.Ledger.Reader(),
			Clock: s.clock, Logger: s.logger})
		s.ownsIdem = true
	}
	// Only the token's hash is kept, so comparisons take the same time
	// whatever the length of the guess.
	if c.AdminToken != "" {
		s.adminHash, s.hasAdmin = sha256.Sum256([]byte(c.AdminToken)), true
	}
	s.metrics = newMetrics(s.batcher)
	s.edge = newEdge(c.Admission)
	if s.edge.limiter != nil {
		s.metrics.registry.MustRegister(limiterCollectors(s.edge.limiter)...)
	}
	s.connsMax = cmp.Or(c.ConnsMax, ConnsMaxDefault)
	s.readHeaderTimeout = cmp.Or(c.ReadHeaderTimeout, readHeaderTimeout)
	s.idleTimeout = cmp.Or(c.IdleTimeout, idleTimeout)
	h := s.instrument(s.routes())
	s.handler = nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if c.Node != "" {
			w.Header().Set("Zhifu-Node", c.Node)
		}
		if s.draining.Load() {
			// Keep-alive clients move to another node for the next
			// request.
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
	return s
}

// Drain turns /readyz 503 at once while the server goes on serving, so a
// load balancer moves traffic away before Close stops listening.
func (s *Server) Drain() { s.draining.Store(true) }

// routes registers every endpoint on a ServeMux with method patterns.
func (s *Server) routes() *nethttp.ServeMux {
	mux := nethttp.NewServeMux()
	s.handleFunc(mux, "GET /healthz", s.handleHealthz)
	s.handleFunc(mux, "GET /readyz", s.handleReadyz)
	s.handle(mux, "GET /metrics", s.metrics.handler())
	s.handleFunc(mux, "GET /openapi.json", s.handleOpenAPI)

	s.handleFunc(mux, "POST /v1/admin/ledger/accounts", s.admin(s.handleCreateAccounts))
	s.handleFunc(mux, "POST /v1/admin/ledger/transfers", s.admin(s.handleCreateTransfers))
	s.handleFunc(mux, "GET /v1/admin/ledger/accounts/{id}", s.admin(s.handleGetAccount))
	s.handleFunc(mux, "GET /v1/admin/ledger/accounts/{id}/entries", s.admin(s.handleListEntries))
	s.handleFunc(mux, "GET /v1/admin/ledger/check", s.admin(s.handleCheck))

	if s.svc.Identity != nil {
		s.identityRoutes(mux)
		s.operatorRoutes(mux)
	}
	if s.svc.Wallet != nil {
		s.walletRoutes(mux)
	}
	if s.svc.Trades != nil {
		s.tradeRoutes(mux)
	}
	if s.svc.Channels != nil {
		s.channelRoutes(mux)
	}
	s.paymentRoutes(mux)
	s.reconRoutes(mux)
	s.campaignRoutes(mux)
	if s.svc.Gateway != nil {
		s.gatewayRoutes(mux)
	}
	s.reportRoutes(mux)

	// Anything else gets the API's error shape rather than the mux's text.
	s.handleFunc(mux, "/", func(w nethttp.ResponseWriter, r *nethttp.Request) {
		s.writeError(w, r, zhifu.Errorf(zhifu.NotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
	return mux
}

// handlerFunc is an API handler: it writes its success response itself and
// returns any error for writeError, so every failure takes one path.
type handlerFunc func(w nethttp.ResponseWriter, r *nethttp.Request) error

// api adapts a handlerFunc to net/http.
func (s *Server) api(h handlerFunc) nethttp.HandlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	}
}

// Handler returns the server's handler with logging and metrics, for tests
// that drive it without a listener.
func (s *Server) Handler() nethttp.Handler { return s.handler }

// Registerer lets other packages add their metrics to the server's private
// registry, which /metrics serves.
func (s *Server) Registerer() prometheus.Registerer { return s.metrics.registry }

// Open starts listening on Addr and serving in the background.
func (s *Server) Open() error {
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("http: listen: %w", err)
	}
	s.ln = ln
	s.srv = &nethttp.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.readHeaderTimeout,
		ReadTimeout:       max(readTimeout, s.readHeaderTimeout),
		WriteTimeout:      writeTimeout,
		IdleTimeout:       s.idleTimeout,
		MaxHeaderBytes:    headerBytesMax,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	limited := netutil.LimitListener(ln, s.connsMax)
	go func() {
		if err := s.srv.Serve(limited); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			s.logger.Error("http serve stopped", slog.Any("err", err))
		}
	}()
	return nil
}

// URL returns the base URL the server listens on, with the actual port when
// Addr asked for port 0.
func (s *Server) URL() string {
	if s.ln == nil {
		return ""
	}
	host, port, err := net.SplitHostPort(s.ln.Addr().String())
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// Close shuts the server down gracefully: /readyz turns 503 at once, the
// listener closes, and requests in flight finish until ctx ends, when the
// remaining connections are cut.
// Calling Close again returns the first call's result.
func (s *Server) Close(ctx context.Context) error {
	s.closeOnce.Do(func() {
		s.draining.Store(true)
		if s.ownsIdem {
			defer s.idem.Close()
		}
		if s.srv == nil {
			return
		}
		if err := s.srv.Shutdown(ctx); err != nil {
			s.srv.Close()
			s.closeErr = fmt.Errorf("http: shutdown: %w", err)
		}
	})
	return s.closeErr
}

func (s *Server) handleHealthz(w nethttp.ResponseWriter, r *nethttp.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok"))
}

// pinger is implemented by stores that can check their connection cheaply.
type pinger interface {
	Ping(ctx context.Context) error
}

// handleReadyz says whether this process should get traffic: not while it is
// shutting down, and not while its store is unreachable.
func (s *Server) handleReadyz(w nethttp.ResponseWriter, r *nethttp.Request) {
	if s.draining.Load() {
		s.writeError(w, r, zhifu.Errorf(zhifu.SystemBusy, "shutting down"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	var err error
	if p, ok := s.store.(pinger); ok {
		err = p.Ping(ctx)
	} else {
		// No account has id 0, but the lookup still has to reach the store.
		_, err = s.store.LookupAccounts(ctx, []int64{0})
	}
	if err != nil {
		s.logger.Warn("readyz: store unreachable", slog.Any("err", err))
		s.writeError(w, r, zhifu.Errorf(zhifu.SystemBusy, "store unreachable"))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte("ok"))
}
