package schema_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"zhifu/postgres"
	"zhifu/sqlite"
)

// The tables that are not business tables: each store's own ledger tables
// (they may differ on purpose) and the migrations record.
var notBusiness = []string{"accounts", "transfers", "schema_migrations"}

// column is what the drift test compares of a column.
type column struct {
	name    string
	class   string // the type's class: integer, text, real, blob, boolean, …
	notNull bool
	def     string // the default, normalised; "" for none
}

// index is what the drift test compares of an index. Indexes a table's
// UNIQUE constraints make are compared by their columns, since each
// database names them its own way.
type index struct {
	name    string // "" for a UNIQUE constraint's
	unique  bool
	columns []string
	where   string // the condition of a partial index, normalised
}

// table describes one table as a database reports it.
type table struct {
	columns    []column
	primaryKey []string
	indexes    []index
}

func (t table) String() string {
	var b strings.Builder
	for _, c := range t.columns {
		fmt.Fprintf(&b, "\n\t%s %s notnull=%v default=%q", c.name, c.class, c.notNull, c.def)
	}
	fmt.Fprintf(&b, "\n\tprimary key %v", t.primaryKey)
	for _, ix := range t.indexes {
		fmt.Fprintf(&b, "\n\tindex %q unique=%v %v where %q", ix.name, ix.unique, ix.columns, ix.where)
	}
	return b.String()
}

// TestSchemasAgree migrates a fresh SQLite and a fresh PostgreSQL database
// and fails unless their business tables agree table by table, column by
// column (name, order, type class, nullability, default) and index by index
// (columns, uniqueness, condition).
func TestSchemasAgree(t *testing.T) {
	ctx := context.Background()
	lite := describeSQLite(t, ctx)
	pg := describePostgres(t, ctx)
	for _, want := range []string{"users", "trades", "bank_txns", "platform_keys"} {
		if _, ok := lite[want]; !ok {
			t.Fatalf("SQLite lacks table %s: the test reads the wrong database", want)
		}
	}
	for name := range lite {
		if _, ok := pg[name]; !ok {
			t.Errorf("table %s is in SQLite only", name)
		}
	}
	for name, p := range pg {
		l, ok := lite[name]
		if !ok {
			t.Errorf("table %s is in PostgreSQL only", name)
			continue
		}
		if l.String() != p.String() {
			t.Errorf("table %s differs:\nSQLite:%s\nPostgreSQL:%s", name, l, p)
		}
	}
}

