package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultTestURL is the server tests use when the environment variable
// ZHIFU_TEST_POSTGRES is unset: a local server with trust authentication.
const DefaultTestURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// dropTimeout bounds dropping a test database.
const dropTimeout = 30 * time.Second

// CreateTestDatabase creates a fresh, empty database with a unique name
// (zhifu_test_ followed by random hex) on the server at baseURL, for tests
// that need a schema of their own. It returns the new database's URL (baseURL
// with the database name replaced) and a function that drops the database,
// disconnecting whoever is still connected; drop ignores errors, since a test
// cleaning up has nobody to report them to. baseURL must name a database the
// user can connect to (such as postgres) and the user must be allowed to
// create databases.
func CreateTestDatabase(ctx context.Context, baseURL string) (dbURL string, drop func(), err error) {
	return CreateTestDatabaseFrom(ctx, baseURL, "")
}

// CreateTestDatabaseFrom is CreateTestDatabase with the new database a copy
// of the database named template (CREATE DATABASE … TEMPLATE), such as a
// ledger history prepared once for benchmarks; "" is an empty database.
// Nobody may be connected to template meanwhile.
func CreateTestDatabaseFrom(ctx context.Context, baseURL, template string) (dbURL string, drop func(), err error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, err
	}
	name := "zhifu_test_" + hex.EncodeToString(b[:])
	dbURL, err = withDatabase(baseURL, name)
	if err != nil {
		return "", nil, err
	}
	conn, err := pgx.Connect(ctx, baseURL)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: create test database: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	create := `CREATE DATABASE ` + pgx.Identifier{name}.Sanitize()
	if template != "" {
		create += ` TEMPLATE ` + pgx.Identifier{template}.Sanitize()
	}
	if _, err := conn.Exec(ctx, create); err != nil {
		return "", nil, fmt.Errorf("postgres: create test database: %w", err)
	}
	drop = func() {
		ctx, cancel := context.WithTimeout(context.Background(), dropTimeout)
		defer cancel()
		conn, err := pgx.Connect(ctx, baseURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		conn.Exec(ctx, `DROP DATABASE IF EXISTS `+pgx.Identifier{name}.Sanitize()+` WITH (FORCE)`)
	}
	return dbURL, drop, nil
}

// withDatabase returns the connection string s naming database name instead.
// s is a postgres:// URL or a key=value connection string.
func withDatabase(s, name string) (string, error) {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return "", fmt.Errorf("postgres: parse url: %w", err)
		}
		u.Path, u.RawPath = "/"+name, ""
		q := u.Query()
		if q.Has("dbname") {
			q.Set("dbname", name)
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// Of repeated keys the last wins.
	return s + " dbname=" + name, nil
}
