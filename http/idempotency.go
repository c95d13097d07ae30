package http

import (
	"bytes"
	"context"
	"fmt"
	nethttp "net/http"

	"zhifu/idempotency"
	"zhifu/ledger"
)

// idempotencyHeader is the header of the API's Idempotency-Key rules, which
// package idempotency keeps; this file only adapts them to HTTP.
const idempotencyHeader = "Idempotency-Key"

// idempotent runs h under the Idempotency-Key rules when r is a POST with
// the header, and simply runs it otherwise. scope names the caller. body is
// the request body if the caller already read it, nil if not. fresh are
// guards a request must pass in the transaction of its first change (a
// merchant's nonce): a request answered from its key does not run them,
// and any a request that changed nothing left unspent are spent before it
// answers, so that the answer is held until they are known to pass.
func (s *Server) idempotent(w nethttp.ResponseWriter, r *nethttp.Request, scope string, body []byte, h handlerFunc,
	fresh ...ledger.Guard) error {
	key, has := r.Header[idempotencyHeader]
	if r.Method != nethttp.MethodPost || !has {
		if len(fresh) == 0 {
			return h(w, r)
		}
		ctx := r.Context()
		for _, g := range fresh {
			ctx = ledger.WithGuard(ctx, g)
		}
		held := &recorder{header: make(nethttp.Header)}
		herr := h(held, r.WithContext(ctx))
		if err := s.batcher.RunGuard(ctx); err != nil {
			return err
		}
		if herr != nil {
			return herr
		}
		held.copyTo(w)
		return nil
	}
	if len(key) != 1 || !idempotency.ValidKey(key[0]) {
		return invalidRequest(idempotencyHeader, fmt.Sprintf(
			"Idempotency-Key must be one header of 1 to %d printable ASCII characters", idempotency.KeyLenMax))
	}
	if body == nil {
		var err error
		if body, err = readBodyRestoring(r); err != nil {
			return err
		}
	}
	req := idempotency.Request{Scope: scope, Key: key[0], Hash: idempotency.Hash(r.Method, r.URL.RequestURI(), body),
		Fresh: fresh}
	var rec *recorder
	resp, replayed, err := s.idem.Do(r.Context(), req, func(ctx context.Context) idempotency.Response {
		rec = &recorder{header: make(nethttp.Header)}
		if err := h(rec, r.WithContext(ctx)); err != nil {
			s.writeError(rec, r, err)
		}
		return rec.response()
	})
	switch {
	case err != nil:
		return err
	case replayed:
		writeResponse(w, resp)
	default:
		rec.copyTo(w) // with every header the handler set
	}
	return nil
}

// writeResponse replays a stored response.
func writeResponse(w nethttp.ResponseWriter, resp idempotency.Response) {
	if resp.ContentType == "" {
		resp.ContentType = "application/json; charset=utf-8"
	}
	w.Header().Set("Content-Type", resp.ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(resp.Status)
	w.Write(resp.Body)
}

// recorder holds a handler's response until the key's rules are done
// with it. Only the status, content type and body are kept: they are what
// a replay sends.
type recorder struct {
	header nethttp.Header
	status int
	body   bytes.Buffer
}

func (rec *recorder) Header() nethttp.Header { return rec.header }

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = nethttp.StatusOK
	}
	return rec.body.Write(b)
}

func (rec *recorder) copyTo(w nethttp.ResponseWriter) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.response().Status)
	w.Write(rec.body.Bytes())
}

func (rec *recorder) response() idempotency.Response {
	status := rec.status
	if status == 0 {
		status = nethttp.StatusOK
	}
	return idempotency.Response{Status: status, ContentType: rec.header.Get("Content-Type"), Body: rec.body.Bytes()}
}

// once wraps a handler whose change has no id derived from the request,
// so that running it again would make a second one (a merchant, an
// operator, a payment code): a request recovering its lost answer
// (idempotency.Recovering) is told the change was made rather than run.
func once(h handlerFunc) handlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		if idempotency.Recovering(r.Context()) {
			return idempotency.AnswerLost()
		}
		return h(w, r)
	}
}
