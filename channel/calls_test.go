package channel_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"zhifu/bankapi"
	"zhifu/channel"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// TestCallLog writes records through the batcher's rider lane, in
// batches, and prunes those past the retention in bounded deletes, on both
// stores.
func TestCallLog(t *testing.T) {
	testdb.Each(t, func(t *testing.T, open func() ledger.Store) {
		ctx := context.Background()
		st := open()
		now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		clock := testkit.NewClock(now)
		b := ledger.NewBatcher(st, clock.Now)
		defer b.Close()
		log := channel.NewCallLog(b, clock, nil)
		old := now.AddDate(0, -channel.CallRetentionMonths, -1)
		const n = 2500 // three batches
		for i := range n {
			at := now.Add(-time.Duration(i) * time.Second)
			if i%2 == 0 {
				at = old.Add(-time.Duration(i) * time.Second)
			}
			log.Add(channel.Call{Bank: "CMB", Kind: channel.CallDebit, TxnID: "TU1", StartedAt: at,
				Latency: 3 * time.Millisecond, Outcome: channel.CallRefused, Code: "SYSTEM_BUSY"})
		}
		if err := log.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if got := count(t, st, ""); got != n || log.Written() != n || log.Dropped() != 0 {
			t.Fatalf("after flush: %d rows, %d written, %d dropped", got, log.Written(), log.Dropped())
		}
		var kind, outcome, code string
		var latency int64
		if err := st.Reader().QueryRow(ctx, `SELECT kind, outcome, code, latency FROM bank_calls ORDER BY seq LIMIT 1`).
			Scan(&kind, &outcome, &code, &latency); err != nil || kind != "debit" || outcome != "refused" ||
			code != "SYSTEM_BUSY" || latency != int64(3*time.Millisecond) {
			t.Fatalf("first record: %v %s %s %s %d", err, kind, outcome, code, latency)
		}
		deleted, err := log.Prune(ctx)
		if err != nil || deleted != n/2 {
			t.Fatalf("prune: %d, %v", deleted, err)
		}
		if got := count(t, st, "WHERE started_at < ?", old.Add(time.Second).UnixNano()); got != 0 {
			t.Fatalf("%d records past retention left", got)
		}
		if got := count(t, st, ""); got != n/2 {
			t.Fatalf("%d records left, want %d", got, n/2)
		}
	})
}

func count(t *testing.T, st ledger.Store, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.Reader().QueryRow(context.Background(), `SELECT count(*) FROM bank_calls `+where, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCallOutcomes: how a bank's answers are recorded, as the breaker
// counts them.
func TestCallOutcomes(t *testing.T) {
	for _, c := range []struct {
		name          string
		txn           bankapi.Transaction
		err           error
		outcome, code string
	}{
		{"success", bankapi.Transaction{Status: bankapi.StatusSuccess}, nil, channel.CallOK, ""},
		{"declined", bankapi.Transaction{Status: bankapi.StatusFailed, Reason: bankapi.ReasonInsufficientFunds}, nil,
			channel.CallOK, bankapi.ReasonInsufficientFunds},
		{"bank error", bankapi.Transaction{Status: bankapi.StatusFailed, Reason: bankapi.ReasonBankError}, nil,
			channel.CallRefused, bankapi.ReasonBankError},
		{"busy", bankapi.Transaction{}, &bankapi.APIError{Status: http.StatusServiceUnavailable, Code: bankapi.CodeSystemBusy},
			channel.CallRefused, bankapi.CodeSystemBusy},
		{"unknown request", bankapi.Transaction{}, &bankapi.APIError{Status: http.StatusNotFound, Code: bankapi.CodeNotFound},
			channel.CallOK, bankapi.CodeNotFound},
		{"timeout", bankapi.Transaction{}, context.DeadlineExceeded, channel.CallTimeout, ""},
		{"no answer", bankapi.Transaction{}, errors.New("connection refused"), channel.CallTransport, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			outcome, code := channel.CallOutcome(c.txn, c.err)
			if outcome != c.outcome || code != c.code {
				t.Errorf("got %s %q, want %s %q", outcome, code, c.outcome, c.code)
			}
		})
	}
}
