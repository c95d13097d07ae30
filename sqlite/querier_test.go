package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"zhifu/ledger"
)

func openTemp(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "q.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func cached(c *stmtCache, query string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[query]
	return ok
}

// Statements met inside a write transaction are prepared after it commits
// (the transaction holds the writer's only connection), and are used by
// the next transactions; reads prepare on first use.
func TestStatementCache(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	const create = `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`
	const put = `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = v + excluded.v`
	const get = `SELECT v FROM kv WHERE k = ? FOR UPDATE`
	if err := db.Update(ctx, func(tx ledger.Tx) error {
		_, err := tx.Exec(ctx, create)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := db.Update(ctx, func(tx ledger.Tx) error {
			if _, err := tx.Exec(ctx, put, "a", 1); err != nil {
				return err
			}
			var v int64
			if err := tx.QueryRow(ctx, get, "a").Scan(&v); err != nil {
				return err
			}
			if v != int64(i+1) {
				return fmt.Errorf("round %d: v = %d", i, v)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !cached(db.writeStmts, put) || !cached(db.writeStmts, dialect(get)) {
			t.Fatalf("round %d: statements not kept after the commit", i)
		}
	}

	var v int64
	if err := db.Reader().QueryRow(ctx, `SELECT v FROM kv WHERE k = ?`, "a").Scan(&v); err != nil || v != 3 {
		t.Fatalf("read: %d %v", v, err)
	}
	if !cached(db.readStmts, `SELECT v FROM kv WHERE k = ?`) {
		t.Fatal("read statement not kept")
	}
	if err := db.Reader().QueryRow(ctx, `SELECT v FROM kv WHERE k = ?`, "missing").Scan(&v); err != ledger.ErrNoRows {
		t.Fatalf("missing row: %v", err)
	}

	// A statement that does not parse is reported, and not kept.
	const bad = `SELEKT v FROM kv`
	if _, err := db.Reader().Query(ctx, bad); err == nil {
		t.Fatal("bad statement ran")
	}
	if cached(db.readStmts, bad) {
		t.Fatal("bad statement kept")
	}

	// A whole row of a wide table (a trade has 31 columns) is kept.
	wide := `SELECT count(*) FROM kv WHERE k IN (?` + strings.Repeat(`, ?`, 30) + `)`
	wideArgs := make([]any, 31)
	for i := range wideArgs {
		wideArgs[i] = "w"
	}
	var w int64
	if err := db.Reader().QueryRow(ctx, wide, wideArgs...).Scan(&w); err != nil || w != 0 {
		t.Fatalf("31 placeholders: %d %v", w, err)
	}
	if !cached(db.readStmts, wide) {
		t.Fatal("statement of 31 placeholders not kept")
	}

	// A long IN list is not kept: its text varies with its arguments.
	args := make([]any, stmtPlaceholdersMax+1)
	for i := range args {
		args[i] = fmt.Sprint(i)
	}
	in := `SELECT count(*) FROM kv WHERE k IN (?` + strings.Repeat(`, ?`, len(args)-1) + `)`
	var n int64
	if err := db.Reader().QueryRow(ctx, in, args...).Scan(&n); err != nil || n != 0 {
		t.Fatalf("IN list: %d %v", n, err)
	}
	if cached(db.readStmts, in) {
		t.Fatal("IN list of many placeholders kept")
	}
}

// The cache stops growing at its bound; queries past it still run.
func TestStatementCacheBound(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	for i := range stmtCacheMax + 10 {
		var v int64
		if err := db.Reader().QueryRow(ctx, fmt.Sprintf(`SELECT %d`, i)).Scan(&v); err != nil || v != int64(i) {
			t.Fatalf("query %d: %d %v", i, v, err)
		}
	}
	db.readStmts.mu.Lock()
	n := len(db.readStmts.m)
	db.readStmts.mu.Unlock()
	if n != stmtCacheMax {
		t.Fatalf("cache holds %d statements, want %d", n, stmtCacheMax)
	}
}

func TestDialect(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT v FROM kv WHERE k = ? FOR UPDATE`:      `SELECT v FROM kv WHERE k = ?`,
		"SELECT v FROM kv WHERE k = ? for update;\n\t": `SELECT v FROM kv WHERE k = ?`,
		`SELECT v FROM kv WHERE k = ?`:                 `SELECT v FROM kv WHERE k = ?`,
		`UPDATE`:                                       `UPDATE`,
		`SELECT 'FOR UPDATE' AS x`:                     `SELECT 'FOR UPDATE' AS x`,
	} {
		if got := dialect(in); got != want {
			t.Errorf("dialect(%q) = %q, want %q", in, got, want)
		}
	}
}

// A batch of n transfers goes in chunks of powers of two, largest first, up
// to insertChunkRows: always one of the few statements insertSQL holds.
func TestInsertChunks(t *testing.T) {
	for n := 1; n <= 3*insertChunkRows+7; n++ {
		left, prev := n, insertChunkRows
		for left > 0 {
			c := insertChunk(left)
			if _, ok := insertSQL[c]; !ok || c > left || c > prev {
				t.Fatalf("n=%d: chunk of %d with %d left after %d", n, c, left, prev)
			}
			left, prev = left-c, c
		}
	}
}

// Inside a write transaction a kept statement gets one handle however
// often it runs, and a statement met after the transaction's context has
// ended does not run: it returns the context's error, and the transaction
// is rolled back with everything it wrote.
func TestWriteTxStatements(t *testing.T) {
	ctx := context.Background()
	db := openTemp(t)
	const put = `INSERT INTO kv (k, v) VALUES (?, ?)`
	if err := db.Update(ctx, func(tx ledger.Tx) error {
		_, err := tx.Exec(ctx, `CREATE TABLE kv (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`)
		if err == nil {
			_, err = tx.Exec(ctx, put, "warm", 0) // kept after this commit
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Update(ctx, func(tx ledger.Tx) error {
		w := tx.(*writeTx)
		handles := func() int {
			w.bound.mu.Lock()
			defer w.bound.mu.Unlock()
			return len(w.bound.m)
		}
		before := handles() // the store's own statements at the start
		for i := range 20 {
			if _, err := tx.Exec(ctx, put, fmt.Sprint(i), i); err != nil {
				return err
			}
		}
		if n := handles() - before; n != 1 {
			return fmt.Errorf("%d handles for one kept statement run 20 times", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	cctx, cancel := context.WithCancel(ctx)
	err := db.Update(cctx, func(tx ledger.Tx) error {
		if _, err := tx.Exec(cctx, put, "before", 1); err != nil {
			return err
		}
		cancel()
		_, err := tx.Exec(cctx, put, "after", 2)
		if err == nil {
			return fmt.Errorf("statement ran after its context ended")
		}
		if err := tx.QueryRow(cctx, `SELECT v FROM kv WHERE k = ?`, "before").Scan(new(int64)); err != context.Canceled {
			return fmt.Errorf("query after its context ended: %v", err)
		}
		return err
	})
	if err != context.Canceled {
		t.Fatalf("transaction: %v, want %v", err, context.Canceled)
	}
	var n int64
	if err := db.Reader().QueryRow(ctx, `SELECT count(*) FROM kv WHERE k IN ('before', 'after')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("rolled-back rows found: %d %v", n, err)
	}
}
