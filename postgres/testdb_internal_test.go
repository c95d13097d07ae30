package postgres

import (
	"context"
	"os"
	"testing"
)

// openTestDB opens a fresh test database on the server that
// ZHIFU_TEST_POSTGRES names (DefaultTestURL by default), dropped when the
// test ends. The tests fail, never skip, without a server.
func openTestDB(t *testing.T) *DB {
	t.Helper()
	ctx := context.Background()
	base := os.Getenv("ZHIFU_TEST_POSTGRES")
	if base == "" {
		base = DefaultTestURL
	}
	url, drop, err := CreateTestDatabase(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL is required (set ZHIFU_TEST_POSTGRES): %v", err)
	}
	t.Cleanup(drop)
	db, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
