package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"zhifu/ledger"
)

// testWrites checks Querier.Write, which a store may hold back and send
// with the transaction's next statement: a later statement sees the
// Writes made before it, a Write that changes the wrong number of rows or
// fails fails the whole transaction, and more Writes than a pipeline holds
// all arrive.
func testWrites(t *testing.T, st ledger.Store) {
	if _, err := st.Reader().Exec(ctx, `CREATE TABLE wtest (id BIGINT PRIMARY KEY, v TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	count := func(q ledger.Querier) int64 {
		t.Helper()
		var n int64
		if err := q.QueryRow(ctx, `SELECT COUNT(*) FROM wtest`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// In order: a read after Writes sees them.
	err := st.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.Write(ctx, 1, `INSERT INTO wtest (id, v) VALUES (?, ?)`, 1, "a"); err != nil {
			return err
		}
		if err := tx.Write(ctx, 1, `UPDATE wtest SET v = ? WHERE id = ?`, "b", 1); err != nil {
			return err
		}
		var v string
		if err := tx.QueryRow(ctx, `SELECT v FROM wtest WHERE id = ?`, 1).Scan(&v); err != nil {
			return err
		}
		if v != "b" {
			return fmt.Errorf("read %q after the Writes, want b", v)
		}
		return tx.Write(ctx, -1, `UPDATE wtest SET v = ? WHERE id = ?`, "c", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := st.Reader().QueryRow(ctx, `SELECT v FROM wtest WHERE id = ?`, 1).Scan(&v); err != nil || v != "c" {
		t.Fatalf("committed v = %q (%v), want c: the last Write, sent with the commit", v, err)
	}

	// A Write changing no row where one was wanted fails the transaction,
	// and the Writes before it go with it.
	err = st.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.Write(ctx, 1, `INSERT INTO wtest (id, v) VALUES (?, ?)`, 2, "x"); err != nil {
			return err
		}
		return tx.Write(ctx, 1, `UPDATE wtest SET v = ? WHERE id = ?`, "y", 99)
	})
	var wc *ledger.WriteCountError
	if !errors.As(err, &wc) || wc.Rows != 0 || wc.Want != 1 {
		t.Fatalf("Write of 0 rows where 1 was wanted: %v, want a WriteCountError", err)
	}
	if n := count(st.Reader()); n != 1 {
		t.Fatalf("%d rows after a failed transaction, want 1", n)
	}

	// A Write the database refuses fails the transaction too.
	err = st.Update(ctx, func(tx ledger.Tx) error {
		if err := tx.Write(ctx, 1, `INSERT INTO wtest (id, v) VALUES (?, ?)`, 3, "x"); err != nil {
			return err
		}
		return tx.Write(ctx, 1, `INSERT INTO wtest (id, v) VALUES (?, ?)`, 1, "duplicate")
	})
	if err == nil {
		t.Fatal("a Write of a duplicate key committed")
	}
	if n := count(st.Reader()); n != 1 {
		t.Fatalf("%d rows after a refused Write, want 1", n)
	}

	// More Writes than one round trip carries all arrive, in order.
	const many = 2500
	err = st.Update(ctx, func(tx ledger.Tx) error {
		for i := int64(0); i < many; i++ {
			if err := tx.Write(ctx, 1, `INSERT INTO wtest (id, v) VALUES (?, ?)`, 1000+i, "m"); err != nil {
				return err
			}
			if i%7 == 0 && i > 0 {
				if err := tx.Write(ctx, 1, `UPDATE wtest SET v = ? WHERE id = ?`, "n", 1000+i-1); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := count(st.Reader()); n != many+1 {
		t.Fatalf("%d rows after %d Writes, want %d", n, many, many+1)
	}
	// Outside a transaction a Write runs at once.
	if err := st.Reader().Write(ctx, 1, `DELETE FROM wtest WHERE id = ?`, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Reader().Write(ctx, 1, `DELETE FROM wtest WHERE id = ?`, 1); !errors.As(err, &wc) {
		t.Fatalf("second delete of one row: %v, want a WriteCountError", err)
	}
}

// testMeter checks a store's count of bytes written, which the ledger
// benchmarks divide by the transfers committed: committing transfers
// makes it grow by at least their rows' size, and it never goes back.
func testMeter(t *testing.T, st ledger.Store) {
	m, ok := st.(interface {
		BytesWritten(ctx context.Context) (int64, error)
	})
	if !ok {
		t.Fatalf("%T does not say how many bytes it wrote", st)
	}
	mustCreate(t, st, bank(1), wallet(2))
	before, err := m.BytesWritten(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	var ts []ledger.Transfer
	for i := range n {
		ts = append(ts, tr(fmt.Sprint("meter-", i), 1, 2, 1))
	}
	commit(t, st, ts...)
	after, err := m.BytesWritten(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after-before < n*40 {
		t.Fatalf("%d bytes written for %d transfers: fewer than their rows", after-before, n)
	}
	if _, err := st.LookupTransfers(ctx, []string{"meter-1"}); err != nil {
		t.Fatal(err)
	}
	again, err := m.BytesWritten(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again < after {
		t.Fatalf("bytes written went back from %d to %d", after, again)
	}
}
