package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartwalle/alipay/v3"

	"zhifu"
)

// Merchants' bills end to end: a day of trades, refunds and transfers for
// two merchants; each merchant's account bill (signcustomer) matches the
// ledger's entries of its wallet line by line, with running balances; the
// trade bill holds the day's trades and refunds; the daily job writes each
// bill once, however often it runs, and serves it as it was; the gateway's
// download link serves both bills.

func TestReportBills(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) { reportBills(t, backend) })
	}
}

// newEnvAt starts the platform as newEnv does, its manual clock at start.
func newEnvAt(t *testing.T, backend string, start time.Time) *env {
	t.Helper()
	dir := t.TempDir()
	db := testDatabase(t, dir, backend)
	clock := &manualClock{now: start}
	tm := newTestMain(harnessEnv)
	tm.Clock = clock
	serveTestMain(t, tm, "--data", dir, "--db", db)
	return &env{t: t, m: tm, url: tm.URL(), token: tm.AdminToken(), clock: clock}
}

// blMerchant is one merchant of the test and what it did that day.
type blMerchant struct {
	w       *trWorld // as this merchant
	app     *gwApp   // nil for a merchant without the gateway
	trades  int      // paid that day
	refunds int
}

func reportBills(t *testing.T, backend string) {
	// The day of the bills is yesterday: the gateway's SDK signs with
	// the real time, which the clock reaches once the day is over. The
	// clock starts at yesterday's noon in Beijing, so that the minutes the
	// test moves it on stay within that day whatever the hour of the run.
	now := time.Now()
	b := now.In(gwBeijing)
	e := newEnvAt(t, backend, time.Date(b.Year(), b.Month(), b.Day()-1, 12, 0, 0, 0, gwBeijing))
	date := e.clock.Now().In(gwBeijing).Format("2006-01-02")
	w := newTrWorld(t, e)
	buyer, friend := w.user("buyer"), w.user("friend")
	w.fund(buyer, "5000.00")
	w.fund(friend, "300.00")
	sellerA := w.user("sellerA")
	appA := gwNewApp(t, w, sellerA, "")
	wa := &trWorld{env: e, seller: sellerA, mk: appA.mk}
	ms := []*blMerchant{{w: wa, app: appA}, {w: w}}

	for i, m := range ms {
		// An instant trade, paid, partly refunded twice.
		no := m.w.mustCreate(map[string]any{"total_amount": fmt.Sprintf("%d.50", 120+i), "subject": "茶叶 Tea"})
		if s, out := m.w.pay(buyer, no); s != http.StatusOK {
			t.Fatalf("pay: %d %v", s, out)
		}
		for j, amount := range []string{"20.00", "0.50"} {
			if s, out := m.w.move(no, "refunds", map[string]string{"out_request_no": fmt.Sprintf("r%d", j), "refund_amount": amount,
				"reason": "damaged"}); s != http.StatusCreated {
				t.Fatalf("refund: %d %v", s, out)
			}
		}
		// An escrow trade, paid, shipped and confirmed: escrow to the seller.
		esc := m.w.mustCreate(map[string]any{"mode": "escrow", "total_amount": "88.00", "subject": "Teapot"})
		if s, out := m.w.pay(buyer, esc); s != http.StatusOK {
			t.Fatalf("pay escrow: %d %v", s, out)
		}
		if s, out := m.w.move(esc, "ship", map[string]string{"logistics_company": "SF", "tracking_no": "SF1"}); s != http.StatusOK {
			t.Fatalf("ship: %d %v", s, out)
		}
		var out map[string]any
		if s := e.bearer(buyer.token, "POST", "/v1/trades/"+esc+"/confirm", nil, &out); s != http.StatusOK {
			t.Fatalf("confirm: %d %v", s, out)
		}
		// Money in from a friend and out to the friend, by transfer.
		if s := e.bearer(friend.token, "POST", "/v1/transfers", map[string]string{"to_user_id": m.w.seller.id, "amount": "35.00", "memo": "=SUM(A1)"}, &out); s != http.StatusCreated {
			t.Fatalf("transfer in: %d %v", s, out)
		}
		if s := e.bearer(m.w.seller.token, "POST", "/v1/transfers", map[string]string{"to_user_id": friend.id, "amount": "12.34", "memo": "change"}, &out); s != http.StatusCreated {
			t.Fatalf("transfer out: %d %v", s, out)
		}
		m.trades, m.refunds = 2, 2
		e.clock.Advance(time.Minute)
	}

	// Today's bills, built from the records.
	live := map[string]string{}
	for _, m := range ms {
		for _, typ := range []string{"trade", "signcustomer"} {
			live[m.w.mk.id+typ] = blCheck(t, e, m, date, typ)
		}
	}

	// The day ends; the daily job writes each bill once.
	e.clock.Advance(now.Add(time.Minute).Sub(e.clock.Now()))
	n1, err := e.m.Trades.WriteBills(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stored := blStored(t, e, date)
	n2, err := e.m.Trades.WriteBills(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The server's own job may have run first: together they wrote each
	// bill once, and the second run nothing.
	if n1 > 4 || n2 != 0 || len(stored) != 4 {
		t.Fatalf("job runs wrote %d then %d bills; stored %v", n1, n2, stored)
	}
	if again := blStored(t, e, date); fmt.Sprint(again) != fmt.Sprint(stored) {
		t.Fatalf("the second run rewrote bills: %v then %v", stored, again)
	}
	for _, m := range ms {
		for _, typ := range []string{"trade", "signcustomer"} {
			if got := blCheck(t, e, m, date, typ); got != live[m.w.mk.id+typ] {
				t.Errorf("%s %s bill as stored differs from the one built that day:\n%s\nwas\n%s", m.w.mk.id, typ, got, live[m.w.mk.id+typ])
			}
		}
	}

	// The gateway's download links serve them.
	for _, typ := range []string{"trade", "signcustomer"} {
		bu, err := appA.client.BillDownloadURLQuery(context.Background(), alipay.BillDownloadURLQuery{BillType: typ, BillDate: date})
		if err != nil || !bu.IsSuccess() || bu.BillDownloadURL == "" {
			t.Fatalf("%s bill url: %v %+v", typ, err, bu)
		}
		if got := gwGet(t, bu.BillDownloadURL); got != live[appA.mk.id+typ] {
			t.Errorf("the %s link serves\n%s\nwant\n%s", typ, got, live[appA.mk.id+typ])
		}
		if typ == "signcustomer" {
			if s, _ := gwStatus(strings.Replace(bu.BillDownloadURL, "type=signcustomer", "type=trade", 1)); s != http.StatusUnauthorized {
				t.Errorf("a link whose type was changed answered %d", s)
			}
		}
	}
}

// blStored lists the stored bills of date: "merchant type lines parts
// created_at".
func blStored(t *testing.T, e *env, date string) []string {
	t.Helper()
	rows, err := e.m.store.Reader().Query(context.Background(), `SELECT b.merchant_id, b.bill_type, b.lines, b.parts,
		b.created_at, (SELECT COUNT(*) FROM bill_parts p WHERE p.merchant_id = b.merchant_id AND p.bill_date = b.bill_date
		AND p.bill_type = b.bill_type) FROM bills b WHERE b.bill_date = ? ORDER BY b.merchant_id, b.bill_type`, date)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var m, typ string
		var lines, parts, created, partRows int64
		if err := rows.Scan(&m, &typ, &lines, &parts, &created, &partRows); err != nil {
			t.Fatal(err)
		}
		if parts != partRows {
			t.Errorf("bill %s %s says %d parts, has %d", m, typ, parts, partRows)
		}
		out = append(out, fmt.Sprintf("%s %s %d %d %d", m, typ, lines, parts, created))
	}
	return out
}

// blGet downloads a merchant's bill of date and type.
func blGet(t *testing.T, e *env, m *blMerchant, date, typ string) string {
	t.Helper()
	path := "/v1/bills?" + query("date", date) + "&" + query("type", typ)
	h := http.Header{"Authorization": {signMerchant(m.w.mk, "GET", path, "", e.clock.Now(), newNonce())}}
	s, hdr, b := e.request("GET", path, h, "")
	if s != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "text/csv") {
		t.Fatalf("bill %s: %d %s %s", typ, s, hdr.Get("Content-Type"), b)
	}
	return string(b)
}

