package trade

import (
	"context"
	"testing"

	"zhifu"
	"zhifu/ledger"
)

// racedCreate is a createOp whose first Prepare is followed, before its
// Finish, by another process creating the same out_trade_no: its insert
// must find the row taken, and the op answer with that process's trade.
type racedCreate struct {
	*createOp
	other    ledger.Store
	raced    bool
	prepares int
}

func (o *racedCreate) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.prepares++
	subs, err := o.createOp.Prepare(ctx, tx)
	if err == nil && !o.raced {
		o.raced = true
		rival := *o.createOp.trade
		rival.TradeNo = "20260102" + "999999999999999999"
		err = o.other.Update(ctx, func(tx ledger.Tx) error {
			err := insertTrade(ctx, tx, &rival)
			return err
		})
	}
	return subs, err
}

// A create inserts a new out_trade_no, answers a repeat with the trade it
// made, refuses one with other parameters, and, when another process takes
// the out_trade_no meanwhile, answers with that process's trade, on both
// stores.
func TestCreateOutTradeNo(t *testing.T) {
	ctx := context.Background()
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			st, other := open(t)
			create := func(tr *Trade, out string) *createOp {
				tr.OutTradeNo = out
				return &createOp{key: "out:" + out, trade: tr}
			}
			commit := func(op ledger.Op) {
				t.Helper()
				if err := ledger.CommitOps(ctx, st, []ledger.Op{op}, 1); err != nil {
					t.Fatal(err)
				}
			}

			first := create(sample(Escrow, WaitBuyerPay), "o1")
			commit(first)
			if !first.Applied() {
				t.Fatalf("new out_trade_no: existing %v refusal %v", first.existing, first.refusal)
			}
			again := sample(Escrow, WaitBuyerPay)
			again.TradeNo = "20260102" + "222222222222222222"
			repeat := create(again, "o1")
			commit(repeat)
			if repeat.Applied() || repeat.existing == nil || repeat.existing.TradeNo != first.trade.TradeNo {
				t.Fatalf("repeat: existing %v refusal %v", repeat.existing, repeat.refusal)
			}
			other1 := sample(Escrow, WaitBuyerPay)
			other1.TradeNo, other1.ParamsHash = "20260102"+"333333333333333333", "another"
			changed := create(other1, "o1")
			commit(changed)
			if changed.refusal == nil || changed.refusal.Code != zhifu.ContextInconsistent {
				t.Fatalf("other parameters: existing %v refusal %v", changed.existing, changed.refusal)
			}

			mine := sample(Escrow, WaitBuyerPay)
			mine.TradeNo = "20260102" + "444444444444444444"
			raced := &racedCreate{createOp: create(mine, "o2"), other: other}
			if name == "sqlite" {
				// One writer at a time: the other process can only have
				// taken it before this transaction began.
				rival := *mine
				rival.TradeNo = "20260102" + "999999999999999999"
				if err := other.Update(ctx, func(tx ledger.Tx) error {
					err := insertTrade(ctx, tx, &rival)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				raced.raced = true
			}
			commit(raced)

			if raced.Applied() || raced.existing == nil || raced.existing.TradeNo != "20260102"+"999999999999999999" {
				t.Fatalf("raced: existing %v refusal %v after %d prepares", raced.existing, raced.refusal, raced.prepares)
			}
		})
	}
}
