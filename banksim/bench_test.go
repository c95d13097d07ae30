package banksim_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"zhifu/bankapi"
)

// BenchmarkDebit measures the simulator's own throughput over HTTP, which
// must stay well above any capacity a scenario gives a bank.
func BenchmarkDebit(b *testing.B) {
	e := newEnv(b, nil)
	card := e.card("ICBC", 1)
	c := e.client("ICBC")
	var n atomic.Int64
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := fmt.Sprint("b-", n.Add(1))
			if _, err := c.Debit(context.Background(), bankapi.TxnRequest{RequestID: id, CardToken: card.CardToken, Amount: 1}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
