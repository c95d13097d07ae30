package channel

import (
	"context"
	"fmt"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
)

// Limits of a top-up request.
const (
	clientRefLenMax = 64
)

// TopupParams are a user's top-up request.
type TopupParams struct {
	Amount zhifu.Amount
	// CardID is the bound card to debit (quick pay). For online banking it
	// names the bank only: the person picks the card at the bank's page,
	// and Bank may name the bank instead.
	CardID string
	Bank   string
	Method string // MethodQuick (default) or MethodEbank
	// ClientRef is the caller's own name for this top-up, forever; the
	// request's Idempotency-Key serves when it is empty. Either makes a
	// second request for the same intent find the first.
	ClientRef      string
	IdempotencyKey string
}

// Topup is a top-up as the API shows it.
type Topup struct {
	*BankTxn
	// EbankURL is the online-banking page to send the person to; set only
	// in the answer that created an online-banking top-up.
	EbankURL string
}

// Topup records the intent to debit the user's card and credit the
// wallet, and hands it to the bank's workers; it answers at once with the
// top-up PROCESSING. The intent is committed before the bank hears of it,
// and its id is the bank's request_id, so whatever happens to the call the
// outcome is learnt (callback, inquiry, statement) and applied once.
//
// A top-up has an identity of the caller's choosing: ClientRef, or the
// Idempotency-Key. The same one again returns the top-up already made
// (created false) if amount and card agree, CONTEXT_INCONSISTENT if not:
// never a second debit.
func (s *Service) Topup(ctx context.Context, u *identity.User, p TopupParams) (t *Topup, created bool, err error) {
	if p.Method == "" {
		p.Method = MethodQuick
	}
	if p.Method != MethodQuick && p.Method != MethodEbank {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "method", Message: `method must be "quick" or "ebank"`}
	}
	if err := checkTxnAmount(p.Amount); err != nil {
		return nil, false, err
	}
	if p.ClientRef != "" && !printable(p.ClientRef, clientRefLenMax) {
		return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "client_ref",
			Message: fmt.Sprintf("client_ref must be 1 to %d printable ASCII characters", clientRefLenMax)}
	}
	id := s.newID("TU")
	switch {
	case p.ClientRef != "":
		id = zhifu.KeyedID("TU", u.UserID, "ref:"+p.ClientRef)
	case p.IdempotencyKey != "":
		id = zhifu.KeyedID("TU", u.UserID, "key:"+p.IdempotencyKey)
	}
	if p.ClientRef != "" || p.IdempotencyKey != "" {
		// A repeated intent is answered before the bank's capacity is
		// asked for; intentOp checks again under the row's lock.
		existing, err := loadTxn(ctx, s.cfg.Store.Reader(), id, false)
		if err != nil {
			return nil, false, err
		}
		if existing != nil {
			t, _, err := s.sameTopup(existing, p)
			// A request recovering its lost answer (idempotency.Recovering)
			// finds the top-up it made itself.
			return t, err == nil && idempotency.Recovering(ctx), err
		}
	}
	var card *Card
	var b *bank
	if p.CardID != "" || p.Method == MethodQuick {
		if card, err = s.Card(ctx, u, p.CardID); err != nil {
			return nil, false, err
		}
		if b, err = s.bankOf(card.Bank, "card_id"); err != nil {
			return nil, false, err
		}
	} else if b, err = s.bankOf(p.Bank, "bank"); err != nil {
		return nil, false, err
	}
	if p.Method == MethodEbank {
		return s.ebankTopup(ctx, u, b, card, id, p)
	}
	probe, err := s.admit(b, s.now())
	if err != nil {
		return nil, false, err
	}
	txn := s.newTopup(id, u, b, card, p.Amount)
	op := &intentOp{svc: s, t: txn, keyed: p.ClientRef != "" || p.IdempotencyKey != ""}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		b.breaker.Cancel(probe)
		return nil, false, fmt.Errorf("top-up: %w", err)
	}
	if op.existing != nil {
		b.breaker.Cancel(probe)
		return s.sameTopup(op.existing, p)
	}
	s.dispatch(b, job{txnID: txn.TxnID, t: txn, admitted: true, probe: probe})
	return &Topup{BankTxn: txn}, true, nil
}

