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

// callSeqsSQL finds the seq range of the month's call records through the
// started_at index alone (its entries hold the seq). Records are written
// in the order of their calls, give or take a second, so a month is one
// stretch of the table: the queries below read that stretch in order
// instead of looking up a million rows one by one through the index.
const callSeqsSQL = `SELECT COALESCE(MIN(seq), 0), COALESCE(MAX(seq), -1) FROM bank_calls
	WHERE started_at >= ? AND started_at < ?`

// callWhere is the month's records by seq range and start, the planner
// choosing how to read them. It takes the range's first and last seq, then
// the month's bounds.
const callWhere = `seq >= ? AND seq <= ? AND started_at >= ? AND started_at < ?`

// callOutcomesSQL counts the month's calls per bank, kind of call,
// outcome, code and latency in whole milliseconds: a few thousand rows, the
// latencies of calls being bounded by the channels' timeout.
const callOutcomesSQL = `SELECT bank, kind, outcome, code, latency / 1000000, COUNT(*)
	FROM bank_calls WHERE ` + callWhere + `
	GROUP BY bank, kind, outcome, code, latency / 1000000`

// callMinutesSQL counts the calls and the successful ones of every minute
// in which a bank was called (minutes since the epoch); read as a stream.
const callMinutesSQL = `SELECT bank, started_at / 60000000000, COUNT(*),
	SUM(CASE WHEN outcome = 'ok' THEN 1 ELSE 0 END)
	FROM bank_calls WHERE ` + callWhere + ` AND kind <> 'maintenance'
	GROUP BY bank, started_at / 60000000000`
