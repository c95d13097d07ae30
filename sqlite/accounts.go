package sqlite

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"zhifu/ledger"
)

// accountCacheMax bounds the balances kept; past it the cache starts
// again empty (a million wallets fit).
const accountCacheMax = 1 << 20

// accountCache keeps the accounts as this process's writer last read or
// committed them, so that locking them in the next batch is a map look-up
// instead of a random read of the accounts table (with a million wallets,
// locking was a seventh of the ledger's time). It is only a copy:
//
//   - Another connection's commit, another process's or this one's, moves
//     SQLite's data_version, which each write transaction reads after it
//     has taken the write lock; a change empties the cache.
//   - Every UPDATE of an account names the balances its transaction read
//     (guardedUpdateSQL); if the row holds others, the copy was stale in a
//     way data_version cannot see (a statement of this connection's own
//     outside the ledger), the batch fails, nothing is written from the
//     copy, and the cache is emptied for the next.
//   - Only what a transaction that committed read or wrote is kept, and
//     any failed transaction empties the cache.
//
// Nothing of it outlives the process, so a crash leaves only the database.
type accountCache struct {
	mu      sync.Mutex
	m       map[int64]ledger.Account
	version int64
}

func newAccountCache() *accountCache { return &accountCache{m: make(map[int64]ledger.Account)} }

// begin checks data_version under the write lock and empties the cache if
// another connection has committed since the last transaction began.
func (c *accountCache) begin(ctx context.Context, w *writeTx) error {
	var v int64
	if err := w.QueryRow(ctx, `PRAGMA data_version`).Scan(&v); err != nil {
		return fmt.Errorf("sqlite: data version: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v != c.version {
		clear(c.m)
		c.version = v
	}
	return nil
}

// get returns the cached accounts among ids and the ids it lacks.
func (c *accountCache) get(ids []int64) (hit []ledger.Account, miss []int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range ids {
		if a, ok := c.m[id]; ok {
			hit = append(hit, a)
		} else {
			miss = append(miss, id)
		}
	}
	return hit, miss
}

// commit keeps what a committed transaction read and wrote.
func (c *accountCache) commit(seen map[int64]ledger.Account) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(seen) > accountCacheMax {
		clear(c.m)
	}
	for id, a := range seen {
		c.m[id] = a
	}
}

func (c *accountCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}

// lockAccounts is LockAccounts: the cached accounts, and the rest read.
// SQLite's write lock already excludes every other writer.
func (w *writeTx) lockAccounts(ctx context.Context, ids []int64) ([]ledger.Account, error) {
	out, miss := w.cache.get(ids)
	if len(miss) > 0 {
		read, err := lookupAccounts(ctx, w.querier, miss)
		if err != nil {
			return nil, err
		}
		out = append(out, read...)
		slices.SortFunc(out, func(a, b ledger.Account) int { return compareID(a.ID, b.ID) })
	}
	for _, a := range out {
		w.seen[a.ID] = a
	}
	return out, nil
}

func compareID(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// guardedUpdateSQL writes an account's balances where the row still holds
// the balances the transaction read.
const guardedUpdateSQL = `UPDATE accounts SET debits_pending = ?, debits_posted = ?,
	credits_pending = ?, credits_posted = ?
	WHERE id = ? AND debits_pending = ? AND debits_posted = ? AND credits_pending = ? AND credits_posted = ?`

// errStaleAccount is a guarded UPDATE that found other balances than the
// transaction read.
var errStaleAccount = fmt.Errorf("sqlite: an account's balances changed under the copy this process kept")
