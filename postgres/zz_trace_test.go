package postgres_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"zhifu/ledger"
)

type timedStore struct {
	ledger.Store
	d map[string]time.Duration
}

type timedTx struct {
	ledger.Tx
	d map[string]time.Duration
}

func (s *timedStore) Update(ctx context.Context, fn func(ledger.Tx) error) error {
	start := time.Now()
	var inner time.Duration
	err := s.Store.Update(ctx, func(tx ledger.Tx) error {
		t0 := time.Now()
		err := fn(&timedTx{tx, s.d})
		inner += time.Since(t0)
		return err
	})
	s.d["commit+begin"] += time.Since(start) - inner
	return err
}

func (t *timedTx) LockAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	s := time.Now(); defer func() { t.d["lock"] += time.Since(s) }()
	return t.Tx.LockAccounts(ctx, ids)
}
func (t *timedTx) LoadTransfers(ctx context.Context, ids []string) ([]ledger.Transfer, error) {
	s := time.Now(); defer func() { t.d["loadtr"] += time.Since(s) }()
	return t.Tx.LoadTransfers(ctx, ids)
}
func (t *timedTx) InsertTransfers(ctx context.Context, x []ledger.Transfer) error {
	s := time.Now(); defer func() { t.d["insert"] += time.Since(s) }()
	return t.Tx.InsertTransfers(ctx, x)
}
func (t *timedTx) UpdateAccounts(ctx context.Context, x []ledger.Account) error {
	s := time.Now(); defer func() { t.d["update"] += time.Since(s) }()
	return t.Tx.UpdateAccounts(ctx, x)
}

func TestZZTrace(t *testing.T) {
	ctx := context.Background()
	db := open(t, newDatabase(t))
	accounts := make([]ledger.Account, 10000)
	for i := range accounts {
		accounts[i] = ledger.Account{ID: int64(i + 1), Ledger: 156, Code: 1}
	}
	ledger.CreateAccounts(ctx, db, accounts)
	st := &timedStore{db, map[string]time.Duration{}}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	start := time.Now()
	for range 20 {
		sub := make([]ledger.Transfer, 4096)
		for i := range sub {
			n++
			dr := rng.Int64N(10000) + 1
			cr := (dr+rng.Int64N(9999))%10000 + 1
			sub[i] = ledger.Transfer{ID: fmt.Sprint("b-", n), DebitAccountID: dr, CreditAccountID: cr, Amount: 5, Ledger: 156, Code: 1}
		}
		ledger.Commit(ctx, st, [][]ledger.Transfer{sub}, 1)
	}
	fmt.Println(time.Since(start), st.d)
}
