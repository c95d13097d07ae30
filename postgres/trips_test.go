package postgres

import (
	"context"
	"testing"

	"zhifu/ledger"
)

// A write transaction's round trips are counted: the held writes sent
// together before the next read, with the BEGIN ahead of them (lazyTx),
// that read, and its COMMIT; reads outside a transaction are not.
func TestRoundTrips(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	if _, err := db.pool.Exec(ctx, `CREATE TABLE trips (id BIGINT PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	trips := func(fn func(tx ledger.Tx) error) int64 {
		t.Helper()
		before := db.RoundTrips()
		if err := db.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
		return db.RoundTrips() - before
	}
	writesAndRead := func(tx ledger.Tx) error {
		for i := range 3 {
			if err := tx.Write(ctx, 1, `INSERT INTO trips (id) VALUES (?) ON CONFLICT (id) DO UPDATE SET id = excluded.id`, i); err != nil {
				return err
			}
		}
		var n int64
		return tx.QueryRow(ctx, `SELECT COUNT(*) FROM trips`).Scan(&n)
	}
	// Statements are prepared on first use, a round trip of its own.
	if n := trips(writesAndRead); n < 3 {
		t.Fatalf("first run: %d round trips, want 3 and the preparations", n)
	}
	if n := trips(writesAndRead); n != 3 {
		t.Fatalf("three writes and a read: %d round trips, want BEGIN with the writes, the read, and COMMIT", n)
	}
	// A transaction that sends nothing costs nothing.
	if n := trips(func(ledger.Tx) error { return nil }); n != 0 {
		t.Fatalf("an empty transaction: %d round trips", n)
	}
	before := db.RoundTrips()
	var n int64
	if err := db.Reader().QueryRow(ctx, `SELECT COUNT(*) FROM trips`).Scan(&n); err != nil || n != 3 {
		t.Fatal(n, err)
	}
	if got := db.RoundTrips() - before; got != 0 {
		t.Errorf("a read outside a transaction counted %d round trips", got)
	}
}