// blCheck downloads a bill and checks it against the records: the trade
// bill's lines against what the merchant did, the account bill's against
// the ledger's entries of the merchant's wallet. It returns the bill.
func blCheck(t *testing.T, e *env, m *blMerchant, date, typ string) string {
	t.Helper()
	raw := blGet(t, e, m, date, typ)
	recs, err := csv.NewReader(strings.NewReader(raw)).ReadAll()
	if err != nil {
		t.Fatalf("%s bill is not CSV: %v\n%s", typ, err, raw)
	}
	if typ == "trade" {
		if len(recs) != 1+m.trades+m.refunds || recs[0][0] != "支付宝交易号" {
			t.Errorf("trade bill of %s: %d lines\n%s", m.w.mk.id, len(recs), raw)
		}
		return raw
	}
	want := []string{"账务流水号", "业务流水号", "商户订单号", "商品名称", "发生时间", "对方账号", "收入金额（+元）", "支出金额（-元）",
		"账户余额（元）", "交易渠道", "业务类型", "备注"}
	if strings.Join(recs[0], ",") != strings.Join(want, ",") {
		t.Fatalf("account bill header %v", recs[0])
	}
	entries := blEntries(t, e, m.w.seller.id)
	lines := recs[1:]
	if len(lines) != len(entries) || len(lines) != m.trades+m.refunds+2 {
		// Each trade's money in (paid into the wallet, or settled from
		// escrow), each refund out, and the two transfers.
		t.Fatalf("account bill of %s has %d lines, the ledger %d entries:\n%s", m.w.mk.id, len(lines), len(entries), raw)
	}
	var prev zhifu.Amount
	for i, l := range lines {
		en := entries[i]
		in, out, bal := blFen(t, l[6]), blFen(t, l[7]), blFen(t, l[8])
		if in < 0 || out > 0 || in != 0 && out != 0 {
			t.Errorf("line %d: in %s, out %s", i, l[6], l[7])
		}
		amount := in + out
		if l[0] != en.Seq || amount.String() != en.Amount || bal.String() != en.Balance {
			t.Errorf("line %d %v, ledger entry %+v", i, l, en)
		}
		if i > 0 && prev+amount != bal {
			t.Errorf("line %d: balance %s after %s and %s", i, bal, prev, amount)
		}
		prev = bal
		if _, no, _ := strings.Cut(en.TransferID, ":"); !strings.HasPrefix(no, l[1]) || l[1] == "" {
			t.Errorf("line %d business no %q for transfer %s", i, l[1], en.TransferID)
		}
		if l[11] == "=SUM(A1)" || strings.Contains(l[11], "SUM") && l[11] != "'=SUM(A1)" {
			t.Errorf("line %d: a memo that a spreadsheet would run is not defused: %q", i, l[11])
		}
	}
	// The first trade line names the trade's order number and the buyer.
	if lines[0][2] == "" || lines[0][3] != "茶叶 Tea" || lines[0][10] != "在线支付" {
		t.Errorf("first line %v", lines[0])
	}
	return raw
}

