package http

import (
	nethttp "net/http"
	"time"

	"zhifu/identity"
)

// identityRoutes registers users, sessions and merchants.
func (s *Server) identityRoutes(mux *nethttp.ServeMux) {
	s.handleFunc(mux, "POST /v1/users", s.admin(once(s.handleCreateUser)))
	s.handleFunc(mux, "POST /v1/merchants", s.admin(once(s.handleCreateMerchant)))
	s.handleFunc(mux, "POST /v1/sessions", s.api(s.handleLogin))
	s.handleFunc(mux, "GET /v1/merchant", s.merchant(s.handleGetMerchant))
}

type createUserRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
	Name     string `json:"name"`
}

type userProfileJSON struct {
	UserID    string `json:"user_id"`
	Login     string `json:"login"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
}

// handleCreateUser registers a user (operator only).
func (s *Server) handleCreateUser(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req createUserRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	u, err := s.svc.Identity.CreateUser(r.Context(), req.Login, req.Password, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, userProfileJSON{UserID: u.UserID, Login: u.Login, Name: u.Name,
		CreatedAt: formatAPITime(u.CreatedAt)})
	return nil
}

type createMerchantRequest struct {
	Name         string `json:"name"`
	UserID       string `json:"user_id"`
	NotifyURL    string `json:"notify_url"`
	AppPublicKey string `json:"app_public_key"`
}

type merchantProfileJSON struct {
	MerchantID      string  `json:"merchant_id"`
	Secret          *string `json:"secret,omitempty"` // only in the creation response
	AppID           string  `json:"app_id"`
	Name            string  `json:"name"`
	UserID          string  `json:"user_id"`
	NotifyURL       string  `json:"notify_url"`
	AppPublicKey    string  `json:"app_public_key"`
	AlipayPublicKey string  `json:"alipay_public_key"`
	CreatedAt       string  `json:"created_at"`
}

// merchantView shows a merchant, with the platform's public key for
// verifying gateway responses and notifications when the gateway runs.
func (s *Server) merchantView(m *identity.Merchant) merchantProfileJSON {
	v := merchantProfileJSON{MerchantID: m.MerchantID, AppID: m.AppID, Name: m.Name, UserID: m.UserID,
		NotifyURL: m.NotifyURL, AppPublicKey: m.AppPublicKey, CreatedAt: formatAPITime(m.CreatedAt)}
	if s.svc.Gateway != nil {
		v.AlipayPublicKey = s.svc.Gateway.Keys().PublicKey()
	}
	return v
}

// handleCreateMerchant registers a merchant (operator only) and shows its
// secret, the only time it is ever shown.
func (s *Server) handleCreateMerchant(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req createMerchantRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	m, secret, err := s.svc.Identity.CreateMerchant(r.Context(), req.Name, req.UserID, req.NotifyURL, req.AppPublicKey)
	if err != nil {
		return err
	}
	v := s.merchantView(m)
	v.Secret = &secret
	writeJSON(w, nethttp.StatusCreated, v)
	return nil
}

// handleGetMerchant shows a merchant its own profile (an extension, like
// Stripe's GET /v1/account): the cheapest way to check a signature set-up.
func (s *Server) handleGetMerchant(w nethttp.ResponseWriter, r *nethttp.Request, m *identity.Merchant) error {
	writeJSON(w, nethttp.StatusOK, s.merchantView(m))
	return nil
}

type loginRequest struct {
	Login    string `json:"login"`
	Password string `json:"password"`
}

type sessionJSON struct {
	Token     string `json:"token"`
	UserID    string `json:"user_id"`
	ExpiresAt string `json:"expires_at"`
}

// handleLogin opens a session for a login and password.
func (s *Server) handleLogin(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	token, u, err := s.svc.Identity.Login(r.Context(), req.Login, req.Password)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, sessionJSON{Token: token, UserID: u.UserID,
		ExpiresAt: formatAPITime(s.clock.Now().Add(identity.SessionTTL))})
	return nil
}

// formatAPITime writes an API time: RFC 3339 in UTC.
func formatAPITime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
