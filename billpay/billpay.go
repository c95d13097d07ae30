// Package billpay pays billers from users' wallets (生活缴费): electricity,
// water, gas, phone and the like. A biller is a merchant an operator
// flagged as one, with its category; a bill payment moves the amount from
// the payer's wallet to the biller's at once, in one ledger transfer coded
// zhifu.TransferBillPayment, written with its row in one transaction. A
// campaign may discount it (package campaign): the discount moves from the
// campaign's budget to the biller beside the payer's part, so the biller
// always receives the whole bill.
package billpay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"zhifu"
	"zhifu/campaign"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/wallet"
)

// Config is what the service needs.
type Config struct {
	Store    ledger.Store
	Batcher  *ledger.Batcher
	Clock    zhifu.Clock
	Logger   *slog.Logger
	Identity *identity.Service
	// Wallet creates missing ledger accounts when a payment finds one
	// missing.
	Wallet *wallet.Service
	// Discounter decides campaign discounts; nil means campaign.None{}.
	Discounter campaign.Discounter
}

// Service keeps billers and pays their bills.
type Service struct {
	cfg      Config
	ledgerID uint32
}

// New returns the service.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Discounter == nil {
		cfg.Discounter = campaign.None{}
	}
	l, _ := zhifu.LedgerOf(zhifu.CNY)
	return &Service{cfg: cfg, ledgerID: l}
}

// Categories are the kinds of biller, in the order billers are listed.
var Categories = []string{"electricity", "water", "gas", "heating", "phone", "broadband", "tv", "property"}

// Biller is a merchant whose bills users pay.
type Biller struct {
	MerchantID string
	Name       string
	Category   string
	UserID     string // the wallet that receives the payments
}

// FlagBiller makes a merchant a biller of the category, or moves it to
// another category.
func (s *Service) FlagBiller(ctx context.Context, merchantID, category string) (*Biller, error) {
	if !slices.Contains(Categories, category) {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "category",
			Message: fmt.Sprintf("category must be one of %v", Categories)}
	}
	m, err := s.cfg.Identity.MerchantByID(ctx, merchantID)
	if err != nil {
		return nil, withParam(err, "merchant_id")
	}
	op := &flagOp{merchantID: m.MerchantID, category: category}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, fmt.Errorf("billpay: flag biller: %w", err)
	}
	return &Biller{MerchantID: m.MerchantID, Name: m.Name, Category: category, UserID: m.UserID}, nil
}

// flagOp writes a merchant's biller category.
type flagOp struct {
	merchantID, category string
}

func (o *flagOp) Keys() []string { return []string{"merchant:" + o.merchantID} }

func (o *flagOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *flagOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	n, err := tx.Exec(ctx, `UPDATE merchants SET biller_category = ? WHERE merchant_id = ?`, o.category, o.merchantID)
	if err == nil && n != 1 {
		err = fmt.Errorf("%d merchants %s", n, o.merchantID)
	}
	return err
}

// Billers lists every biller, by category and then merchant id.
func (s *Service) Billers(ctx context.Context) ([]Biller, error) {
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT merchant_id, name, biller_category, user_id FROM merchants
		WHERE biller_category <> '' ORDER BY merchant_id`)
	if err != nil {
		return nil, fmt.Errorf("billpay: billers: %w", err)
	}
	defer rows.Close()
	var out []Biller
	for rows.Next() {
		var b Biller
		if err := rows.Scan(&b.MerchantID, &b.Name, &b.Category, &b.UserID); err != nil {
			return nil, fmt.Errorf("billpay: billers: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("billpay: billers: %w", err)
	}
	slices.SortStableFunc(out, func(a, b Biller) int {
		return slices.Index(Categories, a.Category) - slices.Index(Categories, b.Category)
	})
	return out, nil
}

// biller returns the biller merchantID names: 404 NOT_FOUND for no
// merchant, 400 INVALID_REQUEST for a merchant that is not a biller, both
// on param.
func (s *Service) biller(ctx context.Context, merchantID, param string) (*Biller, error) {
	m, err := s.cfg.Identity.MerchantByID(ctx, merchantID)
	if err != nil {
		return nil, withParam(err, param)
	}
	b := &Biller{MerchantID: m.MerchantID, Name: m.Name, UserID: m.UserID}
	err = s.cfg.Store.Reader().QueryRow(ctx, `SELECT biller_category FROM merchants WHERE merchant_id = ?`,
		m.MerchantID).Scan(&b.Category)
	if err != nil {
		return nil, fmt.Errorf("billpay: biller %s: %w", m.MerchantID, err)
	}
	if b.Category == "" {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: param, Message: "this merchant takes no bill payments"}
	}
	return b, nil
}

// withParam names param on a 404 from identity.
func withParam(err error, param string) error {
	var e *zhifu.Error
	if errors.As(err, &e) && e.Code == zhifu.NotFound {
		return &zhifu.Error{Code: zhifu.NotFound, Param: param, Message: e.Message}
	}
	return err
}

// StatusSuccess is the status of a bill payment: it moves the money at
// once or is not made.
const StatusSuccess = "SUCCESS"

// Payment is one bill paid.
type Payment struct {
	PaymentID  string
	UserID     string
	BillerID   string
	AccountNo  string       // the payer's account with the biller
	Amount     zhifu.Amount // the bill; the biller receives all of it
	Discount   zhifu.Amount // paid from the campaign's budget
	CampaignID string
	Label      string // the campaign's label, shown to the payer
	Status     string
	CreatedAt  time.Time
}

// PayerAmount is what left the payer's wallet.
func (p *Payment) PayerAmount() zhifu.Amount { return p.Amount - p.Discount }

// Get returns one of u's bill payments; any other is 404 NOT_FOUND.
func (s *Service) Get(ctx context.Context, u *identity.User, paymentID string) (*Payment, error) {
	p, err := loadPayment(ctx, s.cfg.Store.Reader(), paymentID, false)
	if err != nil {
		return nil, err
	}
	if p == nil || p.UserID != u.UserID {
		return nil, &zhifu.Error{Code: zhifu.NotFound, Message: "no such bill payment"}
	}
	return p, nil
}

const paymentColumns = `payment_id, user_id, biller_id, account_no, amount, discount, campaign_id, label, status, created_at`

func loadPayment(ctx context.Context, q ledger.Querier, id string, lock bool) (*Payment, error) {
	if id == "" || len(id) > 64 {
		return nil, nil
	}
	query := `SELECT ` + paymentColumns + ` FROM bill_payments WHERE payment_id = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	var p Payment
	var amount, discount, created int64
	err := q.QueryRow(ctx, query, id).Scan(&p.PaymentID, &p.UserID, &p.BillerID, &p.AccountNo, &amount, &discount,
		&p.CampaignID, &p.Label, &p.Status, &created)
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("billpay: load %s: %w", id, err)
	}
	p.Amount, p.Discount, p.CreatedAt = zhifu.Amount(amount), zhifu.Amount(discount), time.Unix(0, created).UTC()
	return &p, nil
}

func insertPayment(ctx context.Context, q ledger.Querier, p *Payment) (bool, error) {
	n, err := q.Exec(ctx, `INSERT INTO bill_payments (`+paymentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, p.PaymentID, p.UserID, p.BillerID, p.AccountNo, int64(p.Amount), int64(p.Discount),
		p.CampaignID, p.Label, p.Status, p.CreatedAt.UnixNano())
	if err != nil {
		return false, fmt.Errorf("billpay: insert %s: %w", p.PaymentID, err)
	}
	return n == 1, nil
}
