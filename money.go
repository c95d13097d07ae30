package zhifu

import (
	"strconv"
	"strings"
)

// Amount is a sum of money in the currency's minor unit (fen for CNY). Money is
// never a float anywhere in the platform.
type Amount int64

const (
	// AmountMin and AmountMax bound every amount that crosses the API:
	// 0.01 to 100,000,000.00 yuan.
	AmountMin Amount = 1
	AmountMax Amount = 100_000_000_00
	// amountTextLenMax bounds the text we are willing to parse.
	amountTextLenMax = 16
)

// ParseAmount reads an API amount: a decimal string in yuan with at most two
// decimals, within AmountMin..AmountMax. Anything else ("12.345", "-1", "1e3",
// "12,30", "", " 1") is an INVALID_AMOUNT error naming param.
func ParseAmount(s, param string) (Amount, error) {
	a, ok := parseYuan(s)
	if !ok {
		return 0, &Error{Code: InvalidAmount, Param: param,
			Message: "amount must be a decimal string in yuan with at most two decimals, like \"12.30\""}
	}
	if a < AmountMin || a > AmountMax {
		return 0, &Error{Code: InvalidAmount, Param: param,
			Message: "amount must be between 0.01 and 100000000.00"}
	}
	return a, nil
}

// parseYuan parses digits with an optional '.' and one or two decimals. It
// refuses signs, exponents, spaces, separators and leading '+'.
func parseYuan(s string) (Amount, bool) {
	if len(s) == 0 || len(s) > amountTextLenMax {
		return 0, false
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 2)) {
		return 0, false
	}
	if !allDigits(whole) || !allDigits(frac) {
		return 0, false
	}
	// Twelve whole digits is far above AmountMax and cannot overflow int64.
	if len(whole) > 12 {
		return 0, false
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, false
	}
	var f int64
	switch len(frac) {
	case 1:
		f = int64(frac[0]-'0') * 10
	case 2:
		f = int64(frac[0]-'0')*10 + int64(frac[1]-'0')
	}
	return Amount(w*100 + f), true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String writes the amount in yuan with exactly two decimals: "1000.00",
// "0.05", "-3.10".
func (a Amount) String() string {
	neg := a < 0
	u := uint64(a)
	if neg {
		u = uint64(-a)
	}
	b := make([]byte, 0, 24)
	if neg {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/100, 10)
	b = append(b, '.', byte('0'+u%100/10), byte('0'+u%10))
	return string(b)
}

// Currency is an ISO 4217 alphabetic code. Each currency has its own ledger,
// identified by the ISO numeric code.
type Currency string

// CNY is the default currency.
const CNY Currency = "CNY"

var currencyLedgers = map[Currency]uint32{"CNY": 156, "USD": 840, "HKD": 344, "EUR": 978}

// LedgerOf returns the ledger number of a supported currency.
func LedgerOf(c Currency) (uint32, bool) {
	l, ok := currencyLedgers[c]
	return l, ok
}

// CurrencyOf returns the currency of a ledger number, or "" when unknown.
func CurrencyOf(ledger uint32) Currency {
	for c, l := range currencyLedgers {
		if l == ledger {
			return c
		}
	}
	return ""
}
