package ledger

import (
	"math"
	"testing"
)

const cny = 156

func testState() *State {
	s := NewState()
	for _, a := range []Account{
		{ID: 1, Ledger: cny, Code: 1, Flags: DebitsMustNotExceedCredits}, // a wallet
		{ID: 2, Ledger: cny, Code: 1, Flags: DebitsMustNotExceedCredits},
		{ID: 3, Ledger: cny, Code: 10}, // a bank: may go negative
		{ID: 4, Ledger: 840, Code: 1},
		{ID: 5, Ledger: cny, Code: 10, Flags: CreditsMustNotExceedDebits},
	} {
		a := a
		s.Accounts[a.ID] = &a
	}
	return s
}

func tr(id string, dr, cr, amount int64) Transfer {
	return Transfer{ID: id, DebitAccountID: dr, CreditAccountID: cr, Amount: amount, Ledger: cny, Code: 1}
}

// TestTransferResultOrder walks the documented order: each case fails exactly
// one check, and where a transfer fails several, the earliest is reported.
func TestTransferResultOrder(t *testing.T) {
	s := testState()
	fund := tr("fund", 3, 1, 1000)
	pend := tr("pend", 1, 2, 100)
	pend.Flags = Pending
	plain := tr("plain", 3, 2, 5)
	if got := s.Apply([]Transfer{fund, pend, plain}, 1); got[0] != TransferOK || got[1] != TransferOK || got[2] != TransferOK {
		t.Fatalf("setup: %v", got)
	}
	post := func(id, pending string, amount int64) Transfer {
		return Transfer{ID: id, PendingID: pending, Amount: amount, Flags: PostPending}
	}
	long := make([]byte, IDLenMax+1)
	for i := range long {
		long[i] = 'x'
	}
	cases := []struct {
		name string
		t    Transfer
		want TransferResult
	}{
		{"empty id", tr("", 0, 0, 0), TransferIDMustNotBeEmpty},
		{"long id", tr(string(long), 1, 2, 1), TransferIDTooLong},
		{"pending and post", Transfer{ID: "x", Flags: Pending | PostPending}, TransferFlagsAreMutuallyExclusive},
		{"unknown flag", Transfer{ID: "x", Flags: 1 << 9}, TransferFlagsUnknown},
		{"pending id on plain", Transfer{ID: "x", PendingID: "pend", DebitAccountID: 1, CreditAccountID: 2}, TransferPendingIDMustBeEmpty},
		{"post without pending id", Transfer{ID: "x", Flags: PostPending}, TransferPendingIDMustNotBeEmpty},
		{"post of itself", Transfer{ID: "x", PendingID: "x", Flags: PostPending}, TransferPendingIDMustBeDifferent},
		{"no debit account", tr("x", 0, 2, 1), TransferDebitAccountIDMustNotBeZero},
		{"no credit account", tr("x", 1, 0, 1), TransferCreditAccountIDMustNotBeZero},
		{"same accounts", tr("x", 1, 1, 1), TransferAccountsMustBeDifferent},
		{"negative", tr("x", 1, 2, -1), TransferAmountMustNotBeNegative},
		{"zero", tr("x", 1, 2, 0), TransferAmountMustNotBeZero},
		{"no ledger", Transfer{ID: "x", DebitAccountID: 1, CreditAccountID: 2, Amount: 1, Code: 1}, TransferLedgerMustNotBeZero},
		{"no code", Transfer{ID: "x", DebitAccountID: 1, CreditAccountID: 2, Amount: 1, Ledger: cny}, TransferCodeMustNotBeZero},
		{"exists, other flags", func() Transfer { x := fund; x.Flags = Pending; return x }(), TransferExistsWithDifferentFlags},
		{"exists, other debit", tr("fund", 2, 1, 1000), TransferExistsWithDifferentDebitAccountID},
		{"exists, other credit", tr("fund", 3, 2, 1000), TransferExistsWithDifferentCreditAccountID},
		{"exists, other amount", tr("fund", 3, 1, 999), TransferExistsWithDifferentAmount},
		{"exists, other code", func() Transfer { x := fund; x.Code = 2; return x }(), TransferExistsWithDifferentCode},
		{"exists, other user data", func() Transfer { x := fund; x.UserData = "y"; return x }(), TransferExistsWithDifferentUserData},
		{"exists", fund, TransferExists},
		{"pending not found", post("x", "nope", 0), TransferPendingTransferNotFound},
		{"pending not pending", post("x", "fund", 0), TransferPendingTransferNotPending},
		{"post other debit", Transfer{ID: "x", PendingID: "pend", DebitAccountID: 2, Flags: PostPending}, TransferPendingTransferHasDifferentDebitAccountID},
		{"post other credit", Transfer{ID: "x", PendingID: "pend", CreditAccountID: 3, Flags: PostPending}, TransferPendingTransferHasDifferentCreditAccountID},
		{"post other ledger", Transfer{ID: "x", PendingID: "pend", Ledger: 840, Flags: PostPending}, TransferPendingTransferHasDifferentLedger},
		{"post other code", Transfer{ID: "x", PendingID: "pend", Code: 9, Flags: PostPending}, TransferPendingTransferHasDifferentCode},
		{"post too much", post("x", "pend", 101), TransferExceedsPendingTransferAmount},
		{"void other amount", Transfer{ID: "x", PendingID: "pend", Amount: 7, Flags: VoidPending}, TransferPendingTransferHasDifferentAmount},
		{"unknown debit", tr("x", 99, 2, 1), TransferDebitAccountNotFound},
		{"unknown credit", tr("x", 1, 99, 1), TransferCreditAccountNotFound},
		{"ledgers differ", tr("x", 1, 4, 1), TransferAccountsMustHaveTheSameLedger},
		{"currency mismatch", Transfer{ID: "x", DebitAccountID: 1, CreditAccountID: 2, Amount: 1, Ledger: 840, Code: 1}, TransferMustHaveTheSameLedgerAsAccounts},
		{"overdraft", tr("x", 1, 2, 901), TransferExceedsCredits},
		{"credit limit", tr("x", 3, 5, 1), TransferExceedsDebits},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := *s.Accounts[1]
			got := s.Apply([]Transfer{c.t}, 2)
			if got[0] != c.want {
				t.Fatalf("got %v, want %v", got[0], c.want)
			}
			if *s.Accounts[1] != before {
				t.Fatalf("a refused transfer changed account 1: %+v -> %+v", before, *s.Accounts[1])
			}
		})
	}
	// Resolutions: post part, then a second post or a void is refused.
	if got := s.Apply([]Transfer{post("p1", "pend", 60)}, 3)[0]; got != TransferOK {
		t.Fatalf("partial post: %v", got)
	}
	if got := s.Apply([]Transfer{post("p2", "pend", 0)}, 3)[0]; got != TransferPendingTransferAlreadyPosted {
		t.Fatalf("second post: %v", got)
	}
	a1 := s.Accounts[1]
	if a1.DebitsPending != 0 || a1.DebitsPosted != 60 || a1.CreditsPosted != 1000 {
		t.Fatalf("after partial post account 1 = %+v", *a1)
	}
}

