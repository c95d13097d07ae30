package http

import (
	"context"
	"log/slog"
	nethttp "net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"zhifu"
	"zhifu/admission"
	"zhifu/ledger"
)

// routeUnmatched labels requests no pattern matched, so that scanners trying
// random paths cannot grow the metrics without bound.
const routeUnmatched = "unmatched"

// metrics live in a private registry: tests start many servers in one
// process, and the global registry would refuse the second.
type metrics struct {
	registry *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec

	// Admission, by class (and reason).
	admitted  *prometheus.CounterVec
	queued    *prometheus.CounterVec
	shed      *prometheus.CounterVec
	queueWait *prometheus.HistogramVec
}

func newMetrics(b *ledger.Batcher) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "zhifu_http_requests_total",
			Help: "HTTP requests answered, by route pattern and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "zhifu_http_request_duration_seconds",
			Help:    "HTTP request latency, by route pattern and status.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "status"}),
	}
	m.admitted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zhifu_admission_admitted_total",
		Help: "Requests let in under the concurrency limit, by class.",
	}, []string{"class"})
	m.queued = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zhifu_admission_queued_total",
		Help: "Requests that waited in their class's queue, by class.",
	}, []string{"class"})
	m.shed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "zhifu_admission_shed_total",
		Help: "Requests refused with Retry-After, by class and reason.",
	}, []string{"class", "reason"})
	m.queueWait = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "zhifu_admission_queue_wait_seconds",
		Help:    "Time requests waited in their class's queue, by class.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"class"})
	for c := range admission.Classes {
		name := admission.Class(c).String()
		m.admitted.WithLabelValues(name)
		m.queued.WithLabelValues(name)
		m.queueWait.WithLabelValues(name)
		for _, reason := range admission.Reasons {
			m.shed.WithLabelValues(name, string(reason))
		}
	}
	m.registry.MustRegister(m.admitted, m.queued, m.shed, m.queueWait)
	m.registry.MustRegister(m.requests, m.duration,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if b != nil {
		m.registry.MustRegister(batcherCollectors(b.Stats())...)
	}
	return m
}

// batcherCollectors export the batcher's own atomic counters: they are read
// at scrape time, so the batcher needs no knowledge of Prometheus.
func batcherCollectors(st *ledger.BatcherStats) []prometheus.Collector {
	counter := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, f)
	}
	return []prometheus.Collector{
		counter("zhifu_ledger_batches_total", "Ledger batches committed or failed.",
			func() float64 { return float64(st.Batches.Load()) }),
		counter("zhifu_ledger_transfers_total", "Transfers committed by every kind of change: deposits, payments, refunds, withdrawals, the ledger API.",
			func() float64 { return float64(st.Transfers.Load()) }),
		counter("zhifu_ledger_commit_errors_total", "Ledger batches whose commit failed.",
			func() float64 { return float64(st.CommitErrors.Load()) }),
		counter("zhifu_ledger_commit_seconds_total", "Time spent committing ledger batches.",
			func() float64 { return time.Duration(st.CommitNanos.Load()).Seconds() }),
		counter("zhifu_ledger_queue_rejections_total", "Submissions refused because the batcher queue was full.",
			func() float64 { return float64(st.QueueRejections.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "zhifu_ledger_last_batch_size",
			Help: "Transfers in the most recent ledger batch.",
		}, func() float64 { return float64(st.LastBatchSize.Load()) }),
	}
}

// limiterCollectors export the limiter's state, read at scrape time.
func limiterCollectors(l *admission.Limiter) []prometheus.Collector {
	out := []prometheus.Collector{prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "zhifu_admission_limit",
		Help: "The adaptive limit on requests in progress.",
	}, func() float64 { return float64(l.Stats().Limit) })}
	for c := range admission.Classes {
		labels := prometheus.Labels{"class": admission.Class(c).String()}
		out = append(out,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zhifu_admission_in_flight",
				Help: "Requests in progress under the limit, by class.", ConstLabels: labels},
				func() float64 { return float64(l.Stats().InFlight[c]) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "zhifu_admission_queue_length",
				Help: "Requests waiting in their class's queue, by class.", ConstLabels: labels},
				func() float64 { return float64(l.Stats().Queued[c]) }))
	}
	return out
}

func (m *metrics) handler() nethttp.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{Registry: m.registry})
}

// statusWriter remembers the status a handler wrote, and carries the
// request's admission from the route (admit) to its handler (enter).
type statusWriter struct {
	nethttp.ResponseWriter
	status  int
	code    string          // the API error code answered, if any
	class   admission.Class // set with pending by admit
	pending bool            // admission waits for the caller to be known
}

func (w *statusWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = nethttp.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() nethttp.ResponseWriter { return w.ResponseWriter }

// instrument bounds each request's time and body size, then logs and counts
// it by route pattern. It logs method, route, status and duration only:
// never bodies, query strings or headers, which may carry tokens and card
// numbers.
func (s *Server) instrument(next nethttp.Handler) nethttp.Handler {
	return nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		r = r.WithContext(ctx)
		// The limit wraps the server's own writer, so that going over it
		// also closes the connection instead of reading the rest.
		r.Body = nethttp.MaxBytesReader(w, r.Body, bodyBytesMax)
		sw := &statusWriter{ResponseWriter: w}
		if r.ContentLength > bodyBytesMax && r.URL.Path != gatewayPath {
			// Refused on its declared length, before anyone reads it or
			// checks who sent it; the connection closes rather than read
			// the rest. The Alipay-compatible gateway refuses in Alipay's
			// own signed format instead, after the same bounded read.
			sw.Header().Set("Connection", "close")
			s.writeError(sw, r, zhifu.Errorf(zhifu.RequestTooLarge, "request body is larger than %d bytes", bodyBytesMax))
		} else {
			next.ServeHTTP(sw, r)
		}
		if sw.status == 0 {
			sw.status = nethttp.StatusOK
		}
		// The mux stored the matched pattern on r, which we still hold.
		route := r.Pattern
		if route == "" || route == "/" {
			route = routeUnmatched
		}
		elapsed := time.Since(start)
		status := strconv.Itoa(sw.status)
		s.metrics.requests.WithLabelValues(route, status).Inc()
		s.metrics.duration.WithLabelValues(route, status).Observe(elapsed.Seconds())
		level := slog.LevelInfo
		if route == "GET /healthz" || route == "GET /readyz" || route == "GET /metrics" {
			level = slog.LevelDebug // probes and scrapes would drown the log
		}
		s.logger.LogAttrs(ctx, level, "request",
			slog.String("method", r.Method), slog.String("route", route),
			slog.Int("status", sw.status), slog.Duration("duration", elapsed))
	})
}
