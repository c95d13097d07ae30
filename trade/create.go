package trade

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/notify"
)

// Limits on what a trade is created with.
const (
	OutNoLenMax     = 64 // out_trade_no and out_request_no
	SubjectLenMax   = 256
	ShipFieldLenMax = 64 // logistics_company and tracking_no
	ReasonLenMax    = 256
)

// Trade sources.
const (
	SourceAPI     = "api"
	SourceGateway = "gateway"
)

// CreateParams are what a merchant creates a trade with. Zero durations
// take the defaults.
type CreateParams struct {
	OutTradeNo     string
	Subject        string
	TotalAmount    zhifu.Amount
	Mode           Mode
	BuyerID        string
	TimeoutExpress time.Duration
	ConfirmTimeout time.Duration
	NotifyURL      string
	Source         string // SourceAPI when empty
}

// ValidOutNo reports whether s may be an out_trade_no or out_request_no:
// 1 to 64 letters, digits, '_' or '-'.
func ValidOutNo(s string) bool {
	if s == "" || len(s) > OutNoLenMax {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func invalid(param, format string, args ...any) *zhifu.Error {
	return &zhifu.Error{Code: zhifu.InvalidRequest, Param: param, Message: fmt.Sprintf(format, args...)}
}

// normalize checks p and fills in the defaults. The notify_url is judged
// by the service's egress guard, and the buyer's existence against the
// database, separately.
func (p *CreateParams) normalize() error {
	switch {
	case !ValidOutNo(p.OutTradeNo):
		return invalid("out_trade_no", "out_trade_no must be 1 to %d letters, digits, '_' or '-'", OutNoLenMax)
	case p.Subject == "" || !utf8.ValidString(p.Subject) || utf8.RuneCountInString(p.Subject) > SubjectLenMax:
		return invalid("subject", "subject must be 1 to %d characters of UTF-8", SubjectLenMax)
	case p.TotalAmount < zhifu.AmountMin || p.TotalAmount > zhifu.AmountMax:
		return &zhifu.Error{Code: zhifu.InvalidAmount, Param: "total_amount",
			Message: "total_amount must be between 0.01 and 100000000.00"}
	case p.Mode != Instant && p.Mode != Escrow:
		return invalid("mode", `mode must be "instant" or "escrow"`)
	}
	if p.TimeoutExpress == 0 {
		p.TimeoutExpress = TimeoutExpressDefault
	}
	if p.ConfirmTimeout == 0 {
		p.ConfirmTimeout = ConfirmTimeoutDefault
	}
	if p.TimeoutExpress < TimeoutExpressMin || p.TimeoutExpress > TimeoutExpressMax || p.TimeoutExpress%time.Second != 0 {
		return invalid("timeout_express", "timeout_express must be whole seconds from 1s to 15d, like \"30m\"")
	}
	if p.ConfirmTimeout < ConfirmTimeoutMin || p.ConfirmTimeout > ConfirmTimeoutMax || p.ConfirmTimeout%time.Second != 0 {
		return invalid("confirm_timeout", "confirm_timeout must be whole seconds from 1s to 90d, like \"10d\"")
	}
	if p.Source == "" {
		p.Source = SourceAPI
	}
	return nil
}

// hash is what "the same parameters" means for a repeated out_trade_no:
// every parameter after defaults, so "30m" and an omitted timeout agree.
func (p *CreateParams) hash() string {
	h := sha256.New()
	for _, f := range []string{p.OutTradeNo, p.Subject, fmt.Sprint(int64(p.TotalAmount)), string(p.Mode),
		p.BuyerID, fmt.Sprint(int64(p.TimeoutExpress / time.Second)), fmt.Sprint(int64(p.ConfirmTimeout / time.Second)),
		p.NotifyURL} {
		fmt.Fprintf(h, "%d:%s;", len(f), f) // length-prefixed, so no two lists write the same bytes
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Create creates a trade for merchant m, waiting to be paid. The merchant's
// out_trade_no is its key forever: the same out_trade_no with the same
// parameters returns the trade already created (created is then false),
// with other parameters it is CONTEXT_INCONSISTENT.
func (s *Service) Create(ctx context.Context, m *identity.Merchant, p CreateParams) (t *Trade, created bool, err error) {
	if err := p.normalize(); err != nil {
		return nil, false, err
	}
	if err := notify.CheckURL(s.cfg.Egress, p.NotifyURL); err != nil {
		return nil, false, err
	}
	if _, ok := zhifu.ParseUserID(m.UserID); !ok {
		return nil, false, fmt.Errorf("trade: merchant %s has no valid wallet user %q", m.MerchantID, m.UserID)
	}
	if p.BuyerID != "" {
		if p.BuyerID == m.UserID {
			return nil, false, invalid("buyer_id", "the buyer cannot be the seller")
		}
		if err := s.userExists(ctx, p.BuyerID); err != nil {
			return nil, false, err
		}
	}
	now := s.cfg.Clock.Now()
	op := &createOp{key: "out_trade_no:" + m.MerchantID + ":" + p.OutTradeNo, trade: &Trade{
		TradeNo: newTradeNo(now), OutTradeNo: p.OutTradeNo, MerchantID: m.MerchantID, SellerID: m.UserID,
		BuyerID: p.BuyerID, Mode: p.Mode, Subject: p.Subject, TotalAmount: p.TotalAmount, Status: WaitBuyerPay,
		NotifyURL: cmp.Or(p.NotifyURL, m.NotifyURL), TimeoutExpress: p.TimeoutExpress, ConfirmTimeout: p.ConfirmTimeout,
		ParamsHash: p.hash(), Source: p.Source, CreatedAt: now, CloseDue: now.Add(p.TimeoutExpress),
	}}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, false, err
	}
	if op.refusal != nil {
		return nil, false, op.refusal
	}
	if op.existing != nil {
		// A request recovering its lost answer (idempotency.Recovering)
		// finds the trade it created itself.
		return op.existing, idempotency.Recovering(ctx), nil
	}
	return op.trade, true, nil
}

// userExists answers NOT_FOUND (param buyer_id) for anything that is not a
// user's id.
func (s *Service) userExists(ctx context.Context, userID string) error {
	if _, err := s.cfg.Identity.UserByID(ctx, userID); err != nil {
		if zhifu.ErrorCode(err) == zhifu.NotFound {
			return &zhifu.Error{Code: zhifu.NotFound, Param: "buyer_id", Message: "no user " + truncate(userID, 32)}
		}
		return fmt.Errorf("trade: look up buyer: %w", err)
	}
	return nil
}

// createOp inserts a trade unless its out_trade_no exists. The key keeps
// two creations of one out_trade_no out of one batch; across processes the
// unique index decides (insertTrade). Prepare looks the out_trade_no up, a
// read the store may run with the batch's others (ledger.Prefetcher), and
// Finish inserts with a Write, so on PostgreSQL a new trade costs the
// batch no round trip of its own.
type createOp struct {
	key   string
	trade *Trade

	existing *Trade
	refusal  *zhifu.Error
}

func (o *createOp) Keys() []string { return []string{o.key} }

// Applied says whether the op created the trade (ledger.Applier).
func (o *createOp) Applied() bool { return o.existing == nil && o.refusal == nil }

// outTradeNoSQL finds a merchant's trade by out_trade_no.
const outTradeNoSQL = `SELECT ` + tradeColumns + ` FROM trades WHERE merchant_id = ? AND out_trade_no = ?`

// Reads names Prepare's look-up (ledger.Prefetcher).
func (o *createOp) Reads() []ledger.Read {
	return []ledger.Read{{Query: outTradeNoSQL, Args: []any{o.trade.MerchantID, o.trade.OutTradeNo}}}
}

func (o *createOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.existing, o.refusal = nil, nil
	t, err := scanTrade(tx.QueryRow(ctx, outTradeNoSQL, o.trade.MerchantID, o.trade.OutTradeNo))
	switch {
	case errors.Is(err, ledger.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("trade: look up out_trade_no: %w", err)
	case t.ParamsHash != o.trade.ParamsHash:
		o.refusal = &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "out_trade_no",
			Message: fmt.Sprintf("out_trade_no %s was used for trade %s with other parameters", t.OutTradeNo, t.TradeNo)}
	default:
		o.existing = t
	}
	return nil, nil
}

func (o *createOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	if !o.Applied() {
		return nil
	}
	return insertTrade(ctx, tx, o.trade)
}

// Query returns merchant m's trade by trade_no; another merchant's trade is
// NOT_FOUND.
func (s *Service) Query(ctx context.Context, m *identity.Merchant, tradeNo string) (*Trade, error) {
	if err := checkTradeNo(tradeNo); err != nil {
		return nil, err
	}
	t, err := loadTrade(ctx, s.cfg.Store.Reader(), tradeNo, false)
	if err != nil {
		return nil, err
	}
	if e := merchantOwns(t, m.MerchantID); e != nil {
		return nil, e
	}
	return t, nil
}

// QueryByOutTradeNo returns merchant m's trade by its out_trade_no.
func (s *Service) QueryByOutTradeNo(ctx context.Context, m *identity.Merchant, outTradeNo string) (*Trade, error) {
	notFound := zhifu.Errorf(zhifu.NotFound, "no trade with out_trade_no %q", truncate(outTradeNo, OutNoLenMax))
	if !ValidOutNo(outTradeNo) {
		return nil, notFound
	}
	t, err := scanTrade(s.cfg.Store.Reader().QueryRow(ctx, outTradeNoSQL, m.MerchantID, outTradeNo))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, notFound
	}
	if err != nil {
		return nil, fmt.Errorf("trade: look up out_trade_no: %w", err)
	}
	return t, nil
}

// listTradesSQL is a page of a merchant's trades, newest first, after a
// cursor (created_at, trade_no). created_at > 0, true of every trade, is
// trades_merchant_day's predicate: stated, so that both databases may use
// that index (migration 0027).
const listTradesSQL = `SELECT ` + tradeColumns + ` FROM trades WHERE merchant_id = ? AND created_at > 0
	AND (created_at < ? OR (created_at = ? AND trade_no < ?))
	ORDER BY created_at DESC, trade_no DESC LIMIT ?`

// ListLimitMax bounds one page of List.
const ListLimitMax = 100

// List returns up to limit of merchant m's trades, newest first, after the
// trade startingAfter (a trade_no from the previous page; "" for the first
// page), and whether more follow.
func (s *Service) List(ctx context.Context, m *identity.Merchant, limit int, startingAfter string) ([]*Trade, bool, error) {
	if limit < 1 || limit > ListLimitMax {
		return nil, false, invalid("limit", "limit must be from 1 to %d", ListLimitMax)
	}
	q := s.cfg.Store.Reader()
	// (created_at, trade_no) orders trades totally; the page continues
	// strictly after the cursor's position in that order.
	cursorAt, cursorNo := int64(1<<62), ""
	if startingAfter != "" {
		t, err := s.Query(ctx, m, startingAfter)
		if err != nil {
			return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "starting_after",
				Message: "starting_after must be a trade_no of this merchant"}
		}
		cursorAt, cursorNo = nanos(t.CreatedAt), t.TradeNo
	}
	rows, err := q.Query(ctx, listTradesSQL, m.MerchantID, cursorAt, cursorAt, cursorNo, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("trade: list: %w", err)
	}
	defer rows.Close()
	var out []*Trade
	for rows.Next() {
		t, err := scanTrade(rows)
		if err != nil {
			return nil, false, fmt.Errorf("trade: list: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("trade: list: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}
