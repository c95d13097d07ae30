package identity

import (
	"context"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// The service's writes, each a ledger op so that it commits in a batch
// with everyone else's. Every op starts its outcome afresh in Prepare,
// because a batch may run more than once.

// createUserOp inserts a user and opens the user's ledger accounts.
type createUserOp struct {
	login, name, hash string
	now               time.Time

	user  User
	taken bool
}

func (o *createUserOp) Keys() []string { return []string{"login:" + o.login} }

// Applied says whether the user was created (ledger.Applier).
func (o *createUserOp) Applied() bool { return !o.taken }

func (o *createUserOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.user, o.taken = User{}, false
	return nil, nil
}

func (o *createUserOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	// The number is the database's, and the public id derives from it, so
	// the row goes in with a stand-in id (unique because the login is) and
	// gets its real id in the same transaction.
	var num int64
	err := tx.QueryRow(ctx, `INSERT INTO users (user_id, login, name, password_hash, created_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING num`,
		"new:"+o.login, o.login, o.name, o.hash, o.now.UnixNano()).Scan(&num)
	if errors.Is(err, ledger.ErrNoRows) {
		o.taken = true
		return nil
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	userID := zhifu.UserIDOf(num)
	if _, err := tx.Exec(ctx, `UPDATE users SET user_id = ? WHERE num = ?`, userID, num); err != nil {
		return fmt.Errorf("set user id: %w", err)
	}
	if err := openAccounts(ctx, tx, UserAccounts(num, o.now)); err != nil {
		return err
	}
	o.user = User{Num: num, UserID: userID, Login: o.login, Name: o.name, CreatedAt: o.now.UTC()}
	return nil
}

// openAccounts creates accounts inside a business transaction, by the
// ledger's own rule for account creation. Accounts already there as asked
// are left alone; accounts there with another shape are a bug upstream.
// ids must ascend, as the ledger locks them in that order.
func openAccounts(ctx context.Context, tx ledger.Tx, accounts []ledger.Account) error {
	ids := make([]int64, len(accounts))
	for i, a := range accounts {
		ids[i] = a.ID
	}
	existing, err := tx.LockAccounts(ctx, ids)
	if err != nil {
		return fmt.Errorf("lock accounts: %w", err)
	}
	byID := make(map[int64]*ledger.Account, len(existing))
	for i := range existing {
		byID[existing[i].ID] = &existing[i]
	}
	var fresh []ledger.Account
	for _, a := range accounts {
		switch r := ledger.CreateAccount(byID[a.ID], a); r {
		case ledger.AccountOK:
			fresh = append(fresh, a)
		case ledger.AccountExists:
		default:
			return fmt.Errorf("open account %d: %s", a.ID, r)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	return tx.InsertAccounts(ctx, fresh)
}

// sessionOp records a session by the hash of its token.
type sessionOp struct {
	hash, userID string
	expires      time.Time
}

// Keys is empty: a fresh random token conflicts with nothing.
func (o *sessionOp) Keys() []string { return nil }

func (o *sessionOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *sessionOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	_, err := tx.Exec(ctx, `INSERT INTO sessions (token_hash, user_id, expires_at) VALUES (?, ?, ?)`,
		o.hash, o.userID, o.expires.UnixNano())
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// createMerchantOp inserts a merchant. Like a user, it gets its number from
// the database and its public ids from the number.
type createMerchantOp struct {
	m   Merchant
	now time.Time
	tmp string // a random stand-in id until the number is known

	created Merchant
}

func (o *createMerchantOp) Keys() []string { return nil }

func (o *createMerchantOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.created = Merchant{}
	return nil, nil
}

func (o *createMerchantOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	m := o.m
	err := tx.QueryRow(ctx, `INSERT INTO merchants (merchant_id, app_id, name, user_id, secret, notify_url,
		app_public_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING num`,
		o.tmp, o.tmp, m.Name, m.UserID, m.secret, m.NotifyURL, m.AppPublicKey, o.now.UnixNano()).Scan(&m.Num)
	if err != nil {
		return fmt.Errorf("insert merchant: %w", err)
	}
	m.MerchantID, m.AppID = zhifu.MerchantIDOf(m.Num), zhifu.AppIDOf(m.Num)
	if _, err := tx.Exec(ctx, `UPDATE merchants SET merchant_id = ?, app_id = ? WHERE num = ?`,
		m.MerchantID, m.AppID, m.Num); err != nil {
		return fmt.Errorf("set merchant ids: %w", err)
	}
	m.CreatedAt = o.now.UTC()
	o.created = m
	return nil
}

// nonceGuard spends a merchant request's nonce: the request may proceed
// only if the nonce was never used. The primary key makes a second use
// insert nothing, in this process or any other sharing the database.
type nonceGuard struct {
	svc               *Service
	merchantID, nonce string
	expires           time.Time
}

func (g *nonceGuard) Keys() []string { return []string{"nonce:" + g.merchantID + ":" + g.nonce} }

// nonceSpentSQL finds a spent nonce.
const nonceSpentSQL = `SELECT 1 FROM nonces WHERE merchant_id = ? AND nonce = ?`

// Reads names Check's read, for a store to run with the batch's others
// (ledger.Prefetcher).
func (g *nonceGuard) Reads() []ledger.Read {
	return []ledger.Read{{Query: nonceSpentSQL, Args: []any{g.merchantID, g.nonce}}}
}

func (g *nonceGuard) Check(ctx context.Context, tx ledger.Tx) (error, error) {
	var one int
	err := tx.QueryRow(ctx, nonceSpentSQL, g.merchantID, g.nonce).Scan(&one)
	switch {
	case errors.Is(err, ledger.ErrNoRows):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("check nonce: %w", err)
	}
	return g.svc.refuseSignature(ctx, g.merchantID, "nonce reused"), nil
}

func (g *nonceGuard) Record(ctx context.Context, tx ledger.Tx, _ bool) error {
	// No row inserted means another process spent the nonce after Check:
	// the Write's count error is an ErrConflict, so the transaction runs
	// again and Check sees the nonce spent. A Write, so that on PostgreSQL
	// it rides with the batch's other writes instead of a round trip of
	// its own.
	if err := tx.Write(ctx, 1, `INSERT INTO nonces (merchant_id, nonce, expires_at) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, g.merchantID, g.nonce, g.expires.UnixNano()); err != nil {
		return fmt.Errorf("spend nonce %s: %w", g.nonce, err)
	}
	return nil
}

// cleanupOp deletes expired nonces and sessions, a bounded number of each
// per run so that one batch never carries a huge delete.
type cleanupOp struct {
	now int64

	nonces, sessions int64
}

func (o *cleanupOp) Keys() []string { return []string{"identity:cleanup"} }

func (o *cleanupOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.nonces, o.sessions = 0, 0
	return nil, nil
}

func (o *cleanupOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	var err error
	o.nonces, err = tx.Exec(ctx, `DELETE FROM nonces WHERE (merchant_id, nonce) IN
		(SELECT merchant_id, nonce FROM nonces WHERE expires_at < ? LIMIT ?)`, o.now, cleanupRowsMax)
	if err != nil {
		return fmt.Errorf("delete nonces: %w", err)
	}
	o.sessions, err = tx.Exec(ctx, `DELETE FROM sessions WHERE token_hash IN
		(SELECT token_hash FROM sessions WHERE expires_at < ? LIMIT ?)`, o.now, cleanupRowsMax)
	if err != nil {
		return fmt.Errorf("delete sessions: %w", err)
	}
	return nil
}
