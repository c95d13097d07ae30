// Package identity knows who is calling: users (login with a slowly hashed
// password, bearer-token sessions) and merchants (a secret shown once, every
// request signed with HMAC-SHA256 inside a timestamp window, each nonce used
// once).
//
// Users and merchants are written through ledger ops, so a user's row and the
// user's ledger accounts commit in one transaction. Reads go to the store's
// reader and are cached briefly in memory: every signed merchant request and
// every user request needs them, and they change rarely.
package identity

import (
	"log/slog"
	"runtime"
	"time"

	"zhifu"
	"zhifu/egress"
	"zhifu/ledger"
)

// Limits and lifetimes of what the service keeps.
const (
	// SessionTTL is how long a login token stays valid.
	SessionTTL = 24 * time.Hour
	// SignatureWindow is how far a signed request's timestamp may be from
	// the platform's clock, either way. A nonce is kept as long as its
	// request could still be accepted.
	SignatureWindow = 300 * time.Second

	// sessionCacheTTL bounds how long a token→user answer is reused without
	// asking the database.
	sessionCacheTTL = 60 * time.Second
	// recordCacheTTL bounds how long a user or merchant row is reused. They
	// do not change yet; the bound keeps several nodes from drifting apart
	// once they do.
	recordCacheTTL = 5 * time.Minute
	// cacheEntriesMax bounds each in-memory cache.
	cacheEntriesMax = 10_000

	// tokenBytes and secretBytes are the random parts of session tokens and
	// merchant secrets.
	tokenBytes  = 32
	secretBytes = 32
)

// Config is what the service needs.
type Config struct {
	Store   ledger.Store
	Batcher *ledger.Batcher
	Clock   zhifu.Clock
	Logger  *slog.Logger
	// Egress judges a merchant's notify_url (nil: only the internet is
	// admitted); the notify worker checks it again when it connects.
	Egress *egress.Guard
}

// Service manages users, sessions and merchants.
type Service struct {
	cfg Config
	// hashSlots bounds the password hashes computed at once: each takes tens
	// of milliseconds of one CPU, and a burst of logins must not starve the
	// payment paths.
	hashSlots chan struct{}
	sessions  *cache[string, sessionEntry] // token hash → user
	users     *cache[string, User]         // user_id → user
	merchants *cache[string, Merchant]     // merchant_id → merchant
	apps      *cache[string, Merchant]     // app_id → merchant
}

// New returns the identity service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{
		cfg:       cfg,
		hashSlots: make(chan struct{}, runtime.GOMAXPROCS(0)),
		sessions:  newCache[string, sessionEntry](cacheEntriesMax),
		users:     newCache[string, User](cacheEntriesMax),
		merchants: newCache[string, Merchant](cacheEntriesMax),
		apps:      newCache[string, Merchant](cacheEntriesMax),
	}
}

// User is a wallet holder.
type User struct {
	Num       int64  // internal number; ledger accounts derive from it
	UserID    string // public id
	Login     string
	Name      string
	CreatedAt time.Time
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
	AppPublicKey string // base64 PKIX DER; empty when the gateway is not used
	CreatedAt    time.Time
	secret       string // HMAC key; unexported so it never reaches a log by accident
}

// Secret returns the merchant's HMAC key, for signing notifications.
func (m *Merchant) Secret() string { return m.secret }

// LogValue keeps the secret out of logs even when a whole Merchant is
// logged.
func (m Merchant) LogValue() slog.Value {
	return slog.GroupValue(slog.String("merchant_id", m.MerchantID), slog.String("app_id", m.AppID))
}

func (s *Service) now() time.Time { return s.cfg.Clock.Now() }

func notFound(param, msg string) *zhifu.Error {
	return &zhifu.Error{Code: zhifu.NotFound, Message: msg, Param: param}
}

func invalid(param, msg string) *zhifu.Error {
	return &zhifu.Error{Code: zhifu.InvalidRequest, Message: msg, Param: param}
}