// sameTopup answers a repeated top-up with the first, if it asked for the
// same thing.
func (s *Service) sameTopup(t *BankTxn, p TopupParams) (*Topup, bool, error) {
	if t.Kind != KindTopup || t.Amount != p.Amount || t.Method != p.Method || (p.CardID != "" && t.CardID != p.CardID) {
		param := "Idempotency-Key"
		if p.ClientRef != "" {
			param = "client_ref"
		}
		return nil, false, &zhifu.Error{Code: zhifu.ContextInconsistent, Param: param,
			Message: "this top-up was already requested with a different amount, card or method"}
	}
	return &Topup{BankTxn: t}, false, nil
}

func (s *Service) newTopup(id string, u *identity.User, b *bank, c *Card, amount zhifu.Amount) *BankTxn {
	now := s.now()
	t := &BankTxn{TxnID: id, Kind: KindTopup, Method: MethodQuick, UserID: u.UserID, Bank: b.name,
		Amount: amount, Status: StatusProcessing, Stage: StageSend, NextAt: now.Add(s.cfg.Policy.InquiryDelay),
		Deadline: now.Add(s.cfg.Policy.Deadline), CreatedAt: now, UpdatedAt: now}
	if c != nil {
		t.CardID, t.CardToken = c.CardID, c.Token
	}
	return t
}

// ebankTopup records an online-banking top-up and returns the signed link
// to the bank's page. Nothing is sent: the bank learns of the request when
// the person confirms it there, and the workers inquire until then.
func (s *Service) ebankTopup(ctx context.Context, u *identity.User, b *bank, c *Card, id string, p TopupParams) (*Topup, bool, error) {
	now := s.now()
	if win, ok := s.maintenanceAt(b, now); ok {
		return nil, false, unavailable(b, zhifu.Maintenance, fmt.Sprintf("%s online banking is in maintenance until %s",
			b.name, win.End.In(beijing).Format("2006-01-02 15:04 MST")), win.End.Sub(now))
	}
	if b.breaker.State(now) == Open {
		return nil, false, unavailable(b, zhifu.ChannelUnavailable, fmt.Sprintf(
			"%s is unavailable; use another bank or try later", b.name), s.cfg.Breaker.CoolDown)
	}
	txn := s.newTopup(id, u, b, c, p.Amount)
	txn.Method, txn.Stage, txn.CardToken = MethodEbank, StageEbank, ""
	txn.Deadline = now.Add(s.cfg.Policy.EbankDeadline)
	op := &intentOp{svc: s, t: txn, keyed: p.ClientRef != "" || p.IdempotencyKey != ""}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, false, fmt.Errorf("top-up: %w", err)
	}
	if op.existing != nil {
		return s.sameTopup(op.existing, p)
	}
	link := b.client.EbankURL(txn.TxnID, int64(txn.Amount), s.returnURL(b), s.callbackURL(b))
	return &Topup{BankTxn: txn, EbankURL: link}, true, nil
}

// CardPayment is the card part of a trade's payment, as package checkout
// hands it to the channels: the channels know the trade by its number only.
type CardPayment struct {
	TradeNo string
	// CardID is the buyer's card; "" lets the channels route to the
	// healthiest of the buyer's cards.
	CardID     string
	CardAmount zhifu.Amount // debited from the card
	// BalanceAmount is the rest, frozen in the wallet until the card
	// part is decided (balance+card).
	BalanceAmount zhifu.Amount

	// Set by PayByCard.
	PaymentID string // the top-up that carries the card part
	Bank      string
	Status    string // PROCESSING, SUCCESS or FAILED
}

// TradeSettler settles the trade a card payment is for, once the card's
// money is in the buyer's wallet; package checkout provides it
// (Config.Settler). It is called inside the op that resolves the top-up,
// which holds the key "trade:<trade_no>", so the trade is paid in the same
// transaction as the money arrives.
type TradeSettler interface {
	// SettleTrade decides whether p's trade takes the money now.
	SettleTrade(ctx context.Context, tx ledger.Tx, p TradeSettle) (TradeSettlement, error)
}