func describeSQLite(t *testing.T, ctx context.Context) map[string]table {
	path := filepath.Join(t.TempDir(), "schema.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	names := queryStrings(t, db, `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`)
	out := make(map[string]table)
	for _, name := range names {
		if slices.Contains(notBusiness, name) {
			continue
		}
		var tb table
		rows, err := db.QueryContext(ctx, `SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?) ORDER BY cid`, name)
		if err != nil {
			t.Fatal(err)
		}
		pk := map[int]string{}
		for rows.Next() {
			var c column
			var typ string
			var def sql.NullString
			var pkPos int
			if err := rows.Scan(&c.name, &typ, &c.notNull, &def, &pkPos); err != nil {
				t.Fatal(err)
			}
			c.class, c.def = typeClass(typ), normaliseSQL(def.String)
			if pkPos > 0 {
				// A primary key is NOT NULL whether or not it says so.
				pk[pkPos], c.notNull = c.name, true
			}
			tb.columns = append(tb.columns, c)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		for i := 1; i <= len(pk); i++ {
			tb.primaryKey = append(tb.primaryKey, pk[i])
		}
		tb.indexes = sqliteIndexes(t, db, name)
		out[name] = tb
	}
	return out
}

func sqliteIndexes(t *testing.T, db *sql.DB, tableName string) []index {
	rows, err := db.Query(`SELECT l.name, l."unique", l.origin, coalesce(m.sql, '')
		FROM pragma_index_list(?) l LEFT JOIN sqlite_master m ON m.type = 'index' AND m.name = l.name`, tableName)
	if err != nil {
		t.Fatal(err)
	}
	type found struct {
		ix     index
		origin string
	}
	var list []found
	for rows.Next() {
		var f found
		var def string
		if err := rows.Scan(&f.ix.name, &f.ix.unique, &f.origin, &def); err != nil {
			t.Fatal(err)
		}
		if m := whereRE.FindStringIndex(def); m != nil {
			f.ix.where = normaliseSQL(def[m[1]:])
		}
		list = append(list, f)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	var out []index
	for _, f := range list {
		if f.origin == "pk" {
			continue // compared as the primary key
		}
		f.ix.columns = queryStrings(t, db, `SELECT name FROM pragma_index_info(?) ORDER BY seqno`, f.ix.name)
		if f.origin == "u" {
			f.ix.name = ""
		}
		out = append(out, f.ix)
	}
	return sortIndexes(out)
}

func describePostgres(t *testing.T, ctx context.Context) map[string]table {
	base := postgres.DefaultTestURL
	if u := os.Getenv("ZHIFU_TEST_POSTGRES"); u != "" {
		base = u
	}
	url, drop, err := postgres.CreateTestDatabase(ctx, base)
	if err != nil {
		t.Fatalf("PostgreSQL at %s (set ZHIFU_TEST_POSTGRES): %v", base, err)
	}
	t.Cleanup(drop)
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pool := st.Pool()
	out := make(map[string]table)
	rows, err := pool.Query(ctx, `SELECT table_name, column_name, data_type, is_nullable = 'NO', coalesce(column_default, '')
		FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name, typ, def string
		var c column
		if err := rows.Scan(&name, &c.name, &typ, &c.notNull, &def); err != nil {
			t.Fatal(err)
		}
		if slices.Contains(notBusiness, name) {
			continue
		}
		c.class, c.def = typeClass(typ), normaliseSQL(def)
		tb := out[name]
		tb.columns = append(tb.columns, c)
		out[name] = tb
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	// Every index with its columns in order; the primary key's is the
	// primary key, and those of UNIQUE constraints are known by their
	// columns.
	rows, err = pool.Query(ctx, `SELECT t.relname, i.relname, ix.indisunique, ix.indisprimary,
			EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = ix.indexrelid AND c.contype = 'u'),
			coalesce(pg_get_expr(ix.indpred, ix.indrelid), ''),
			ARRAY(SELECT a.attname::text FROM unnest(ix.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
				JOIN pg_attribute a ON a.attrelid = ix.indrelid AND a.attnum = k.attnum ORDER BY k.ord)
		FROM pg_index ix
		JOIN pg_class i ON i.oid = ix.indexrelid
		JOIN pg_class t ON t.oid = ix.indrelid
		JOIN pg_namespace n ON n.oid = t.relnamespace
		WHERE n.nspname = current_schema()`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var tableName, where string
		var primary, constraint bool
		var ix index
		if err := rows.Scan(&tableName, &ix.name, &ix.unique, &primary, &constraint, &where, &ix.columns); err != nil {
			t.Fatal(err)
		}
		tb, ok := out[tableName]
		if !ok {
			continue
		}
		if primary {
			tb.primaryKey = ix.columns
			out[tableName] = tb
			continue
		}
		if constraint {
			ix.name = ""
		}
		ix.where = normaliseSQL(where)
		tb.indexes = append(tb.indexes, ix)
		out[tableName] = tb
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for name, tb := range out {
		tb.indexes = sortIndexes(tb.indexes)
		out[name] = tb
	}
	return out
}

// typeClass maps a declared type to its class, so that SQLite's INTEGER
// and PostgreSQL's bigint (the same 64-bit integer to the Go code) agree.
func typeClass(typ string) string {
	t := strings.ToLower(typ)
	switch {
	case strings.Contains(t, "int"):
		return "integer"
	case strings.Contains(t, "char"), strings.Contains(t, "text"), strings.Contains(t, "clob"):
		return "text"
	case strings.Contains(t, "bool"):
		return "boolean"
	case strings.Contains(t, "real"), strings.Contains(t, "floa"), strings.Contains(t, "doub"):
		return "real"
	case strings.Contains(t, "blob"), t == "bytea":
		return "blob"
	case strings.Contains(t, "timestamp"):
		return "timestamp"
	}
	return t
}

var (
	castRE  = regexp.MustCompile(`::[a-z ]+`)
	whereRE = regexp.MustCompile(`(?i)\sWHERE\s`)
)

// normaliseSQL makes a default or an index condition comparable across the
// databases: PostgreSQL's casts, parentheses, case and spacing go.
func normaliseSQL(s string) string {
	s = castRE.ReplaceAllString(strings.ToLower(s), "")
	return strings.NewReplacer("(", "", ")", "", " ", "", "\n", "", "\t", "").Replace(s)
}

func sortIndexes(ixs []index) []index {
	slices.SortFunc(ixs, func(a, b index) int {
		return strings.Compare(a.name+"\x00"+strings.Join(a.columns, ","), b.name+"\x00"+strings.Join(b.columns, ","))
	})
	return ixs
}

func queryStrings(t *testing.T, db *sql.DB, query string, args ...any) []string {
	t.Helper()
	rows, err := db.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
