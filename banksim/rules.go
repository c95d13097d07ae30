package banksim

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"zhifu/bankapi"
)

// Channels a transaction came through.
const (
	channelAPI   = "api"
	channelEbank = "ebank"
)

// Limits of the bank API.
const (
	holderRunesMax = 64
	cardDigitsMin  = 16
	cardDigitsMax  = 19
	// amountMax is 100,000,000.00 yuan, as zhifu.AmountMax.
	amountMax int64 = 100_000_000_00
)

// beijing is the banks' business day.
var beijing = bankapi.Beijing

// txnIn is a transaction as requested: what idempotency compares.
type txnIn struct {
	Bank        string
	RequestID   string
	Kind        string
	Channel     string
	CardToken   string
	Amount      int64
	CallbackURL string
}

// balances are the two accounts a transaction touches.
type balances struct {
	card       int64
	settlement int64
	cardFound  bool
}

// decide is the bank's one money rule: the outcome of moving amount between
// a card and the settlement account, checked in a fixed order. It never
// changes the sum of the two balances.
func decide(kind string, amount int64, b balances, injectedFailure bool) (status, reason string, after balances) {
	after = b
	from, to := &after.card, &after.settlement
	short := bankapi.ReasonInsufficientFunds
	if kind == bankapi.KindCredit {
		from, to = to, from
		short = bankapi.ReasonSettlementInsufficient
	}
	switch {
	case !b.cardFound:
		return bankapi.StatusFailed, bankapi.ReasonCardNotFound, b
	case injectedFailure:
		return bankapi.StatusFailed, bankapi.ReasonBankError, b
	case *from < amount:
		return bankapi.StatusFailed, short, b
	case *to > math.MaxInt64-amount:
		return bankapi.StatusFailed, bankapi.ReasonAmountOverflow, b
	}
	*from -= amount
	*to += amount
	if after.card+after.settlement != b.card+b.settlement || after.card < 0 || after.settlement < 0 {
		panic(fmt.Sprintf("banksim: decide broke the books: %+v → %+v", b, after))
	}
	return bankapi.StatusSuccess, "", after
}

// bankTxnID is the bank's reference: bank, Beijing date of receipt, and the
// bank's sequence number.
func bankTxnID(bank string, at time.Time, seq int64) string {
	return fmt.Sprintf("%s%s%010d", bank, at.In(beijing).Format("20060102"), seq)
}

// luhnValid reports whether the digits pass the Luhn check.
func luhnValid(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// checkCard validates a card number and holder; it returns the trimmed
// holder.
func checkCard(cardNo, holder string) (string, error) {
	if len(cardNo) < cardDigitsMin || len(cardNo) > cardDigitsMax || !allDigits(cardNo) || !luhnValid(cardNo) {
		return "", fmt.Errorf("card_no must be %d to %d digits passing the Luhn check", cardDigitsMin, cardDigitsMax)
	}
	holder = strings.TrimSpace(holder)
	if holder == "" || !utf8.ValidString(holder) || utf8.RuneCountInString(holder) > holderRunesMax {
		return "", fmt.Errorf("holder must be 1 to %d characters", holderRunesMax)
	}
	return holder, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// cardToken is the bank's token for a card number: an HMAC under the bank's
// key, so the number cannot be recovered from it.
func cardToken(key []byte, cardNo string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(cardNo))
	return "ct_" + hex.EncodeToString(m.Sum(nil)[:16])
}

// checkTxn validates a debit or credit request.
func checkTxn(in txnIn) error {
	switch {
	case !bankapi.ValidRequestID(in.RequestID):
		return fmt.Errorf("request_id must be 1 to %d characters of A-Z a-z 0-9 . _ : -", bankapi.RequestIDLenMax)
	case in.CardToken == "" || len(in.CardToken) > 128:
		return fmt.Errorf("card_token is required")
	case in.Amount < 1 || in.Amount > amountMax:
		return fmt.Errorf("amount must be between 1 and %d fen", amountMax)
	}
	return checkCallbackURL(in.CallbackURL, "callback_url", true)
}

// checkCallbackURL accepts an absolute http or https URL (or "" when
// optional).
func checkCallbackURL(s, param string, optional bool) error {
	if s == "" && optional {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || len(s) > bankapi.CallbackURLLenMax || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%s must be an absolute http(s) URL of at most %d bytes", param, bankapi.CallbackURLLenMax)
	}
	return nil
}
