package http

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"zhifu"
	"zhifu/ledger"
)

// accountsPerRequestMax bounds one account-creation request; like the
// batcher's submission limit, it keeps one request to one modest transaction.
const accountsPerRequestMax = 1024

// idDigitsMax is the length of the largest int64, 9223372036854775807.
const idDigitsMax = 19

type accountRequest struct {
	ID       string         `json:"id"`
	Currency zhifu.Currency `json:"currency"`
	Code     uint16         `json:"code"`
	Flags    []string       `json:"flags"`
}

type createAccountsRequest struct {
	Accounts []accountRequest `json:"accounts"`
}

type transferRequest struct {
	ID              string          `json:"id"`
	DebitAccountID  string          `json:"debit_account_id"`
	CreditAccountID string          `json:"credit_account_id"`
	Amount          json.RawMessage `json:"amount"` // raw, so a JSON number can be refused
	Currency        zhifu.Currency  `json:"currency"`
	Code            uint16          `json:"code"`
	Flags           []string        `json:"flags"`
	PendingID       string          `json:"pending_id"`
	UserData        string          `json:"user_data"`
}

type createTransfersRequest struct {
	Transfers []transferRequest `json:"transfers"`
}

type resultJSON struct {
	ID     string `json:"id"`
	Result string `json:"result"`
}

type resultsResponse struct {
	Results []resultJSON `json:"results"`
}

// flagName names one flag bit in the API.
type flagName[F ~uint16] struct {
	name string
	flag F
}

// Flag names, in bit order so that lists come out in a stable order.
var (
	accountFlagNames = []flagName[ledger.AccountFlags]{
		{"debits_must_not_exceed_credits", ledger.DebitsMustNotExceedCredits},
		{"credits_must_not_exceed_debits", ledger.CreditsMustNotExceedDebits},
	}
	transferFlagNames = []flagName[ledger.TransferFlags]{
		{"linked", ledger.Linked},
		{"pending", ledger.Pending},
		{"post_pending", ledger.PostPending},
		{"void_pending", ledger.VoidPending},
	}
)

// parseAccounts checks a whole request before anything is written.
func parseAccounts(in []accountRequest, now int64) ([]ledger.Account, error) {
	if len(in) == 0 {
		return nil, invalidRequest("accounts", "accounts must list at least one account")
	}
	if len(in) > accountsPerRequestMax {
		return nil, invalidRequest("accounts", fmt.Sprintf("at most %d accounts per request", accountsPerRequestMax))
	}
	out := make([]ledger.Account, len(in))
	for i, a := range in {
		param := func(f string) string { return fmt.Sprintf("accounts[%d].%s", i, f) }
		id, ok := parseID(a.ID)
		if !ok {
			return nil, invalidRequest(param("id"), "id must be a positive integer as a decimal string")
		}
		l, err := parseCurrency(a.Currency, false, param("currency"))
		if err != nil {
			return nil, err
		}
		var flags ledger.AccountFlags
		for _, name := range a.Flags {
			f, ok := lookupFlag(accountFlagNames, name)
			if !ok {
				return nil, invalidRequest(param("flags"), "unknown account flag "+strconv.Quote(name))
			}
			flags |= f
		}
		out[i] = ledger.Account{ID: id, Ledger: l, Code: a.Code, Flags: flags, Timestamp: now}
	}
	return out, nil
}

// parseTransfers checks a whole request before anything is submitted. What
// the JSON cannot express correctly (ids, amounts, currencies, flag names)
// is a 400 here; what depends on the ledger's state or its rules is left to
// the ledger and comes back as a result per transfer.
func parseTransfers(in []transferRequest) ([]ledger.Transfer, error) {
	if len(in) == 0 {
		return nil, invalidRequest("transfers", "transfers must list at least one transfer")
	}
	if len(in) > ledger.SubmissionTransfersMax {
		return nil, invalidRequest("transfers", fmt.Sprintf("at most %d transfers per request", ledger.SubmissionTransfersMax))
	}
	out := make([]ledger.Transfer, len(in))
	for i := range in {
		t, err := parseTransfer(i, &in[i])
		if err != nil {
			return nil, err
		}
		out[i] = t
	}
	return out, nil
}

