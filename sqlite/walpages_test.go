package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// WALPages counts the commits since a mark and names the pages they wrote.
func TestWALPages(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.writer.ExecContext(ctx, `CREATE TABLE walt (id INTEGER PRIMARY KEY, k TEXT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.writer.ExecContext(ctx, `CREATE INDEX walt_k ON walt (k)`); err != nil {
		t.Fatal(err)
	}
	mark, err := db.WALMark()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := db.writer.ExecContext(ctx, `INSERT INTO walt (id, k) VALUES (?, ?)`, i, "k"); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.WALPages(ctx, mark)
	if err != nil {
		t.Fatal(err)
	}
	if got.Commits != 3 || got.Pages["walt"] != 3 || got.Pages["walt_k"] != 3 || got.Frames < 6 {
		t.Fatalf("three one-row commits: %+v", got)
	}
	all, err := db.WALPages(ctx, WALMark{})
	if err != nil {
		t.Fatal(err)
	}
	if all.Commits < 5 {
		t.Errorf("from the log's start: %d commits, want the two CREATEs and three INSERTs at least", all.Commits)
	}
}
