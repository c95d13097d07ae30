package trade

import (
	"strings"
	"testing"

	"zhifu/ledger"
)

// The trade look-ups every create and every move makes find their row
// through the index that names it, on both stores, and on PostgreSQL also
// in the generic plan a cached prepared statement runs once it has run a
// few times: a plan over another index, such as trades_merchant_day for
// merchant_id alone, reads every trade of the merchant for each look-up.
// The table is empty, the state in which a new database caches its plans.
// The merchant's list and bill, by time, keep trades_merchant_day.
func TestTradeLookupsUseTheirIndexes(t *testing.T) {
	list := listTradesSQL
	bill := `SELECT COUNT(*) FROM trades WHERE ` + billTradesWhere
	index := map[string]map[string]string{
		"sqlite": {outTradeNoSQL: "sqlite_autoindex_trades_2", lockTradeSQL: "sqlite_autoindex_trades_1",
			list: "trades_merchant_day", bill: "trades_merchant_day"},
		"postgres": {outTradeNoSQL: "trades_merchant_id_out_trade_no_key", lockTradeSQL: "trades_pkey",
			list: "trades_merchant_day", bill: "trades_merchant_day"},
	}
	args := map[string][]any{outTradeNoSQL: {"M1", "o1"}, lockTradeSQL: {"T1"},
		list: {"M1", "9", "9", "T9", "11"}, bill: {"M1", "1", "9", "1", "9"}}
	for name, open := range testStores {
		t.Run(name, func(t *testing.T) {
			st, _ := open(t)
			for query, want := range index[name] {
				plan := explain(t, st, name, query, args[query]...)
				if name == "postgres" {
					plan += explainGeneric(t, st, query, args[query]...)
				}
				for _, line := range strings.Split(strings.TrimSpace(plan), "\n") {
					if strings.Contains(line, " trades") && !strings.Contains(line, want) {
						t.Errorf("%s\nreads trades otherwise than by %s:\n%s", query, want, plan)
						break
					}
				}
			}
		})
	}
}

// explainGeneric returns PostgreSQL's generic plan for query: the one a
// prepared statement is run with once the server finds it no worse than
// planning each run anew.
func explainGeneric(t *testing.T, st ledger.Store, query string, args ...any) string {
	t.Helper()
	// EXECUTE takes no parameters of its own: the test's values, plain
	// strings, go in as literals.
	lits := make([]string, len(args))
	for i, a := range args {
		lits[i] = "'" + a.(string) + "'"
	}
	return plan(t, st, "postgres", []string{`SET LOCAL plan_cache_mode = force_generic_plan`,
		`PREPARE lookup_plan AS ` + strings.TrimSuffix(query, " FOR UPDATE")},
		`EXPLAIN EXECUTE lookup_plan(`+strings.Join(lits, ", ")+`)`, nil, `DEALLOCATE lookup_plan`)
}
