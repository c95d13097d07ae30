package recon

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/approval"
	"zhifu/channel"
	"zhifu/identity"
	"zhifu/ledger"
)

// KindResolve is the approval kind of a review item's resolution.
const KindResolve = "recon.resolve"

// Actions that resolve a review item: where the money in question goes.
const (
	// CreditUser: to the user's wallet (from suspense; for an overdue
	// transaction, the top-up is credited or the withdrawal given back).
	CreditUser = "credit_user"
	// ReturnToCard: back to the card of the item's transaction, by a
	// refund payout (for an overdue withdrawal: marked paid).
	ReturnToCard = "return_to_card"
	// WriteOff: to or from the platform's own funds; for an overdue
	// top-up, closed as failed with nothing moved.
	WriteOff = "write_off"
)

// noteLenMax bounds an operator's note.
const noteLenMax = 512

// Allowed lists the actions that can resolve it, given its transaction as
// it is now (nil if it has none).
func Allowed(it *Item, t *channel.BankTxn) []string {
	if it.Status != Open {
		return nil
	}
	hasCard := t != nil && t.CardToken != ""
	if t != nil && !t.Status.Final() && it.Suspense == 0 {
		// An overdue transaction (or a line that named another amount
		// and failed): the operator decides it.
		if t.Kind.Payout() {
			return []string{CreditUser, ReturnToCard}
		}
		if hasCard {
			return []string{CreditUser, ReturnToCard, WriteOff}
		}
		return []string{CreditUser, WriteOff}
	}
	switch {
	case it.Suspense > 0 && hasCard:
		return []string{CreditUser, ReturnToCard, WriteOff}
	case it.Suspense > 0:
		return []string{CreditUser, WriteOff}
	}
	return []string{WriteOff}
}

// Resolution is an operator's proposed resolution of an item.
type Resolution struct {
	Action string `json:"action"`
	Note   string `json:"note"`
	// UserID is whose wallet credit_user credits, for an item of a
	// request the platform does not know (other items name their user).
	UserID string `json:"user_id,omitempty"`
	// ItemID is the item (the proposal's subject).
	ItemID string `json:"item_id"`
}

// Resolve files operator by's resolution of an item as a proposal for a
// second operator to approve (approval kind KindResolve); nothing moves
// until then. A resolution proposed again supersedes the last.
func (s *Service) Resolve(ctx context.Context, itemID string, r Resolution, by *identity.Operator) (*approval.Proposal, error) {
	if !utf8.ValidString(r.Note) || utf8.RuneCountInString(r.Note) > noteLenMax {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "note",
			Message: fmt.Sprintf("note must be at most %d characters of UTF-8", noteLenMax)}
	}
	if !slices.Contains([]string{CreditUser, ReturnToCard, WriteOff}, r.Action) {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "action",
			Message: "action must be credit_user, return_to_card or write_off"}
	}
	if r.UserID != "" {
		if s.cfg.Identity == nil {
			return nil, fmt.Errorf("recon: no identity service to check user %s", r.UserID)
		}
		if _, err := s.cfg.Identity.UserByID(ctx, r.UserID); err != nil {
			return nil, err
		}
	}
	r.ItemID = itemID
	op := &proposeOp{svc: s, r: r, by: by.OperatorID, now: s.now()}
	if err := s.do(ctx, op); err != nil {
		return nil, err
	}
	if op.refusal != nil {
		return nil, op.refusal
	}
	return &op.p, nil
}

// proposeOp files the proposal and marks the item with it.
type proposeOp struct {
	svc *Service
	r   Resolution
	by  string
	now time.Time

	p       approval.Proposal
	refusal error
}

func (o *proposeOp) Keys() []string { return []string{"recon-item:" + o.r.ItemID} }

func (o *proposeOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.refusal = nil
	return nil, nil
}

