// Package ledger is zhifu's double-entry ledger: accounts with posted and
// pending debit and credit balances in integer minor units, immutable
// transfers with caller-chosen ids, two-phase (pending, then posted or voided)
// transfers, linked groups that succeed or fail together, and a batcher that
// gathers concurrent callers' transfers into one durable database transaction.
//
// The rules live here once, as pure functions over an in-memory State (see
// rules.go). A Store (package sqlite or postgres) only locks, loads and saves:
// Commit asks it for the rows a batch touches, applies the rules, and hands
// back the rows to write. Every result code is checked in the order documented
// on TransferResult.
package ledger
