package http

import (
	"crypto/sha256"
	"crypto/subtle"
	nethttp "net/http"
	"strings"

	"zhifu"
)

// admin lets a request through only with the operator's bearer token, and
// applies Idempotency-Key rules to POSTs. It runs before the body is read,
// so an unauthenticated caller cannot make the server parse anything.
func (s *Server) admin(next handlerFunc) nethttp.HandlerFunc {
	return s.api(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		if !s.isAdmin(r) {
			return zhifu.Errorf(zhifu.Unauthorized, "a valid admin bearer token is required")
		}
		// The operator has no token bucket, only the concurrency limit.
		release, err := s.enter(w, r, "", 0)
		if err != nil {
			return err
		}
		defer release()
		return s.idempotent(w, r, "admin", nil, next)
	})
}

// isAdmin compares the presented token with the admin token in constant
// time. Both sides are hashed first so that neither the token's length nor a
// common prefix shows in the timing.
func (s *Server) isAdmin(r *nethttp.Request) bool {
	if !s.hasAdmin {
		return false
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
}
