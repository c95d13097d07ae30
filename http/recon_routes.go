package http

import (
	nethttp "net/http"
	"strconv"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/recon"
)

// reconRoutes registers reconciliation runs, review items and custody.
func (s *Server) reconRoutes(mux *nethttp.ServeMux) {
	if s.svc.Recon == nil {
		return
	}
	s.handleFunc(mux, "POST /v1/admin/recon/runs", s.admin(once(s.handleStartRun)))
	s.handleFunc(mux, "GET /v1/admin/recon/runs", s.admin(s.handleListRuns))
	s.handleFunc(mux, "GET /v1/admin/recon/runs/{run_id}", s.admin(s.handleGetRun))
	s.handleFunc(mux, "GET /v1/admin/recon/items", s.admin(s.handleListItems))
	s.handleFunc(mux, "GET /v1/admin/recon/items/{item_id}", s.admin(s.handleGetItem))
	s.handleFunc(mux, "POST /v1/admin/recon/items/{item_id}/resolve", s.admin(once(s.handleResolveItem)))
	s.handleFunc(mux, "GET /v1/admin/custody", s.admin(s.handleCustody))
}

type tallyJSON struct {
	Lines   int64  `json:"lines"`
	Records int64  `json:"records"`
	Amount  string `json:"amount"`
}

type runJSON struct {
	RunID      string               `json:"run_id"`
	Bank       string               `json:"bank"`
	Date       string               `json:"date"`
	Source     string               `json:"source"`
	File       string               `json:"file,omitempty"`
	StartedBy  string               `json:"started_by"`
	State      string               `json:"state"`
	Phase      string               `json:"phase"`
	LinesTotal int64                `json:"lines_total"`
	LinesDone  int64                `json:"lines_done"`
	Records    int64                `json:"records"`
	Classes    map[string]tallyJSON `json:"classes"`
	Repaired   int64                `json:"repaired"`
	Opened     int64                `json:"opened"`
	Settled    int64                `json:"settled"`
	Closed     int64                `json:"closed"`
	Changes    int64                `json:"changes"`
	Suspense   string               `json:"suspense"`
	Inquiries  int64                `json:"inquiries"`
	Opening    string               `json:"opening_balance"`
	Closing    string               `json:"closing_balance"`
	Message    string               `json:"message"`
	Error      string               `json:"error,omitempty"`
	StartedAt  string               `json:"started_at"`
	FinishedAt *string              `json:"finished_at"`
	DurationMs int64                `json:"duration_ms"`
}

func runView(r *recon.Run, now time.Time) runJSON {
	v := runJSON{RunID: r.RunID, Bank: r.Bank, Date: r.Day, Source: r.Source, File: r.File, StartedBy: r.StartedBy,
		State: r.State, Phase: r.Phase, LinesTotal: r.LinesTotal, LinesDone: r.LinesDone, Records: r.Records,
		Classes: map[string]tallyJSON{}, Repaired: r.Summary.Repaired, Opened: r.Summary.Opened,
		Settled: r.Summary.Settled, Closed: r.Summary.Closed, Changes: r.Changes,
		Suspense: zhifu.Amount(r.Summary.Suspense).String(), Inquiries: r.Summary.Inquiries,
		Opening: zhifu.Amount(r.Opening).String(), Closing: zhifu.Amount(r.Closing).String(), Error: r.Error,
		StartedAt: formatAPITime(r.StartedAt), FinishedAt: optAPITime(r.FinishedAt),
		DurationMs: r.Duration(now).Milliseconds()}
	for _, c := range recon.Classes {
		t := r.Summary.Classes[c]
		v.Classes[string(c)] = tallyJSON{Lines: t.Lines, Records: t.Records, Amount: zhifu.Amount(t.Amount).String()}
	}
	switch {
	case r.State == recon.Done && r.Changes == 0:
		v.Message = "nothing changed: everything found was reconciled before"
	case r.State == recon.Done:
		v.Message = strconv.FormatInt(r.Summary.Repaired, 10) + " repaired, " + strconv.FormatInt(r.Summary.Settled, 10) +
			" settled from the statement, " + strconv.FormatInt(r.Summary.Opened, 10) + " review items opened, " +
			strconv.FormatInt(r.Summary.Closed, 10) + " closed"
	case r.State == recon.Running:
		v.Message = r.Phase
	default:
		v.Message = r.Error
	}
	return v
}

