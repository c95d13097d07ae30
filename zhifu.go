// Package zhifu holds the nouns every part of the platform shares: money in
// integer fen, currencies, the application's error type and its codes, and the
// clock that tests control. Packages below it adapt one technology each
// (ledger rules, SQLite, PostgreSQL, HTTP) and are wired together in cmd/zhifu.
package zhifu

import "time"

// Clock tells the time. Everything that waits, expires or times out takes a
// Clock so tests can run days in milliseconds.
type Clock interface {
	Now() time.Time
}

// SystemClock is the wall clock.
type SystemClock struct{}

// Now returns the current time.
func (SystemClock) Now() time.Time { return time.Now() }
