package http

import (
	"crypto/sha256"
	"crypto/subtle"
	nethttp "net/http"
	"strings"

	"zhifu"
	"zhifu/approval"
	"zhifu/identity"
	"zhifu/ledger"
)

// admin lets a request through only for an operator: the configured
// operator token (identity.Root) or an operator's own session token. It puts
// the operator in the request's context, records every change in the audit
// log (in the change's own transaction), and applies Idempotency-Key rules
// to POSTs. It runs before the body is read, so an unauthenticated caller
// cannot make the server parse anything.
func (s *Server) admin(next handlerFunc) nethttp.HandlerFunc {
	return s.api(func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		op, err := s.operator(r)
		if err != nil {
			return err
		}
		// The operator has no token bucket, only the concurrency limit.
		release, err := s.enter(w, r, "", 0)
		if err != nil {
			return err
		}
		defer release()
		ctx := identity.WithOperator(r.Context(), op)
		if r.Method == nethttp.MethodGet || r.Method == nethttp.MethodHead {
			return next(w, r.WithContext(ctx))
		}
		ctx = ledger.WithGuard(ctx, approval.Guard(approval.Entry{At: s.clock.Now(), OperatorID: op.OperatorID,
			Action: r.Method + " " + routeOf(r), Subject: r.URL.Path}))
		r = r.WithContext(ctx)
		herr := s.idempotent(w, r, "admin", nil, next)
		// A request that changed nothing leaves its line now.
		if err := s.batcher.RunGuard(ctx); err != nil && herr == nil {
			s.logger.Error("audit line not written", "route", routeOf(r), "err", err)
		}
		return herr
	})
}

// routeOf is the request's route pattern, or its path before routing.
func routeOf(r *nethttp.Request) string {
	if r.Pattern != "" {
		_, route, _ := strings.Cut(r.Pattern, " ")
		return route
	}
	return r.URL.Path
}

// operator returns who is calling with an operator's bearer token.
func (s *Server) operator(r *nethttp.Request) (*identity.Operator, error) {
	refused := zhifu.Errorf(zhifu.Unauthorized, "a valid operator bearer token is required")
	token, ok := bearerToken(r)
	if !ok {
		return nil, refused
	}
	if s.isAdmin(token) {
		root := identity.Root
		return &root, nil
	}
	if s.svc.Identity == nil {
		return nil, refused
	}
	return s.svc.Identity.OperatorByToken(r.Context(), token)
}

// isAdmin compares the presented token with the configured operator token
// in constant time. Both sides are hashed first so that neither the
// token's length nor a common prefix shows in the timing.
func (s *Server) isAdmin(token string) bool {
	if !s.hasAdmin {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
}
