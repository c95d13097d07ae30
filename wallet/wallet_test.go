package wallet_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/identity"
	"zhifu/ledger"
	"zhifu/sqlite"
	"zhifu/wallet"
)

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

type fixture struct {
	db *sqlite.DB
	id *identity.Service
	w  *wallet.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "zhifu.db"))
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	b := ledger.NewBatcher(db, c.Now)
	t.Cleanup(func() {
		b.Close()
		db.Close()
	})
	id := identity.New(identity.Config{Store: db, Batcher: b, Clock: c})
	w := wallet.New(wallet.Config{Store: db, Batcher: b, Clock: c, Identity: id})
	if err := w.EnsurePlatformAccounts(ctx); err != nil {
		t.Fatal(err)
	}
	return &fixture{db: db, id: id, w: w}
}

func wantCode(t *testing.T, err error, code, param string) {
	t.Helper()
	e, ok := err.(*zhifu.Error)
	if !ok || e.Code != code || e.Param != param {
		t.Fatalf("error %v, want %s on %q", err, code, param)
	}
}

func TestPlatformAccounts(t *testing.T) {
	f := newFixture(t)
	// A second start finds them all and changes nothing.
	if err := f.w.EnsurePlatformAccounts(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := wallet.PlatformAccounts(time.Time{})
	ids := make([]int64, len(want))
	for i, a := range want {
		ids[i] = a.ID
	}
	got, err := f.db.LookupAccounts(context.Background(), ids)
	if err != nil || len(got) != 4+2*len(zhifu.Banks) {
		t.Fatalf("accounts %d, %v", len(got), err)
	}
	for _, a := range got {
		switch a.ID {
		case zhifu.EscrowAccountID:
			if a.Code != zhifu.AccountEscrow || a.Flags != ledger.DebitsMustNotExceedCredits {
				t.Errorf("escrow %+v", a)
			}
		case zhifu.BankSettlementAccountID(0):
			if a.Code != zhifu.AccountBankSettlement || a.Flags != 0 {
				t.Errorf("settlement %+v", a)
			}
		}
	}
}

// TestMissingAccountsRepaired checks that a user whose ledger accounts are
// missing (whatever the cause) can still be paid and pay.
func TestMissingAccountsRepaired(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, err := f.db.Reader().Exec(ctx, `INSERT INTO users (num, user_id, login, name, password_hash, created_at)
		VALUES (7, ?, 'ghost', 'Ghost', 'x', 0), (8, ?, 'ghost2', 'Ghost 2', 'x', 0)`,
		zhifu.UserIDOf(7), zhifu.UserIDOf(8)); err != nil {
		t.Fatal(err)
	}
	d, created, err := f.w.Deposit(ctx, zhifu.UserIDOf(7), 500, "CMB", "ref-ghost")
	if err != nil || !created || d.Amount != 500 {
		t.Fatalf("deposit to a user without accounts: %v %+v", err, d)
	}
	ghost, _ := f.id.UserByID(ctx, zhifu.UserIDOf(7))
	tr, err := f.w.Transfer(ctx, ghost, zhifu.UserIDOf(8), 200, "", "")
	if err != nil || tr.Status != wallet.StatusSuccess {
		t.Fatalf("transfer to a user without accounts: %v", err)
	}
	ghost2, _ := f.id.UserByID(ctx, zhifu.UserIDOf(8))
	for u, want := range map[*identity.User]zhifu.Amount{ghost: 300, ghost2: 200} {
		b, err := f.w.Balance(ctx, u)
		if err != nil || b.Available != want || b.Frozen != 0 || b.Currency != "CNY" {
			t.Errorf("%s: %+v %v, want %s", u.Login, b, err, want)
		}
	}
	report, err := ledger.Check(ctx, f.db)
	if err != nil || !report.OK {
		t.Fatalf("check %+v %v", report, err)
	}
}

func TestDepositReference(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	u, err := f.id.CreateUser(ctx, "dep", "password1", "Dep")
	if err != nil {
		t.Fatal(err)
	}
	d1, created, err := f.w.Deposit(ctx, u.UserID, 1000, "ICBC", "R1")
	if err != nil || !created {
		t.Fatal(err)
	}
	d2, created, err := f.w.Deposit(ctx, u.UserID, 1000, "ICBC", "R1")
	if err != nil || created || d2.DepositID != d1.DepositID || !d2.CreatedAt.Equal(d1.CreatedAt) {
		t.Fatalf("replay: %v %v %+v %+v", err, created, d1, d2)
	}
	_, _, err = f.w.Deposit(ctx, u.UserID, 1000, "CMB", "R1")
	wantCode(t, err, zhifu.ContextInconsistent, "reference")
	// References too long to spell out in a ledger id are hashed into it,
	// and still credited once.
	long := strings.Repeat("L", wallet.ReferenceLenMax)
	for range 2 {
		if _, _, err := f.w.Deposit(ctx, u.UserID, 1, "ICBC", long); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err = f.w.Deposit(ctx, u.UserID, 1, "ICBC", long+"L")
	wantCode(t, err, zhifu.InvalidRequest, "reference")
	_, _, err = f.w.Deposit(ctx, u.UserID, 1000, "ICBC", "has space")
	wantCode(t, err, zhifu.InvalidRequest, "reference")
	_, _, err = f.w.Deposit(ctx, u.UserID, 0, "ICBC", "R2")
	wantCode(t, err, zhifu.InvalidAmount, "amount")
	b, _ := f.w.Balance(ctx, u)
	if b.Available != 1001 {
		t.Fatalf("balance %s after one deposit", b.Available)
	}
	st, err := f.w.Statement(ctx, u, 0, "")
	if err != nil || len(st.Entries) != 2 || st.Entries[1].Type != "deposit" || st.Entries[1].TransferID != "deposit:R1" ||
		!strings.HasPrefix(st.Entries[0].TransferID, "deposit#") || len(st.Entries[0].TransferID) != ledger.IDLenMax {
		t.Fatalf("statement %+v %v", st, err)
	}
	_, err = f.w.Statement(ctx, u, 101, "")
	wantCode(t, err, zhifu.InvalidRequest, "limit")
	_, err = f.w.Statement(ctx, u, 10, "007")
	wantCode(t, err, zhifu.InvalidRequest, "starting_after")
}
