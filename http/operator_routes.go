package http

import (
	nethttp "net/http"
	"strconv"

	"zhifu/approval"
	"zhifu/identity"
)

// operatorRoutes registers operators, their sessions, approvals and the
// audit log.
func (s *Server) operatorRoutes(mux *nethttp.ServeMux) {
	s.handleFunc(mux, "POST /v1/admin/operators", s.admin(once(s.handleCreateOperator)))
	s.handleFunc(mux, "GET /v1/admin/operators", s.admin(s.handleListOperators))
	s.handleFunc(mux, "POST /v1/admin/sessions", s.api(s.handleOperatorLogin))
	s.handleFunc(mux, "GET /v1/admin/audit", s.admin(s.handleAuditLog))
	if s.svc.Approvals == nil {
		return
	}
	s.handleFunc(mux, "GET /v1/admin/approvals", s.admin(s.handleListApprovals))
	s.handleFunc(mux, "GET /v1/admin/approvals/{approval_id}", s.admin(s.handleGetApproval))
	s.handleFunc(mux, "POST /v1/admin/approvals/{approval_id}/approve", s.admin(s.handleApprove))
	s.handleFunc(mux, "POST /v1/admin/approvals/{approval_id}/reject", s.admin(s.handleReject))
}

type operatorJSON struct {
	OperatorID string `json:"operator_id"`
	Login      string `json:"login"`
	Name       string `json:"name"`
	CreatedBy  string `json:"created_by"`
	CreatedAt  string `json:"created_at"`
}

func operatorView(o *identity.Operator) operatorJSON {
	return operatorJSON{OperatorID: o.OperatorID, Login: o.Login, Name: o.Name, CreatedBy: o.CreatedBy,
		CreatedAt: formatAPITime(o.CreatedAt)}
}

func (s *Server) handleCreateOperator(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req createUserRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	o, err := s.svc.Identity.CreateOperator(r.Context(), identity.OperatorFrom(r.Context()), req.Login, req.Password, req.Name)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusCreated, operatorView(o))
	return nil
}

func (s *Server) handleListOperators(w nethttp.ResponseWriter, r *nethttp.Request) error {
	ops, err := s.svc.Identity.Operators(r.Context())
	if err != nil {
		return err
	}
	resp := struct {
		Data    []operatorJSON `json:"data"`
		HasMore bool           `json:"has_more"`
	}{Data: []operatorJSON{operatorView(&identity.Root)}}
	for i := range ops {
		resp.Data = append(resp.Data, operatorView(&ops[i]))
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) handleOperatorLogin(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	token, o, err := s.svc.Identity.OperatorLogin(r.Context(), req.Login, req.Password)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, struct {
		Token      string `json:"token"`
		OperatorID string `json:"operator_id"`
	}{token, o.OperatorID})
	return nil
}

type auditJSON struct {
	Seq        string `json:"seq"`
	At         string `json:"at"`
	OperatorID string `json:"operator_id"`
	Action     string `json:"action"`
	Subject    string `json:"subject"`
	Detail     string `json:"detail"`
	Applied    bool   `json:"applied"`
}

func (s *Server) handleAuditLog(w nethttp.ResponseWriter, r *nethttp.Request) error {
	limit, before, err := parsePage(r)
	if err != nil {
		return err
	}
	entries, more, err := approval.AuditLog(r.Context(), s.store.Reader(), before, limit)
	if err != nil {
		return err
	}
	resp := struct {
		Data    []auditJSON `json:"data"`
		HasMore bool        `json:"has_more"`
	}{Data: make([]auditJSON, len(entries)), HasMore: more}
	for i, e := range entries {
		resp.Data[i] = auditJSON{Seq: strconv.FormatInt(e.Seq, 10), At: formatAPITime(e.At), OperatorID: e.OperatorID,
			Action: e.Action, Subject: e.Subject, Detail: e.Detail, Applied: e.Applied}
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

type approvalJSON struct {
	ApprovalID string  `json:"approval_id"`
	Kind       string  `json:"kind"`
	Subject    string  `json:"subject"`
	Summary    string  `json:"summary"`
	State      string  `json:"state"`
	ProposedBy string  `json:"proposed_by"`
	ProposedAt string  `json:"proposed_at"`
	DecidedBy  string  `json:"decided_by,omitempty"`
	DecidedAt  *string `json:"decided_at"`
	Reason     string  `json:"reason,omitempty"`
}

func approvalView(p *approval.Proposal) approvalJSON {
	v := approvalJSON{ApprovalID: p.ID, Kind: p.Kind, Subject: p.Subject, Summary: p.Summary, State: p.State,
		ProposedBy: p.ProposedBy, ProposedAt: formatAPITime(p.ProposedAt), DecidedBy: p.DecidedBy, Reason: p.Reason}
	if !p.DecidedAt.IsZero() {
		t := formatAPITime(p.DecidedAt)
		v.DecidedAt = &t
	}
	return v
}

func (s *Server) handleListApprovals(w nethttp.ResponseWriter, r *nethttp.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	switch state {
	case "", "pending", "approved", "rejected", "superseded":
	default:
		return invalidRequest("state", "state must be pending, approved, rejected or superseded")
	}
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > approval.PageMax || strconv.Itoa(n) != v {
			return invalidRequest("limit", "limit must be an integer from 1 to 100")
		}
		limit = n
	}
	ps, more, err := s.svc.Approvals.List(r.Context(), upper(state), q.Get("starting_after"), limit)
	if err != nil {
		return err
	}
	resp := struct {
		Data    []approvalJSON `json:"data"`
		HasMore bool           `json:"has_more"`
	}{Data: make([]approvalJSON, len(ps)), HasMore: more}
	for i := range ps {
		resp.Data[i] = approvalView(&ps[i])
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

func (s *Server) handleGetApproval(w nethttp.ResponseWriter, r *nethttp.Request) error {
	p, err := s.svc.Approvals.Get(r.Context(), r.PathValue("approval_id"))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, approvalView(p))
	return nil
}

func (s *Server) handleApprove(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := decodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	p, err := s.svc.Approvals.Approve(r.Context(), r.PathValue("approval_id"), identity.OperatorFrom(r.Context()))
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, approvalView(p))
	return nil
}

func (s *Server) handleReject(w nethttp.ResponseWriter, r *nethttp.Request) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeOptionalJSON(r, &req); err != nil {
		return err
	}
	p, err := s.svc.Approvals.Reject(r.Context(), r.PathValue("approval_id"), identity.OperatorFrom(r.Context()), req.Reason)
	if err != nil {
		return err
	}
	writeJSON(w, nethttp.StatusOK, approvalView(p))
	return nil
}
