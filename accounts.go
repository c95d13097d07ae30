package zhifu

// Account codes: the chart of accounts, one set per currency. The ledger
// stores the code on every account (ledger.Account.Code) and leaves its
// meaning to us; the custody check and reports group accounts by it.
const (
	// AccountWallet is a user's available balance: a liability to the user
	// that never goes below zero.
	AccountWallet uint16 = 1
	// AccountFrozen holds a user's money set aside for withdrawals in flight
	// and holds: still owed to the user, not spendable.
	AccountFrozen uint16 = 2
	// AccountEscrow holds buyers' money for escrow trades until the buyer
	// confirms receipt or is refunded: owed to a customer either way.
	AccountEscrow uint16 = 3
	// AccountBankSettlement is the platform's money at one bank, the account
	// that bank statements are matched against. It is debit-normal: money at
	// the bank shows as a negative Balance().
	AccountBankSettlement uint16 = 10
	// AccountBankInTransit holds debits and payouts sent to a bank whose
	// outcome is not yet known. Still the platform's money at the bank side.
	AccountBankInTransit uint16 = 11
	// AccountCampaignBudget funds one campaign's discounts; platform money.
	AccountCampaignBudget uint16 = 20
	// AccountRevenue collects the platform's fees.
	AccountRevenue uint16 = 30
	// AccountOwnFunds is the platform's own money, the difference between
	// bank funds and customer funds.
	AccountOwnFunds uint16 = 31
	// AccountSuspense holds reconciliation differences until an operator
	// resolves them (package recon): money a bank holds that the platform
	// cannot yet give to anyone (a credit balance), or money the platform
	// recorded at a bank that the bank never received (a debit balance, a
	// loss until recovered or written off against own funds).
	AccountSuspense uint16 = 32
)

// IsCustomerFunds reports whether an account of this code holds money owed
// to customers (备付金 liabilities): wallets, frozen funds and escrow.
func IsCustomerFunds(code uint16) bool {
	switch code {
	case AccountWallet, AccountFrozen, AccountEscrow:
		return true
	}
	return false
}

// IsPlatformFunds reports whether an account of this code holds the
// platform's own money: revenue, own funds, suspense and campaign budgets.
// Custody: customer funds equal bank funds less platform funds.
func IsPlatformFunds(code uint16) bool {
	switch code {
	case AccountRevenue, AccountOwnFunds, AccountSuspense, AccountCampaignBudget:
		return true
	}
	return false
}

// IsBankFunds reports whether an account of this code holds the platform's
// money at a bank: settlement and in-transit accounts. Custody requires bank
// funds to cover customer funds.
func IsBankFunds(code uint16) bool {
	switch code {
	case AccountBankSettlement, AccountBankInTransit:
		return true
	}
	return false
}
