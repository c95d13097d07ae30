// Package trade is trades: the state machine as a pure table of which
// event moves a trade from which status to which, for instant and escrow
// trades, and the error each forbidden move answers (state.go, with no
// database and no clock); the pure rules of each move, which decide the
// new trade and its ledger transfer (rules.go); and the service that
// stores trades and runs those rules inside ledger batches: create, pay
// from the balance, collect, ship, confirm, close, refund, payment codes,
// the durable timers that close unpaid trades and finish confirmed ones,
// and the merchants' daily bills: the trade bill and the account bill
// (every movement of the merchant's wallet, from the ledger), in Alipay's
// column orders, written once per merchant and day by a bounded daily
// job. How a trade is paid (balance, card, or both) and what the buyer is
// charged is package checkout's decision: trade does not know the bank
// channels. It pays a trade whose money reached the buyer's wallet
// another way by the same rule, in the caller's transaction (Settle), and
// shows the card part a pay request started as checkout fills it in
// (Trade.Payment).
package trade

import "zhifu"

// Status is a trade's status, named as Alipay names them.
type Status string

const (
	WaitBuyerPay          Status = "WAIT_BUYER_PAY"
	WaitSellerSendGoods   Status = "WAIT_SELLER_SEND_GOODS"
	WaitBuyerConfirmGoods Status = "WAIT_BUYER_CONFIRM_GOODS"
	Success               Status = "TRADE_SUCCESS"
	Finished              Status = "TRADE_FINISHED"
	Closed                Status = "TRADE_CLOSED"
)

// Final reports whether no event can move the trade any more.
func (s Status) Final() bool { return s == Finished || s == Closed }

// Mode is how the seller is paid.
type Mode string

const (
	// Instant pays the seller when the buyer pays.
	Instant Mode = "instant"
	// Escrow holds the buyer's money until the buyer confirms receipt.
	Escrow Mode = "escrow"
)

// Event is something that happens to a trade.
type Event string

const (
	Pay        Event = "pay"         // the buyer paid
	Close      Event = "close"       // the merchant closed it, or it timed out unpaid
	Ship       Event = "ship"        // the seller shipped (escrow)
	Confirm    Event = "confirm"     // the buyer confirmed, or confirm_timeout passed (escrow)
	Refund     Event = "refund"      // a partial refund: the status stays
	FullRefund Event = "full_refund" // the last refund: everything paid is returned
	WindowEnd  Event = "window_end"  // the refund window of an instant trade passed
)

type key struct {
	mode  Mode
	from  Status
	event Event
}

// transitions is the whole state machine. A move not listed is refused.
var transitions = map[key]Status{
	{Instant, WaitBuyerPay, Pay}:   Success,
	{Instant, WaitBuyerPay, Close}: Closed,
	{Instant, Success, Refund}:     Success,
	{Instant, Success, FullRefund}: Closed,
	{Instant, Success, WindowEnd}:  Finished,

	{Escrow, WaitBuyerPay, Pay}:                 WaitSellerSendGoods,
	{Escrow, WaitBuyerPay, Close}:               Closed,
	{Escrow, WaitSellerSendGoods, Ship}:         WaitBuyerConfirmGoods,
	{Escrow, WaitSellerSendGoods, Refund}:       WaitSellerSendGoods,
	{Escrow, WaitSellerSendGoods, FullRefund}:   Closed,
	{Escrow, WaitBuyerConfirmGoods, Confirm}:    Finished,
	{Escrow, WaitBuyerConfirmGoods, Refund}:     WaitBuyerConfirmGoods,
	{Escrow, WaitBuyerConfirmGoods, FullRefund}: Closed,
}

// Next returns the status event moves a trade to, or the API error code
// for a forbidden move: TRADE_HAS_SUCCESS for paying a trade already paid,
// TRADE_HAS_CLOSE for anything on a closed trade, TRADE_STATUS_ERROR for any
// other move the table does not list.
func Next(mode Mode, from Status, ev Event) (Status, string) {
	if to, ok := transitions[key{mode, from, ev}]; ok {
		return to, ""
	}
	switch {
	case from == Closed:
		return from, zhifu.TradeHasClose
	case ev == Pay && from != WaitBuyerPay:
		return from, zhifu.TradeHasSuccess
	}
	return from, zhifu.TradeStatusError
}

// Paid reports whether money has been taken from the buyer in this status.
func Paid(s Status) bool {
	switch s {
	case WaitSellerSendGoods, WaitBuyerConfirmGoods, Success, Finished:
		return true
	}
	return false
}
