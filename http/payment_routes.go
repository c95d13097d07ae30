package http

import (
	"encoding/json"
	nethttp "net/http"

	"zhifu"
	"zhifu/billpay"
	"zhifu/channel"
	"zhifu/identity"
)

// The payment kinds beside trades and transfers: credit-card repayments,
// paid out to the card's bank like a withdrawal, and bill payments, paid
// at once to a biller's wallet. Both may carry a campaign's discount.

func (s *Server) paymentRoutes(mux *nethttp.ServeMux) {
	if s.svc.Channels != nil {
		s.handleFunc(mux, "POST /v1/card-repayments", s.user(s.handleCreateCardRepayment))
		s.handleFunc(mux, "GET /v1/card-repayments/{repayment_id}", s.user(s.handleGetCardRepayment))
	}
	if s.svc.BillPay != nil {
		s.handleFunc(mux, "POST /v1/bill-payments", s.user(s.handleCreateBillPayment))
		s.handleFunc(mux, "GET /v1/bill-payments/{payment_id}", s.user(s.handleGetBillPayment))
		s.handleFunc(mux, "GET /v1/billers", s.user(s.handleListBillers))
		s.handleFunc(mux, "POST /v1/admin/billers", s.admin(s.handleFlagBiller))
	}
}

type cardRepaymentRequest struct {
	Amount json.RawMessage `json:"amount"`
	CardID string          `json:"card_id"`
}

type cardRepaymentJSON struct {
	RepaymentID    string         `json:"repayment_id"`
	Kind           string         `json:"kind"` // card_repayment
	Status         string         `json:"status"`
	Amount         string         `json:"amount"`          // paid to the card
	DiscountAmount string         `json:"discount_amount"` // paid by a campaign
	PayerAmount    string         `json:"payer_amount"`    // what left the wallet
	CampaignLabel  string         `json:"campaign_label,omitempty"`
	Currency       zhifu.Currency `json:"currency"`
	Bank           string         `json:"bank"`
	CardID         string         `json:"card_id"`
	Reason         string         `json:"reason,omitempty"`
	CreatedAt      string         `json:"created_at"`
	SettledAt      *string        `json:"settled_at"`
}

func cardRepaymentView(t *channel.BankTxn) cardRepaymentJSON {
	return cardRepaymentJSON{RepaymentID: t.TxnID, Kind: zhifu.KindCardRepayment, Status: string(t.Status),
		Amount: t.Amount.String(), DiscountAmount: t.Discount.String(), PayerAmount: t.PayerAmount().String(),
		CampaignLabel: t.CampaignLabel, Currency: zhifu.CNY, Bank: t.Bank, CardID: t.CardID, Reason: t.Reason,
		CreatedAt: formatAPITime(t.CreatedAt), SettledAt: optAPITime(t.SettledAt)}
}

// handleCreateCardRepayment answers 202 once the money is frozen and the
// repayment queued for the card's bank, whether new or found again by its
// Idempotency-Key.
func (s *Server) handleCreateCardRepayment(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req cardRepaymentRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	t, _, err := s.svc.Channels.RepayCard(r.Context(), u, channel.PayoutParams{Amount: amount, CardID: req.CardID,
		IdempotencyKey: r.Header.Get(idempotencyHeader)})
	if err != nil {
		return channelError(w, err)
	}
	writeJSON(w, nethttp.StatusAccepted, cardRepaymentView(t))
	return nil
}

func (s *Server) handleGetCardRepayment(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	t, err := s.svc.Channels.Txn(r.Context(), u, channel.KindCardRepayment, r.PathValue("repayment_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, cardRepaymentView(t))
	return nil
}

type billPaymentRequest struct {
	BillerID  string          `json:"biller_id"`
	AccountNo string          `json:"account_no"`
	Amount    json.RawMessage `json:"amount"`
}

type billPaymentJSON struct {
	PaymentID      string         `json:"payment_id"`
	Kind           string         `json:"kind"` // bill_payment
	Status         string         `json:"status"`
	BillerID       string         `json:"biller_id"`
	AccountNo      string         `json:"account_no"`
	Amount         string         `json:"amount"`          // the bill, all of it paid to the biller
	DiscountAmount string         `json:"discount_amount"` // paid by a campaign
	PayerAmount    string         `json:"payer_amount"`    // what left the wallet
	CampaignLabel  string         `json:"campaign_label,omitempty"`
	Currency       zhifu.Currency `json:"currency"`
	CreatedAt      string         `json:"created_at"`
}

func billPaymentView(p *billpay.Payment) billPaymentJSON {
	return billPaymentJSON{PaymentID: p.PaymentID, Kind: zhifu.KindBillPayment, Status: p.Status, BillerID: p.BillerID,
		AccountNo: p.AccountNo, Amount: p.Amount.String(), DiscountAmount: p.Discount.String(),
		PayerAmount: p.PayerAmount().String(), CampaignLabel: p.Label, Currency: zhifu.CNY,
		CreatedAt: formatAPITime(p.CreatedAt)}
}

// handleCreateBillPayment answers 201 with the payment made, or found
// again by its Idempotency-Key.
func (s *Server) handleCreateBillPayment(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req billPaymentRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.BillerID == "" {
		return invalidRequest("biller_id", "biller_id is required")
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	p, _, err := s.svc.BillPay.Pay(r.Context(), u, billpay.PayParams{BillerID: req.BillerID, AccountNo: req.AccountNo,
		Amount: amount, IdempotencyKey: r.Header.Get(idempotencyHeader)})
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, billPaymentView(p))
	return nil
}

func (s *Server) handleGetBillPayment(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	p, err := s.svc.BillPay.Get(r.Context(), u, r.PathValue("payment_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, billPaymentView(p))
	return nil
}

type billerJSON struct {
	BillerID string `json:"biller_id"`
	Name     string `json:"name"`
	Category string `json:"category"`
}

type billerListJSON struct {
	Data    []billerJSON `json:"data"`
	HasMore bool         `json:"has_more"`
}

// handleListBillers lists every biller a user may pay, by category.
func (s *Server) handleListBillers(w nethttp.ResponseWriter, r *nethttp.Request, _ *identity.User) error {
	bs, err := s.svc.BillPay.Billers(r.Context())
	if err != nil {
		return err
	}
	resp := billerListJSON{Data: make([]billerJSON, 0, len(bs))}
	for _, b := range bs {
		resp.Data = append(resp.Data, billerJSON{BillerID: b.MerchantID, Name: b.Name, Category: b.Category})
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type flagBillerRequest struct {
	MerchantID string `json:"merchant_id"`
	Category   string `json:"category"`
}

// handleFlagBiller makes a merchant a biller of a category (or moves it
// to another).
func (s *Server) handleFlagBiller(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req flagBillerRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.MerchantID == "" {
		return invalidRequest("merchant_id", "merchant_id is required")
	}
	b, err := s.svc.BillPay.FlagBiller(r.Context(), req.MerchantID, req.Category)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, billerJSON{BillerID: b.MerchantID, Name: b.Name, Category: b.Category})
	return nil
}
