package http

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	nethttp "net/http"
	"strconv"
	"time"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/channel"
	"zhifu/identity"
)

// channelListLimitDefault is the page size of the top-up and withdrawal
// lists without ?limit=.
const channelListLimitDefault = 20

// channelListLimitMax bounds a page of top-ups or withdrawals.
const channelListLimitMax = 100

// channelRoutes registers cards, top-ups, withdrawals, the banks' health
// and announcements, and the banks' callbacks.
func (s *Server) channelRoutes(mux *nethttp.ServeMux) {
	s.handleFunc(mux, "POST /v1/cards", s.user(s.handleBindCard))
	s.handleFunc(mux, "GET /v1/cards", s.user(s.handleListCards))
	s.handleFunc(mux, "DELETE /v1/cards/{card_id}", s.user(s.handleUnbindCard))
	s.handleFunc(mux, "POST /v1/topups", s.user(s.handleCreateTopup))
	s.handleFunc(mux, "GET /v1/topups", s.user(s.handleListTopups))
	s.handleFunc(mux, "GET /v1/topups/{topup_id}", s.user(s.handleGetTopup))
	s.handleFunc(mux, "POST /v1/withdrawals", s.user(s.handleCreateWithdrawal))
	s.handleFunc(mux, "GET /v1/withdrawals", s.user(s.handleListWithdrawals))
	s.handleFunc(mux, "GET /v1/withdrawals/{withdrawal_id}", s.user(s.handleGetWithdrawal))
	s.handleFunc(mux, "GET /v1/channels", s.api(s.handleChannels))
	s.handleFunc(mux, "GET /v1/announcements", s.api(s.handleAnnouncements))
	s.handleFunc(mux, "POST /v1/admin/announcements", s.admin(once(s.handleCreateAnnouncement)))
	s.handleFunc(mux, "GET /v1/admin/channels/overdue", s.admin(s.handleOverdue))
	s.handleFunc(mux, "POST /v1/channels/{bank}/callback", s.api(s.handleBankCallback))
	s.handleFunc(mux, "GET /v1/channels/{bank}/return", s.handleEbankReturn)
}

// channelError answers a refusal for a bank's state itself, with the
// Retry-After the bank's state calls for (writeError always says 1 s);
// anything else is returned for writeError.
func channelError(w nethttp.ResponseWriter, err error) error {
	var u *channel.Unavailable
	if !errors.As(err, &u) {
		return err
	}
	secs := int64(u.RetryAfter.Round(time.Second) / time.Second)
	w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	writeJSON(w, StatusOf(u.Err.Code), errorBody{Error: errorJSON{Code: u.Err.Code, Message: u.Err.Message, Param: u.Err.Param}})
	return nil
}

type cardRequest struct {
	Bank   string `json:"bank"`
	CardNo string `json:"card_no"`
	Holder string `json:"holder"`
}

type cardJSON struct {
	CardID    string `json:"card_id"`
	Bank      string `json:"bank"`
	Last4     string `json:"last4"`
	Status    string `json:"status"`
	CreatedAt string `json:"created_at"`
}

func cardView(c *channel.Card) cardJSON {
	return cardJSON{CardID: c.CardID, Bank: c.Bank, Last4: c.Last4, Status: c.Status, CreatedAt: formatAPITime(c.CreatedAt)}
}

type cardListJSON struct {
	Data    []cardJSON `json:"data"`
	HasMore bool       `json:"has_more"`
}

// handleBindCard binds a card. The number is in the body only: it is
// passed to the bank and dropped, never logged (instrument logs no bodies).
func (s *Server) handleBindCard(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req cardRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	c, _, err := s.svc.Channels.BindCard(r.Context(), u, req.Bank, req.CardNo, req.Holder)
	if err != nil {
		return channelError(w, err)
	}
	writeJSON(w, nethttp.StatusCreated, cardView(c))
	return nil
}