func parseTransfer(i int, in *transferRequest) (ledger.Transfer, error) {
	param := func(f string) string { return fmt.Sprintf("transfers[%d].%s", i, f) }
	t := ledger.Transfer{ID: in.ID, PendingID: in.PendingID, Code: in.Code, UserData: in.UserData}
	for _, name := range in.Flags {
		f, ok := lookupFlag(transferFlagNames, name)
		if !ok {
			return t, invalidRequest(param("flags"), "unknown transfer flag "+strconv.Quote(name))
		}
		t.Flags |= f
	}
	// A post or void inherits accounts, currency, code and (by default) the
	// amount from the pending transfer it names, so those may be omitted.
	resolving := t.Flags&(ledger.PostPending|ledger.VoidPending) != 0
	var ok bool
	if t.DebitAccountID, ok = parseOptionalID(in.DebitAccountID); !ok {
		return t, invalidRequest(param("debit_account_id"), "debit_account_id must be a positive integer as a decimal string")
	}
	if t.CreditAccountID, ok = parseOptionalID(in.CreditAccountID); !ok {
		return t, invalidRequest(param("credit_account_id"), "credit_account_id must be a positive integer as a decimal string")
	}
	var err error
	if t.Ledger, err = parseCurrency(in.Currency, resolving, param("currency")); err != nil {
		return t, err
	}
	amount, err := parseTransferAmount(in.Amount, resolving, param("amount"))
	if err != nil {
		return t, err
	}
	t.Amount = int64(amount)
	return t, nil
}

// parseTransferAmount reads an API amount. JSON numbers are refused: a
// float has no place near money. A post or void may omit the amount or give
// zero ("0.00"), meaning the whole pending amount.
func parseTransferAmount(raw json.RawMessage, resolving bool, param string) (zhifu.Amount, error) {
	if len(raw) == 0 || string(raw) == "null" {
		if resolving {
			return 0, nil
		}
		return 0, &zhifu.Error{Code: zhifu.InvalidAmount, Param: param, Message: "amount is required"}
	}
	var s string
	if raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
		return 0, &zhifu.Error{Code: zhifu.InvalidAmount, Param: param,
			Message: "amount must be a decimal string in yuan, like \"12.30\", not a JSON number"}
	}
	if resolving && isZeroYuan(s) {
		return 0, nil
	}
	return zhifu.ParseAmount(s, param)
}

// isZeroYuan reports whether s is zero written as an API amount: "0", "0.0",
// "0.00".
func isZeroYuan(s string) bool {
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || strings.Trim(whole, "0") != "" {
		return false
	}
	if hasDot && (len(frac) == 0 || len(frac) > 2 || strings.Trim(frac, "0") != "") {
		return false
	}
	return true
}

// parseCurrency returns the ledger of a currency; empty means CNY, or, when
// inherit is set, the pending transfer's ledger (0).
func parseCurrency(c zhifu.Currency, inherit bool, param string) (uint32, error) {
	if c == "" {
		if inherit {
			return 0, nil
		}
		c = zhifu.CNY
	}
	l, ok := zhifu.LedgerOf(c)
	if !ok {
		return 0, invalidRequest(param, "unsupported currency "+strconv.Quote(string(c)))
	}
	return l, nil
}

// parseID reads an account id or entry seq: a positive int64 in decimal,
// without sign, spaces or leading zeros, so each id has one spelling.
func parseID(s string) (int64, bool) {
	if s == "" || len(s) > idDigitsMax || s[0] == '0' {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n > 0
}

// parseOptionalID is parseID where absence is 0; the ledger then decides
// whether the id was needed.
func parseOptionalID(s string) (int64, bool) {
	if s == "" {
		return 0, true
	}
	return parseID(s)
}

func lookupFlag[F ~uint16](names []flagName[F], name string) (F, bool) {
	for _, n := range names {
		if n.name == name {
			return n.flag, true
		}
	}
	return 0, false
}

// flagList names the flags set, always as a list (never null in JSON).
func flagList[F ~uint16](names []flagName[F], flags F) []string {
	out := []string{}
	for _, n := range names {
		if flags&n.flag != 0 {
			out = append(out, n.name)
		}
	}
	return out
}
