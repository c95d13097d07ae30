package report

// The report's queries, all of them, written once for both stores (?
// placeholders, integer division of BIGINT nanoseconds). Each takes the
// month's bounds [from, to) in unix nanoseconds. Reads of the banks'
// maintenance notices are the platform polling every bank, busy or idle:
// they are counted by kind and left out of every other figure.

// txnTotalsSQL counts the month's bank transactions per bank, kind, method,
// whether they pay a trade, and status, with the money of each group.
const txnTotalsSQL = `SELECT bank, kind, method, CASE WHEN trade_no <> '' THEN 1 ELSE 0 END, status,
	COUNT(*), COALESCE(SUM(amount), 0)
	FROM bank_txns WHERE created_at >= ? AND created_at < ?
	GROUP BY bank, kind, method, CASE WHEN trade_no <> '' THEN 1 ELSE 0 END, status`

// callOutcomesSQL counts the month's calls per bank, kind of call, outcome
// and code.
const callOutcomesSQL = `SELECT bank, kind, outcome, code, COUNT(*)
	FROM bank_calls WHERE started_at >= ? AND started_at < ?
	GROUP BY bank, kind, outcome, code`

// callMinutesSQL counts the calls and the successful ones of every minute
// in which a bank was called (minutes since the epoch); read as a stream.
const callMinutesSQL = `SELECT bank, started_at / 60000000000, COUNT(*),
	SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END)
	FROM bank_calls WHERE started_at >= ? AND started_at < ? AND kind <> 'maintenance'
	GROUP BY bank, started_at / 60000000000`

// callLatencySQL is every bank's latency histogram in whole milliseconds,
// in ascending order: at most one row per millisecond value that occurred,
// a few thousand for calls bounded by the channels' timeout.
const callLatencySQL = `SELECT bank, latency / 1000000, COUNT(*)
	FROM bank_calls WHERE started_at >= ? AND started_at < ? AND kind <> 'maintenance'
	GROUP BY bank, latency / 1000000
	ORDER BY bank, latency / 1000000`
