package banksim_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"zhifu/bankapi"
	"zhifu/banksim"
)

func TestVerifyDebitCallback(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("ICBC", 1)
	if card.Last4 != cardNo(1)[12:] || card.Bank != "ICBC" || card.CardToken == "" {
		t.Fatalf("card = %+v", card)
	}
	if again := e.card("ICBC", 1); again != card {
		t.Fatalf("second verify = %+v, want %+v", again, card)
	}
	if other := e.card("CMB", 1); other.CardToken == card.CardToken {
		t.Fatal("two banks gave the same token")
	}

	got := e.debit("ICBC", "topup-1", card, 800_00)
	if got.Status != bankapi.StatusSuccess || got.Kind != bankapi.KindDebit || got.Amount != 800_00 ||
		got.BankTxnID == "" || got.SettledAt == nil {
		t.Fatalf("debit = %+v", got)
	}
	cb := e.sink.next()
	if cb.RequestID != "topup-1" || cb.Bank != "ICBC" || cb.Status != bankapi.StatusSuccess ||
		cb.Amount != 800_00 || cb.BankTxnID != got.BankTxnID {
		t.Fatalf("callback = %+v, want the debit %+v", cb, got)
	}
	if got, want := e.balance("ICBC", card), banksim.StartingBalanceDefault-800_00; got != want {
		t.Fatalf("card balance = %d, want %d", got, want)
	}
	books, err := e.sim.Books("ICBC")
	if err != nil {
		t.Fatal(err)
	}
	if books.Settlement != banksim.SettlementFloatDefault+800_00 || books.Debited != 800_00 {
		t.Fatalf("books = %+v", books)
	}
	e.checkBooks()
	st := e.waitStats("ICBC", func(st banksim.Stats) bool { return st.CallbacksDelivered == 1 })
	if st.Accepted != 1 || st.Succeeded != 1 || st.CallbacksSent != 1 {
		t.Fatalf("stats = %+v", st)
	}
}

// TestCardNumberNotStored reads the database files: the card number must
// not be in them, only its token and last four digits.
func TestCardNumberNotStored(t *testing.T) {
	e := newEnv(t, nil)
	e.card("ICBC", 7)
	e.close()
	files, _ := filepath.Glob(e.cfg.DBPath + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(cardNo(7))) {
			t.Fatalf("%s holds the card number", f)
		}
	}
}

func TestVerifyRefusals(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client("ICBC")
	e.card("ICBC", 1)
	bad := cardNo(1)[:15] + string(rune('0'+(int(cardNo(1)[15]-'0')+1)%10))
	tests := []struct {
		name, cardNo, holder, code string
	}{
		{"luhn", bad, "A", bankapi.CodeInvalidCard},
		{"short", "4111111111111", "A", bankapi.CodeInvalidCard},
		{"letters", "62220200000000a1", "A", bankapi.CodeInvalidCard},
		{"no holder", cardNo(2), "  ", bankapi.CodeInvalidCard},
		{"other holder", cardNo(1), "Someone Else", bankapi.CodeHolderMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := c.VerifyCard(context.Background(), tt.cardNo, tt.holder)
			var ae *bankapi.APIError
			if !errors.As(err, &ae) || ae.Status != 400 || ae.Code != tt.code {
				t.Fatalf("err = %v, want 400 %s", err, tt.code)
			}
		})
	}
}

func TestDebitIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	card := e.card("CCB", 1)
	first := e.debit("CCB", "pay-1", card, 100_00)
	again := e.debit("CCB", "pay-1", card, 100_00)
	if again.BankTxnID != first.BankTxnID || again.Status != first.Status {
		t.Fatalf("replay = %+v, want %+v", again, first)
	}
	if got, want := e.balance("CCB", card), banksim.StartingBalanceDefault-100_00; got != want {
		t.Fatalf("balance = %d, want %d (debited once)", got, want)
	}
	c := e.client("CCB")
	conflicts := []struct {
		name string
		call func() error
	}{
		{"other amount", func() error {
			_, err := c.Debit(context.Background(), bankapi.TxnRequest{RequestID: "pay-1", CardToken: card.CardToken,
				Amount: 200_00, CallbackURL: e.sink.url("CCB")})
			return err
		}},
		{"credit with a debit's id", func() error {
			_, err := c.Credit(context.Background(), bankapi.TxnRequest{RequestID: "pay-1", CardToken: card.CardToken,
				Amount: 100_00, CallbackURL: e.sink.url("CCB")})
			return err
		}},
	}
	for _, tt := range conflicts {
		t.Run(tt.name, func(t *testing.T) {
			var ae *bankapi.APIError
			if err := tt.call(); !errors.As(err, &ae) || ae.Status != 409 || ae.Code != bankapi.CodeRequestIDConflict {
				t.Fatalf("err = %v, want 409 REQUEST_ID_CONFLICT", err)
			}
		})
	}
	if st := e.sim.Stats("CCB"); st.Accepted != 1 {
		t.Fatalf("accepted = %d, want 1", st.Accepted)
	}
	e.checkBooks()
}

