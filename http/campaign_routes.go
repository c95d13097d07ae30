package http

import (
	nethttp "net/http"
	"time"

	"zhifu"
	"zhifu/approval"
	"zhifu/campaign"
	"zhifu/identity"
)

// campaignRoutes registers the marketing campaigns: made and changed by
// one operator, approved by a second, paused or killed by anyone at once.
func (s *Server) campaignRoutes(mux *nethttp.ServeMux) {
	if s.svc.Campaigns == nil {
		return
	}
	s.handleFunc(mux, "POST /v1/admin/campaigns", s.admin(once(s.handleCreateCampaign)))
	s.handleFunc(mux, "GET /v1/admin/campaigns", s.admin(s.handleListCampaigns))
	s.handleFunc(mux, "GET /v1/admin/campaign-limits", s.admin(s.handleCampaignLimits))
	s.handleFunc(mux, "GET /v1/admin/campaigns/{campaign_id}", s.admin(s.handleGetCampaign))
	s.handleFunc(mux, "PUT /v1/admin/campaigns/{campaign_id}", s.admin(once(s.handleUpdateCampaign)))
	s.handleFunc(mux, "POST /v1/admin/campaigns/{campaign_id}/approve", s.admin(s.handleApproveCampaign))
	s.handleFunc(mux, "POST /v1/admin/campaigns/{campaign_id}/pause", s.admin(s.handleStopCampaign(campaign.Paused)))
	s.handleFunc(mux, "POST /v1/admin/campaigns/{campaign_id}/kill", s.admin(s.handleStopCampaign(campaign.Killed)))
	s.handleFunc(mux, "POST /v1/admin/campaigns/{campaign_id}/dry-run", s.admin(s.handleDryRun))
}

type campaignPlanJSON struct {
	SpendPerHour  string `json:"spend_per_hour"`
	PaymentsShare string `json:"payments_share,omitempty"`
	DiscountRatio string `json:"discount_ratio,omitempty"`
}

type campaignFundingJSON struct {
	Type       string `json:"type"`
	MerchantID string `json:"merchant_id,omitempty"`
}

type campaignSpecJSON struct {
	Name         string              `json:"name"`
	Template     string              `json:"template"`
	Percent      string              `json:"percent,omitempty"`
	AmountOff    string              `json:"amount_off,omitempty"`
	Kinds        []string            `json:"kinds"`
	Merchants    []string            `json:"merchants"`
	MinAmount    string              `json:"min_amount,omitempty"`
	MaxDiscount  string              `json:"max_discount"`
	UserDailyCap string              `json:"user_daily_cap"`
	Budget       string              `json:"budget"`
	StartsAt     string              `json:"starts_at"`
	EndsAt       string              `json:"ends_at"`
	Funding      campaignFundingJSON `json:"funding"`
	Plan         campaignPlanJSON    `json:"plan"`
	Label        string              `json:"label"`
}

type campaignJSON struct {
	CampaignID string `json:"campaign_id"`
	campaignSpecJSON
	Status       string       `json:"status"`
	StatusReason string       `json:"status_reason,omitempty"`
	Version      int64        `json:"version"`
	Funded       string       `json:"funded"`
	BudgetLeft   string       `json:"budget_left"`
	Returned     string       `json:"returned"`
	CreatedBy    string       `json:"created_by"`
	ChangedBy    string       `json:"changed_by"`
	CreatedAt    string       `json:"created_at"`
	ChangedAt    string       `json:"changed_at"`
	LiveAt       *string      `json:"live_at"`
	WidenedAt    *string      `json:"widened_at"`
	StoppedAt    *string      `json:"stopped_at"`
	ApprovalID   string       `json:"approval_id,omitempty"`
	Monitor      *figuresJSON `json:"monitor,omitempty"`
}

type figuresJSON struct {
	WindowSeconds float64 `json:"window_seconds"`
	Spend         string  `json:"spend"`
	SpendAllowed  string  `json:"spend_allowed"`
	Payments      int64   `json:"payments"`
	Discounted    int64   `json:"discounted"`
	Share         string  `json:"share"`
	ShareAllowed  string  `json:"share_allowed,omitempty"`
	Ratio         string  `json:"discount_ratio"`
	RatioAllowed  string  `json:"discount_ratio_allowed,omitempty"`
}

