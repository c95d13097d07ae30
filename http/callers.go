package http

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	nethttp "net/http"
	"strings"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

// userHandler is an API handler for a logged-in user.
type userHandler func(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error

// merchantHandler is an API handler for a merchant whose request signature
// has been verified.
type merchantHandler func(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error

// user authenticates a user's bearer token, admits the request under the
// user's token bucket and the concurrency limit, applies Idempotency-Key
// rules to POSTs, and calls next. Like admin, it runs before the body is read. A
// merchant's signature or the admin token is not a user's token: 401.
func (s *Server) user(next userHandler) nethttp.HandlerFunc {
	return s.api(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		token, ok := bearerToken(r)
		if !ok {
			return zhifu.Errorf(zhifu.Unauthorized, "a valid user bearer token is required")
		}
		u, err := s.svc.Identity.UserByToken(r.Context(), token)
		if err != nil {
			return err
		}
		release, err := s.enter(w, r, "user:"+u.UserID, rateUser)
		if err != nil {
			return err
		}
		defer release()
		return s.idempotent(w, r, "user:"+u.UserID, nil, func(w nethttp.ResponseWriter, r *nethttp.Request) error {
			return next(w, r, u)
		})
	})
}

// merchant verifies a merchant's request signature (timestamp window,
// single-use nonce), admits the request under the merchant's token bucket
// and the concurrency limit, applies Idempotency-Key rules to POSTs, and
// calls next.
// The signature covers the body, so the body is read first (at most
// bodyBytesMax) and given back to the handler unchanged.
func (s *Server) merchant(next merchantHandler) nethttp.HandlerFunc {
	return s.api(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		auth := r.Header.Get("Authorization")
		var body []byte
		if strings.HasPrefix(auth, identity.AuthScheme+" ") {
			var err error
			if body, err = readBodyRestoring(r); err != nil {
				return err
			}
		}
		// Without even an attempt at a signature (a bearer token, nothing)
		// the body is not read, and verification refuses it like any other
		// bad signature.
		m, guard, err := s.svc.Identity.VerifyMerchantSignature(r.Context(), auth, r.Method, r.URL.RequestURI(), body)
		if err != nil {
			return err
		}
		// Refused here, the nonce is not spent: nothing happened.
		release, err := s.enter(w, r, "merchant:"+m.MerchantID, rateMerchant)
		if err != nil {
			return err
		}
		defer release()
		if r.Method == nethttp.MethodGet || r.Method == nethttp.MethodHead {
			// A read spends its nonce before it answers.
			if err := s.batcher.RunGuard(ledger.WithGuard(r.Context(), guard)); err != nil {
				return err
			}
			return next(w, r, m)
		}
		// A change spends the nonce in the transaction of its first op, so
		// a replay changes nothing and the request waits for one commit
		// instead of two. A request answered from its Idempotency-Key (a
		// replay, or a recovery after a crash) is the same request again,
		// often resent by the client's own HTTP stack with the same
		// signature: its nonce was spent by the first, and it need not
		// pass again (see idempotent).
		return s.idempotent(w, r, "merchant:"+m.MerchantID, body,
			func(w nethttp.ResponseWriter, r *nethttp.Request) error { return next(w, r, m) }, guard)
	})
}

// heldResponse keeps a handler's answer until it may be sent.
type heldResponse struct {
	header nethttp.Header
	status int
	body   bytes.Buffer
}

func newHeldResponse() *heldResponse { return &heldResponse{header: make(nethttp.Header)} }

func (h *heldResponse) Header() nethttp.Header { return h.header }

func (h *heldResponse) WriteHeader(status int) {
	if h.status == 0 {
		h.status = status
	}
}

func (h *heldResponse) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = nethttp.StatusOK
	}
	return h.body.Write(b)
}

func (h *heldResponse) flush(w nethttp.ResponseWriter) {
	for k, v := range h.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp.Or(h.status, nethttp.StatusOK))
	w.Write(h.body.Bytes())
}

// bearerToken returns the token of an "Authorization: Bearer <token>"
// header.
func bearerToken(r *nethttp.Request) (string, bool) {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// readBodyRestoring reads the whole body, at most bodyBytesMax (413 beyond), and puts
// it back on r for the handler to decode.
func readBodyRestoring(r *nethttp.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, bodyBytesMax+1))
	if err != nil {
		var tooLarge *nethttp.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, err
		}
		return nil, invalidRequest("", "could not read the request body")
	}
	if len(body) > bodyBytesMax {
		return nil, zhifu.Errorf(zhifu.RequestTooLarge, "request body is larger than %d bytes", bodyBytesMax)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, nil
}
