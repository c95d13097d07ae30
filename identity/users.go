package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"zhifu"
	"zhifu/ledger"
)

// Bounds on what a user is created with.
const (
	loginLenMin    = 3
	loginLenMax    = 64
	passwordLenMin = 8 // characters
	passwordLenMax = 128
	nameLenMax     = 64 // characters
)

// CNYLedger is the ledger of the platform's one currency for now.
var CNYLedger, _ = zhifu.LedgerOf(zhifu.CNY)

// UserAccounts are the ledger accounts every user has: the wallet (what the
// user can spend) and the frozen balance (held for withdrawals in flight).
// Both are liabilities that must never go below zero. now stamps them.
func UserAccounts(num int64, now time.Time) []ledger.Account {
	return []ledger.Account{
		{ID: zhifu.WalletAccountID(num), Ledger: CNYLedger, Code: zhifu.AccountWallet,
			Flags: ledger.DebitsMustNotExceedCredits, Timestamp: now.UnixNano()},
		{ID: zhifu.FrozenAccountID(num), Ledger: CNYLedger, Code: zhifu.AccountFrozen,
			Flags: ledger.DebitsMustNotExceedCredits, Timestamp: now.UnixNano()},
	}
}

// CreateUser registers a user and opens the user's ledger accounts in the
// same transaction, so nobody can ever see a user without a wallet.
func (s *Service) CreateUser(ctx context.Context, login, password, name string) (*User, error) {
	if err := checkLogin(login); err != nil {
		return nil, err
	}
	if err := checkPasswordRules(password); err != nil {
		return nil, err
	}
	if err := checkName(name, "name"); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	op := &createUserOp{login: login, name: name, hash: hash, now: s.now()}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	if op.taken {
		return nil, invalid("login", "login already taken")
	}
	u := op.user
	s.users.put(u.UserID, u, op.now.Add(recordCacheTTL), op.now)
	return &u, nil
}

// Login checks a login and password and opens a session. Whether the login
// or the password was wrong is not said, and both take as long.
func (s *Service) Login(ctx context.Context, login, password string) (token string, user *User, err error) {
	refused := zhifu.Errorf(zhifu.Unauthorized, "invalid login or password")
	if checkLogin(login) != nil || len(password) > passwordLenMax*utf8.UTFMax {
		return "", nil, refused
	}
	u, stored, err := s.userByLogin(ctx, login)
	if errors.Is(err, ledger.ErrNoRows) {
		stored = dummyHash
	} else if err != nil {
		return "", nil, fmt.Errorf("login: %w", err)
	}
	ok, err := s.checkPassword(ctx, stored, password)
	if err != nil {
		return "", nil, fmt.Errorf("login: %w", err)
	}
	if !ok || u == nil {
		return "", nil, refused
	}
	raw := make([]byte, tokenBytes)
	rand.Read(raw)
	token = base64.RawURLEncoding.EncodeToString(raw)
	now := s.now()
	op := &sessionOp{hash: tokenHash(token), userID: u.UserID, expires: now.Add(SessionTTL)}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return "", nil, fmt.Errorf("login: %w", err)
	}
	return token, u, nil
}

func (s *Service) userByLogin(ctx context.Context, login string) (*User, string, error) {
	var u User
	var hash string
	var created int64
	err := s.cfg.Store.Reader().QueryRow(ctx,
		`SELECT num, user_id, login, name, password_hash, created_at FROM users WHERE login = ?`, login).
		Scan(&u.Num, &u.UserID, &u.Login, &u.Name, &hash, &created)
	if err != nil {
		return nil, "", err
	}
	u.CreatedAt = time.Unix(0, created).UTC()
	return &u, hash, nil
}

// sessionEntry is a cached session: its user and when it ends.
type sessionEntry struct {
	user    User
	expires time.Time
}

