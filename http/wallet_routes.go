package http

import (
	"encoding/json"
	"fmt"
	nethttp "net/http"

	"zhifu"
	"zhifu/identity"
	"zhifu/wallet"
)

// walletRoutes registers wallets, deposits, transfers and statements.
func (s *Server) walletRoutes(mux *nethttp.ServeMux) {
	s.handleFunc(mux, "GET /v1/wallet", s.user(s.handleGetWallet))
	s.handleFunc(mux, "POST /v1/admin/deposits", s.admin(s.handleCreateDeposit))
	s.handleFunc(mux, "POST /v1/admin/capital", s.admin(s.handleAddCapital))
	s.handleFunc(mux, "POST /v1/transfers", s.user(s.handleCreateTransfer))
	s.handleFunc(mux, "GET /v1/statement", s.user(s.handleGetStatement))
}

type walletJSON struct {
	UserID    string         `json:"user_id"`
	Available string         `json:"available"`
	Frozen    string         `json:"frozen"`
	Currency  zhifu.Currency `json:"currency"`
}

// handleGetWallet shows the calling user's own balance; there is no way to
// name another user's.
func (s *Server) handleGetWallet(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	b, err := s.svc.Wallet.Balance(r.Context(), u)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, walletJSON{UserID: b.UserID, Available: b.Available.String(),
		Frozen: b.Frozen.String(), Currency: b.Currency})
	return nil
}

type depositRequest struct {
	UserID    string          `json:"user_id"`
	Amount    json.RawMessage `json:"amount"` // raw, so a JSON number can be refused
	Bank      string          `json:"bank"`
	Reference string          `json:"reference"`
}

type depositJSON struct {
	DepositID string         `json:"deposit_id"`
	Status    string         `json:"status"`
	UserID    string         `json:"user_id"`
	Amount    string         `json:"amount"`
	Currency  zhifu.Currency `json:"currency"`
	Bank      string         `json:"bank"`
	Reference string         `json:"reference"`
	CreatedAt string         `json:"created_at"`
}

// handleCreateDeposit credits a bank deposit an operator has confirmed. The
// same reference again answers 201 with the deposit already made.
func (s *Server) handleCreateDeposit(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req depositRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	d, _, err := s.svc.Wallet.Deposit(r.Context(), req.UserID, amount, req.Bank, req.Reference)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, depositJSON{DepositID: d.DepositID, Status: wallet.StatusSuccess,
		UserID: d.UserID, Amount: d.Amount.String(), Currency: zhifu.CNY, Bank: d.Bank, Reference: d.Reference,
		CreatedAt: formatAPITime(d.CreatedAt)})
	return nil
}

// handleAddCapital records the platform's own money arriving at a bank.
func (s *Server) handleAddCapital(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req struct {
		Amount    json.RawMessage `json:"amount"`
		Bank      string          `json:"bank"`
		Reference string          `json:"reference"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	c, err := s.svc.Wallet.AddCapital(r.Context(), amount, req.Bank, req.Reference)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, map[string]string{"bank": c.Bank, "amount": c.Amount.String(),
		"reference": c.Reference, "currency": string(zhifu.CNY)})
	return nil
}

type transferCreateRequest struct {
	ToUserID string          `json:"to_user_id"`
	Amount   json.RawMessage `json:"amount"`
	Memo     string          `json:"memo"`
}

type transferJSON struct {
	TransferID string `json:"transfer_id"`
	Status     string `json:"status"`
	FromUserID string `json:"from_user_id"`
	ToUserID   string `json:"to_user_id"`
	Amount     string `json:"amount"`
	// DiscountAmount is what a campaign paid of the amount; PayerAmount
	// what left the sender's wallet.
	DiscountAmount string         `json:"discount_amount"`
	PayerAmount    string         `json:"payer_amount"`
	CampaignLabel  string         `json:"campaign_label,omitempty"`
	Currency       zhifu.Currency `json:"currency"`
	Memo           string         `json:"memo"`
	CreatedAt      string         `json:"created_at"`
}

// handleCreateTransfer sends money from the calling user to another user.
func (s *Server) handleCreateTransfer(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req transferCreateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	// The idempotent wrapper has already checked the key's form.
	t, err := s.svc.Wallet.Transfer(r.Context(), u, req.ToUserID, amount, req.Memo, r.Header.Get(idempotencyHeader))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, transferJSON{TransferID: t.TransferID, Status: t.Status,
		FromUserID: t.FromUserID, ToUserID: t.ToUserID, Amount: t.Amount.String(), DiscountAmount: t.Discount.String(),
		PayerAmount: (t.Amount - t.Discount).String(), CampaignLabel: t.CampaignLabel, Currency: zhifu.CNY,
		Memo: t.Memo, CreatedAt: formatAPITime(t.CreatedAt)})
	return nil
}

type statementEntryJSON struct {
	EntryID    string `json:"entry_id"`
	TransferID string `json:"transfer_id"`
	Type       string `json:"type"`
	Amount     string `json:"amount"`
	Balance    string `json:"balance"`
	Memo       string `json:"memo"`
	// DiscountAmount is what a campaign paid beside a payment; omitted
	// when none did.
	DiscountAmount string `json:"discount_amount,omitempty"`
	Status         string `json:"status"`
	CreatedAt      string `json:"created_at"`
}

func discountText(d zhifu.Amount) string {
	if d <= 0 {
		return ""
	}
	return d.String()
}

type statementJSON struct {
	Data    []statementEntryJSON `json:"data"`
	HasMore bool                 `json:"has_more"`
}

// handleGetStatement lists the calling user's wallet entries, newest first.
func (s *Server) handleGetStatement(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	q := r.URL.Query()
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, ok := parseID(v)
		if !ok || n > wallet.StatementLimitMax {
			return invalidRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", wallet.StatementLimitMax))
		}
		limit = int(n)
	}
	st, err := s.svc.Wallet.Statement(r.Context(), u, limit, q.Get("starting_after"))
	if err != nil {
		return err
	}
	resp := statementJSON{Data: make([]statementEntryJSON, 0, len(st.Entries)), HasMore: st.HasMore}
	for _, e := range st.Entries {
		resp.Data = append(resp.Data, statementEntryJSON{EntryID: e.EntryID, TransferID: e.TransferID,
			Type: e.Type, Amount: e.Amount.String(), Balance: e.Balance.String(), Memo: e.Memo,
			DiscountAmount: discountText(e.Discount), Status: e.Status, CreatedAt: formatAPITime(e.CreatedAt)})
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}
