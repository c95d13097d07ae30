package recon

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"zhifu"
	"zhifu/approval"
	"zhifu/bankapi"
	"zhifu/banksim"
	"zhifu/channel"
	"zhifu/identity"
	"zhifu/internal/testkit"
	"zhifu/ledger"
	"zhifu/wallet"
)

// rig is the real parts reconciliation works with: a store, the batcher,
// identity, wallets, approvals, the channels, and simulated banks on their
// own HTTP server, all on one manual clock.
type rig struct {
	t      testing.TB
	st     ledger.Store
	b      *ledger.Batcher
	clock  *testkit.Clock
	ids    *identity.Service
	wal    *wallet.Service
	appr   *approval.Service
	sim    *banksim.Sim
	ch     *channel.Service
	svc    *Service
	dir    string
	client *bankapi.Client // the simulator's CMB, for tests to ask it directly
}

// rigStart is the instant the rig's clock starts: 09:00 on the test day.
func rigStart() time.Time { return time.Unix(0, at(0, 9)) }

func newRig(t testing.TB, open func() ledger.Store) *rig {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	clock := testkit.NewClock(rigStart())
	st := open()
	b := ledger.NewBatcher(st, clock.Now)
	t.Cleanup(b.Close)
	r := &rig{t: t, st: st, b: b, clock: clock, dir: dir}
	r.ids = identity.New(identity.Config{Store: st, Batcher: b, Clock: clock})
	r.wal = wallet.New(wallet.Config{Store: st, Batcher: b, Clock: clock, Identity: r.ids})
	if err := r.wal.EnsurePlatformAccounts(ctx); err != nil {
		t.Fatal(err)
	}
	r.appr = approval.New(approval.Config{Store: st, Batcher: b, Clock: clock})
	secrets := map[string]string{}
	for _, bank := range zhifu.Banks {
		secrets[bank] = "secret-" + bank
	}
	sim, err := banksim.New(banksim.Config{DBPath: filepath.Join(dir, "banks.db"), Secrets: secrets, Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	r.sim = sim
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(func() {
		srv.Close()
		sim.Close()
	})
	r.ch, err = channel.New(channel.Config{Store: st, Batcher: b, Clock: clock, Identity: r.ids, Wallet: r.wal,
		BanksURL: srv.URL, Secrets: secrets, CapacityDefault: 1e5})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.ch.CloseIdleConnections)
	for _, d := range []string{"statements", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	r.svc, err = New(Config{Store: st, Batcher: b, Clock: clock, Channels: r.ch, Identity: r.ids, Approvals: r.appr,
		Node: "node-test", TempDir: filepath.Join(dir, "tmp"), FilesDir: filepath.Join(dir, "statements"), PublishDelay: -1})
	if err != nil {
		t.Fatal(err)
	}
	r.client = bankapi.NewClient(srv.URL, "CMB", secrets["CMB"], nil)
	r.client.Clock = clock
	return r
}

// user makes a user with a CMB card and returns them with the card's
// token at the bank.
func (r *rig) user(login string) (*identity.User, string) {
	r.t.Helper()
	u, err := r.ids.CreateUser(context.Background(), login, "correct-horse-1", login)
	if err != nil {
		r.t.Fatal(err)
	}
	card, err := r.client.VerifyCard(context.Background(), cardNo(int(u.Num)), login)
	if err != nil {
		r.t.Fatal(err)
	}
	return u, card.CardToken
}

// cardNo is a 16-digit number passing the Luhn check, one for every n.
func cardNo(n int) string {
	digits := fmt.Sprintf("622588%09d", n)
	sum := 0
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if (len(digits)-i)%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return digits + fmt.Sprint((10-sum%10)%10)
}

// record is a bank transaction of the platform's as a test seeds it.
type record struct {
	id, kind, status, user, token, ref string
	amount                             int64
	settled                            int64 // unix nanoseconds; 0 while not final
	deadline                           time.Time
}

// seed writes r into bank_txns with the ledger transfers the channels would
// have made for it: a top-up that succeeded credited from CMB's settlement
// account; a withdrawal held, and paid or returned.
func (r *rig) seed(recs ...record) {
	r.t.Helper()
	ctx := context.Background()
	settlement := zhifu.BankSettlementAccountID(1) // CMB
	for _, x := range recs {
		num, _ := zhifu.ParseUserID(x.user)
		wallet, frozen := zhifu.WalletAccountID(num), zhifu.FrozenAccountID(num)
		method, stage := channel.MethodQuick, "done"
		if x.kind == string(channel.KindWithdrawal) {
			method = channel.MethodPayout
		}
		if x.status == string(channel.StatusProcessing) {
			stage = string(channel.StageStatement)
		}
		now := r.clock.Now().UnixNano()
		var deadline int64
		if !x.deadline.IsZero() {
			deadline = x.deadline.UnixNano()
		}
		err := r.st.Update(ctx, func(tx ledger.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO bank_txns (txn_id, kind, method, user_id, bank, card_id, card_token, amount,
				status, stage, deadline, bank_txn_id, resolved_by, created_at, updated_at, settled_at)
				VALUES (?, ?, ?, ?, 'CMB', ?, ?, ?, ?, ?, ?, ?, 'callback', ?, ?, ?)`,
				x.id, x.kind, method, x.user, "CD"+x.user, x.token, x.amount, x.status, stage, deadline, x.ref, now, now, x.settled)
			return err
		})
		if err != nil {
			r.t.Fatal(err)
		}
		var trs []ledger.Transfer
		tr := func(id string, debit, credit int64, code uint16) ledger.Transfer {
			return ledger.Transfer{ID: id, DebitAccountID: debit, CreditAccountID: credit, Amount: x.amount, Ledger: 156, Code: code}
		}
		switch {
		case x.kind == "topup" && x.status == "SUCCESS":
			trs = append(trs, tr("topup:"+x.id, settlement, wallet, zhifu.TransferTopup))
		case x.kind == "withdrawal":
			trs = append(trs, tr("wd:"+x.id+":hold", wallet, frozen, zhifu.TransferWithdraw))
			switch x.status {
			case "SUCCESS":
				trs = append(trs, tr("wd:"+x.id+":paid", frozen, settlement, zhifu.TransferWithdraw))
			case "FAILED":
				trs = append(trs, tr("wd:"+x.id+":return", frozen, wallet, zhifu.TransferWithdraw))
			}
		}
		if len(trs) == 0 {
			continue
		}
		res, err := r.b.Submit(ctx, trs)
		if err != nil {
			r.t.Fatal(err)
		}
		for i, v := range res {
			if v != ledger.TransferOK {
				r.t.Fatalf("seed %s: transfer %s: %s", x.id, trs[i].ID, v)
			}
		}
	}
}

// fund credits a user by an operator deposit at CMB.
func (r *rig) fund(u *identity.User, fen int64) {
	r.t.Helper()
	if _, _, err := r.wal.Deposit(context.Background(), u.UserID, zhifu.Amount(fen), "CMB", "fund-"+u.UserID); err != nil {
		r.t.Fatal(err)
	}
}

// statement writes a statement file of CMB's day with lines, its
// balances adding up from opening, and returns its name.
func (r *rig) statement(name string, opening int64, lines ...bankapi.StatementLine) string {
	r.t.Helper()
	f, err := os.Create(filepath.Join(r.dir, "statements", name))
	if err != nil {
		r.t.Fatal(err)
	}
	defer f.Close()
	from, to := dayBounds(testDay)
	w := bankapi.NewStatementWriter(f)
	bal := opening
	if err := w.Open(opening, from); err != nil {
		r.t.Fatal(err)
	}
	for _, l := range lines {
		if err := w.Line(l); err != nil {
			r.t.Fatal(err)
		}
		if l.Status == bankapi.StatusSuccess {
			bal += effect(l.Kind, l.Amount)
		}
	}
	if err := w.Close(bal, to); err != nil {
		r.t.Fatal(err)
	}
	return name
}

// balance is an account's balance (credit less debit).
func (r *rig) balance(id int64) int64 {
	r.t.Helper()
	accts, err := r.st.LookupAccounts(context.Background(), []int64{id})
	if err != nil || len(accts) != 1 {
		r.t.Fatalf("account %d: %v %v", id, accts, err)
	}
	return accts[0].Balance()
}

// checkLedger runs the full audit and the custody check, both clean.
func (r *rig) checkLedger() *Custody {
	r.t.Helper()
	rep, err := ledger.Check(context.Background(), r.st)
	if err != nil || !rep.OK {
		r.t.Fatalf("ledger check: %+v %v", rep, err)
	}
	c, err := r.svc.CheckCustody(context.Background(), false)
	if err != nil || !c.OK {
		r.t.Fatalf("custody: %+v %v", c, err)
	}
	return c
}
