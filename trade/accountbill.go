package trade

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// accountBillHeader is Alipay's account bill column order (账务明细, bill
// type signcustomer), so merchants' reconciliation scripts read it.
var accountBillHeader = []string{"账务流水号", "业务流水号", "商户订单号", "商品名称", "发生时间", "对方账号",
	"收入金额（+元）", "支出金额（-元）", "账户余额（元）", "交易渠道", "业务类型", "备注"}

// Limits of the account bill.
const (
	// accountPageMax is how many ledger rows the account bill reads at a
	// time; the trades they name are looked up a page at a time.
	accountPageMax = 500
	// ledgerClockSkew is how far a transfer's timestamp may run behind one
	// committed before it (several processes, each stamping its own batch
	// with its own clock): the search for a day's first ledger row starts
	// this much earlier, and the rows are then filtered by timestamp.
	ledgerClockSkew = time.Minute
)

// accountTypes are the 业务类型 of the transfer codes of zhifu/ids.go.
var accountTypes = map[uint16]string{
	zhifu.TransferDeposit:  "充值",
	zhifu.TransferPayment:  "在线支付",
	zhifu.TransferSettle:   "交易结算",
	zhifu.TransferRefund:   "交易退款",
	zhifu.TransferP2P:      "转账",
	zhifu.TransferTopup:    "充值",
	zhifu.TransferWithdraw: "提现",
	zhifu.TransferDiscount: "优惠",

	zhifu.TransferCardRepayment: "信用卡还款",
	zhifu.TransferBillPayment:   "生活缴费",
	zhifu.TransferCampaign:      "营销活动预算",
}

// platformAccounts name the platform's own accounts as a counterparty.
var platformAccounts = map[int64]string{
	zhifu.EscrowAccountID:   "担保账户",
	zhifu.RevenueAccountID:  "平台收入",
	zhifu.OwnFundsAccountID: "平台自有资金",
	zhifu.SuspenseAccountID: "待处理",
}

// The ledger's rows of the account, the day's, in commit order, are read
// through the store's account history (ledger.Store.EntriesAfter) between
// seq bounds found by timestamp, which keep the read to the day; the
// day's exact bounds and the holds are then left out here.

// noMove are the transfers that move no posted money: holds and their
// release. The account bill lists what changed the balance.
const noMove = int64(ledger.Pending | ledger.VoidPending)

// seqBounds finds the ledger rows that can hold the day: [seqFrom, seqTo).
func (b *Bill) seqBounds(ctx context.Context) error {
	if b.seqTo != 0 {
		return nil // found already
	}
	q := b.s.cfg.Store.Reader()
	var lo, hi int64
	if err := q.QueryRow(ctx, `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), 0) FROM transfers`).Scan(&lo, &hi); err != nil {
		return fmt.Errorf("trade: ledger bounds: %w", err)
	}
	if hi == 0 {
		b.seqFrom, b.seqTo = 1, 1 // an empty ledger
		return nil
	}
	var err error
	if b.seqFrom, err = firstSeqAt(ctx, q, lo, hi, b.from.Add(-ledgerClockSkew)); err != nil {
		return err
	}
	b.seqTo, err = firstSeqAt(ctx, q, lo, hi, b.to.Add(ledgerClockSkew))
	return err
}

