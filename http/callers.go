package http

import (
	nethttp "net/http"

	"zhifu"
	"zhifu/identity"
)

// userHandler is an API handler for a logged-in user.
type userHandler func(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error

// merchantHandler is an API handler for a merchant whose request signature
// has been verified.
type merchantHandler func(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error

// user authenticates a user's bearer token, applies Idempotency-Key rules to
// POSTs, and calls next.
func (s *Server) user(next userHandler) nethttp.HandlerFunc {
	return s.api(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		return zhifu.Errorf(zhifu.Unauthorized, "not yet")
	})
}

// merchant verifies a merchant's request signature (timestamp window,
// single-use nonce), applies Idempotency-Key rules to POSTs, and calls next.
func (s *Server) merchant(next merchantHandler) nethttp.HandlerFunc {
	return s.api(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		return zhifu.Errorf(zhifu.InvalidSignature, "not yet")
	})
}
