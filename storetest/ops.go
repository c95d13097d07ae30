package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu/ledger"
)

// payOp is the shape of a business op: pay an order once, moving money and
// changing the order's status in one transaction.
type payOp struct {
	order, buyer, seller int64
	amount               int64
	paid                 bool // outcome: this op paid the order
	refusal              string
}

func (o *payOp) Keys() []string { return []string{fmt.Sprint("order:", o.order)} }

func (o *payOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.paid, o.refusal = false, ""
	var status string
	err := tx.QueryRow(ctx, `SELECT status FROM optest_orders WHERE id = ? FOR UPDATE`, o.order).Scan(&status)
	if errors.Is(err, ledger.ErrNoRows) {
		o.refusal = "not found"
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if status != "unpaid" {
		o.refusal = "already " + status
		return nil, nil
	}
	return []ledger.Transfer{tr(fmt.Sprint("pay-", o.order), o.buyer, o.seller, o.amount)}, nil
}

func (o *payOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if len(results) == 0 {
		return nil
	}
	if results[0] != ledger.TransferOK {
		o.refusal = results[0].String()
		return nil
	}
	// One row or the batch fails: another writer changing the order under
	// our lock would be a bug. A Write, as business ops write their rows:
	// on PostgreSQL it rides with the batch's other ops' writes.
	if err := tx.Write(ctx, 1, `UPDATE optest_orders SET status = 'paid' WHERE id = ? AND status = 'unpaid'`, o.order); err != nil {
		return err
	}
	o.paid = true
	return nil
}

// testOps races 200 pay ops per order through the batcher (on two handles
// when given): each order is paid exactly once and the buyer charged once.
func testOps(t *testing.T, st, other ledger.Store) {
	if _, err := st.Reader().Exec(ctx, `CREATE TABLE optest_orders (id BIGINT PRIMARY KEY, status TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	const orders, racers = 5, 200
	mustCreate(t, st, wallet(1), wallet(2), bank(3))
	commit(t, st, tr("fund", 3, 1, 1_000_000))
	for i := 1; i <= orders; i++ {
		if _, err := st.Reader().Exec(ctx, `INSERT INTO optest_orders (id, status) VALUES (?, 'unpaid')`, i); err != nil {
			t.Fatal(err)
		}
	}
	batchers := []*ledger.Batcher{ledger.NewBatcher(st, time.Now)}
	if other != nil {
		batchers = append(batchers, ledger.NewBatcher(other, time.Now))
	}
	var paid atomic.Int64
	var wg sync.WaitGroup
	for r := 0; r < racers*orders; r++ {
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			op := &payOp{order: int64(r%orders + 1), buyer: 1, seller: 2, amount: 100}
			if err := batchers[r%len(batchers)].Do(ctx, op); err != nil {
				t.Errorf("do: %v", err)
				return
			}
			if op.paid {
				paid.Add(1)
			} else if op.refusal != "already paid" && op.refusal != "exists" {
				t.Errorf("unexpected refusal %q", op.refusal)
			}
		}(r)
	}
	wg.Wait()
	for _, b := range batchers {
		b.Close()
	}
	if paid.Load() != orders {
		t.Fatalf("%d payments succeeded, want %d", paid.Load(), orders)
	}
	if a := account(t, st, 1); a.DebitsPosted != orders*100 {
		t.Fatalf("buyer charged %d, want %d", a.DebitsPosted, orders*100)
	}
	mustCheck(t, st)
}

// moveOp is a business op that moves money and writes nothing else.
type moveOp struct {
	t      ledger.Transfer
	result ledger.TransferResult
}

func (o *moveOp) Keys() []string { return nil }

func (o *moveOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	return []ledger.Transfer{o.t}, nil
}

func (o *moveOp) Finish(_ context.Context, _ ledger.Tx, r []ledger.TransferResult) error {
	o.result = r[0]
	return nil
}

// testBulkLane queues a burst of background ops, then submits urgent ones:
// each urgent op must commit while most of the burst still waits.
func testBulkLane(t *testing.T, st ledger.Store) {
	const burst, urgent = 20000, 5
	mustCreate(t, st, wallet(1), wallet(2), bank(3))
	b := ledger.NewBatcher(st, time.Now)
	defer b.Close()
	var wg sync.WaitGroup
	for i := 0; i < burst; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			op := &moveOp{t: tr(fmt.Sprint("bulk-", i), 3, 1, 1)}
			if err := b.DoBulk(ctx, op); err != nil || op.result != ledger.TransferOK {
				t.Errorf("bulk %d: %v %v", i, err, op.result)
			}
		}(i)
	}
	// Wait until a backlog has built up in the background lane.
	deadline := time.Now().Add(10 * time.Second)
	for _, n := b.QueueLen(); n < burst/4; _, n = b.QueueLen() {
		if time.Now().After(deadline) {
			t.Skipf("no backlog formed (the store drains %d ops faster than they are queued)", burst)
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < urgent; i++ {
		op := &moveOp{t: tr(fmt.Sprint("urgent-", i), 3, 2, 1)}
		if err := b.Do(ctx, op); err != nil || op.result != ledger.TransferOK {
			t.Fatalf("urgent %d: %v %v", i, err, op.result)
		}
		if _, waiting := b.QueueLen(); i == 0 && waiting == 0 {
			t.Fatalf("the first urgent op waited until the background lane drained")
		}
	}
	wg.Wait()
	mustCheck(t, st)
}
