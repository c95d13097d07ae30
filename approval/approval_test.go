package approval_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"zhifu"
	"zhifu/approval"
	"zhifu/identity"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// payKind carries out "pay <amount> from account 1 to account 2" proposals.
type payKind struct{}

func (payKind) Carry(p approval.Proposal) (ledger.Op, error) {
	var amount int64
	if _, err := fmt.Sscan(p.Payload, &amount); err != nil {
		return nil, err
	}
	return &payOp{id: "pay:" + p.ID, amount: amount}, nil
}

type payOp struct {
	id     string
	amount int64
	result ledger.TransferResult
}

func (o *payOp) Keys() []string { return []string{o.id} }

func (o *payOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	return []ledger.Transfer{{ID: o.id, DebitAccountID: 1, CreditAccountID: 2, Amount: o.amount, Ledger: 156, Code: 1}}, nil
}

func (o *payOp) Finish(_ context.Context, _ ledger.Tx, r []ledger.TransferResult) error {
	o.result = r[0]
	return nil
}

func (o *payOp) Applied() bool { return o.result == ledger.TransferOK }

func (o *payOp) Refusal() error {
	return zhifu.Errorf(zhifu.BalanceNotEnough, "account 1 cannot pay: %s", o.result)
}

type fixture struct {
	st  ledger.Store
	b   *ledger.Batcher
	svc *approval.Service
}

func newFixture(t *testing.T, open func() ledger.Store) *fixture {
	st := open()
	clock := testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	b := ledger.NewBatcher(st, clock.Now)
	t.Cleanup(b.Close)
	res, err := ledger.CreateAccounts(context.Background(), st, []ledger.Account{
		{ID: 1, Ledger: 156, Code: 1, Flags: ledger.DebitsMustNotExceedCredits},
		{ID: 2, Ledger: 156, Code: 1}, {ID: 3, Ledger: 156, Code: 10}})
	if err != nil || res[0] != ledger.AccountOK {
		t.Fatal(res, err)
	}
	if r, err := ledger.Commit(context.Background(), st, [][]ledger.Transfer{{{ID: "fund", DebitAccountID: 3,
		CreditAccountID: 1, Amount: 1000, Ledger: 156, Code: 1}}}, 1); err != nil || r[0][0] != ledger.TransferOK {
		t.Fatal(r, err)
	}
	svc := approval.New(approval.Config{Store: st, Batcher: b, Clock: clock})
	svc.Register("pay", payKind{})
	return &fixture{st: st, b: b, svc: svc}
}

func (f *fixture) balance(t *testing.T, id int64) int64 {
	a, err := f.st.LookupAccounts(context.Background(), []int64{id})
	if err != nil || len(a) != 1 {
		t.Fatal(a, err)
	}
	return a[0].Balance()
}

var alice, bob = &identity.Operator{OperatorID: "OP00000001"}, &identity.Operator{OperatorID: "OP00000002"}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *zhifu.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

func TestFourEyes(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		f := newFixture(t, open)
		ctx := context.Background()
		p, err := f.svc.Propose(ctx, approval.Proposal{Kind: "pay", Subject: "s1", Summary: "pay 400", Payload: "400",
			ProposedBy: alice.OperatorID})
		if err != nil || p.State != approval.Pending {
			t.Fatal(p, err)
		}
		// The proposer cannot approve, and nothing moves.
		_, err = f.svc.Approve(ctx, p.ID, alice)
		wantCode(t, err, zhifu.Forbidden)
		root := identity.Root
		if p2, err := f.svc.Propose(ctx, approval.Proposal{Kind: "pay", Subject: "s2", Summary: "pay 1", Payload: "1",
			ProposedBy: root.OperatorID}); err != nil {
			t.Fatal(err)
		} else if _, err := f.svc.Approve(ctx, p2.ID, &root); zhifu.ErrorCode(err) != zhifu.Forbidden {
			t.Fatalf("root approving its own proposal: %v", err)
		}
		if f.balance(t, 2) != 0 {
			t.Fatal("money moved before a second operator approved")
		}
		// Bob approves, concurrently with himself: it is carried out once.
		var wg sync.WaitGroup
		var oks, conflicts int
		var mu sync.Mutex
		for range 8 {
			wg.Go(func() {
				_, err := f.svc.Approve(ctx, p.ID, bob)
				mu.Lock()
				defer mu.Unlock()
				switch zhifu.ErrorCode(err) {
				case "":
					oks++
				case zhifu.ContextInconsistent:
					conflicts++
				default:
					t.Errorf("approve: %v", err)
				}
			})
		}
		wg.Wait()
		if oks != 1 || conflicts != 7 || f.balance(t, 2) != 400 {
			t.Fatalf("%d approvals, %d refused, balance %d; want 1, 7, 400", oks, conflicts, f.balance(t, 2))
		}
		got, err := f.svc.Get(ctx, p.ID)
		if err != nil || got.State != approval.Approved || got.DecidedBy != bob.OperatorID {
			t.Fatalf("after approval: %+v %v", got, err)
		}
		// One that cannot be carried out stays pending and says why.
		big, _ := f.svc.Propose(ctx, approval.Proposal{Kind: "pay", Subject: "s3", Summary: "pay 601", Payload: "601",
			ProposedBy: alice.OperatorID})
		_, err = f.svc.Approve(ctx, big.ID, bob)
		wantCode(t, err, zhifu.BalanceNotEnough)
		if got, _ := f.svc.Get(ctx, big.ID); got.State != approval.Pending || f.balance(t, 2) != 400 {
			t.Fatalf("a refused approval: %+v, balance %d", got, f.balance(t, 2))
		}
		// A newer proposal on the same subject supersedes it; rejecting
		// moves nothing.
		newer, _ := f.svc.Propose(ctx, approval.Proposal{Kind: "pay", Subject: "s3", Summary: "pay 600", Payload: "600",
			ProposedBy: bob.OperatorID})
		if got, _ := f.svc.Get(ctx, big.ID); got.State != approval.Superseded {
			t.Fatalf("older proposal is %s", got.State)
		}
		_, err = f.svc.Approve(ctx, big.ID, bob)
		wantCode(t, err, zhifu.ContextInconsistent)
		if r, err := f.svc.Reject(ctx, newer.ID, alice, "not today"); err != nil || r.State != approval.Rejected {
			t.Fatal(r, err)
		}
		if f.balance(t, 2) != 400 {
			t.Fatalf("balance %d after a rejection", f.balance(t, 2))
		}
		pending, _, err := f.svc.List(ctx, approval.Pending, "", 10)
		if err != nil || len(pending) != 1 || pending[0].Subject != "s2" {
			t.Fatalf("pending: %+v %v", pending, err)
		}
		// The audit log tells the story, newest first.
		entries, _, err := approval.AuditLog(ctx, f.st.Reader(), 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for _, e := range entries {
			actions = append(actions, e.OperatorID+" "+e.Action)
		}
		want := []string{"OP00000001 approval.reject", "OP00000002 approval.propose", "OP00000002 approval.supersede",
			"OP00000001 approval.propose", "OP00000002 approval.approve", "OP00000000 approval.propose", "OP00000001 approval.propose"}
		if fmt.Sprint(actions) != fmt.Sprint(want) {
			t.Fatalf("audit log:\n%v\nwant\n%v", actions, want)
		}
	})
}
