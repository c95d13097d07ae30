package http

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	nethttp "net/http"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/ledger"
)

// Idempotency-Key (API.md): the first response to a POST with a key is kept
// for idempotencyTTL and replayed for the same key and the same request;
// the same key with another request is 422 IDEMPOTENCY_KEY_REUSED, and while
// the first is running, 409 IDEMPOTENCY_KEY_IN_USE. Keys are scoped to the
// caller, so two merchants can use the same key.
//
// A response of 5xx (or 429) is not kept: its outcome is unknown, and the
// key is released so that the client may retry. What makes that retry safe
// is the business key of the request (out_trade_no, out_request_no, the
// bank reference) or, where a request has none, an id derived from the
// Idempotency-Key itself (user-to-user transfers).
const (
	idempotencyHeader = "Idempotency-Key"
	// idempotencyKeyLenMax is Stripe's bound on a key.
	idempotencyKeyLenMax = 255
	// idempotencyTTL is how long a response is replayed; older keys count
	// as never used.
	idempotencyTTL = 24 * time.Hour
	// idempotencyAbandonedAfter is when a key still marked running is taken
	// to belong to a process that died mid-request. It is well above the
	// longest a request can run (requestTimeout, then the ledger's commit).
	idempotencyAbandonedAfter = 5 * time.Minute
	// idempotencyBodyBytesMax bounds a stored response; a larger one is
	// answered but not kept.
	idempotencyBodyBytesMax = 256 << 10
	// idempotencyCleanupRows is how many expired keys each new key deletes.
	// Deleting more than one per insert keeps the table to about a day of
	// keys without a separate worker.
	idempotencyCleanupRows = 4
	// idempotencySettleTimeout bounds storing the response once the handler
	// is done, even if the client has gone.
	idempotencySettleTimeout = 10 * time.Second
)

// idempotent runs h under the Idempotency-Key rules when r is a POST with
// the header, and simply runs it otherwise. scope names the caller. body is
// the request body if the caller already read it, nil if not.
func (s *Server) idempotent(w nethttp.ResponseWriter, r *nethttp.Request, scope string, body []byte, h handlerFunc) error {
	key, has := r.Header[idempotencyHeader]
	if r.Method != nethttp.MethodPost || !has {
		return h(w, r)
	}
	if len(key) != 1 || !validIdempotencyKey(key[0]) {
		return invalidRequest(idempotencyHeader, fmt.Sprintf(
			"Idempotency-Key must be one header of 1 to %d printable ASCII characters", idempotencyKeyLenMax))
	}
	if body == nil {
		var err error
		if body, err = readBodyRestoring(r); err != nil {
			return err
		}
	}
	begin := &idemBeginOp{scope: scope, key: key[0], hash: requestHash(r, body), now: s.clock.Now()}
	if err := s.batcher.Do(r.Context(), begin); err != nil {
		return fmt.Errorf("idempotency key: %w", err)
	}
	switch begin.outcome {
	case idemReused:
		return &zhifu.Error{Code: zhifu.IdempotencyKeyReused, Param: idempotencyHeader,
			Message: "this Idempotency-Key was used with a different request"}
	case idemInUse:
		return &zhifu.Error{Code: zhifu.IdempotencyKeyInUse, Param: idempotencyHeader,
			Message: "a request with this Idempotency-Key is still being processed; retry later"}
	case idemReplay:
		writeReplay(w, begin.status, begin.contentType, begin.body)
		return nil
	}
	rec := &idemRecorder{header: make(nethttp.Header)}
	if err := h(rec, r); err != nil {
		s.writeError(rec, r, err)
	}
	s.settleIdempotency(r, begin, rec)
	rec.copyTo(w)
	return nil
}

// settleIdempotency stores the response, or releases the key when the
// response must not be replayed. The client's leaving does not stop it.
func (s *Server) settleIdempotency(r *nethttp.Request, begin *idemBeginOp, rec *idemRecorder) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), idempotencySettleTimeout)
	defer cancel()
	status := rec.statusCode()
	keep := status < 500 && status != nethttp.StatusTooManyRequests &&
		rec.body.Len() <= idempotencyBodyBytesMax && utf8.Valid(rec.body.Bytes())
	op := &idemSettleOp{scope: begin.scope, key: begin.key, started: begin.now.UnixNano(), keep: keep,
		status: status, contentType: rec.header.Get("Content-Type"), body: rec.body.String()}
	if err := s.batcher.Do(ctx, op); err != nil {
		// The response still goes out: what it reports has happened. The
		// key stays "running" until idempotencyAbandonedAfter, so a retry
		// meanwhile is told to wait rather than run twice.
		s.logger.LogAttrs(ctx, slog.LevelError, "idempotency key not settled",
			slog.String("route", r.Pattern), slog.String("scope", begin.scope), slog.Any("err", err))
	}
}

func validIdempotencyKey(k string) bool {
	if len(k) == 0 || len(k) > idempotencyKeyLenMax {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < ' ' || k[i] > '~' {
			return false
		}
	}
	return true
}

// requestHash identifies a request for the reuse check: its method, path
// with query, and body.
func requestHash(r *nethttp.Request, body []byte) string {
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.RequestURI() + "\n"))
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