func (s *Server) handleListCards(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	cards, err := s.svc.Channels.Cards(r.Context(), u)
	if err != nil {
		return err
	}
	resp := cardListJSON{Data: make([]cardJSON, 0, len(cards))}
	for _, c := range cards {
		resp.Data = append(resp.Data, cardView(c))
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) handleUnbindCard(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	c, err := s.svc.Channels.UnbindCard(r.Context(), u, r.PathValue("card_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, cardView(c))
	return nil
}

type topupRequest struct {
	Amount    json.RawMessage `json:"amount"`
	CardID    string          `json:"card_id"`
	Bank      string          `json:"bank"`
	Method    string          `json:"method"`
	ClientRef string          `json:"client_ref"`
}

type topupJSON struct {
	TopupID  string         `json:"topup_id"`
	Status   string         `json:"status"`
	Amount   string         `json:"amount"`
	Currency zhifu.Currency `json:"currency"`
	Bank     string         `json:"bank"`
	CardID   string         `json:"card_id"`
	Method   string         `json:"method"`
	TradeNo  string         `json:"trade_no,omitempty"`
	Reason   string         `json:"reason,omitempty"`
	EbankURL string         `json:"ebank_url,omitempty"`
	// BankState and Advice, while the top-up is PROCESSING: its bank's
	// state now (as GET /v1/channels gives it) and, unless healthy, what
	// the person should know.
	BankState string  `json:"bank_state,omitempty"`
	Advice    string  `json:"advice,omitempty"`
	CreatedAt string  `json:"created_at"`
	SettledAt *string `json:"settled_at"`
}

func (s *Server) topupView(t *channel.BankTxn, ebankURL string) topupJSON {
	v := topupJSON{TopupID: t.TxnID, Status: string(t.Status), Amount: t.Amount.String(), Currency: zhifu.CNY,
		Bank: t.Bank, CardID: t.CardID, Method: t.Method, TradeNo: t.TradeNo, Reason: t.Reason, EbankURL: ebankURL,
		CreatedAt: formatAPITime(t.CreatedAt), SettledAt: optAPITime(t.SettledAt)}
	if state, advice, ok := s.svc.Channels.Waiting(t); ok {
		v.BankState, v.Advice = state, advice
	}
	return v
}

type topupListJSON struct {
	Data    []topupJSON `json:"data"`
	HasMore bool        `json:"has_more"`
}

// handleCreateTopup answers 201 with a new top-up, PROCESSING, and 200
// with the one already made for the same client_ref or Idempotency-Key.
func (s *Server) handleCreateTopup(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req topupRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	t, created, err := s.svc.Channels.Topup(r.Context(), u, channel.TopupParams{Amount: amount, CardID: req.CardID,
		Bank: req.Bank, Method: req.Method, ClientRef: req.ClientRef, IdempotencyKey: r.Header.Get(idempotencyHeader)})
	if err != nil {
		return channelError(w, err)
	}
	status := nethttp.StatusOK
	if created {
		status = nethttp.StatusCreated
	}
	writeJSON(w, status, s.topupView(t.BankTxn, t.EbankURL))
	return nil
}

func (s *Server) handleGetTopup(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	t, err := s.svc.Channels.Txn(r.Context(), u, channel.KindTopup, r.PathValue("topup_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, s.topupView(t, ""))
	return nil
}

// handleListTopups lists the user's top-ups, newest first; ?trade_no=
// keeps the card payments of one trade.
func (s *Server) handleListTopups(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	p, err := channelListParams(r)
	if err != nil {
		return err
	}
	txns, more, err := s.svc.Channels.List(r.Context(), u, channel.KindTopup, p)
	if err != nil {
		return err
	}
	resp := topupListJSON{Data: make([]topupJSON, 0, len(txns)), HasMore: more}
	for _, t := range txns {
		resp.Data = append(resp.Data, s.topupView(t, ""))
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func channelListParams(r *nethttp.Request) (channel.ListParams, error) {
	q := r.URL.Query()
	p := channel.ListParams{Limit: channelListLimitDefault, StartingAfter: q.Get("starting_after"), TradeNo: q.Get("trade_no")}
	if v := q.Get("limit"); v != "" {
		n, ok := parseID(v)
		if !ok || n > channelListLimitMax {
			return p, invalidRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", channelListLimitMax))
		}
		p.Limit = int(n)
	}
	if len(p.TradeNo) > 64 {
		return p, invalidRequest("trade_no", "trade_no is too long")
	}
	return p, nil
}

type withdrawalRequest struct {
	Amount json.RawMessage `json:"amount"`
	CardID string          `json:"card_id"`
}

type withdrawalJSON struct {
	WithdrawalID  string         `json:"withdrawal_id"`
	Status        string         `json:"status"`
	Amount        string         `json:"amount"`
	Currency      zhifu.Currency `json:"currency"`
	Bank          string         `json:"bank"`
	CardID        string         `json:"card_id"`
	Kind          string         `json:"kind"` // payout, or refund of a card payment that came too late
	SourceTopupID string         `json:"source_topup_id,omitempty"`
	Reason        string         `json:"reason,omitempty"`
	CreatedAt     string         `json:"created_at"`
	SettledAt     *string        `json:"settled_at"`
}

func withdrawalView(t *channel.BankTxn) withdrawalJSON {
	return withdrawalJSON{WithdrawalID: t.TxnID, Status: string(t.Status), Amount: t.Amount.String(), Currency: zhifu.CNY,
		Bank: t.Bank, CardID: t.CardID, Kind: t.Method, SourceTopupID: t.SourceTxn, Reason: t.Reason,
		CreatedAt: formatAPITime(t.CreatedAt), SettledAt: optAPITime(t.SettledAt)}
}

type withdrawalListJSON struct {
	Data    []withdrawalJSON `json:"data"`
	HasMore bool             `json:"has_more"`
}

// handleCreateWithdrawal answers 202 once the money is frozen and the
// withdrawal queued, whether new or found again by its Idempotency-Key.
func (s *Server) handleCreateWithdrawal(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	var req withdrawalRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	amount, err := parseTransferAmount(req.Amount, false, "amount")
	if err != nil {
		return err
	}
	t, _, err := s.svc.Channels.Withdraw(r.Context(), u, channel.WithdrawParams{Amount: amount, CardID: req.CardID,
		IdempotencyKey: r.Header.Get(idempotencyHeader)})
	if err != nil {
		return channelError(w, err)
	}
	writeJSON(w, nethttp.StatusAccepted, withdrawalView(t))
	return nil
}

func (s *Server) handleGetWithdrawal(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	t, err := s.svc.Channels.Txn(r.Context(), u, channel.KindWithdrawal, r.PathValue("withdrawal_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, withdrawalView(t))
	return nil
}

func (s *Server) handleListWithdrawals(w nethttp.ResponseWriter, r *nethttp.Request, u *identity.User) error {
	p, err := channelListParams(r)
	if err != nil {
		return err
	}
	p.TradeNo = ""
	txns, more, err := s.svc.Channels.List(r.Context(), u, channel.KindWithdrawal, p)
	if err != nil {
		return err
	}
	resp := withdrawalListJSON{Data: make([]withdrawalJSON, 0, len(txns)), HasMore: more}
	for _, t := range txns {
		resp.Data = append(resp.Data, withdrawalView(t))
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type channelJSON struct {
	Bank              string  `json:"bank"`
	State             string  `json:"state"`
	Breaker           string  `json:"breaker"`
	SuccessRate       float64 `json:"success_rate"`
	Calls             int     `json:"calls"`
	P50Ms             int64   `json:"p50_ms"`
	P99Ms             int64   `json:"p99_ms"`
	Advice            string  `json:"advice"`
	MaintenanceUntil  *string `json:"maintenance_until"`
	QueuedWithdrawals int64   `json:"queued_withdrawals"`
}

type channelListJSON struct {
	Data    []channelJSON `json:"data"`
	HasMore bool          `json:"has_more"`
}

// handleChannels reports every bank's health, for the cashier's advice and
// the operators. It needs no credentials: it says nothing about anyone's
// money.
func (s *Server) handleChannels(w nethttp.ResponseWriter, r *nethttp.Request) error {
	hs := s.svc.Channels.Health()
	resp := channelListJSON{Data: make([]channelJSON, 0, len(hs))}
	for _, h := range hs {
		resp.Data = append(resp.Data, channelJSON{Bank: h.Bank, State: h.State, Breaker: string(h.Breaker),
			SuccessRate: h.SuccessRate, Calls: h.Calls, P50Ms: h.P50.Milliseconds(), P99Ms: h.P99.Milliseconds(),
			Advice: h.Advice, MaintenanceUntil: optAPITime(h.MaintenanceUntil), QueuedWithdrawals: h.QueuedWithdrawals})
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type announcementJSON struct {
	AnnouncementID string `json:"announcement_id,omitempty"`
	Scope          string `json:"scope"` // platform or bank
	Bank           string `json:"bank"`  // "" for the platform
	StartsAt       string `json:"starts_at"`
	EndsAt         string `json:"ends_at"`
	Message        string `json:"message"`
	Source         string `json:"source"`
}

type announcementListJSON struct {
	Data    []announcementJSON `json:"data"`
	HasMore bool               `json:"has_more"`
}

func announcementView(a channel.Announcement) announcementJSON {
	scope := scopeBank
	if a.Bank == "" {
		scope = scopePlatform
	}
	return announcementJSON{AnnouncementID: a.AnnouncementID, Scope: scope, Bank: a.Bank, StartsAt: formatAPITime(a.StartsAt),
		EndsAt: formatAPITime(a.EndsAt), Message: a.Message, Source: a.Source}
}

// handleAnnouncements lists the maintenance windows of the platform and of
// the banks, current and ahead; public, like the cashier that shows them.
func (s *Server) handleAnnouncements(w nethttp.ResponseWriter, r *nethttp.Request) error {
	as := s.svc.Channels.Announcements()
	resp := announcementListJSON{Data: make([]announcementJSON, 0, len(as))}
	for _, a := range as {
		resp.Data = append(resp.Data, announcementView(a))
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type announcementRequest struct {
	Scope    string `json:"scope"` // "bank" (the default) or "platform"
	Bank     string `json:"bank"`
	StartsAt string `json:"starts_at"`
	EndsAt   string `json:"ends_at"`
	Message  string `json:"message"`
}

func (s *Server) handleCreateAnnouncement(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req announcementRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	starts, err := time.Parse(time.RFC3339, req.StartsAt)
	if err != nil {
		return invalidRequest("starts_at", "starts_at must be an RFC 3339 time")
	}
	ends, err := time.Parse(time.RFC3339, req.EndsAt)
	if err != nil {
		return invalidRequest("ends_at", "ends_at must be an RFC 3339 time")
	}
	bank, err := announcementBank(req.Scope, req.Bank)
	if err != nil {
		return err
	}
	a, err := s.svc.Channels.Announce(r.Context(), bank, starts, ends, req.Message)
	if err != nil {
		return err
	}
	s.windowsChanged()
	writeJSON(w, nethttp.StatusCreated, announcementView(*a))
	return nil
}

// handleBankCallback takes a bank's signed callback and answers 200 once
// its outcome is durable, so that a bank that hears nothing tries again.
func (s *Server) handleBankCallback(w nethttp.ResponseWriter, r *nethttp.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		var tooLarge *nethttp.MaxBytesError
		if errors.As(err, &tooLarge) {
			return err
		}
		return invalidRequest("", "could not read the request body")
	}
	if err := s.svc.Channels.HandleCallback(r.Context(), r.PathValue("bank"), r.Header.Get(bankapi.SignatureHeader), body); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, map[string]bool{"ok": true})
	return nil
}

var ebankReturnPage = template.Must(template.New("return").Parse(`<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>zhifu</title></head>
<body><h1>支付已提交 · Payment submitted</h1>
<p>{{.}} has sent you back to zhifu. Your top-up shows its status in the app once the bank confirms it.</p>
</body></html>
`))

// handleEbankReturn is where online banking sends the person back. The
// page says nothing of the payment: the query is the bank's and unsigned,
// and the top-up's status comes from the bank's callback or an inquiry.
func (s *Server) handleEbankReturn(w nethttp.ResponseWriter, r *nethttp.Request) {
	bank := r.PathValue("bank")
	if !banksimName(bank) {
		s.writeError(w, r, zhifu.Errorf(zhifu.NotFound, "no bank"))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	ebankReturnPage.Execute(w, bank)
}

func banksimName(b string) bool {
	_, ok := zhifu.BankIndex(b)
	return ok
}

func optAPITime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := formatAPITime(t)
	return &s
}

// overdueJSON is a bank transaction an operator must look at.
type overdueJSON struct {
	TxnID     string  `json:"txn_id"`
	Kind      string  `json:"kind"`
	Method    string  `json:"method"`
	UserID    string  `json:"user_id"`
	Bank      string  `json:"bank"`
	CardID    string  `json:"card_id"`
	Amount    string  `json:"amount"`
	TradeNo   string  `json:"trade_no,omitempty"`
	Status    string  `json:"status"`
	Stage     string  `json:"stage"`
	Attempts  int     `json:"attempts"`
	Deadline  string  `json:"deadline"`
	NextAt    *string `json:"next_at"`
	CreatedAt string  `json:"created_at"`
}

type overdueListJSON struct {
	Data    []overdueJSON `json:"data"`
	HasMore bool          `json:"has_more"`
}

// handleOverdue lists the bank transactions still undecided past their
// deadline (channel.Service.Overdue), for an operator to settle with the bank.
func (s *Server) handleOverdue(w nethttp.ResponseWriter, r *nethttp.Request) error {
	limit := channelListLimitDefault
	if v := r.URL.Query().Get("limit"); v != "" {
		n, ok := parseID(v)
		if !ok || n > channel.OverdueMax {
			return invalidRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", channel.OverdueMax))
		}
		limit = int(n)
	}
	txns, more, err := s.svc.Channels.Overdue(r.Context(), limit)
	if err != nil {
		return err
	}
	resp := overdueListJSON{Data: make([]overdueJSON, 0, len(txns)), HasMore: more}
	for _, t := range txns {
		resp.Data = append(resp.Data, overdueJSON{TxnID: t.TxnID, Kind: string(t.Kind), Method: t.Method,
			UserID: t.UserID, Bank: t.Bank, CardID: t.CardID, Amount: t.Amount.String(), TradeNo: t.TradeNo,
			Status: string(t.Status), Stage: string(t.Stage), Attempts: t.Attempts, Deadline: formatAPITime(t.Deadline),
			NextAt: optAPITime(t.NextAt), CreatedAt: formatAPITime(t.CreatedAt)})
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}
