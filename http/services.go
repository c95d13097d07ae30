package http

import (
	"zhifu/approval"
	"zhifu/billpay"
	"zhifu/campaign"
	"zhifu/channel"
	"zhifu/checkout"
	"zhifu/gateway"
	"zhifu/identity"
	"zhifu/recon"
	"zhifu/trade"
	"zhifu/wallet"
)

// Services are the business services behind the API. A nil service leaves
// its routes unregistered, so the server can run with the ledger alone.
type Services struct {
	Identity *identity.Service
	Wallet   *wallet.Service
	Trades   *trade.Service
	// Checkout pays trades: Trades' pay route and the cashier's pay form
	// (with Gateway) need it.
	Checkout *checkout.Service
	Channels *channel.Service
	Gateway  *gateway.Service
	// Approvals is the four-eyes rule for operators' decisions; it needs
	// Identity, whose operators decide.
	Approvals *approval.Service
	// Recon is reconciliation, its review items and custody.
	Recon *recon.Service
	// Campaigns are the marketing campaigns; they need Approvals.
	Campaigns *campaign.Service
	// BillPay pays billers (bill payments and the billers' list).
	BillPay *billpay.Service
}