// fractionText writes basis points as a fraction with four decimals.
func fractionText(bp int64) string {
	whole, frac := bp/10000, bp%10000
	b := []byte{byte('0' + whole)}
	b = append(b, '.')
	for d := int64(1000); d > 0; d /= 10 {
		b = append(b, byte('0'+frac/d%10))
	}
	return string(b)
}

// parseFraction reads a fraction from 0 to 1 with up to four decimals
// into basis points.
func parseFraction(v, param string) (int64, error) {
	bad := invalidRequest(param, param+" must be a fraction from 0 to 1 with up to four decimals, like \"0.05\"")
	if v == "" {
		return 0, nil
	}
	if len(v) > 6 || (v[0] != '0' && v[0] != '1') {
		return 0, bad
	}
	var bp int64
	if v[0] == '1' {
		bp = 10000
	}
	if len(v) > 1 {
		if v[1] != '.' || len(v) == 2 {
			return 0, bad
		}
		scale := int64(1000)
		for _, c := range v[2:] {
			if c < '0' || c > '9' {
				return 0, bad
			}
			bp += int64(c-'0') * scale
			scale /= 10
		}
	}
	if bp > 10000 {
		return 0, bad
	}
	return bp, nil
}

func optionalAmount(v, param string) (zhifu.Amount, error) {
	if v == "" {
		return 0, nil
	}
	return zhifu.ParseAmount(v, param)
}

func (j campaignSpecJSON) spec() (campaign.Spec, error) {
	sp := campaign.Spec{Name: j.Name, Template: j.Template, Kinds: j.Kinds, Merchants: j.Merchants,
		Funding: j.Funding.Type, FundingID: j.Funding.MerchantID, Label: j.Label}
	var err error
	if j.Percent != "" {
		p, err := zhifu.ParseAmount(j.Percent, "percent")
		if err != nil {
			return sp, invalidRequest("percent", "percent must be a number from 0.01 to 100 with up to two decimals, like \"5\"")
		}
		sp.PercentBP = int64(p)
	}
	for _, f := range []struct {
		v     string
		param string
		dst   *zhifu.Amount
	}{{j.AmountOff, "amount_off", &sp.AmountOff}, {j.MinAmount, "min_amount", &sp.MinAmount},
		{j.MaxDiscount, "max_discount", &sp.MaxDiscount}, {j.UserDailyCap, "user_daily_cap", &sp.UserDailyCap},
		{j.Budget, "budget", &sp.Budget}, {j.Plan.SpendPerHour, "plan.spend_per_hour", &sp.PlanPerHour}} {
		if *f.dst, err = optionalAmount(f.v, f.param); err != nil {
			return sp, err
		}
	}
	if sp.PlanShareBP, err = parseFraction(j.Plan.PaymentsShare, "plan.payments_share"); err != nil {
		return sp, err
	}
	if sp.PlanRatioBP, err = parseFraction(j.Plan.DiscountRatio, "plan.discount_ratio"); err != nil {
		return sp, err
	}
	for _, f := range []struct {
		v     string
		param string
		dst   *time.Time
	}{{j.StartsAt, "starts_at", &sp.StartsAt}, {j.EndsAt, "ends_at", &sp.EndsAt}} {
		t, err := time.Parse(time.RFC3339, f.v)
		if err != nil {
			return sp, invalidRequest(f.param, f.param+" must be an RFC 3339 time such as 2026-11-11T00:00:00+08:00")
		}
		*f.dst = t.UTC()
	}
	return sp, nil
}

