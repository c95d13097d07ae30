// Package identity knows who is calling: users (login with a slowly hashed
// password, bearer-token sessions) and merchants (a secret shown once, every
// request signed with HMAC-SHA256 inside a timestamp window, each nonce used
// once).
package identity

import (
	"log/slog"

	"zhifu"
	"zhifu/ledger"
)

// Config is what the service needs.
type Config struct {
	Store   ledger.Store
	Batcher *ledger.Batcher
	Clock   zhifu.Clock
	Logger  *slog.Logger
}

// Service manages users, sessions and merchants.
type Service struct {
	cfg Config
}

// New returns the identity service.
func New(cfg Config) *Service { return &Service{cfg: cfg} }

// User is a wallet holder.
type User struct {
	Num    int64  // internal number; ledger accounts derive from it
	UserID string // public id
	Login  string
	Name   string
}

// Merchant is a shop that creates trades through the signed API or the
// Alipay-compatible gateway.
type Merchant struct {
	Num          int64
	MerchantID   string
	AppID        string
	Name         string
	UserID       string // the wallet that receives the merchant's money
	NotifyURL    string
	AppPublicKey string // PEM or base64 DER; empty when the gateway is not used
	secret       string // HMAC key; unexported so it never reaches a log by accident
}

// Secret returns the merchant's HMAC key, for signing notifications.
func (m *Merchant) Secret() string { return m.secret }