// TradeSettle is a card payment whose money has reached the buyer's
// wallet: Amount is the card part and the balance part together.
type TradeSettle struct {
	TradeNo   string
	BuyerID   string
	PaymentID string
	Amount    zhifu.Amount
	Now       time.Time
}

// TradeSettlement is a TradeSettler's decision.
type TradeSettlement interface {
	// Transfer pays the trade from the buyer's wallet; nil when the trade
	// no longer takes the payment, whose card part then goes back to the
	// card.
	Transfer() *ledger.Transfer
	// Refusal says why the trade does not take it; nil when it does.
	Refusal() error
	// Finish saves the decision once Transfer's result is known (OK when
	// there was no transfer).
	Finish(ctx context.Context, tx ledger.Tx, result ledger.TransferResult) error
}

// PayByCard routes the card part of a trade's payment to a card (the one
// named, or the healthiest bank's), freezes the balance part, records the
// top-up that carries it, and sends it; it returns at once with the
// payment PROCESSING. When the top-up succeeds, Config.Settler pays the
// trade. An intent already processing for the same trade and card is
// returned as it is: paying twice with one card while the bank works
// debits it once.
func (s *Service) PayByCard(ctx context.Context, u *identity.User, p CardPayment) (*CardPayment, error) {
	if err := checkTxnAmount(p.CardAmount); err != nil {
		return nil, err
	}
	if p.BalanceAmount < 0 || p.BalanceAmount > zhifu.AmountMax {
		return nil, fmt.Errorf("channel: card payment of %s with balance part %s", p.TradeNo, p.BalanceAmount)
	}
	r, err := s.route(ctx, u, p.CardID)
	if err != nil {
		return nil, err
	}
	txn := s.newTopup(s.newID("TU"), u, r.bank, r.card, p.CardAmount)
	txn.TradeNo, txn.HoldAmount = p.TradeNo, p.BalanceAmount
	op := &intentOp{svc: s, t: txn}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		r.bank.breaker.Cancel(r.probe)
		return nil, fmt.Errorf("card payment: %w", err)
	}
	if op.refusal != nil {
		r.bank.breaker.Cancel(r.probe)
		return nil, op.refusal
	}
	out := p
	out.CardID, out.Bank = r.card.CardID, r.bank.name
	if op.existing != nil {
		r.bank.breaker.Cancel(r.probe)
		out.PaymentID, out.Status = op.existing.TxnID, string(op.existing.Status)
		return &out, nil
	}
	s.dispatch(r.bank, job{txnID: txn.TxnID, t: txn, admitted: true, probe: r.probe})
	out.PaymentID, out.Status = txn.TxnID, string(txn.Status)
	return &out, nil
}

// intentOp records a top-up before the bank hears of it: the row, and for
// a balance+card payment the balance part frozen ("tp:<id>:hold"), in one
// transaction. A top-up already recorded under the id, or a card payment
// already processing for the same trade and card, is found instead.
type intentOp struct {
	svc *Service
	t   *BankTxn
	// keyed: the id comes from the caller's key and may exist already.
	keyed bool

	existing *BankTxn
	refusal  *zhifu.Error
	hold     bool
}

func (o *intentOp) Keys() []string {
	keys := []string{"banktxn:" + o.t.TxnID}
	if o.t.TradeNo != "" {
		keys = append(keys, "cardpay:"+o.t.TradeNo+":"+o.t.CardID)
	}
	return keys
}

func (o *intentOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.existing, o.refusal, o.hold = nil, nil, false
	if o.keyed {
		e, err := loadTxn(ctx, tx, o.t.TxnID, true)
		if err != nil || e != nil {
			o.existing = e
			return nil, err
		}
	}
	if o.t.TradeNo != "" {
		es, err := queryTxns(ctx, tx, `SELECT `+txnColumns+` FROM bank_txns
			WHERE trade_no = ? AND trade_no <> '' AND card_id = ? AND status = 'PROCESSING' FOR UPDATE`, o.t.TradeNo, o.t.CardID)
		if err != nil || len(es) > 0 {
			if len(es) > 0 {
				o.existing = es[0]
			}
			return nil, err
		}
	}
	if o.t.HoldAmount == 0 {
		return nil, nil
	}
	wallet, frozen, err := accountsOf(o.t.UserID)
	if err != nil {
		return nil, err
	}
	o.hold = true
	return []ledger.Transfer{o.svc.transfer(holdID(o.t.TxnID), wallet, frozen, o.t.HoldAmount, zhifu.TransferPayment)}, nil
}