func (o *proposeOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	it, err := loadItem(ctx, tx, o.r.ItemID, true)
	if err != nil {
		return err
	}
	if it == nil {
		o.refusal = zhifu.Errorf(zhifu.NotFound, "no review item %s", clip(o.r.ItemID, 40))
		return nil
	}
	var t *channel.BankTxn
	if it.TxnID != "" {
		if t, err = channel.LoadTxn(ctx, tx, it.TxnID, true); err != nil {
			return err
		}
	}
	if o.refusal = refuse(it, t, o.r); o.refusal != nil {
		return nil
	}
	o.p = approval.Proposal{Kind: KindResolve, Subject: it.ItemID, Summary: summarize(it, t, o.r),
		Payload: payloadOf(o.r), ProposedBy: o.by}
	if err := approval.File(ctx, tx, &o.p, o.now); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE recon_items SET proposal_id = ?, updated_at = ? WHERE item_id = ?`,
		o.p.ID, toNanos(o.now), it.ItemID)
	if err != nil {
		return fmt.Errorf("recon: propose for %s: %w", it.ItemID, err)
	}
	return nil
}

// refuse says why r cannot resolve it now, or nil.
func refuse(it *Item, t *channel.BankTxn, r Resolution) error {
	if it.Status != Open {
		return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "item_id",
			Message: fmt.Sprintf("review item %s is %s, no longer open", it.ItemID, it.Status)}
	}
	allowed := Allowed(it, t)
	if !slices.Contains(allowed, r.Action) {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "action",
			Message: fmt.Sprintf("%s cannot resolve this item; it takes %v", r.Action, allowed)}
	}
	if r.Action == CreditUser && it.UserID == "" && r.UserID == "" {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "user_id",
			Message: "the platform does not know whose money this is: name the user_id to credit"}
	}
	if r.UserID != "" && it.UserID != "" && r.UserID != it.UserID {
		return &zhifu.Error{Code: zhifu.InvalidRequest, Param: "user_id",
			Message: "the item's money is its transaction's user's; user_id must be theirs or absent"}
	}
	return nil
}

func summarize(it *Item, t *channel.BankTxn, r Resolution) string {
	what := fmt.Sprintf("%s of %s %s (%s)", it.Class, it.Bank, it.Day, it.RequestID)
	switch {
	case t != nil && !t.Status.Final() && it.Suspense == 0:
		return fmt.Sprintf("%s: decide %s %s of %s by %s", what, t.Kind, t.TxnID, t.Amount, r.Action)
	case r.Action == WriteOff:
		return fmt.Sprintf("%s: write %s off against own funds", what, zhifu.Amount(it.Suspense))
	case r.Action == CreditUser:
		return fmt.Sprintf("%s: credit %s from suspense to %s", what, zhifu.Amount(it.Suspense), userOf(it, r))
	}
	return fmt.Sprintf("%s: return %s from suspense to the card", what, zhifu.Amount(it.Suspense))
}

func userOf(it *Item, r Resolution) string {
	if it.UserID != "" {
		return it.UserID
	}
	return r.UserID
}

func payloadOf(r Resolution) string {
	b, err := json.Marshal(r)
	if err != nil {
		panic("recon: resolution does not marshal: " + err.Error())
	}
	return string(b)
}

// Carry is approval.Kind: the op that carries out an approved resolution,
// in the approval's transaction.
func (s *Service) Carry(p approval.Proposal) (ledger.Op, error) {
	var r Resolution
	if err := json.Unmarshal([]byte(p.Payload), &r); err != nil {
		return nil, fmt.Errorf("recon: proposal %s: %w", p.ID, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	it, err := loadItem(ctx, s.cfg.Store.Reader(), r.ItemID, false)
	if err != nil {
		return nil, err
	}
	if it == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no review item %s", clip(r.ItemID, 40))
	}
	var t *channel.BankTxn
	if it.TxnID != "" {
		if t, err = channel.LoadTxn(ctx, s.cfg.Store.Reader(), it.TxnID, false); err != nil {
			return nil, err
		}
	}
	op := &carryOp{svc: s, p: p, r: r, item: it, books: it.Books}
	if err := op.plan(t); err != nil {
		return nil, err
	}
	return op, nil
}

// carryOp carries out a resolution: decides the item's transaction if it
// is still open, moves the item's suspense where the action says, and
// marks the item RESOLVED, or refuses (and moves nothing) when the item or
// its transaction changed since it was planned.
type carryOp struct {
	svc  *Service
	p    approval.Proposal
	r    Resolution
	item *Item

	settle    *channel.Settlement
	ret       *channel.ReturnOp
	transfers []ledger.Transfer
	books     int64 // the item's Books once carried out

	nSettle, nRet int
	prepared      bool
	refusal       error
}

// plan works out what the resolution does, from the item and t as read
// outside the transaction; Prepare checks under the locks that they did
// not change.
func (o *carryOp) plan(t *channel.BankTxn) error {
	s, it := o.svc, o.item
	settlement, err := settlementOf(it.Bank)
	if err != nil {
		return err
	}
	id := func(what string) string { return "rs:" + it.ItemID + ":" + what }
	if t != nil && !t.Status.Final() {
		// The transaction is decided first: by the action for an overdue
		// one; as failed where the bank moved another amount (the
		// suspense holds what it did move).
		succeed := false
		if it.Suspense == 0 {
			succeed = (o.r.Action == CreditUser) == (t.Kind == channel.KindTopup)
		}
		o.settle = s.cfg.Channels.Settle(t, succeed, "", "RESOLVED_BY_OPERATOR")
		if it.Suspense == 0 {
			if o.r.Action == ReturnToCard && t.Kind == channel.KindTopup {
				// The operator found the bank took it: the bank's debit,
				// which the failed top-up no longer shows, is the item's.
				o.ret = s.cfg.Channels.ReturnOp(channel.CardReturn{ID: zhifu.KeyedID("WO", it.Bank, it.ItemID),
					Source: t, Amount: t.Amount, From: settlement, Reason: "RETURNED_BY_OPERATOR"})
				o.books = int64(t.Amount)
			}
			return nil
		}
	}
	amount := it.Suspense
	switch o.r.Action {
	case CreditUser:
		w, err := walletOf(userOf(it, o.r))
		if err != nil {
			return err
		}
		o.transfers = append(o.transfers, s.transfer(id("credit"), zhifu.SuspenseAccountID, w, amount))
	case ReturnToCard:
		if t == nil {
			return fmt.Errorf("recon: item %s has no card to return to", it.ItemID)
		}
		o.ret = s.cfg.Channels.ReturnOp(channel.CardReturn{ID: zhifu.KeyedID("WO", it.Bank, it.ItemID), Source: t,
			Amount: zhifu.Amount(amount), From: zhifu.SuspenseAccountID, Reason: "RETURNED_BY_OPERATOR"})
	case WriteOff:
		switch {
		case amount > 0:
			o.transfers = append(o.transfers, s.transfer(id("writeoff"), zhifu.SuspenseAccountID, zhifu.OwnFundsAccountID, amount))
		case amount < 0:
			o.transfers = append(o.transfers, s.transfer(id("writeoff"), zhifu.OwnFundsAccountID, zhifu.SuspenseAccountID, -amount))
		}
	}
	return nil
}

func (o *carryOp) Keys() []string {
	keys := []string{"recon-item:" + o.item.ItemID}
	if o.item.TxnID != "" {
		keys = append(keys, "recon-txn:"+o.item.TxnID)
	}
	if o.settle != nil {
		keys = append(keys, o.settle.Keys()...)
	}
	if o.ret != nil {
		keys = append(keys, o.ret.Keys()...)
	}
	return keys
}

func (o *carryOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.refusal, o.prepared, o.nSettle, o.nRet = nil, false, 0, 0
	it, err := loadItem(ctx, tx, o.item.ItemID, true)
	if err != nil {
		return nil, err
	}
	var t *channel.BankTxn
	if it != nil && it.TxnID != "" {
		if t, err = channel.LoadTxn(ctx, tx, it.TxnID, true); err != nil {
			return nil, err
		}
	}
	switch {
	case it == nil:
		o.refusal = zhifu.Errorf(zhifu.NotFound, "no review item %s", clip(o.item.ItemID, 40))
	case it.ProposalID != o.p.ID:
		o.refusal = &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "approval_id",
			Message: fmt.Sprintf("review item %s has a later proposal, %s", it.ItemID, it.ProposalID)}
	case (t != nil && !t.Status.Final()) != (o.settle != nil):
		o.refusal = &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "approval_id",
			Message: fmt.Sprintf("transaction %s was decided after this was proposed; propose again", it.TxnID)}
	default:
		o.refusal = refuse(it, t, o.r)
	}
	if o.refusal != nil {
		return nil, nil
	}
	var trs []ledger.Transfer
	if o.settle != nil {
		part, err := o.settle.Prepare(ctx, tx)
		if err != nil {
			return nil, err
		}
		trs, o.nSettle = append(trs, part...), len(part)
	}
	if o.ret != nil {
		part, err := o.ret.Prepare(ctx, tx)
		if err != nil {
			return nil, err
		}
		trs, o.nRet = append(trs, part...), len(part)
	}
	o.prepared = true
	if (o.settle != nil && !o.settle.Moves()) || (o.ret != nil && !o.ret.Moves()) {
		o.refusal = zhifu.Errorf(zhifu.ContextInconsistent, "review item %s changed meanwhile; propose again", it.ItemID)
		return nil, nil
	}
	return append(trs, o.transfers...), nil
}

func (o *carryOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.refusal != nil {
		return nil
	}
	if o.settle != nil {
		if err := o.settle.Finish(ctx, tx, results[:o.nSettle]); err != nil {
			return err
		}
	}
	if o.ret != nil {
		if err := o.ret.Finish(ctx, tx, results[o.nSettle:o.nSettle+o.nRet]); err != nil {
			return err
		}
	}
	for i, r := range results[o.nSettle+o.nRet:] {
		if r != ledger.TransferOK {
			return fmt.Errorf("recon: resolve %s: transfer %s: %s", o.item.ItemID, o.transfers[i].ID, r)
		}
	}
	now := toNanos(o.svc.now())
	n, err := tx.Exec(ctx, `UPDATE recon_items SET status = ?, action = ?, note = ?, books = ?, resolved_at = ?,
		updated_at = ? WHERE item_id = ? AND status = ?`, Resolved, o.r.Action, o.r.Note, o.books, now, now,
		o.item.ItemID, Open)
	if err != nil {
		return fmt.Errorf("recon: resolve %s: %w", o.item.ItemID, err)
	}
	if n != 1 {
		return fmt.Errorf("recon: item %s resolved concurrently: %w", o.item.ItemID, ledger.ErrConflict)
	}
	return nil
}

// Applied is ledger.Applier: whether the resolution was carried out.
func (o *carryOp) Applied() bool { return o.refusal == nil }

// Refusal says why it was not.
func (o *carryOp) Refusal() error { return o.refusal }

// Actions lists the actions that can resolve it now.
func (s *Service) Actions(ctx context.Context, it *Item) ([]string, error) {
	var t *channel.BankTxn
	if it.TxnID != "" {
		var err error
		if t, err = channel.LoadTxn(ctx, s.cfg.Store.Reader(), it.TxnID, false); err != nil {
			return nil, err
		}
	}
	return Allowed(it, t), nil
}
