package zhifu

import (
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strconv"
	"time"
)

// A NewID is its prefix, the date, clockIDDigits and randomIDDigits; a
// KeyedID its prefix and keyedIDDigits.
const (
	clockIDDigits  = 8
	randomIDDigits = 12
	keyedIDDigits  = 28
)

// NewID returns prefix, now's UTC date, the millisecond of that day in
// eight digits and 12 random digits: "D20260101" + "45296789" +
// "123456789012". The date makes ids sort by day, as Alipay's do, and the
// millisecond within it, so that new rows are inserted at the end of an
// index keyed by id, not on a random page of it; the random part makes
// them unguessable and unique (10^12 a millisecond).
func NewID(prefix string, now time.Time) string {
	now = now.UTC()
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	b := make([]byte, 0, len(prefix)+8+clockIDDigits+randomIDDigits)
	b = append(b, prefix...)
	b = now.AppendFormat(b, "20060102")
	b = fmt.Appendf(b, "%0*d", clockIDDigits, now.Sub(day).Milliseconds())
	r := make([]byte, randomIDDigits)
	rand.Read(r) // never fails (crypto/rand's documented contract since Go 1.24)
	for _, c := range r {
		// 256 is not a multiple of 10; the slight bias toward low digits
		// does not matter for an id that only has to be unique.
		b = append(b, '0'+c%10)
	}
	return string(b)
}

// KeyedID returns prefix and 28 digits derived from the caller and a key of
// theirs: the same pair always names the same object.
func KeyedID(prefix, caller, key string) string {
	h := sha256.Sum256([]byte(caller + "\n" + key))
	b := make([]byte, 0, len(prefix)+keyedIDDigits)
	b = append(b, prefix...)
	for _, c := range h[:keyedIDDigits] {
		b = append(b, '0'+c%10)
	}
	return string(b)
}

// Users and merchants have a small internal number (the database's) and an
// opaque public id derived from it. A user's ledger accounts derive from the
// number too, so no lookup table is needed between a user and their money.

const (
	userIDPrefix = "2088" // as Alipay's user ids begin
	userIDDigits = 12
	// userAccountBase keeps users' account ids clear of the platform's.
	userAccountBase   = int64(1) << 40
	userAccountStride = 8
)

// UserIDOf returns the public id of user number num: "2088000000000001".
func UserIDOf(num int64) string { return fmt.Sprintf("%s%0*d", userIDPrefix, userIDDigits, num) }

// ParseUserID returns the number behind a public user id.
func ParseUserID(id string) (int64, bool) {
	if len(id) != len(userIDPrefix)+userIDDigits || id[:len(userIDPrefix)] != userIDPrefix {
		return 0, false
	}
	n, err := strconv.ParseInt(id[len(userIDPrefix):], 10, 64)
	return n, err == nil && n > 0
}

// WalletAccountID is the ledger account of user num's available balance.
func WalletAccountID(num int64) int64 { return userAccountBase + num*userAccountStride + 1 }

// UserOfAccount is the user whose wallet account id is, if it is one.
func UserOfAccount(id int64) (int64, bool) {
	if id < userAccountBase || (id-userAccountBase)%userAccountStride != 1 {
		return 0, false
	}
	return (id - userAccountBase) / userAccountStride, true
}

// FrozenAccountID is the ledger account of user num's frozen balance.
func FrozenAccountID(num int64) int64 { return userAccountBase + num*userAccountStride + 2 }

// MerchantIDOf and AppIDOf return merchant num's public ids: the merchant id
// of the native API and the app id of the Alipay-compatible gateway.
func MerchantIDOf(num int64) string { return fmt.Sprintf("m%010d", num) }

// AppIDOf returns the gateway app id of merchant num.
func AppIDOf(num int64) string { return fmt.Sprintf("2021%012d", num) }

// Platform accounts: fixed ids below userAccountBase, one set per currency
// (CNY only for now).
const (
	// EscrowAccountID is the pooled escrow account: buyers' money for escrow
	// trades not yet confirmed. Each trade row says how much of it is its own.
	EscrowAccountID int64 = 100
	// RevenueAccountID collects the platform's fees.
	RevenueAccountID int64 = 101
	// OwnFundsAccountID is the platform's own money.
	OwnFundsAccountID int64 = 102
	// SuspenseAccountID holds reconciliation differences until resolved.
	SuspenseAccountID int64 = 103
	// campaignAccountBase + n is campaign n's budget.
	campaignAccountBase int64 = 1 << 36
	// bankAccountBase + 2i is bank i's settlement account, +1 its in-transit.
	bankAccountBase int64 = 1000
)

// Banks are the banks the platform holds money at, in a fixed order: their
// account ids derive from the position.
var Banks = []string{"ICBC", "CMB", "CCB", "ABC", "BOC", "CEB"}

// BankIndex returns the position of bank in Banks.
func BankIndex(bank string) (int, bool) {
	for i, b := range Banks {
		if b == bank {
			return i, true
		}
	}
	return 0, false
}

// CampaignBudgetAccountID is the ledger account of campaign num's budget.
func CampaignBudgetAccountID(num int64) int64 { return campaignAccountBase + num }

// BankSettlementAccountID is the platform's account at bank i.
func BankSettlementAccountID(i int) int64 { return bankAccountBase + 2*int64(i) }

// BankInTransitAccountID holds money sent to or from bank i whose outcome is
// not yet known.
func BankInTransitAccountID(i int) int64 { return bankAccountBase + 2*int64(i) + 1 }

// Transfer codes: why money moved. Every ledger transfer carries one.
const (
	TransferDeposit  uint16 = 1 // bank settlement → wallet, operator-confirmed
	TransferPayment  uint16 = 2 // buyer wallet → seller wallet or escrow
	TransferSettle   uint16 = 3 // escrow → seller wallet, on confirmation
	TransferRefund   uint16 = 4 // escrow or seller wallet → buyer wallet
	TransferP2P      uint16 = 5 // user → user
	TransferTopup    uint16 = 6 // bank → wallet through a channel
	TransferWithdraw uint16 = 7 // wallet → frozen → bank
	TransferDiscount uint16 = 8 // campaign budget → seller
	TransferRecon    uint16 = 9 // a reconciliation's repair or resolution, through suspense
	// TransferCardRepayment pays a user's credit-card bill: wallet → frozen
	// → the issuing bank, like a withdrawal.
	TransferCardRepayment uint16 = 10
	// TransferBillPayment pays a biller (electricity, water, phone):
	// payer wallet → biller wallet.
	TransferBillPayment uint16 = 11
	// TransferCampaign funds a campaign's budget from own funds at approval
	// and returns what is left when it ends.
	TransferCampaign uint16 = 12
	// TransferCapital records the platform's own money arriving at a bank:
	// bank settlement → own funds.
	TransferCapital uint16 = 13
)
