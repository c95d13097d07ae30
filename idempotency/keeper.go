package idempotency

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/ledger"
)

// Limits and times of the Idempotency-Key rules.
const (
	// KeyLenMax is Stripe's bound on a key.
	KeyLenMax = 255
	// TTL is how long a response is replayed; older keys count as never
	// used.
	TTL = 24 * time.Hour
	// bodyBytesMax bounds a stored response; a larger one is answered but
	// not kept.
	bodyBytesMax = 256 << 10
	// sweepInterval is how often expired keys are deleted, and
	// sweepRowsMax how many one sweep's batch deletes; a sweep runs batches
	// until fewer remain, at most sweepBatchesMax of them.
	sweepInterval   = time.Minute
	sweepRowsMax    = 1000
	sweepBatchesMax = 100
	// sweepTimeout bounds one sweep batch's wait for the ledger.
	sweepTimeout = 30 * time.Second
)

// Row states. State 0 was a claim written before its request ran, by
// versions that kept "in use" in the database; such a row says nothing
// about its request's outcome and counts as never used.
const (
	stateDone    = 1 // the response is stored
	stateApplied = 2 // the change committed; the response is not stored yet
)

// Response is what a request answered.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
}

// Request names one keyed request: the caller's scope, its key, and a hash
// of the request (see Hash) that tells a retry from a different request.
// Fresh are guards a new run must pass in the transaction of its first
// change (a merchant's nonce); a request answered from its key, by replay
// or in recovery, is the same request again and does not run them.
type Request struct {
	Scope, Key, Hash string
	Fresh            []ledger.Guard
}

// Config is what a Keeper needs. Batcher and Reader must share one store.
type Config struct {
	Batcher *ledger.Batcher
	Reader  ledger.Querier
	Clock   zhifu.Clock
	Logger  *slog.Logger
	// ExternalSweep says the caller runs RunSweeps itself (on one node of
	// several, under a lease): New starts no sweeper of its own.
	ExternalSweep bool
}

// Keeper runs keyed requests under the rules described in the package doc.
type Keeper struct {
	cfg Config

	mu       sync.Mutex
	inflight map[string]*entry // scope "\x00" key → the request running or awaiting its rider

	stopOnce sync.Once
	stop     chan struct{}
	done     chan struct{}
}

// entry is a keyed request in this process: running (resp nil), or answered
// with its response on its way to the database.
type entry struct {
	hash string
	resp *Response
}

// New returns a keeper and, unless Config.ExternalSweep, starts its
// sweeper of expired keys; Close stops it.
func New(cfg Config) *Keeper {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	k := &Keeper{cfg: cfg, inflight: make(map[string]*entry),
		stop: make(chan struct{}), done: make(chan struct{})}
	if cfg.ExternalSweep {
		close(k.done)
	} else {
		go k.sweepLoop()
	}
	return k
}

// Close stops the sweeper. Responses already handed to the batcher are
// written by its own Close.
func (k *Keeper) Close() {
	k.stopOnce.Do(func() { close(k.stop) })
	<-k.done
}

