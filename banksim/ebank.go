package banksim

import (
	"html/template"
	"net/http"
	"net/url"
	"strconv"

	"zhifu"
	"zhifu/bankapi"
)

// ebankParams are an online-banking link's checked parameters.
type ebankParams struct {
	RequestID   string
	Amount      int64
	ReturnURL   string
	CallbackURL string
	// Hidden carries the signed parameters and sig into the form, so the
	// confirmation is checked exactly as the link was.
	Hidden url.Values
}

// ebankPage is the data of the page template.
type ebankPage struct {
	Bank      string
	Amount    string
	RequestID string
	Hidden    url.Values
	Error     string
}

var ebankTemplate = template.Must(template.New("ebank").Parse(`<!doctype html>
<html lang="zh"><head><meta charset="utf-8"><title>{{.Bank}} 网上银行</title></head>
<body>
<h1>{{.Bank}} 网上银行 · Online banking</h1>
<p>Payment <code>{{.RequestID}}</code>: <strong>¥{{.Amount}}</strong></p>
{{with .Error}}<p role="alert" style="color:#b00">{{.}}</p>{{end}}
<form method="post">
{{range $k, $v := .Hidden}}{{range $v}}<input type="hidden" name="{{$k}}" value="{{.}}">
{{end}}{{end}}<p><label>bankapi.Card number <input name="card_no" inputmode="numeric" autocomplete="cc-number" required></label></p>
<p><label>Holder <input name="holder" autocomplete="cc-name" required></label></p>
<p><button type="submit">Confirm payment</button></p>
</form>
</body></html>
`))

// checkEbank checks a link's signature, expiry and parameters; on failure
// it has answered and returns false.
func (s *Sim) checkEbank(w http.ResponseWriter, b *bankState, q url.Values) (ebankParams, bool) {
	if !bankapi.VerifyEbankQuery(b.secret, q) {
		writeError(w, http.StatusUnauthorized, bankapi.CodeInvalidSignature, "the payment link's signature is not valid")
		return ebankParams{}, false
	}
	if e := q.Get("expires"); e != "" {
		exp, err := strconv.ParseInt(e, 10, 64)
		if err != nil || s.now().Unix() >= exp {
			writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "the payment link has expired")
			return ebankParams{}, false
		}
	}
	p := ebankParams{RequestID: q.Get("request_id"), ReturnURL: q.Get("return_url"),
		CallbackURL: q.Get("callback_url"), Hidden: url.Values{}}
	amount, err := strconv.ParseInt(q.Get("amount"), 10, 64)
	p.Amount = amount
	in := txnIn{RequestID: p.RequestID, CardToken: "-", Amount: amount, CallbackURL: p.CallbackURL}
	if err == nil {
		err = checkTxn(in)
	}
	if err == nil {
		err = checkCallbackURL(p.ReturnURL, "return_url", false)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "bad payment link: "+err.Error())
		return ebankParams{}, false
	}
	for _, k := range bankapi.EbankSignedParams() {
		if v, ok := q[k]; ok {
			p.Hidden[k] = v
		}
	}
	p.Hidden["sig"] = q["sig"]
	return p, true
}

func (s *Sim) renderEbank(w http.ResponseWriter, status int, b *bankState, p ebankParams, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	ebankTemplate.Execute(w, ebankPage{Bank: b.name, Amount: zhifu.Amount(p.Amount).String(),
		RequestID: p.RequestID, Hidden: p.Hidden, Error: msg})
}

// handleEbankPage shows the confirmation page of a signed link.
func (s *Sim) handleEbankPage(w http.ResponseWriter, r *http.Request, b *bankState, _ Scenario) {
	p, ok := s.checkEbank(w, b, r.URL.Query())
	if !ok {
		return
	}
	s.renderEbank(w, http.StatusOK, b, p, "")
}

// handleEbankConfirm debits the card the person entered, as POST /debits
// would, and sends them back to the platform.
func (s *Sim) handleEbankConfirm(w http.ResponseWriter, r *http.Request, b *bankState, sc Scenario) {
	r.Body = http.MaxBytesReader(w, r.Body, bodyBytesMax)
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "bad form")
		return
	}
	p, ok := s.checkEbank(w, b, r.PostForm)
	if !ok {
		return
	}
	card, code, err := s.provision(r.Context(), b, r.PostForm.Get("card_no"), r.PostForm.Get("holder"))
	if err != nil {
		if code == bankapi.CodeSystemError {
			s.answerProvisionError(w, code, err)
			return
		}
		s.renderEbank(w, http.StatusBadRequest, b, p, err.Error())
		return
	}
	in := txnIn{Bank: b.name, RequestID: p.RequestID, Kind: bankapi.KindDebit, Channel: channelEbank,
		CardToken: card.CardToken, Amount: p.Amount, CallbackURL: p.CallbackURL}
	t, res, err := s.submit(r.Context(), b, sc, in)
	switch {
	case err != nil:
		s.log.Error("ebank payment failed", "bank", b.name, "request_id", in.RequestID, "err", err)
		writeError(w, http.StatusInternalServerError, bankapi.CodeSystemError, "system error")
		return
	case res == submitConflict:
		s.renderEbank(w, http.StatusConflict, b, p, "this payment was already made with another card")
		return
	}
	if s.injectTimeout(w, r, b, sc) {
		return
	}
	back, err := url.Parse(p.ReturnURL)
	if err != nil {
		writeError(w, http.StatusBadRequest, bankapi.CodeInvalidRequest, "bad return_url")
		return
	}
	q := back.Query()
	q.Set("request_id", t.RequestID)
	q.Set("status", t.Status)
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
}
