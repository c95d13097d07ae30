package wallet

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
)

const (
	p2pTransferPrefix = "p2p:"
	// MemoBytesMax bounds a transfer's memo: it travels in the ledger
	// transfer's user data.
	MemoBytesMax = ledger.UserDataLenMax
	// StatusSuccess is the status of a transfer that has moved the money.
	StatusSuccess = "SUCCESS"
)

// Transfer is money one user sent another from wallet to wallet.
type Transfer struct {
	TransferID string
	FromUserID string
	ToUserID   string
	Amount     zhifu.Amount
	Memo       string
	Status     string
	CreatedAt  time.Time
}

// Transfer moves amount from one user's wallet to another's, at once and
// entirely or not at all.
//
// A transfer has no business key of its own, so requestKey, when not empty,
// stands in for one: it is the caller's Idempotency-Key, and the transfer id
// derives from it and the sender. A retry with the same key then finds the
// transfer already made (and answers as the first time) instead of making
// another, however the first attempt ended; the same key for a different
// transfer is 409 CONTEXT_INCONSISTENT.
func (s *Service) Transfer(ctx context.Context, from *identity.User, toUserID string, amount zhifu.Amount, memo, requestKey string) (*Transfer, error) {
	if len(memo) > MemoBytesMax || !utf8.ValidString(memo) {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "memo",
			Message: fmt.Sprintf("memo must be UTF-8 text of at most %d bytes", MemoBytesMax)}
	}
	if toUserID == from.UserID {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "to_user_id", Message: "cannot transfer to yourself"}
	}
	if err := checkAmount(amount); err != nil {
		return nil, err
	}
	to, err := s.cfg.Identity.UserByID(ctx, toUserID)
	if zhifu.ErrorCode(err) == zhifu.NotFound {
		return nil, &zhifu.Error{Code: zhifu.NotFound, Param: "to_user_id", Message: "no such user"}
	}
	if err != nil {
		return nil, err
	}
	id := s.newID("T")
	if requestKey != "" {
		id = zhifu.KeyedID("T", from.UserID, requestKey)
	}
	t := &Transfer{TransferID: id, FromUserID: from.UserID, ToUserID: to.UserID,
		Amount: amount, Memo: memo, Status: StatusSuccess, CreatedAt: s.cfg.Clock.Now().UTC()}
	op := &transferOp{t: ledger.Transfer{
		ID: p2pTransferPrefix + t.TransferID, DebitAccountID: zhifu.WalletAccountID(from.Num),
		CreditAccountID: zhifu.WalletAccountID(to.Num), Amount: int64(amount), Ledger: identity.CNYLedger,
		Code: zhifu.TransferP2P, UserData: memo,
	}}
	if err := s.runRepairing(ctx, op, &op.result, from, to); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	switch op.result {
	case ledger.TransferOK, ledger.TransferExists:
		return t, nil
	case ledger.TransferExceedsCredits:
		return nil, &zhifu.Error{Code: zhifu.BalanceNotEnough, Param: "amount", Message: "available balance is not enough"}
	case ledger.TransferOverflowsCredits, ledger.TransferOverflowsCreditsPosted:
		return nil, &zhifu.Error{Code: zhifu.LimitExceeded, Param: "amount", Message: "the recipient's balance cannot grow by this much"}
	}
	if existsDifferently(op.result) {
		return nil, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "Idempotency-Key",
			Message: "this Idempotency-Key was already used for a different transfer"}
	}
	return nil, fmt.Errorf("transfer %s: ledger refused: %s", t.TransferID, op.result)
}

// transferOp submits one plain transfer and keeps its result.
type transferOp struct {
	t      ledger.Transfer
	result ledger.TransferResult
}

// Keys is empty: the ledger orders concurrent transfers on the same
// wallets itself.
func (o *transferOp) Keys() []string { return nil }

func (o *transferOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.result = ledger.TransferOK
	return []ledger.Transfer{o.t}, nil
}

func (o *transferOp) Finish(_ context.Context, _ ledger.Tx, results []ledger.TransferResult) error {
	o.result = results[0]
	return nil
}