func writeReplay(w nethttp.ResponseWriter, status int, contentType, body string) {
	if contentType == "" {
		contentType = "application/json; charset=utf-8"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// idemRecorder holds a handler's response until the key is settled.
type idemRecorder struct {
	header nethttp.Header
	status int
	body   bytes.Buffer
}

func (rec *idemRecorder) Header() nethttp.Header { return rec.header }

func (rec *idemRecorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *idemRecorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = nethttp.StatusOK
	}
	return rec.body.Write(b)
}

func (rec *idemRecorder) statusCode() int {
	if rec.status == 0 {
		return nethttp.StatusOK
	}
	return rec.status
}

func (rec *idemRecorder) copyTo(w nethttp.ResponseWriter) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.statusCode())
	w.Write(rec.body.Bytes())
}

// What a key's first look found.
const (
	idemStarted = iota // ours now: run the request
	idemReplay         // done before: replay the response
	idemInUse          // another request with this key is running
	idemReused         // used before with another request
)

// idemBeginOp claims a key, or reports what the key already holds.
type idemBeginOp struct {
	scope, key, hash string
	now              time.Time

	outcome     int
	claim       bool  // write our claim in Finish
	seen        int64 // created_at of an expired or abandoned row to replace; 0 if none
	status      int
	contentType string
	body        string
}

func (o *idemBeginOp) Keys() []string { return []string{"idempotency:" + o.scope + ":" + o.key} }

func (o *idemBeginOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.outcome, o.claim, o.seen, o.status, o.contentType, o.body = idemStarted, true, 0, 0, "", ""
	var hash string
	var state int
	var created int64
	err := tx.QueryRow(ctx, `SELECT request_hash, state, status, content_type, body, created_at
		FROM idempotency_keys WHERE scope = ? AND idem_key = ? FOR UPDATE`, o.scope, o.key).
		Scan(&hash, &state, &o.status, &o.contentType, &o.body, &created)
	switch {
	case errors.Is(err, ledger.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("load idempotency key: %w", err)
	case created <= o.now.Add(-idempotencyTTL).UnixNano():
		o.seen = created // expired: as if never used
		return nil, nil
	case hash != o.hash:
		o.outcome = idemReused
	case state == 0 && created <= o.now.Add(-idempotencyAbandonedAfter).UnixNano():
		o.seen = created // its process died mid-request: take it over
		return nil, nil
	case state == 0:
		o.outcome = idemInUse
	default:
		o.outcome = idemReplay
	}
	o.claim = false
	return nil, nil
}

// Finish writes the claim. Replacing a row is conditional on its being
// the one Prepare saw, and inserting does nothing over a row that appeared
// since: either way, a claim that loses a race reports the key in use
// rather than running the request twice.
func (o *idemBeginOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	if !o.claim {
		return nil
	}
	var n int64
	var err error
	if o.seen != 0 {
		n, err = tx.Exec(ctx, `UPDATE idempotency_keys SET request_hash = ?, state = 0, status = 0,
			content_type = '', body = '', created_at = ? WHERE scope = ? AND idem_key = ? AND created_at = ?`,
			o.hash, o.now.UnixNano(), o.scope, o.key, o.seen)
	}
	if err == nil && n == 0 {
		// No row, or the one seen was deleted by another op's cleanup.
		n, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (scope, idem_key, request_hash, state, created_at)
			VALUES (?, ?, ?, 0, ?) ON CONFLICT DO NOTHING`, o.scope, o.key, o.hash, o.now.UnixNano())
	}
	if err != nil {
		return fmt.Errorf("claim idempotency key: %w", err)
	}
	if n == 0 {
		o.outcome = idemInUse
		return nil
	}
	_, err = tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE (scope, idem_key) IN
		(SELECT scope, idem_key FROM idempotency_keys WHERE created_at <= ? LIMIT ?)`,
		o.now.Add(-idempotencyTTL).UnixNano(), idempotencyCleanupRows)
	if err != nil {
		return fmt.Errorf("delete expired idempotency keys: %w", err)
	}
	return nil
}

// idemSettleOp stores a response under the key, or releases the key. It
// touches the row only if it still holds our claim (started), so a late
// settle never overwrites a takeover's.
type idemSettleOp struct {
	scope, key  string
	started     int64
	keep        bool
	status      int
	contentType string
	body        string
}

func (o *idemSettleOp) Keys() []string { return []string{"idempotency:" + o.scope + ":" + o.key} }

func (o *idemSettleOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	return nil, nil
}

func (o *idemSettleOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	var err error
	if o.keep {
		_, err = tx.Exec(ctx, `UPDATE idempotency_keys SET state = 1, status = ?, content_type = ?, body = ?
			WHERE scope = ? AND idem_key = ? AND created_at = ? AND state = 0`,
			o.status, o.contentType, o.body, o.scope, o.key, o.started)
	} else {
		_, err = tx.Exec(ctx, `DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND created_at = ? AND state = 0`,
			o.scope, o.key, o.started)
	}
	if err != nil {
		return fmt.Errorf("settle idempotency key: %w", err)
	}
	return nil
}
