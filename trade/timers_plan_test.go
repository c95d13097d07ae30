package trade

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"zhifu/ledger"
)

// Each timer's query is answered from its own partial index (migration
// 0026) on both stores, not by reading the trades table: the index holds
// only the trades of the timer's status.
func TestTimerQueriesUseTheirIndexes(t *testing.T) {
	index := map[string]string{"close": "trades_close_due", "confirm": "trades_confirm_due",
		"refund_window": "trades_refund_window"}
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			st, _ := open(t)
			for _, tm := range timers {
				plan := explain(t, st, name, tm.query, int64(0), dueBatchMax)
				want := index[tm.name]
				if !strings.Contains(plan, want) {
					t.Errorf("%s timer: plan does not use %s:\n%s", tm.name, want, plan)
				}
				defQuery := `SELECT sql FROM sqlite_master WHERE name = ?`
				if name == "postgres" {
					defQuery = `SELECT indexdef FROM pg_indexes WHERE indexname = ?`
				}
				var def string
				if err := st.Reader().QueryRow(context.Background(), defQuery, want).Scan(&def); err != nil {
					t.Fatal(err)
				}
				status := tm.query[strings.Index(tm.query, "status = '")+len("status = "):]
				status = status[:strings.Index(status[1:], "'")+2]
				if !strings.Contains(def, "WHERE") || !strings.Contains(def, status) {
					t.Errorf("%s timer: index %s is not partial on status %s: %s", tm.name, want, status, def)
				}
			}
		})
	}
}

// explain returns the store's plan for query. On PostgreSQL sequential
// scans are turned off for the asking, so that the empty test table's
// plan shows which indexes the query may use.
func explain(t *testing.T, st ledger.Store, store, query string, args ...any) string {
	t.Helper()
	if store == "postgres" {
		return plan(t, st, store, []string{`SET LOCAL enable_seqscan = off`}, "EXPLAIN "+query, args, "")
	}
	return plan(t, st, store, nil, "EXPLAIN QUERY PLAN "+query, args, "")
}

// plan runs the statements of setup, then the EXPLAIN query, and returns
// the plan's lines; cleanup, if any, runs last.
func plan(t *testing.T, st ledger.Store, store string, setup []string, query string, args []any, cleanup string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	err := st.Update(ctx, func(tx ledger.Tx) error {
		b.Reset()
		for _, q := range setup {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		if cleanup != "" {
			defer tx.Exec(ctx, cleanup)
		}
		rows, err := tx.Query(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var line string
			var err error
			if store == "postgres" {
				err = rows.Scan(&line)
			} else {
				var id, parent, unused int64
				err = rows.Scan(&id, &parent, &unused, &line)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(&b, line)
		}
		return rows.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
