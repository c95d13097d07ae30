// Package report builds the platform's reports from what it recorded, never
// from counters kept in memory. Today that is the banks' monthly report: for
// each bank, the month's bank transactions by kind (top-ups, payouts, card
// payments, refunds: how many succeeded and failed, and the money that
// moved), read from bank_txns by their final status, and the month's calls
// to the bank, read from the call records package channel writes
// (bank_calls): success rate, latency percentiles, the most frequent
// failures, the busiest minute, the minutes the bank was down, the success
// rate of every day, and the bank's rank among the others (by success rate,
// then by 95th percentile latency). A month is a calendar month in China
// (UTC+8), as the platform's bills count days.
//
// Every figure is aggregated in the database (GROUP BY per bank, per minute,
// per millisecond of latency), and the per-minute rows are read as a
// stream. The month's call records, written in the order of the calls, are
// found as one stretch of the table by an index-only read and then read in
// order, twice; a month of a million calls costs those reads and memory
// for a few thousand rows, whatever the volume. The SQL is all in sql.go.
//
// The polls of every bank's maintenance notice are counted by kind only: a
// bank the platform did nothing else with is left out of the month.
//
// A call counts as a success when the bank answered for itself (see
// channel.CallOK): a "declined, insufficient funds" is the bank working. A
// minute counts as down when at least DownCallsMin calls were made to the
// bank in it and none succeeded; while a breaker is open the channels
// still probe the bank every few seconds, so every minute of an outage
// holds that many failed calls, and one unlucky call in a quiet minute is
// not taken for an outage.
// Call records written in the last second before a crash may be missing
// (they are written in batches); the transactions' figures are exact.
//
// The report is written as JSON, as CSV (one line per bank), and as one
// self-contained HTML page with its charts drawn as inline SVG, meant to be
// served under a Content-Security-Policy that allows nothing from outside
// (CSP).
package report
