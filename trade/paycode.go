package trade

import (
	"context"
	"fmt"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

const (
	// PayCodeTTL is how long a payment code can be charged, as Alipay's.
	PayCodeTTL = 60 * time.Second
	// payCodeAttemptsMax bounds the fresh codes tried when a random code is
	// already taken (10^16 codes make even one retry rare).
	payCodeAttemptsMax = 3
)

// PayCode is a single-use payment code (付款码) a user shows a merchant.
type PayCode struct {
	AuthCode  string
	UserID    string
	ExpiresAt time.Time
}

// NewPayCode issues user u a payment code valid for PayCodeTTL. Any
// merchant may charge one trade to it, once.
func (s *Service) NewPayCode(ctx context.Context, u *identity.User) (*PayCode, error) {
	for range payCodeAttemptsMax {
		now := s.cfg.Clock.Now()
		op := &payCodeOp{code: PayCode{AuthCode: newAuthCode(), UserID: u.UserID, ExpiresAt: now.Add(PayCodeTTL)}}
		if err := s.cfg.Batcher.Do(ctx, op); err != nil {
			return nil, err
		}
		if op.inserted {
			return &op.code, nil
		}
	}
	return nil, zhifu.Errorf(zhifu.SystemBusy, "could not find a free payment code; retry")
}

// payCodeOp writes a new payment code unless the number is taken.
type payCodeOp struct {
	code     PayCode
	inserted bool
}

func (o *payCodeOp) Keys() []string { return []string{"paycode:" + o.code.AuthCode} }

func (o *payCodeOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.inserted = false
	return nil, nil
}

func (o *payCodeOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	n, err := tx.Exec(ctx, `INSERT INTO paycodes (auth_code, user_id, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (auth_code) DO NOTHING`, o.code.AuthCode, o.code.UserID, nanos(o.code.ExpiresAt))
	if err != nil {
		return fmt.Errorf("trade: insert payment code: %w", err)
	}
	o.inserted = n == 1
	return nil
}