func specView(sp campaign.Spec) campaignSpecJSON {
	j := campaignSpecJSON{Name: sp.Name, Template: sp.Template, Kinds: sp.Kinds, Merchants: sp.Merchants,
		MinAmount: sp.MinAmount.String(), MaxDiscount: sp.MaxDiscount.String(), UserDailyCap: sp.UserDailyCap.String(),
		Budget: sp.Budget.String(), StartsAt: formatAPITime(sp.StartsAt), EndsAt: formatAPITime(sp.EndsAt),
		Funding: campaignFundingJSON{Type: sp.Funding, MerchantID: sp.FundingID},
		Plan:    campaignPlanJSON{SpendPerHour: sp.PlanPerHour.String()}, Label: sp.Label}
	if j.Merchants == nil {
		j.Merchants = []string{}
	}
	if sp.Template == campaign.PercentOff {
		j.Percent = zhifu.Amount(sp.PercentBP).String()
	} else {
		j.AmountOff = sp.AmountOff.String()
	}
	if sp.PlanShareBP > 0 {
		j.Plan.PaymentsShare = fractionText(sp.PlanShareBP)
	}
	if sp.PlanRatioBP > 0 {
		j.Plan.DiscountRatio = fractionText(sp.PlanRatioBP)
	}
	return j
}

func optionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	v := formatAPITime(t)
	return &v
}

func (s *Server) campaignView(r *nethttp.Request, c *campaign.Campaign) (campaignJSON, error) {
	left, err := s.svc.Campaigns.Budget(r.Context(), c)
	if err != nil {
		return campaignJSON{}, err
	}
	v := campaignJSON{CampaignID: c.CampaignID, campaignSpecJSON: specView(c.Spec), Status: c.Status,
		StatusReason: c.StatusReason, Version: c.Version, Funded: c.Funded.String(), BudgetLeft: left.String(),
		Returned: c.Returned.String(), CreatedBy: c.CreatedBy, ChangedBy: c.ChangedBy,
		CreatedAt: formatAPITime(c.CreatedAt), ChangedAt: formatAPITime(c.ChangedAt), LiveAt: optionalTime(c.LiveAt),
		WidenedAt: optionalTime(c.WidenedAt), StoppedAt: optionalTime(c.StoppedAt)}
	return v, nil
}

func (s *Server) handleCreateCampaign(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.saveCampaign(w, r, nethttp.StatusCreated, func(op *identity.Operator, sp campaign.Spec) (*campaign.Campaign, *approval.Proposal, error) {
		return s.svc.Campaigns.Create(r.Context(), op, sp)
	})
}

func (s *Server) handleUpdateCampaign(w nethttp.ResponseWriter, r *nethttp.Request) error {
	return s.saveCampaign(w, r, nethttp.StatusOK, func(op *identity.Operator, sp campaign.Spec) (*campaign.Campaign, *approval.Proposal, error) {
		return s.svc.Campaigns.Update(r.Context(), op, r.PathValue("campaign_id"), sp)
	})
}

// saveCampaign reads a campaign's spec and saves it with save: the
// campaign as saved, waiting for the approval it names.
func (s *Server) saveCampaign(w nethttp.ResponseWriter, r *nethttp.Request, status int,
	save func(*identity.Operator, campaign.Spec) (*campaign.Campaign, *approval.Proposal, error)) error {
	var req campaignSpecJSON
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	sp, err := req.spec()
	if err != nil {
		return err
	}
	c, p, err := save(identity.OperatorFrom(r.Context()), sp)
	if err != nil {
		return err
	}
	v, err := s.campaignView(r, c)
	if err != nil {
		return err
	}
	v.ApprovalID = p.ID
	w.Header().Set("Location", "/v1/admin/campaigns/"+c.CampaignID)
	writeJSON(w, status, v)
	return nil
}

func (s *Server) handleGetCampaign(w nethttp.ResponseWriter, r *nethttp.Request) error {
	c, err := s.svc.Campaigns.Get(r.Context(), r.PathValue("campaign_id"))
	if err != nil {
		return err
	}
	v, err := s.campaignView(r, c)
	if err != nil {
		return err
	}
	if v.ApprovalID, err = s.svc.Campaigns.PendingApproval(r.Context(), c.CampaignID); err != nil {
		return err
	}
	f, ok, err := s.svc.Campaigns.Figures(r.Context(), c.CampaignID)
	if err != nil {
		return err
	}
	if ok {
		v.Monitor = &figuresJSON{WindowSeconds: f.Window.Seconds(), Spend: f.Spend.String(),
			SpendAllowed: f.Allowed.String(), Payments: f.Payments, Discounted: f.Discounted,
			Share: fractionText(f.ShareBP), Ratio: fractionText(f.RatioBP)}
		if f.AllowedBP > 0 {
			v.Monitor.ShareAllowed = fractionText(f.AllowedBP)
		}
		if f.AllowedRBP > 0 {
			v.Monitor.RatioAllowed = fractionText(min(f.AllowedRBP, 10000))
		}
	}
	writeJSON(w, nethttp.StatusOK, v)
	return nil
}

