package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"
)

// A commit's WAL frames reach the file in a few write calls, not two a
// frame, and what was written reads back from a second connection and
// from the file opened anew.
func TestWALWritesGathered(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "g.db")
	db := openGather(t, path)
	mark, err := db.WALMark()
	if err != nil {
		t.Fatal(err)
	}
	before, err := procIO("syscw")
	if err != nil {
		t.Skipf("no write-call counter here: %v", err)
	}
	const rows = 300
	insertRows(t, db.writer, 0, rows, 1000)
	after, err := procIO("syscw")
	if err != nil {
		t.Fatal(err)
	}
	pages, err := db.WALPages(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if pages.Commits != 1 || pages.Frames < 60 {
		t.Fatalf("one commit of 300 rows of 1,000 bytes: %+v", pages)
	}
	// Two calls a frame without gathering; with it a call a piece of up
	// to 30 frames, and a few to spare for the test's own process.
	calls, most := after-before, int64(pages.Frames/30+4)
	if calls > most {
		t.Errorf("%d write calls for %d frames, want at most %d", calls, pages.Frames, most)
	}
	checkRows(t, db.reader, rows, 1000)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	checkRows(t, again.reader, rows, 1000)
}

// A transaction larger than the page cache spills frames to the WAL
// before it commits and reads them back; a rolled-back one leaves frames
// that the next commit writes over. Both come out right through the
// gathered writes, past the buffer's bound too.
func TestWALWritesGatheredSpill(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	db := openGather(t, path, `PRAGMA cache_size = 20`)
	// About 8 MiB: beyond the 20-page cache and beyond gatherBufferMax.
	const rows, size = 4000, 2000

	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		if _, err := tx.ExecContext(ctx, `INSERT INTO gather (id, v) VALUES (?, ?)`, i, strings.Repeat("x", size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	insertRows(t, db.writer, 0, rows, size)
	// Rewrite every row in one transaction, reading back spilled pages.
	if _, err := db.writer.ExecContext(ctx, `UPDATE gather SET v = substr(v, 2) || 'y'`); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.reader.QueryRowContext(ctx, `SELECT count(*) FROM gather WHERE v = ? || 'y'`, strings.Repeat("x", size-1)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("%d rows rewritten, want %d", n, rows)
	}
	var ok string
	if err := db.writer.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check: %q %v", ok, err)
	}
	if _, err := db.writer.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	insertRows(t, db.writer, rows, 10, size)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.reader.QueryRowContext(ctx, `SELECT count(*) FROM gather`).Scan(&n); err != nil || n != rows+10 {
		t.Fatalf("after reopening: %d rows (%v), want %d", n, err, rows+10)
	}
}

// openGather opens a database at path, runs the statements given on its
// writer connection, and creates the table gather.
func openGather(t *testing.T, path string, writerStmts ...string) *DB {
	t.Helper()
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range append(writerStmts, `CREATE TABLE gather (id INTEGER PRIMARY KEY, v TEXT NOT NULL)`) {
		if _, err := db.writer.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// insertRows inserts rows from..from+n of size bytes each in one
// transaction.
func insertRows(t *testing.T, db *sql.DB, from, n, size int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	for i := from; i < from+n; i++ {
		if _, err := tx.ExecContext(ctx, `INSERT INTO gather (id, v) VALUES (?, ?)`, i, strings.Repeat("x", size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

func checkRows(t *testing.T, db *sql.DB, rows, size int) {
	t.Helper()
	var n int
	if err := db.QueryRowContext(context.Background(), `SELECT count(*) FROM gather WHERE length(v) = ?`, size).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != rows {
		t.Fatalf("%d rows read back, want %d", n, rows)
	}
}

// With no sync at commit, a commit still reaches the file before other
// connections are shown it: the gathered frames go out with the commit
// frame, not only at a sync.
func TestWALWritesGatheredUnsynced(t *testing.T) {
	db := openGather(t, filepath.Join(t.TempDir(), "u.db"), `PRAGMA synchronous = OFF`)
	for i := range 20 {
		insertRows(t, db.writer, i*50, 50, 500)
		checkRows(t, db.reader, (i+1)*50, 500)
	}
}