// UserByToken returns the user a session token belongs to. An unknown,
// malformed or expired token is 401 UNAUTHORIZED.
func (s *Service) UserByToken(ctx context.Context, token string) (*User, error) {
	refused := zhifu.Errorf(zhifu.Unauthorized, "a valid user bearer token is required")
	if !wellFormedToken(token) {
		return nil, refused
	}
	key, now := tokenHash(token), s.now()
	if e, ok := s.sessions.get(key, now); ok && now.Before(e.expires) {
		u := e.user
		return &u, nil
	}
	var u User
	var created, expires int64
	err := s.cfg.Store.Reader().QueryRow(ctx, `SELECT u.num, u.user_id, u.login, u.name, u.created_at, s.expires_at
		FROM sessions s JOIN users u ON u.user_id = s.user_id WHERE s.token_hash = ?`, key).
		Scan(&u.Num, &u.UserID, &u.Login, &u.Name, &created, &expires)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, refused
	}
	if err != nil {
		return nil, fmt.Errorf("user by token: %w", err)
	}
	u.CreatedAt = time.Unix(0, created).UTC()
	end := time.Unix(0, expires)
	if !now.Before(end) {
		return nil, refused
	}
	// The cached answer must not outlive the session itself.
	s.sessions.put(key, sessionEntry{user: u, expires: end}, minTime(now.Add(sessionCacheTTL), end), now)
	return &u, nil
}

// UserByID returns a user by public id, or 404 NOT_FOUND (param user_id).
func (s *Service) UserByID(ctx context.Context, userID string) (*User, error) {
	missing := notFound("user_id", "no such user")
	if _, ok := zhifu.ParseUserID(userID); !ok {
		return nil, missing
	}
	now := s.now()
	if u, ok := s.users.get(userID, now); ok {
		return &u, nil
	}
	var u User
	var created int64
	err := s.cfg.Store.Reader().QueryRow(ctx,
		`SELECT num, user_id, login, name, created_at FROM users WHERE user_id = ?`, userID).
		Scan(&u.Num, &u.UserID, &u.Login, &u.Name, &created)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, missing
	}
	if err != nil {
		return nil, fmt.Errorf("user by id: %w", err)
	}
	u.CreatedAt = time.Unix(0, created).UTC()
	s.users.put(userID, u, now.Add(recordCacheTTL), now)
	return &u, nil
}

// tokenHash is what the sessions table keys on: the token itself is never
// stored, so a copy of the database opens no sessions.
func tokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// wellFormedToken reports whether token could be one we issued, so that
// garbage never reaches the database.
func wellFormedToken(token string) bool {
	if len(token) != base64.RawURLEncoding.EncodedLen(tokenBytes) {
		return false
	}
	for i := 0; i < len(token); i++ {
		if !isBase64URL(token[i]) {
			return false
		}
	}
	return true
}

func isBase64URL(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func checkLogin(login string) error {
	if len(login) < loginLenMin || len(login) > loginLenMax {
		return invalid("login", fmt.Sprintf("login must be %d to %d characters", loginLenMin, loginLenMax))
	}
	for i := 0; i < len(login); i++ {
		c := login[i]
		if !(isBase64URL(c) || c == '.' || c == '@') {
			return invalid("login", "login may contain only letters, digits and _ . @ -")
		}
	}
	return nil
}

func checkPasswordRules(password string) error {
	n := utf8.RuneCountInString(password)
	if !utf8.ValidString(password) || n < passwordLenMin || n > passwordLenMax {
		return invalid("password", fmt.Sprintf("password must be %d to %d characters", passwordLenMin, passwordLenMax))
	}
	return nil
}

// checkName accepts 1 to nameLenMax printable characters, not all spaces.
func checkName(name, param string) error {
	n := utf8.RuneCountInString(name)
	if !utf8.ValidString(name) || n < 1 || n > nameLenMax || strings.TrimSpace(name) == "" {
		return invalid(param, fmt.Sprintf("%s must be 1 to %d characters", param, nameLenMax))
	}
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return invalid(param, param+" must not contain control characters")
	}
	return nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
