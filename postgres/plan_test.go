package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// TestBatchLookupsUseIndexes builds a ledger with a history (300,000
// transfers over 10,000 accounts, analysed) and asks PostgreSQL how it
// would run each per-batch lookup for a batch of 5,000 ids: every one must
// use its index, never read the whole table. "= ANY($1)" did not: with
// thousands of ids its custom plan was a sequential scan.
func TestBatchLookupsUseIndexes(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	const accounts, transfers, batch = 10_000, 300_000, 5_000
	for _, q := range []string{
		fmt.Sprintf(`INSERT INTO accounts (id, ledger, code, flags, ts) SELECT g, 156, 1, 0, 0 FROM generate_series(1, %d) g`, accounts),
		fmt.Sprintf(`INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, pending_id, ledger, code,
			flags, ts, debit_balance, credit_balance)
			SELECT 't' || g, 1 + g %% %[2]d, 1 + (g + 1) %% %[2]d, 1, CASE WHEN g %% 10 = 0 THEN 'p' || g END, 156, 1, 0, g, 0, 0
			FROM generate_series(1, %[1]d) g`, transfers, accounts),
		`ANALYZE accounts`, `ANALYZE transfers`,
	} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	accountIDs := make([]int64, batch)
	transferIDs, pendingIDs := make([]string, batch), make([]string, batch)
	for i := range batch {
		accountIDs[i] = int64(1 + i*2)
		transferIDs[i] = fmt.Sprint("t", 1+i*50)
		pendingIDs[i] = fmt.Sprint("p", 10*(1+i*5))
	}
	plan := func(sql string, arg any) string {
		rows, err := db.pool.Query(ctx, "EXPLAIN "+sql, arg)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			b.WriteString(line + "\n")
		}
		return b.String()
	}
	if p := plan(`SELECT `+transferColumns+` FROM transfers WHERE id = ANY($1)`, transferIDs); strings.Contains(p, "Seq Scan") {
		t.Logf("for comparison, = ANY($1) over %d ids scans the table", batch)
	}
	for _, c := range []struct {
		name, sql string
		arg       any
	}{
		{"lock accounts", lockAccountsSQL, accountIDs},
		{"look up accounts", lookupAccountsSQL, accountIDs},
		{"load transfers", lookupTransfersSQL, transferIDs},
		{"load resolutions", lookupResolutionsSQL, pendingIDs},
	} {
		p := plan(c.sql, c.arg)
		if strings.Contains(p, "Seq Scan on accounts") || strings.Contains(p, "Seq Scan on transfers") ||
			!strings.Contains(p, "Index") {
			t.Errorf("%s reads the whole table:\n%s", c.name, p)
		}
	}
}
