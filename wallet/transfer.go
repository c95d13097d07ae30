package wallet

import (
	"context"
	"fmt"
	"time"
	"unicode/utf8"
	"zhifu/campaign"

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
	Amount     zhifu.Amount // what the recipient received
	// Discount is what a campaign paid of Amount; the sender paid the
	// rest. CampaignLabel is what the sender was told it is.
	Discount      zhifu.Amount
	CampaignLabel string
	Memo          string
	Status        string
	CreatedAt     time.Time
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
	if requestKey != "" {
		// A retry answers from the transfer made, with its discount.
		done, err := s.cfg.Store.LookupTransfers(ctx, []string{p2pTransferPrefix + id, campaign.DiscountTransferID(id)})
		if err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
		for _, x := range done {
			if x.ID == campaign.DiscountTransferID(id) {
				t.Discount = zhifu.Amount(x.Amount)
			}
		}
		for _, x := range done {
			if x.ID == p2pTransferPrefix+id {
				if x.DebitAccountID != zhifu.WalletAccountID(from.Num) || x.CreditAccountID != zhifu.WalletAccountID(to.Num) ||
					zhifu.Amount(x.Amount)+t.Discount != amount {
					return nil, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "Idempotency-Key",
						Message: "this Idempotency-Key was already used for a different transfer"}
				}
				return t, nil
			}
		}
		t.Discount = 0
	}
	op := &transferOp{t: ledger.Transfer{
		ID: p2pTransferPrefix + t.TransferID, DebitAccountID: zhifu.WalletAccountID(from.Num),
		CreditAccountID: zhifu.WalletAccountID(to.Num), Amount: int64(amount), Ledger: identity.CNYLedger,
		Code: zhifu.TransferP2P, UserData: memo,
	}, d: s.cfg.Discounter, p: campaign.Payment{Kind: zhifu.KindTransfer, Ref: id, PayerID: from.UserID,
		PayeeID: to.UserID, Amount: amount, Now: t.CreatedAt}}
	if err := s.runRepairing(ctx, op, &op.result, from, to); err != nil {
		return nil, fmt.Errorf("transfer: %w", err)
	}
	if op.short {
		// The budget ran short after the discount was decided: the
		// transfer is made again without one.
		op.d = nil
		if err := s.runRepairing(ctx, op, &op.result, from, to); err != nil {
			return nil, fmt.Errorf("transfer: %w", err)
		}
	}
	t.Discount, t.CampaignLabel = op.g.Discount, op.g.Label
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

// transferOp submits one transfer and keeps its result; with a
// discounter, a campaign's discount pays part of it, linked before the
// sender's part.
type transferOp struct {
	t      ledger.Transfer
	d      campaign.Discounter
	p      campaign.Payment
	result ledger.TransferResult

	g     campaign.Grant
	short bool // the budget could not pay the discount; nothing moved
}

// Keys is empty: the ledger orders concurrent transfers on the same
// wallets itself.
func (o *transferOp) Keys() []string { return nil }

func (o *transferOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.result, o.g, o.short = ledger.TransferOK, campaign.Grant{}, false
	if o.d == nil {
		return []ledger.Transfer{o.t}, nil
	}
	g, err := campaign.Ask(ctx, o.d, tx, o.p)
	if err != nil || g.Discount <= 0 {
		return []ledger.Transfer{o.t}, err
	}
	o.g = g
	pay := o.t
	pay.Amount -= int64(g.Discount)
	return []ledger.Transfer{campaign.DiscountTransfer(g, o.p.Ref, o.t.CreditAccountID, o.t.Ledger), pay}, nil
}

func (o *transferOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	o.result = results[len(results)-1]
	if o.g.Discount <= 0 {
		return nil
	}
	ok := results[0] == ledger.TransferOK && results[1] == ledger.TransferOK
	if err := o.d.Settle(ctx, tx, o.p, o.g, ok); err != nil {
		return err
	}
	if !ok {
		o.short = results[0] == ledger.TransferExceedsCredits
		if results[0] != ledger.TransferLinkedEventFailed {
			o.result = results[0]
		}
		o.g = campaign.Grant{}
	}
	return nil
}
