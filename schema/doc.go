// Package schema holds the business tables' migrations once for both stores:
// users, merchants, sessions, nonces, idempotency keys, trades, refunds,
// payment codes, notifications, platform keys, cards, bank transactions,
// announcements, the record of every call to a bank, and merchants' stored
// daily bills. Package sqlite and package postgres apply them with their
// own ledger migrations (the accounts and transfers tables, version 0001, in
// sqlite/migrations and postgres/migrations: those differ in types and
// indexes for each database's sake and stay per store; 0025 re-indexes
// SQLite's history, and PostgreSQL's 0025 only keeps the number taken).
//
// # Versions
//
// Every migration is a file NNNN_what.sql; NNNN is its version, and ledger
// and business migrations share one sequence. A store applies the versions a
// database lacks in ascending order and records each as (version, file name)
// in schema_migrations. A version, once released, keeps its number, its file
// name and its meaning forever: databases already ran it and will not run it
// again, so an applied migration is never edited; a change is a new file. A
// database whose record names another file for a version (two programs'
// schemas that chose the same number) refuses to open rather than guessing.
//
// # Adding a migration
//
// Put it in this package's migrations folder with the next free number
// (0007_…, 0008_…) and write SQL that both SQLite and PostgreSQL accept.
// Where the two spell something differently, write a placeholder such as
// {{autoincrement_pk}} and, for a new one, add a row to the table in
// dialect.go with both spellings; an unknown placeholder is an error when
// the migrations load, which every store test does. The common ground:
//
//   - Types INTEGER, BIGINT and TEXT. Times are BIGINT unix nanoseconds
//     (0 = not yet), money is BIGINT fen.
//   - SQLite's ALTER TABLE can add, rename and drop columns, not change one
//     or add a constraint; such changes rebuild the table (CREATE the new
//     one, INSERT … SELECT, DROP, ALTER TABLE … RENAME), which PostgreSQL
//     runs as well.
//   - A file runs as one multi-statement script inside a transaction (SQLite
//     commits each file on its own; PostgreSQL commits all pending files at
//     once, under an advisory lock), so nothing that refuses a transaction,
//     such as CREATE INDEX CONCURRENTLY.
//
// TestSchemasAgree (in this package) opens a fresh database of each store
// and fails when their business tables differ in any table, column (name,
// type class, nullability, default) or index (columns, uniqueness,
// condition), so drift between the stores shows at once.
package schema