// blFen reads a yuan figure with two decimals, signed.
func blFen(t *testing.T, s string) zhifu.Amount {
	t.Helper()
	neg := strings.HasPrefix(s, "-")
	whole, frac, ok := strings.Cut(strings.TrimPrefix(s, "-"), ".")
	y, err1 := strconv.ParseInt(whole, 10, 64)
	f, err2 := strconv.ParseInt(frac, 10, 64)
	if !ok || len(frac) != 2 || err1 != nil || err2 != nil {
		t.Fatalf("not yuan: %q", s)
	}
	if neg {
		return -zhifu.Amount(y*100 + f)
	}
	return zhifu.Amount(y*100 + f)
}

// blEntry is one ledger entry as the operators' API shows it.
type blEntry struct {
	Seq        string `json:"seq"`
	TransferID string `json:"transfer_id"`
	Amount     string `json:"amount"`
	Balance    string `json:"balance"`
}

// blEntries lists the entries of the user's wallet, oldest first.
func blEntries(t *testing.T, e *env, userID string) []blEntry {
	t.Helper()
	num, ok := zhifu.ParseUserID(userID)
	if !ok {
		t.Fatalf("user id %s", userID)
	}
	var page struct {
		Data []blEntry `json:"data"`
	}
	if s := e.admin("GET", "/v1/admin/ledger/accounts/"+strconv.FormatInt(zhifu.WalletAccountID(num), 10)+"/entries?limit=100", nil, &page); s != http.StatusOK {
		t.Fatalf("entries: %d", s)
	}
	out := page.Data
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
