package ledgerload

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"zhifu/ledger"
)

// History is a ledger prepared with a large history, so that benchmarks
// measure a ledger as it is after months of business rather than on empty
// tables, whose indexes fit in a few pages.
const (
	// HistoryFirstAccountID is where a prepared history's accounts start:
	// its funding bank, then its wallets. It is clear of the platform's
	// and users' account ids, so a history can live in a platform's
	// database too.
	HistoryFirstAccountID int64 = 1 << 50
	// HistoryRunID prefixes the prepared transfers' ids.
	HistoryRunID = "history"
	// historyTransfersMax bounds one preparation.
	historyTransfersMax = 100_000_000
)

// HistoryConfig says how large a history to prepare.
type HistoryConfig struct {
	Accounts  int   // wallets, funded; at most accountsMax
	Transfers int64 // transfers among them, besides the funding ones
	// Progress, if set, is called after every transaction with the
	// transfers written so far.
	Progress func(done, total int64)
}

// PrepareHistory writes a history into st: the accounts, their funding,
// then cfg.Transfers transfers among random pairs, through the ledger's
// own rules (ledger.Commit) in transactions of ledger.BatchTransfersMax, so
// the balances, the entries and the audit agree as they would after real
// traffic. It continues a history already partly written (a preparation
// cut short, or a smaller history grown), counting what is there.
func PrepareHistory(ctx context.Context, st ledger.Store, cfg HistoryConfig) error {
	if cfg.Transfers < 0 || cfg.Transfers > historyTransfersMax {
		return fmt.Errorf("ledgerload: transfers must be 0..%d", historyTransfersMax)
	}
	lc := Config{Accounts: cfg.Accounts, FirstAccountID: HistoryFirstAccountID, RunID: HistoryRunID}
	have, err := historyLength(ctx, st)
	if err != nil {
		return err
	}
	if have == 0 {
		if err := Setup(ctx, st, lc); err != nil {
			return err
		}
	}
	rng := rand.New(rand.NewPCG(uint64(have), 1))
	for done := have; done < cfg.Transfers; {
		n := min(int64(ledger.BatchTransfersMax), cfg.Transfers-done)
		sub := make([]ledger.Transfer, n)
		for i := range sub {
			from := rng.Int64N(int64(cfg.Accounts)) + 1
			to := (from+rng.Int64N(int64(cfg.Accounts-1)))%int64(cfg.Accounts) + 1
			sub[i] = ledger.Transfer{ID: fmt.Sprintf("%s-%d", HistoryRunID, done+int64(i)+1),
				DebitAccountID: HistoryFirstAccountID + from, CreditAccountID: HistoryFirstAccountID + to,
				Amount: rng.Int64N(10_000) + 1, Ledger: 156, Code: 1}
		}
		res, err := ledger.Commit(ctx, st, [][]ledger.Transfer{sub}, time.Now().UnixNano())
		if err != nil {
			return err
		}
		for i, r := range res[0] {
			if r != ledger.TransferOK && r != ledger.TransferExists {
				return fmt.Errorf("ledgerload: history transfer %s: %s", sub[i].ID, r)
			}
		}
		done += n
		if cfg.Progress != nil {
			cfg.Progress(done, cfg.Transfers)
		}
	}
	return nil
}

// historyLength counts the history's transfers already written, by the
// highest id present: they are written in order, a transaction at a time.
func historyLength(ctx context.Context, st ledger.Store) (int64, error) {
	acc, err := st.LookupAccounts(ctx, []int64{HistoryFirstAccountID})
	if err != nil || len(acc) == 0 {
		return 0, err
	}
	// Binary search over ids "history-N": present below the length.
	lo, hi := int64(0), int64(historyTransfersMax)+1
	for lo+1 < hi {
		mid := (lo + hi) / 2
		ts, err := st.LookupTransfers(ctx, []string{fmt.Sprintf("%s-%d", HistoryRunID, mid)})
		if err != nil {
			return 0, err
		}
		if len(ts) == 1 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo, nil
}

// HistoryLoad is the load Config that runs on a prepared history's
// accounts; runID must differ between runs on one database.
func HistoryLoad(accounts int, runID string) Config {
	return Config{Accounts: accounts, FirstAccountID: HistoryFirstAccountID, RunID: runID}
}
