package http

import (
	"html/template"
	"log/slog"
	nethttp "net/http"

	"zhifu"
	"zhifu/checkout"
	"zhifu/trade"
)

// The cashier (收银台) a buyer reaches by scanning a precreated trade's QR
// code: the trade's subject and amount, and a form to log in and pay from
// the wallet balance. It is plain server-rendered HTML so it works on any
// phone without scripts.

var cashierPage = template.Must(template.New("cashier").Parse(`<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>收银台 · zhifu</title>
<style>
body{font-family:system-ui,sans-serif;max-width:28rem;margin:2rem auto;padding:0 1rem;color:#222}
.amount{font-size:2.2rem;font-weight:600;margin:.5rem 0}
.status{color:#555}.error{color:#b00020}.ok{color:#0a7d32}
label{display:block;margin:.6rem 0 .2rem}input{width:100%;padding:.5rem;font-size:1rem;box-sizing:border-box}
button{margin-top:1rem;width:100%;padding:.7rem;font-size:1.1rem;background:#1677ff;color:#fff;border:0;border-radius:6px}
</style></head><body>
<h1>收银台 Cashier</h1>
<p id="subject">{{.Trade.Subject}}</p>
<p class="amount" id="amount">¥{{.Trade.TotalAmount}}</p>
<p class="status" id="status">{{.Trade.Status}}</p>
{{if .Message}}<p class="{{.MessageClass}}" id="message">{{.Message}}</p>{{end}}
{{if .Payable}}
<form method="post" action="/cashier/{{.Trade.TradeNo}}">
<label for="login">账号 Login</label><input id="login" name="login" autocomplete="username" required>
<label for="password">密码 Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit" id="pay">余额支付 Pay from balance</button>
</form>
{{end}}
</body></html>`))

type cashierView struct {
	Trade        *trade.Trade
	Payable      bool
	Message      string
	MessageClass string
}

func (s *Server) handleCashier(w nethttp.ResponseWriter, r *nethttp.Request) {
	t, err := s.svc.Trades.Get(r.Context(), r.PathValue("trade_no"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.renderCashier(w, cashierView{Trade: t, Payable: t.Status == trade.WaitBuyerPay})
}

// handleCashierPay logs the buyer in and pays from the balance. Every
// refusal is shown on the page rather than as JSON: a person reads it.
func (s *Server) handleCashierPay(w nethttp.ResponseWriter, r *nethttp.Request) {
	r.Body = nethttp.MaxBytesReader(w, r.Body, 16<<10)
	tradeNo := r.PathValue("trade_no")
	t, err := s.svc.Trades.Get(r.Context(), tradeNo)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	view := cashierView{Trade: t, Payable: t.Status == trade.WaitBuyerPay, MessageClass: "error"}
	if err := r.ParseForm(); err != nil {
		view.Message = "请求无效 Invalid form"
		s.renderCashier(w, view)
		return
	}
	_, u, err := s.svc.Identity.Login(r.Context(), r.PostForm.Get("login"), r.PostForm.Get("password"))
	if err != nil {
		view.Message = "账号或密码错误 Wrong login or password"
		s.renderCashier(w, view)
		return
	}
	paid, err := s.svc.Checkout.Pay(r.Context(), u, tradeNo, checkout.PayParams{Method: checkout.MethodBalance})
	if err != nil {
		view.Message = cashierMessage(err)
		if zhifu.ErrorCode(err) == zhifu.SystemError {
			s.logger.Error("cashier pay", slog.String("trade_no", tradeNo), slog.Any("err", err))
		}
		s.renderCashier(w, view)
		return
	}
	s.renderCashier(w, cashierView{Trade: paid, Message: "支付成功 Paid", MessageClass: "ok"})
}

func cashierMessage(err error) string {
	switch zhifu.ErrorCode(err) {
	case zhifu.BuyerBalanceNotEnough:
		return "余额不足 Your balance is not enough"
	case zhifu.TradeHasSuccess:
		return "订单已支付 This order is already paid"
	case zhifu.TradeHasClose:
		return "订单已关闭 This order is closed"
	case zhifu.NotFound:
		return "此订单不能由您支付 This order is not yours to pay"
	}
	return "支付失败，请稍后再试 Payment failed, try again later"
}

func (s *Server) renderCashier(w nethttp.ResponseWriter, v cashierView) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
	if err := cashierPage.Execute(w, v); err != nil {
		s.logger.Error("cashier render", slog.Any("err", err))
	}
}
