package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"

	"zhifu/ledger"
)

// Reads run ahead (Prefetch) answer the Prepare that makes them, once, as
// they found the row; a write in the transaction drops them; a locking
// read takes its lock when it runs ahead.
func TestPrefetch(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	for _, q := range []string{
		`CREATE TABLE kv (k TEXT PRIMARY KEY, v BIGINT NOT NULL, note TEXT)`,
		`INSERT INTO kv VALUES ('a', 1, NULL), ('b', 10, 'ten')`,
	} {
		if _, err := db.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	const get = `SELECT v, note FROM kv WHERE k = ?`
	// outside changes a row from another connection, with no waiting for
	// a lock.
	outside := func(q string) error {
		_, err := db.pool.Exec(ctx, `SET lock_timeout = '200ms'; `+q)
		return err
	}
	read := func(tx ledger.Tx, k string) (int64, *string, error) {
		var v int64
		var note *string
		err := tx.QueryRow(ctx, get, k).Scan(&v, &note)
		return v, note, err
	}
	err := db.Update(ctx, func(tx ledger.Tx) error {
		pf := tx.(ledger.Prefetching)
		if err := pf.Prefetch(ctx, []ledger.Read{{Query: get, Args: []any{"a"}}, {Query: get, Args: []any{"b"}},
			{Query: get, Args: []any{"missing"}}}); err != nil {
			return err
		}
		if err := outside(`UPDATE kv SET v = 2 WHERE k = 'a'`); err != nil {
			t.Fatal(err)
		}
		// Answered as read ahead (1, before the change outside), NULL
		// and all.
		if v, note, err := read(tx, "a"); err != nil || v != 1 || note != nil {
			t.Fatalf("a read ahead: %d %v %v", v, note, err)
		}
		if v, note, err := read(tx, "b"); err != nil || v != 10 || note == nil || *note != "ten" {
			t.Fatalf("b read ahead: %d %v %v", v, note, err)
		}
		if _, _, err := read(tx, "missing"); !errors.Is(err, ledger.ErrNoRows) {
			t.Fatalf("missing read ahead: %v", err)
		}
		// Once only: the same read again goes to the database.
		if v, _, err := read(tx, "a"); err != nil || v != 2 {
			t.Fatalf("a read again: %d %v", v, err)
		}

		// A write drops what was read ahead.
		if err := pf.Prefetch(ctx, []ledger.Read{{Query: get, Args: []any{"a"}}}); err != nil {
			return err
		}
		if err := tx.Write(ctx, 1, `UPDATE kv SET note = 'b' WHERE k = 'b'`); err != nil {
			return err
		}
		if err := outside(`UPDATE kv SET v = 3 WHERE k = 'a'`); err != nil {
			t.Fatal(err)
		}
		if v, _, err := read(tx, "a"); err != nil || v != 3 {
			t.Fatalf("a after a write: %d %v, want the row as it now is", v, err)
		}

		// A locking read takes its lock when it runs ahead.
		if err := pf.Prefetch(ctx, []ledger.Read{{Query: get + ` FOR UPDATE`, Args: []any{"a"}}}); err != nil {
			return err
		}
		if err := outside(`UPDATE kv SET v = 4 WHERE k = 'a'`); err == nil || !strings.Contains(err.Error(), "lock timeout") {
			t.Fatalf("a changed outside while locked ahead: %v", err)
		}
		var v int64
		if err := tx.QueryRow(ctx, get+` FOR UPDATE`, "a").Scan(&v, new(*string)); err != nil || v != 3 {
			t.Fatalf("a locked ahead: %d %v", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