type startRunRequest struct {
	Bank string `json:"bank"`
	Date string `json:"date"`
	// File names a statement file the bank sent, in the server's
	// statements folder.
	File string `json:"file"`
}

func (s *Server) handleStartRun(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req startRunRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	run, err := s.svc.Recon.Start(r.Context(), recon.Request{Bank: req.Bank, Day: req.Date, File: req.File,
		StartedBy: identity.OperatorFrom(r.Context()).OperatorID})
	if err != nil {
		return err
	}
	w.Header().Set("Location", "/v1/admin/recon/runs/"+run.RunID)
	writeJSON(w, nethttp.StatusAccepted, runView(run, s.clock.Now()))
	return nil
}

// pageLimit reads ?limit= (1..100, default 20).
func pageLimit(r *nethttp.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return 20, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > recon.PageMax || strconv.Itoa(n) != v {
		return 0, invalidRequest("limit", "limit must be an integer from 1 to 100")
	}
	return n, nil
}

func (s *Server) handleListRuns(w nethttp.ResponseWriter, r *nethttp.Request) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	runs, more, err := s.svc.Recon.ListRuns(r.Context(), recon.RunFilter{Bank: q.Get("bank"), Day: q.Get("date"),
		StartingAfter: q.Get("starting_after"), Limit: limit})
	if err != nil {
		return err
	}
	resp := struct {
		Data    []runJSON `json:"data"`
		HasMore bool      `json:"has_more"`
	}{Data: make([]runJSON, len(runs)), HasMore: more}
	now := s.clock.Now()
	for i, run := range runs {
		resp.Data[i] = runView(run, now)
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) handleGetRun(w nethttp.ResponseWriter, r *nethttp.Request) error {
	run, err := s.svc.Recon.GetRun(r.Context(), r.PathValue("run_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, runView(run, s.clock.Now()))
	return nil
}

type itemJSON struct {
	ItemID     string   `json:"item_id"`
	Bank       string   `json:"bank"`
	Date       string   `json:"date"`
	Class      string   `json:"class"`
	Status     string   `json:"status"`
	TxnID      string   `json:"txn_id,omitempty"`
	Kind       string   `json:"kind,omitempty"`
	UserID     string   `json:"user_id,omitempty"`
	RequestID  string   `json:"request_id"`
	BankTxnID  string   `json:"bank_txn_id,omitempty"`
	BankAmount string   `json:"bank_amount"`
	OurAmount  string   `json:"our_amount"`
	Suspense   string   `json:"suspense"`
	Repair     string   `json:"repair,omitempty"`
	Detail     string   `json:"detail"`
	RunID      string   `json:"run_id,omitempty"`
	ProposalID string   `json:"approval_id,omitempty"`
	Action     string   `json:"action,omitempty"`
	Note       string   `json:"note,omitempty"`
	Actions    []string `json:"actions,omitempty"`
	CreatedAt  string   `json:"created_at"`
	ResolvedAt *string  `json:"resolved_at"`
}

func itemView(it *recon.Item) itemJSON {
	return itemJSON{ItemID: it.ItemID, Bank: it.Bank, Date: it.Day, Class: string(it.Class), Status: it.Status,
		TxnID: it.TxnID, Kind: it.Kind, UserID: it.UserID, RequestID: it.RequestID, BankTxnID: it.BankTxnID,
		BankAmount: zhifu.Amount(it.BankAmount).String(), OurAmount: zhifu.Amount(it.OurAmount).String(),
		Suspense: zhifu.Amount(it.Suspense).String(), Repair: it.Repair, Detail: it.Detail, RunID: it.RunID,
		ProposalID: it.ProposalID, Action: it.Action, Note: it.Note, CreatedAt: formatAPITime(it.CreatedAt),
		ResolvedAt: optAPITime(it.ResolvedAt)}
}

var itemStatuses = map[string]string{"": "", "open": recon.Open, "repaired": recon.Repaired,
	"resolved": recon.Resolved, "closed": recon.Closed}

func (s *Server) handleListItems(w nethttp.ResponseWriter, r *nethttp.Request) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	status, ok := itemStatuses[q.Get("status")]
	if !ok {
		return invalidRequest("status", "status must be open, repaired, resolved or closed")
	}
	items, more, err := s.svc.Recon.ListItems(r.Context(), recon.ItemFilter{Status: status,
		StartingAfter: q.Get("starting_after"), Limit: limit})
	if err != nil {
		return err
	}
	resp := struct {
		Data    []itemJSON `json:"data"`
		HasMore bool       `json:"has_more"`
	}{Data: make([]itemJSON, len(items)), HasMore: more}
	for i, it := range items {
		resp.Data[i] = itemView(it)
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) handleGetItem(w nethttp.ResponseWriter, r *nethttp.Request) error {
	it, err := s.svc.Recon.GetItem(r.Context(), r.PathValue("item_id"))
	if err != nil {
		return err
	}
	v := itemView(it)
	if v.Actions, err = s.svc.Recon.Actions(r.Context(), it); err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, v)
	return nil
}

type resolveRequest struct {
	Action string `json:"action"`
	Note   string `json:"note"`
	UserID string `json:"user_id"`
}

// handleResolveItem files the resolution for a second operator's approval
// and answers 201 with the proposal and the item.
func (s *Server) handleResolveItem(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req resolveRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	id := r.PathValue("item_id")
	p, err := s.svc.Recon.Resolve(r.Context(), id, recon.Resolution{Action: req.Action, Note: req.Note, UserID: req.UserID},
		identity.OperatorFrom(r.Context()))
	if err != nil {
		return err
	}
	it, err := s.svc.Recon.GetItem(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, struct {
		Approval approvalJSON `json:"approval"`
		Item     itemJSON     `json:"item"`
	}{approvalView(p), itemView(it)})
	return nil
}

type codeJSON struct {
	Code     uint16 `json:"code"`
	Kind     string `json:"kind"`
	Accounts int64  `json:"accounts"`
	Balance  string `json:"balance"`
}

type custodyCheckJSON struct {
	OK            bool              `json:"ok"`
	At            string            `json:"at"`
	CustomerFunds string            `json:"customer_funds"`
	BankFunds     string            `json:"bank_funds"`
	PlatformFunds string            `json:"platform_funds"`
	Difference    string            `json:"difference"`
	Shortfall     string            `json:"shortfall"`
	OpenItems     int64             `json:"open_review_items"`
	Codes         []codeJSON        `json:"codes"`
	Explain       []string          `json:"explain"`
	Banks         []bankCustodyJSON `json:"banks,omitempty"`
}

// handleCustody checks custody now, from the accounts' balances by code
// and, where they can be read, the banks' own books.
func (s *Server) handleCustody(w nethttp.ResponseWriter, r *nethttp.Request) error {
	c, err := s.svc.Recon.CheckCustody(r.Context(), true)
	if err != nil {
		return err
	}
	v := custodyCheckJSON{OK: c.OK, At: formatAPITime(c.At), CustomerFunds: c.CustomerFunds.String(),
		BankFunds: c.BankFunds.String(), PlatformFunds: c.PlatformFunds.String(),
		Difference: zhifu.Amount(c.Difference).String(), Shortfall: zhifu.Amount(c.Shortfall).String(),
		OpenItems: s.svc.Recon.OpenItems(), Codes: []codeJSON{}, Explain: append([]string{}, c.Explain...)}
	for _, cb := range c.Codes {
		v.Codes = append(v.Codes, codeJSON{Code: cb.Code, Kind: cb.Kind, Accounts: cb.Accounts, Balance: zhifu.Amount(cb.Balance).String()})
	}
	for _, b := range c.Banks {
		v.Banks = append(v.Banks, bankCustodyJSON{Bank: b.Bank, Funds: b.Funds.String(), Debited: b.Debited.String(),
			Credited: b.Credited.String(), OK: len(b.Violations) == 0})
	}
	writeJSON(w, nethttp.StatusOK, v)
	return nil
}