// firstSeqAt returns the first seq in [lo, hi+1] whose transfer (or the
// next one, over gaps) was committed at or after at, by binary search over
// the primary key: a few dozen point reads, whatever the ledger's size.
func firstSeqAt(ctx context.Context, q ledger.Querier, lo, hi int64, at time.Time) (int64, error) {
	hi++
	for lo < hi {
		mid := lo + (hi-lo)/2
		var ts int64
		err := q.QueryRow(ctx, `SELECT ts FROM transfers WHERE seq >= ? ORDER BY seq LIMIT 1`, mid).Scan(&ts)
		if err != nil {
			return 0, fmt.Errorf("trade: ledger seq at %v: %w", at, err)
		}
		if ts >= at.UnixNano() {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo, nil
}

// accountScanPage is how many ledger rows one read of the account's
// history takes while a page of the bill, or the count, is gathered.
const accountScanPage = 2_000

// accountLines calls fn with the day's rows of the account that move money,
// in commit order, after seq after, until fn returns false or the day ends.
func (b *Bill) accountLines(ctx context.Context, after int64, fn func(accountRow) bool) error {
	from, to := b.from.UnixNano(), b.to.UnixNano()
	for {
		es, err := b.s.cfg.Store.EntriesAfter(ctx, b.wallet, after, b.seqTo, accountScanPage)
		if err != nil {
			return err
		}
		for _, e := range es {
			t := e.Transfer
			if t.Timestamp < from || t.Timestamp >= to || int64(t.Flags)&noMove != 0 {
				continue
			}
			if !fn(accountRow{seq: e.Seq, id: t.ID, debit: t.DebitAccountID, credit: t.CreditAccountID,
				amount: t.Amount, flags: int64(t.Flags), code: int64(t.Code), userData: t.UserData,
				ts: t.Timestamp, debitBal: t.DebitBalance, creditBal: t.CreditBalance}) {
				return nil
			}
		}
		if len(es) < accountScanPage {
			return nil
		}
		after = es[len(es)-1].Seq
	}
}

func (b *Bill) countAccountLines(ctx context.Context) (int64, error) {
	if err := b.seqBounds(ctx); err != nil {
		return 0, err
	}
	var n int64
	if err := b.accountLines(ctx, b.seqFrom-1, func(accountRow) bool { n++; return true }); err != nil {
		return 0, fmt.Errorf("trade: count account bill: %w", err)
	}
	return n, nil
}

// accountRow is one ledger row of the account bill.
type accountRow struct {
	seq, debit, credit, amount, flags, ts, debitBal, creditBal int64
	code                                                       int64
	id, userData                                               string
}

// writeAccountLines writes the day's movements of the merchant's wallet in
// ledger order, each with the balance after it, a page at a time, never
// more than BillLinesMax.
func (b *Bill) writeAccountLines(ctx context.Context, cw recordWriter) error {
	if err := b.seqBounds(ctx); err != nil {
		return err
	}
	after, written := b.seqFrom-1, 0
	for written < BillLinesMax {
		page, err := b.accountPage(ctx, after, min(accountPageMax, BillLinesMax-written))
		if err != nil {
			return err
		}
		trades, err := b.pageTrades(ctx, page)
		if err != nil {
			return err
		}
		for _, r := range page {
			if err := cw.Write(b.accountLine(r, trades[businessNo(r.id)])); err != nil {
				return err
			}
		}
		written += len(page)
		if len(page) < accountPageMax {
			return nil
		}
		after = page[len(page)-1].seq
	}
	return nil
}

func (b *Bill) accountPage(ctx context.Context, after int64, n int) ([]accountRow, error) {
	page := make([]accountRow, 0, n)
	err := b.accountLines(ctx, after, func(r accountRow) bool {
		page = append(page, r)
		return len(page) < n
	})
	if err != nil {
		return nil, fmt.Errorf("trade: account bill: %w", err)
	}
	return page, nil
}

// pageTrades loads the trades a page's transfers belong to.
func (b *Bill) pageTrades(ctx context.Context, page []accountRow) (map[string]*Trade, error) {
	var nos []any
	seen := make(map[string]bool)
	for _, r := range page {
		if no := businessNo(r.id); isTradeTransfer(r.id) && !seen[no] {
			seen[no] = true
			nos = append(nos, no)
		}
	}
	out := make(map[string]*Trade, len(nos))
	if len(nos) == 0 {
		return out, nil
	}
	rows, err := b.s.cfg.Store.Reader().Query(ctx, `SELECT `+tradeColumns+` FROM trades WHERE trade_no IN (?`+
		strings.Repeat(", ?", len(nos)-1)+`)`, nos...)
	if err != nil {
		return nil, fmt.Errorf("trade: account bill trades: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		t, err := scanTrade(rows)
		if err != nil {
			return nil, fmt.Errorf("trade: account bill trades: %w", err)
		}
		out[t.TradeNo] = t
	}
	return out, rows.Err()
}

// isTradeTransfer says whether a transfer id is a trade's: pay:, settle:
// or refund: and the trade_no.
func isTradeTransfer(id string) bool {
	kind, _, _ := strings.Cut(id, ":")
	return kind == "pay" || kind == "settle" || kind == "refund"
}

// businessNo is the business object a transfer id names: the trade of
// "refund:<trade_no>:<out_request_no>", the top-up of "topup:<id>", the
// withdrawal of "wd:<id>:paid", the transfer of "p2p:<id>".
func businessNo(id string) string {
	_, rest, ok := strings.Cut(id, ":")
	if !ok {
		return id
	}
	no, _, _ := strings.Cut(rest, ":")
	return no
}

// accountLine is one movement in accountBillHeader's order.
func (b *Bill) accountLine(r accountRow, t *Trade) []string {
	amount, balance, other := zhifu.Amount(r.amount), zhifu.Amount(r.creditBal), r.debit
	if r.debit == b.wallet {
		amount, balance, other = -amount, zhifu.Amount(r.debitBal), r.credit
	}
	in, out := amount, zhifu.Amount(0)
	if amount < 0 {
		in, out = 0, amount
	}
	outTradeNo, subject, counterparty := "", "", accountName(other)
	if t != nil {
		// The other side of a trade is a person, even when the money went
		// through escrow: the buyer, or the seller for the buyer's wallet.
		outTradeNo, subject, counterparty = t.OutTradeNo, cellText(t.Subject), t.BuyerID
		if t.BuyerID == b.userID {
			counterparty = t.SellerID
		}
	}
	typ, ok := accountTypes[uint16(r.code)]
	if !ok {
		typ = "其他"
	}
	return []string{strconv.FormatInt(r.seq, 10), businessNo(r.id), outTradeNo, subject,
		billTime(time.Unix(0, r.ts)), counterparty, in.String(), out.String(), balance.String(), channelOf(other),
		typ, cellText(r.userData)}
}

// accountName names a ledger account as a counterparty: a user's id, a
// bank, or one of the platform's accounts.
func accountName(id int64) string {
	stride := zhifu.WalletAccountID(1) - zhifu.WalletAccountID(0)
	for _, first := range []int64{zhifu.WalletAccountID(0), zhifu.FrozenAccountID(0)} {
		if d := id - first; d > 0 && d%stride == 0 {
			return zhifu.UserIDOf(d / stride)
		}
	}
	if bank := bankOf(id); bank != "" {
		return bank
	}
	if name, ok := platformAccounts[id]; ok {
		return name
	}
	return "平台"
}

// bankOf is the bank whose settlement or in-transit account id is.
func bankOf(id int64) string {
	for i, name := range zhifu.Banks {
		if id == zhifu.BankSettlementAccountID(i) || id == zhifu.BankInTransitAccountID(i) {
			return name
		}
	}
	return ""
}

// channelOf is the 交易渠道: the bank money came from or went to, else the
// balance.
func channelOf(other int64) string {
	if bank := bankOf(other); bank != "" {
		return bank
	}
	return "余额"
}