func (s *Server) handleListCampaigns(w nethttp.ResponseWriter, r *nethttp.Request) error {
	limit, err := pageLimit(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	list, more, err := s.svc.Campaigns.List(r.Context(), q.Get("status"), q.Get("starting_after"), limit)
	if err != nil {
		return err
	}
	resp := struct {
		Data    []campaignJSON `json:"data"`
		HasMore bool           `json:"has_more"`
	}{Data: make([]campaignJSON, 0, len(list)), HasMore: more}
	for _, c := range list {
		v, err := s.campaignView(r, c)
		if err != nil {
			return err
		}
		resp.Data = append(resp.Data, v)
	}
	writeJSON(w, nethttp.StatusOK, resp)
	return nil
}

func (s *Server) handleCampaignLimits(w nethttp.ResponseWriter, r *nethttp.Request) error {
	l := s.svc.Campaigns.Limits()
	writeJSON(w, nethttp.StatusOK, map[string]any{
		"max_percent": zhifu.Amount(l.MaxPercentBP).String(), "max_discount": l.MaxDiscount.String(),
		"max_user_daily_cap": l.MaxUserDailyCap.String(), "max_budget": l.MaxBudget.String(),
		"max_days": int(l.MaxDuration / (24 * time.Hour)), "funding_kinds": l.FundingKinds,
	})
	return nil
}

func (s *Server) handleApproveCampaign(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := decodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	id := r.PathValue("campaign_id")
	pending, err := s.svc.Campaigns.PendingApproval(r.Context(), id)
	if err != nil {
		return err
	}
	if pending == "" {
		if _, err := s.svc.Campaigns.Get(r.Context(), id); err != nil {
			return err
		}
		return &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "campaign_id",
			Message: "campaign " + id + " has no change waiting for approval"}
	}
	if _, err := s.svc.Approvals.Approve(r.Context(), pending, identity.OperatorFrom(r.Context())); err != nil {
		return err
	}
	return s.handleGetCampaign(w, r)
}

func (s *Server) handleStopCampaign(status string) handlerFunc {
	return func(w nethttp.ResponseWriter, r *nethttp.Request) error {
		var req struct {
			Reason string `json:"reason"`
		}
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		op, id := identity.OperatorFrom(r.Context()), r.PathValue("campaign_id")
		var err error
		if status == campaign.Killed {
			_, err = s.svc.Campaigns.Kill(r.Context(), op, id, req.Reason)
		} else {
			if req.Reason == "" {
				return invalidRequest("reason", "say why the campaign is paused")
			}
			_, err = s.svc.Campaigns.Pause(r.Context(), op.OperatorID, id, req.Reason)
		}
		if err != nil {
			return err
		}
		return s.handleGetCampaign(w, r)
	}
}

func (s *Server) handleDryRun(w nethttp.ResponseWriter, r *nethttp.Request) error {
	if err := decodeOptionalJSON(r, &struct{}{}); err != nil {
		return err
	}
	d, err := s.svc.Campaigns.DryRun(r.Context(), r.PathValue("campaign_id"))
	if err != nil {
		return err
	}
	kinds := map[string]any{}
	for k, t := range d.ByKind {
		kinds[k] = map[string]any{"payments": t.Payments, "discounted": t.Discounted, "discount": t.Discount.String()}
	}
	writeJSON(w, nethttp.StatusOK, map[string]any{
		"campaign_id": d.CampaignID, "from": formatAPITime(d.From), "to": formatAPITime(d.To),
		"payments": d.Payments, "discounted": d.Discounted, "payers_reached": d.Payers,
		"discount": d.Discount.String(), "budget": d.Budget.String(), "budget_exhausted_at": optionalTime(d.ExhaustedAt),
		"by_kind": kinds, "truncated": d.Truncated, "note": d.Note,
	})
	return nil
}