func TestInsufficientFunds(t *testing.T) {
	e := newEnv(t, func(c *banksim.Config) { c.StartingBalance = 500_00 })
	card := e.card("ABC", 1)
	got := e.debit("ABC", "big", card, 800_00)
	if got.Status != bankapi.StatusFailed || got.Reason != bankapi.ReasonInsufficientFunds {
		t.Fatalf("debit = %+v, want FAILED INSUFFICIENT_FUNDS", got)
	}
	if cb := e.sink.next(); cb.Status != bankapi.StatusFailed || cb.Reason != bankapi.ReasonInsufficientFunds {
		t.Fatalf("callback = %+v", cb)
	}
	if b := e.balance("ABC", card); b != 500_00 {
		t.Fatalf("balance = %d, want unchanged 50000", b)
	}
	unknown := bankapi.Card{CardToken: "ct_nobody"}
	if got := e.debit("ABC", "ghost", unknown, 1); got.Reason != bankapi.ReasonCardNotFound {
		t.Fatalf("debit of an unknown card = %+v", got)
	}
	e.checkBooks()
}

func TestPayout(t *testing.T) {
	e := newEnv(t, func(c *banksim.Config) { c.SettlementFloat = 1000_00 })
	card := e.card("BOC", 1)
	c := e.client("BOC")
	req := bankapi.TxnRequest{RequestID: "wd-1", CardToken: card.CardToken, Amount: 600_00, CallbackURL: e.sink.url("BOC")}
	got, err := c.Credit(context.Background(), req)
	if err != nil || got.Status != bankapi.StatusSuccess || got.Kind != bankapi.KindCredit {
		t.Fatalf("credit = %+v, %v", got, err)
	}
	if cb := e.sink.next(); cb.RequestID != "wd-1" || cb.Kind != bankapi.KindCredit || cb.Status != bankapi.StatusSuccess {
		t.Fatalf("callback = %+v", cb)
	}
	if b := e.balance("BOC", card); b != banksim.StartingBalanceDefault+600_00 {
		t.Fatalf("card balance = %d", b)
	}
	// 400.00 left in the settlement account: 600.00 more is refused.
	req.RequestID = "wd-2"
	got, err = c.Credit(context.Background(), req)
	if err != nil || got.Status != bankapi.StatusFailed || got.Reason != bankapi.ReasonSettlementInsufficient {
		t.Fatalf("credit beyond the float = %+v, %v", got, err)
	}
	books, _ := e.sim.Books("BOC")
	if books.Settlement != 400_00 || books.Credited != 600_00 {
		t.Fatalf("books = %+v", books)
	}
	e.checkBooks()
}

func TestInquiry(t *testing.T) {
	e := newEnv(t, nil)
	c := e.client("CEB")
	if _, err := c.Inquire(context.Background(), "never-sent"); !bankapi.IsNotFound(err) {
		t.Fatalf("inquiry of an unknown id: %v, want 404", err)
	}
	card := e.card("CEB", 1)
	d := e.debit("CEB", "q-1", card, 12_34)
	got, err := c.Inquire(context.Background(), "q-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != d.Status || got.BankTxnID != d.BankTxnID || got.Amount != d.Amount || !got.SettledAt.Equal(*d.SettledAt) {
		t.Fatalf("inquiry = %+v, want %+v", got, d)
	}
}

func TestSettleDelayAnswersAccepted(t *testing.T) {
	e := newEnv(t, nil)
	e.scenario("CMB", banksim.Scenario{SettleDelayMs: 30})
	card := e.card("CMB", 1)
	got := e.debit("CMB", "slow-1", card, 5_00)
	if got.Status != bankapi.StatusAccepted || got.SettledAt != nil {
		t.Fatalf("debit = %+v, want ACCEPTED", got)
	}
	cb := e.sink.next()
	if cb.Status != bankapi.StatusSuccess || cb.SettledAt == nil {
		t.Fatalf("callback = %+v", cb)
	}
	q, err := e.client("CMB").Inquire(context.Background(), "slow-1")
	if err != nil || q.Status != bankapi.StatusSuccess {
		t.Fatalf("inquiry = %+v, %v", q, err)
	}
	e.checkBooks()
}

// TestRestartSettlesAccepted: a transaction left ACCEPTED when the bank
// stops is settled, and its callback sent, when it starts again.
func TestRestartSettlesAccepted(t *testing.T) {
	e := newEnv(t, func(c *banksim.Config) {
		c.Scenarios = banksim.Scenarios{Default: banksim.Scenario{SettleDelayMs: 60_000}}
	})
	card := e.card("ICBC", 1)
	if got := e.debit("ICBC", "held", card, 1_00); got.Status != bankapi.StatusAccepted {
		t.Fatalf("debit = %+v", got)
	}
	e.close()
	e.cfg.Scenarios = banksim.Scenarios{}
	e.open()
	if cb := e.sink.next(); cb.RequestID != "held" || cb.Status != bankapi.StatusSuccess {
		t.Fatalf("callback after restart = %+v", cb)
	}
	if again := e.card("ICBC", 1); again.CardToken != card.CardToken {
		t.Fatal("a card's token changed across a restart")
	}
	e.checkBooks()
}