// ValidKey reports whether k is a usable key: 1 to KeyLenMax printable
// ASCII characters.
func ValidKey(k string) bool {
	if len(k) == 0 || len(k) > KeyLenMax {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// Hash identifies a request for the reuse check: its method, path with
// query, and body.
func Hash(method, requestURI string, body []byte) string {
	h := sha256.New()
	h.Write([]byte(method + " " + requestURI + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// AnswerLost is the answer to a request recovering its lost answer when
// its handler cannot rebuild it (what it made has no id the request
// derives, such as a merchant and its secret): the change was made, once,
// and is there to be looked up; running the request again would make a
// second one.
func AnswerLost() error {
	return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "Idempotency-Key",
		Message: "the request with this Idempotency-Key was carried out, but its answer was lost when the server " +
			"stopped; look up what it made instead of sending it again"}
}

type recoveringKey struct{}

// Recovering reports whether ctx is a request whose key says its change
// committed in an earlier run whose answer was lost: a service should then
// answer from what that run left (a trade already moved by it, a transfer
// already made under its id) rather than refuse the move as already made.
func Recovering(ctx context.Context) bool {
	v, _ := ctx.Value(recoveringKey{}).(bool)
	return v
}

// Do runs a keyed request: it replays a stored response, refuses a reuse or
// a key in use, or calls run with a context that records the key in the
// transaction of the request's first change. It reports whether the
// response is a replay. The error is always a *zhifu.Error of the API.
func (k *Keeper) Do(ctx context.Context, req Request, run func(ctx context.Context) Response) (Response, bool, error) {
	id := req.Scope + "\x00" + req.Key
	k.mu.Lock()
	if e := k.inflight[id]; e != nil {
		// Read under the lock: the request running sets resp under it.
		hash, resp := e.hash, e.resp
		k.mu.Unlock()
		switch {
		case hash != req.Hash:
			return Response{}, false, errReused()
		case resp != nil:
			return *resp, true, nil
		}
		return Response{}, false, errInUse()
	}
	e := &entry{hash: req.Hash}
	k.inflight[id] = e
	k.mu.Unlock()

	row, err := k.lookup(ctx, req)
	if err != nil {
		k.forget(id)
		return Response{}, false, zhifu.Errorf(zhifu.SystemBusy, "idempotency keys cannot be read; retry shortly")
	}
	var g *guard
	switch {
	case row == nil:
		// The key's guard is checked before the fresh ones: a copy of
		// this request that another process committed since the look
		// above (a load balancer resending it when the first node died
		// after sending its commit) is then answered IDEMPOTENCY_KEY_IN_USE,
		// and the client's retry gets the first copy's answer, rather than
		// the copy's spent nonce being refused as a replay.
		g = &guard{req: req, now: k.cfg.Clock.Now()}
		ctx = ledger.WithGuard(ctx, g)
		for _, f := range req.Fresh {
			ctx = ledger.WithGuard(ctx, f)
		}
	case row.hash != req.Hash:
		k.forget(id)
		return Response{}, false, errReused()
	case row.state == stateDone:
		k.forget(id)
		return Response{Status: row.status, ContentType: row.contentType, Body: row.body}, true, nil
	default: // stateApplied: the change is there, its answer is not
		ctx = context.WithValue(ctx, recoveringKey{}, true)
	}

	resp := run(ctx)
	refused := false
	if g != nil {
		g.over.Store(true)
		refused = g.refused.Load()
		if len(req.Fresh) > 0 {
			// A run that changed nothing spends its fresh guards now; one
			// they refuse did nothing, and its answer is their refusal.
			if err := k.cfg.Batcher.RunGuard(ctx); err != nil {
				k.forget(id)
				var e *zhifu.Error
				if errors.As(err, &e) {
					return Response{}, false, e
				}
				return Response{}, false, zhifu.Errorf(zhifu.SystemBusy, "the request could not be checked; retry shortly")
			}
		}
	}
	if refused || !keepable(resp) {
		k.forget(id)
		return resp, false, nil
	}
	k.mu.Lock()
	e.resp = &resp
	k.mu.Unlock()
	op := &storeOp{req: req, resp: resp, now: k.cfg.Clock.Now()}
	if !k.cfg.Batcher.Ride(op, func(error) { k.forget(id) }) {
		// Not stored: a retry recovers from the change, if there was one,
		// or runs again.
		k.forget(id)
	}
	return resp, false, nil
}

func (k *Keeper) forget(id string) {
	k.mu.Lock()
	delete(k.inflight, id)
	k.mu.Unlock()
}

// keepable says whether a response may be replayed: a known outcome, small
// enough, and text.
func keepable(r Response) bool {
	return r.Status < 500 && r.Status != http.StatusTooManyRequests &&
		len(r.Body) <= bodyBytesMax && utf8.Valid(r.Body)
}

func errReused() error {
	return &zhifu.Error{Code: zhifu.IdempotencyKeyReused, Param: "Idempotency-Key",
		Message: "this Idempotency-Key was used with a different request"}
}

func errInUse() error {
	return &zhifu.Error{Code: zhifu.IdempotencyKeyInUse, Param: "Idempotency-Key",
		Message: "a request with this Idempotency-Key is still being processed; retry later"}
}

// row is a key's stored record.
type row struct {
	hash        string
	state       int
	status      int
	contentType string
	body        []byte
}

// lookup reads the key's record; nil when there is none that counts
// (none, expired, or an old claim).
func (k *Keeper) lookup(ctx context.Context, req Request) (*row, error) {
	var r row
	var body string
	var created int64
	err := k.cfg.Reader.QueryRow(ctx, `SELECT request_hash, state, status, content_type, body, created_at
		FROM idempotency_keys WHERE scope = ? AND idem_key = ?`, req.Scope, req.Key).
		Scan(&r.hash, &r.state, &r.status, &r.contentType, &body, &created)
	switch {
	case errors.Is(err, ledger.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("load idempotency key: %w", err)
	}
	if !counts(r.state, created, k.cfg.Clock.Now()) {
		return nil, nil
	}
	r.body = []byte(body)
	return &r, nil
}

// counts says whether a stored row still stands for its key at now.
func counts(state int, created int64, now time.Time) bool {
	return (state == stateDone || state == stateApplied) && created > now.Add(-TTL).UnixNano()
}