func TestVoidReleasesHold(t *testing.T) {
	s := testState()
	hold := tr("hold", 1, 2, 300)
	hold.Flags = Pending
	void := Transfer{ID: "void", PendingID: "hold", Flags: VoidPending}
	got := s.Apply([]Transfer{tr("fund", 3, 1, 300), hold, tr("spend", 1, 2, 1)}, 1)
	if got[2] != TransferExceedsCredits {
		t.Fatalf("a hold must reserve the money: %v", got)
	}
	if got := s.Apply([]Transfer{void, tr("spend", 1, 2, 300)}, 2); got[0] != TransferOK || got[1] != TransferOK {
		t.Fatalf("void then spend: %v", got)
	}
	again := Transfer{ID: "void2", PendingID: "hold", Flags: PostPending}
	if got := s.Apply([]Transfer{again}, 3)[0]; got != TransferPendingTransferAlreadyVoided {
		t.Fatalf("post after void: %v", got)
	}
	if got := s.Apply([]Transfer{void}, 3)[0]; got != TransferExists {
		t.Fatalf("same void again: %v", got)
	}
}

func TestLinkedChains(t *testing.T) {
	s := testState()
	link := func(x Transfer) Transfer { x.Flags |= Linked; return x }
	got := s.Apply([]Transfer{
		tr("fund", 3, 1, 100),
		link(tr("a", 1, 2, 60)),
		link(tr("b", 1, 2, 30)),
		tr("c", 1, 2, 20), // 60+30+20 > 100: the whole chain fails
		tr("d", 1, 2, 10), // independent, succeeds
	}, 1)
	want := []TransferResult{TransferOK, TransferLinkedEventFailed, TransferLinkedEventFailed, TransferExceedsCredits, TransferOK}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("results %v, want %v", got, want)
		}
	}
	if a := s.Accounts[1]; a.DebitsPosted != 10 {
		t.Fatalf("a failed chain must leave no trace: %+v", *a)
	}
	if _, ok := s.Transfers["a"]; ok {
		t.Fatal("transfer of a failed chain still visible")
	}
	if n := len(s.Created()); n != 2 {
		t.Fatalf("created %d transfers, want 2", n)
	}
	// A chain left open at the end of a submission fails as a whole.
	got = s.Apply([]Transfer{link(tr("e", 3, 1, 5)), link(tr("f", 3, 1, 5))}, 2)
	if got[0] != TransferLinkedEventFailed || got[1] != TransferLinkedEventChainOpen {
		t.Fatalf("open chain: %v", got)
	}
	// A failing chain in the middle does not swallow the transfer after it.
	got = s.Apply([]Transfer{link(tr("g", 1, 2, 1000)), tr("h", 1, 2, 1), tr("i", 3, 1, 1)}, 3)
	if got[0] != TransferExceedsCredits || got[1] != TransferLinkedEventFailed || got[2] != TransferOK {
		t.Fatalf("chain then single: %v", got)
	}
}