func (o *intentOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.existing != nil {
		return nil
	}
	if o.hold {
		switch r := results[0]; r {
		case ledger.TransferOK:
		case ledger.TransferExceedsCredits:
			o.refusal = &zhifu.Error{Code: zhifu.BuyerBalanceNotEnough, Param: "method",
				Message: "the balance changed while paying; pay again"}
			return nil
		default:
			return fmt.Errorf("channel: hold for %s: %s", o.t.TxnID, r)
		}
	}
	return insertTxn(ctx, tx, o.t)
}

// Ledger transfer ids of a bank transaction.
func topupID(id string) string   { return "topup:" + id }
func holdID(id string) string    { return "tp:" + id + ":hold" }
func releaseID(id string) string { return "tp:" + id + ":release" }
func wdHoldID(id string) string  { return "wd:" + id + ":hold" }
func wdPaidID(id string) string  { return "wd:" + id + ":paid" }
func wdBackID(id string) string  { return "wd:" + id + ":return" }

// discBackID returns a failed card repayment's discount to its budget.
func discBackID(id string) string { return campaign.DiscountTransferID(id) + ":return" }

// refundIDOf is the refund payout of top-up id: "WR" and id's digits.
func refundIDOf(topupID string) string { return "WR" + topupID[2:] }

func checkTxnAmount(a zhifu.Amount) error {
	switch {
	case a < zhifu.AmountMin:
		return &zhifu.Error{Code: zhifu.InvalidAmount, Param: "amount", Message: "amount must be between 0.01 and 100000000.00"}
	case a > txnAmountMax:
		return &zhifu.Error{Code: zhifu.LimitExceeded, Param: "amount", Message: "amount is above the limit of one bank transaction"}
	}
	return nil
}

// printable reports whether s is 1..max characters of printable ASCII
// other than space.
func printable(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// Lookups for the API.

// Txn returns u's transaction of the kind; any other is NOT_FOUND.
func (s *Service) Txn(ctx context.Context, u *identity.User, kind Kind, id string) (*BankTxn, error) {
	notFound := zhifu.Errorf(zhifu.NotFound, "no %s %q", kind, truncate(id, 40))
	if !printable(id, 40) {
		return nil, notFound
	}
	t, err := loadTxn(ctx, s.cfg.Store.Reader(), id, false)
	if err != nil {
		return nil, err
	}
	if t == nil || t.UserID != u.UserID || t.Kind != kind {
		return nil, notFound
	}
	return t, nil
}

// ListParams page a list of u's transactions, newest first.
type ListParams struct {
	Limit         int
	StartingAfter string // a transaction id
	TradeNo       string // only the card payments of this trade
}

// List returns a page of u's transactions of the kind.
func (s *Service) List(ctx context.Context, u *identity.User, kind Kind, p ListParams) ([]*BankTxn, bool, error) {
	q := `SELECT ` + txnColumns + ` FROM bank_txns WHERE user_id = ? AND kind = ?`
	args := []any{u.UserID, string(kind)}
	if p.TradeNo != "" {
		q += ` AND trade_no = ? AND trade_no <> ''`
		args = append(args, p.TradeNo)
	}
	if p.StartingAfter != "" {
		t, err := s.Txn(ctx, u, kind, p.StartingAfter)
		if err != nil {
			return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "starting_after",
				Message: "starting_after must be the id of one of your " + string(kind) + "s"}
		}
		q += ` AND seq < ?`
		args = append(args, t.Seq)
	}
	q += ` ORDER BY seq DESC LIMIT ?`
	args = append(args, p.Limit+1)
	out, err := queryTxns(ctx, s.cfg.Store.Reader(), q, args...)
	if err != nil {
		return nil, false, err
	}
	if len(out) > p.Limit {
		return out[:p.Limit], true, nil
	}
	return out, false, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
