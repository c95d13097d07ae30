package wallet

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/ledger"
)

// Page sizes of a statement (API.md's list convention).
const (
	StatementLimitDefault = 20
	StatementLimitMax     = 100
)

// Entry is one line of a user's statement: a ledger transfer seen from the
// user's wallet.
type Entry struct {
	EntryID    string       // the ledger's sequence number; what starting_after takes
	TransferID string       // the ledger transfer's id
	Type       string       // deposit, payment, settle, refund, transfer, topup, withdrawal, discount, card_repayment, bill_payment, campaign_budget
	Amount     zhifu.Amount // signed: money in is positive, money out negative
	Balance    zhifu.Amount // the wallet's posted balance after this entry
	Memo       string
	// Discount is what a campaign paid beside this payment of the user's:
	// the price was -Amount + Discount.
	Discount  zhifu.Amount
	Status    string // posted; pending (a hold, no money moved yet); voided (a hold released)
	CreatedAt time.Time
}

// Statement is one page of entries, newest first.
type Statement struct {
	Entries []Entry
	HasMore bool
}

// entryTypes names the transfer codes of zhifu/ids.go.
var entryTypes = map[uint16]string{
	zhifu.TransferDeposit:  "deposit",
	zhifu.TransferPayment:  "payment",
	zhifu.TransferSettle:   "settle",
	zhifu.TransferRefund:   "refund",
	zhifu.TransferP2P:      "transfer",
	zhifu.TransferTopup:    "topup",
	zhifu.TransferWithdraw: "withdrawal",
	zhifu.TransferDiscount: "discount",

	zhifu.TransferCardRepayment: "card_repayment",
	zhifu.TransferBillPayment:   "bill_payment",
	zhifu.TransferCampaign:      "campaign_budget",
}

// Statement lists the entries of the user's wallet, newest first: limit of
// them (0 means StatementLimitDefault), older than the entry startingAfter
// names ("" means from the newest).
func (s *Service) Statement(ctx context.Context, u *identity.User, limit int, startingAfter string) (Statement, error) {
	if limit == 0 {
		limit = StatementLimitDefault
	}
	if limit < 1 || limit > StatementLimitMax {
		return Statement{}, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "limit",
			Message: fmt.Sprintf("limit must be an integer from 1 to %d", StatementLimitMax)}
	}
	var before int64
	if startingAfter != "" {
		n, err := strconv.ParseInt(startingAfter, 10, 64)
		if err != nil || n <= 0 || strconv.FormatInt(n, 10) != startingAfter {
			return Statement{}, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "starting_after",
				Message: "starting_after must be the entry_id of an entry"}
		}
		before = n
	}
	// One more than asked tells whether another page exists.
	entries, err := s.cfg.Store.Entries(ctx, zhifu.WalletAccountID(u.Num), before, limit+1)
	if err != nil {
		return Statement{}, fmt.Errorf("statement: %w", err)
	}
	var st Statement
	if len(entries) > limit {
		entries, st.HasMore = entries[:limit], true
	}
	st.Entries = make([]Entry, 0, len(entries))
	for _, e := range entries {
		st.Entries = append(st.Entries, entryOf(e))
	}
	return st, s.discounts(ctx, st.Entries)
}

// discounts fills in the campaign discounts paid beside the payments of a
// page: one lookup of their discount transfers (campaign.DiscountTransferID
// of the payment's reference).
func (s *Service) discounts(ctx context.Context, entries []Entry) error {
	at := map[string]int{}
	var ids []string
	for i, e := range entries {
		if e.Amount >= 0 || e.Status != "posted" {
			continue
		}
		if _, ok := zhifu.KindOfTransfer(codeOf(e.Type)); !ok {
			continue
		}
		_, ref, ok := strings.Cut(e.TransferID, ":")
		if !ok {
			continue
		}
		id := campaign.DiscountTransferID(strings.TrimSuffix(ref, ":hold"))
		at[id] = i
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := s.cfg.Store.LookupTransfers(ctx, ids)
	if err != nil {
		return fmt.Errorf("statement: discounts: %w", err)
	}
	for _, t := range found {
		if i, ok := at[t.ID]; ok {
			entries[i].Discount = zhifu.Amount(t.Amount)
		}
	}
	return nil
}

// codeOf is the transfer code of an entry type.
func codeOf(typ string) uint16 {
	for code, t := range entryTypes {
		if t == typ {
			return code
		}
	}
	return 0
}

func entryOf(e ledger.Entry) Entry {
	t := e.Transfer
	typ, ok := entryTypes[t.Code]
	if !ok {
		typ = "other"
	}
	status := "posted"
	switch {
	case t.Flags&ledger.Pending != 0:
		status = "pending"
	case t.Flags&ledger.VoidPending != 0:
		status = "voided"
	}
	return Entry{
		EntryID: strconv.FormatInt(e.Seq, 10), TransferID: t.ID, Type: typ,
		Amount: zhifu.Amount(e.Amount), Balance: zhifu.Amount(e.Balance), Memo: t.UserData,
		Status: status, CreatedAt: time.Unix(0, t.Timestamp).UTC(),
	}
}