func TestOverflow(t *testing.T) {
	s := testState()
	big := tr("big", 3, 2, math.MaxInt64)
	if got := s.Apply([]Transfer{big}, 1)[0]; got != TransferOK {
		t.Fatalf("max amount: %v", got)
	}
	if got := s.Apply([]Transfer{tr("more", 3, 2, 1)}, 1)[0]; got != TransferOverflowsDebitsPosted {
		t.Fatalf("overflow: %v", got)
	}
}

func TestCreateAccountOrder(t *testing.T) {
	ok := Account{ID: 1, Ledger: cny, Code: 1}
	cases := []struct {
		name     string
		existing *Account
		a        Account
		want     AccountResult
	}{
		{"zero id", nil, Account{Ledger: cny, Code: 1}, AccountIDMustNotBeZero},
		{"both limits", nil, Account{ID: 1, Ledger: cny, Code: 1, Flags: DebitsMustNotExceedCredits | CreditsMustNotExceedDebits}, AccountFlagsAreMutuallyExclusive},
		{"unknown flag", nil, Account{ID: 1, Ledger: cny, Code: 1, Flags: 1 << 7}, AccountFlagsUnknown},
		{"no ledger", nil, Account{ID: 1, Code: 1}, AccountLedgerMustNotBeZero},
		{"no code", nil, Account{ID: 1, Ledger: cny}, AccountCodeMustNotBeZero},
		{"opening balance", nil, Account{ID: 1, Ledger: cny, Code: 1, CreditsPosted: 5}, AccountBalancesMustBeZero},
		{"new", nil, ok, AccountOK},
		{"other flags", &ok, Account{ID: 1, Ledger: cny, Code: 1, Flags: DebitsMustNotExceedCredits}, AccountExistsWithDifferentFlags},
		{"other ledger", &ok, Account{ID: 1, Ledger: 840, Code: 1}, AccountExistsWithDifferentLedger},
		{"other code", &ok, Account{ID: 1, Ledger: cny, Code: 2}, AccountExistsWithDifferentCode},
		{"same", &ok, ok, AccountExists},
	}
	for _, c := range cases {
		if got := CreateAccount(c.existing, c.a); got != c.want {
			t.Errorf("%s: got %v, want %v", c.name, got, c.want)
		}
	}
}

func TestResultNames(t *testing.T) {
	for r := TransferOK; r < transferResultCount; r++ {
		if transferResultNames[r] == "" {
			t.Errorf("result %d has no name", r)
		}
	}
	for r := AccountOK; r < accountResultCount; r++ {
		if accountResultNames[r] == "" {
			t.Errorf("account result %d has no name", r)
		}
	}
}
