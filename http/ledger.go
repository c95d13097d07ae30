package http

import (
	"fmt"
	"math"
	nethttp "net/http"
	"strconv"
	"time"

	"zhifu"
	"zhifu/channel"
	"zhifu/ledger"
)

// Page sizes of the entries list (API.md's list convention).
const (
	entriesLimitDefault = 20
	entriesLimitMax     = 100
)

// checkLedger is the ledger whose totals and custody the check reports.
const checkLedger = 156 // CNY

// handleCreateAccounts creates accounts of the chart of accounts. Each
// account gets a result; existing identical accounts are "exists".
func (s *Server) handleCreateAccounts(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req createAccountsRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	accounts, err := parseAccounts(req.Accounts, s.clock.Now().UnixNano())
	if err != nil {
		return err
	}
	results, err := ledger.CreateAccounts(r.Context(), s.store, accounts)
	if err != nil {
		return fmt.Errorf("create accounts: %w", err)
	}
	resp := resultsResponse{Results: make([]resultJSON, len(results))}
	for i, res := range results {
		resp.Results[i] = resultJSON{ID: strconv.FormatInt(accounts[i].ID, 10), Result: res.String()}
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

// handleCreateTransfers submits one request's transfers to the batcher as
// one submission, so a linked chain stays whole, and answers once the batch
// is durable. The ledger's verdict on each transfer is a result, not an HTTP
// error: some transfers of a request may commit while others are refused.
func (s *Server) handleCreateTransfers(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req createTransfersRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	transfers, err := parseTransfers(req.Transfers)
	if err != nil {
		return err
	}
	results, err := s.batcher.Submit(r.Context(), transfers)
	if err != nil {
		return fmt.Errorf("submit transfers: %w", err)
	}
	if len(results) != len(transfers) {
		panic(fmt.Sprintf("http: batcher returned %d results for %d transfers", len(results), len(transfers)))
	}
	resp := resultsResponse{Results: make([]resultJSON, len(results))}
	for i, res := range results {
		resp.Results[i] = resultJSON{ID: req.Transfers[i].ID, Result: res.String()}
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type accountJSON struct {
	ID             string         `json:"id"`
	Currency       zhifu.Currency `json:"currency"`
	Code           uint16         `json:"code"`
	Flags          []string       `json:"flags"`
	DebitsPending  string         `json:"debits_pending"`
	DebitsPosted   string         `json:"debits_posted"`
	CreditsPending string         `json:"credits_pending"`
	CreditsPosted  string         `json:"credits_posted"`
	Balance        string         `json:"balance"`
}

func (s *Server) handleGetAccount(w nethttp.ResponseWriter, r *nethttp.Request) error {
	a, err := s.account(r)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, accountJSON{
		ID:             strconv.FormatInt(a.ID, 10),
		Currency:       currencyName(a.Ledger),
		Code:           a.Code,
		Flags:          flagList(accountFlagNames, a.Flags),
		DebitsPending:  zhifu.Amount(a.DebitsPending).String(),
		DebitsPosted:   zhifu.Amount(a.DebitsPosted).String(),
		CreditsPending: zhifu.Amount(a.CreditsPending).String(),
		CreditsPosted:  zhifu.Amount(a.CreditsPosted).String(),
		Balance:        zhifu.Amount(a.Balance()).String(),
	})
	return nil
}

// account loads the account named by the path's {id}. An id that cannot be
// an account's is simply not found: ids are opaque to the caller.
func (s *Server) account(r *nethttp.Request) (ledger.Account, error) {
	notFound := &zhifu.Error{Code: zhifu.NotFound, Message: "no such account", Param: "id"}
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		return ledger.Account{}, notFound
	}
	accounts, err := s.store.LookupAccounts(r.Context(), []int64{id})
	if err != nil {
		return ledger.Account{}, fmt.Errorf("lookup account: %w", err)
	}
	if len(accounts) == 0 {
		return ledger.Account{}, notFound
	}
	return accounts[0], nil
}

// currencyName names a ledger by its currency, or by its number when the
// currency is not one zhifu knows.
func currencyName(l uint32) zhifu.Currency {
	if c := zhifu.CurrencyOf(l); c != "" {
		return c
	}
	return zhifu.Currency(strconv.FormatUint(uint64(l), 10))
}

type entryJSON struct {
	Seq        string   `json:"seq"`
	TransferID string   `json:"transfer_id"`
	Amount     string   `json:"amount"`
	Balance    string   `json:"balance"`
	Flags      []string `json:"flags"`
	PendingID  *string  `json:"pending_id"`
	Code       uint16   `json:"code"`
	CreatedAt  string   `json:"created_at"`
}

type entriesResponse struct {
	Data    []entryJSON `json:"data"`
	HasMore bool        `json:"has_more"`
}

// handleListEntries lists an account's entries, newest first.
func (s *Server) handleListEntries(w nethttp.ResponseWriter, r *nethttp.Request) error {
	limit, before, err := parsePage(r)
	if err != nil {
		return err
	}
	a, err := s.account(r)
	if err != nil {
		return err
	}
	// One more than asked tells whether another page exists.
	entries, err := s.store.Entries(r.Context(), a.ID, before, limit+1)
	if err != nil {
		return fmt.Errorf("list entries: %w", err)
	}
	resp := entriesResponse{Data: make([]entryJSON, 0, min(len(entries), limit))}
	if len(entries) > limit {
		entries, resp.HasMore = entries[:limit], true
	}
	for _, e := range entries {
		var pending *string
		if e.Transfer.PendingID != "" {
			pending = &e.Transfer.PendingID
		}
		resp.Data = append(resp.Data, entryJSON{
			Seq:        strconv.FormatInt(e.Seq, 10),
			TransferID: e.Transfer.ID,
			Amount:     zhifu.Amount(e.Amount).String(),
			Balance:    zhifu.Amount(e.Balance).String(),
			Flags:      flagList(transferFlagNames, e.Transfer.Flags),
			PendingID:  pending,
			Code:       e.Transfer.Code,
			CreatedAt:  time.Unix(0, e.Transfer.Timestamp).UTC().Format(time.RFC3339),
		})
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

// parsePage reads ?limit= and ?starting_after= (an entry's seq).
func parsePage(r *nethttp.Request) (limit int, before int64, err error) {
	q := r.URL.Query()
	limit = entriesLimitDefault
	if v := q.Get("limit"); v != "" {
		n, ok := parseID(v)
		if !ok || n > entriesLimitMax {
			return 0, 0, invalidRequest("limit", fmt.Sprintf("limit must be an integer from 1 to %d", entriesLimitMax))
		}
		limit = int(n)
	}
	if v := q.Get("starting_after"); v != "" {
		var ok bool
		if before, ok = parseID(v); !ok {
			return 0, 0, invalidRequest("starting_after", "starting_after must be the seq of an entry")
		}
	}
	return limit, before, nil
}

type custodyJSON struct {
	CustomerFunds string `json:"customer_funds"`
	BankFunds     string `json:"bank_funds"`
	OK            bool   `json:"ok"`
	// Extensions, when the banks' own books can be read: what they hold
	// for the platform in all (their settlement accounts, which include
	// the float the platform started with there), and each bank's books.
	BankBooksFunds string            `json:"bank_books_funds,omitempty"`
	Banks          []bankCustodyJSON `json:"banks,omitempty"`
}

type bankCustodyJSON struct {
	Bank     string `json:"bank"`
	Funds    string `json:"funds"`
	Debited  string `json:"debited"`
	Credited string `json:"credited"`
	OK       bool   `json:"ok"`
}

type checkResponse struct {
	OK           bool        `json:"ok"`
	TotalDebits  string      `json:"total_debits"`
	TotalCredits string      `json:"total_credits"`
	Custody      custodyJSON `json:"custody"`
	Violations   []string    `json:"violations"`
}

// handleCheck audits the whole ledger. It reads one snapshot and runs both
// ledger.CheckSnapshot (what ledger.Check does) and the custody sums over it,
// so the two parts of the answer describe the same instant. Where the banks'
// own books can be read (the bank channels know how), custody also compares
// them with the platform's records of its debits and credits at each bank,
// and bank_books_funds is what the banks say they hold for the platform.
// bank_funds stays the ledger's figure: it must equal customer funds plus
// the platform's own exactly, where the banks' books also hold money the
// ledger never saw (the simulator's float).
func (s *Server) handleCheck(w nethttp.ResponseWriter, r *nethttp.Request) error {
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		return fmt.Errorf("ledger check: %w", err)
	}
	report := ledger.CheckSnapshot(snap)
	customer, bank, err := custody(snap.Accounts, checkLedger)
	if err != nil {
		return fmt.Errorf("ledger check: %w", err)
	}
	resp := checkResponse{
		TotalDebits:  zhifu.Amount(report.TotalDebits[checkLedger]).String(),
		TotalCredits: zhifu.Amount(report.TotalCredits[checkLedger]).String(),
		Custody:      custodyJSON{CustomerFunds: customer.String(), BankFunds: bank.String(), OK: bank >= customer},
		Violations:   append([]string{}, report.Violations...),
	}
	if !resp.Custody.OK {
		resp.Violations = append(resp.Violations,
			fmt.Sprintf("custody: customer funds %s exceed bank funds %s", customer, bank))
	}
	if s.svc.Channels != nil {
		banks, err := s.svc.Channels.Custody(r.Context())
		if err != nil {
			return fmt.Errorf("ledger check: %w", err)
		}
		if banks != nil {
			s.bankCustody(&resp, banks, customer)
		}
	}
	resp.OK = report.OK && resp.Custody.OK
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

// bankCustody adds the banks' books to a check: their sum, and every
// disagreement with the platform's records as a violation.
func (s *Server) bankCustody(resp *checkResponse, banks []channel.BankCustody, customer zhifu.Amount) {
	var funds int64
	for _, b := range banks {
		var ok bool
		if funds, ok = addInt64(funds, int64(b.Funds)); !ok {
			resp.Custody.OK = false
			resp.Violations = append(resp.Violations, "custody: the banks' funds overflow")
			return
		}
		resp.Custody.Banks = append(resp.Custody.Banks, bankCustodyJSON{Bank: b.Bank, Funds: b.Funds.String(),
			Debited: b.Debited.String(), Credited: b.Credited.String(), OK: len(b.Violations) == 0})
		for _, v := range b.Violations {
			resp.Custody.OK = false
			resp.Violations = append(resp.Violations, "custody: "+v)
		}
	}
	resp.Custody.BankBooksFunds = zhifu.Amount(funds).String()
	if zhifu.Amount(funds) < customer {
		resp.Custody.OK = false
		resp.Violations = append(resp.Violations,
			fmt.Sprintf("custody: customer funds %s exceed the banks' funds %s", customer, zhifu.Amount(funds)))
	}
}

// custody sums one ledger's customer liabilities (credit-normal, so their
// Balance) and bank assets (debit-normal, so minus their Balance). The sums
// are checked for overflow: a wrong custody figure would be worse than none.
func custody(accounts []ledger.Account, l uint32) (customer, bank zhifu.Amount, err error) {
	var c, b int64
	for _, a := range accounts {
		if a.Ledger != l {
			continue
		}
		var ok bool
		switch {
		case zhifu.IsCustomerFunds(a.Code):
			c, ok = addInt64(c, a.Balance())
		case zhifu.IsBankFunds(a.Code):
			b, ok = addInt64(b, -a.Balance())
		default:
			ok = true
		}
		if !ok {
			return 0, 0, fmt.Errorf("custody sum overflows at account %d", a.ID)
		}
	}
	return zhifu.Amount(c), zhifu.Amount(b), nil
}

func addInt64(a, b int64) (int64, bool) {
	if (b > 0 && a > math.MaxInt64-b) || (b < 0 && a < math.MinInt64-b) {
		return 0, false
	}
	return a + b, true
}
