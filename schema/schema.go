package schema

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var business embed.FS

// Migration is one migration file, ready to run.
type Migration struct {
	Version int    // NNNN of the file name: the order, and the key recorded in schema_migrations
	Name    string // the file name, NNNN_what.sql, recorded beside the version
	SQL     string
}

// CheckRecorded compares the name a database recorded for m's version with
// m's own. A difference means the database was migrated by a program whose
// migration of that number is another one: its schema is not the one this
// program expects, and running on would be guessing.
func (m Migration) CheckRecorded(name string) error {
	if name != m.Name {
		return fmt.Errorf("schema: the database's migration %d is %s, this program's is %s", m.Version, name, m.Name)
	}
	return nil
}

var placeholderRE = regexp.MustCompile(`\{\{\s*([a-z0-9_]+)\s*\}\}`)

// Migrations returns a store's migrations in version order: its own ledger
// migrations, the *.sql files at the root of ledger taken as they are, and
// the business migrations of this package in dialect d. A version given
// twice, a file not named NNNN_what.sql or an unknown placeholder is an
// error.
func Migrations(d Dialect, ledger fs.FS) ([]Migration, error) {
	own, err := load(ledger, ".")
	if err != nil {
		return nil, err
	}
	shared, err := load(business, "migrations")
	if err != nil {
		return nil, err
	}
	for i := range shared {
		if shared[i].SQL, err = expand(d, shared[i].SQL); err != nil {
			return nil, fmt.Errorf("schema: migration %s: %w", shared[i].Name, err)
		}
	}
	all := append(own, shared...)
	sort.Slice(all, func(i, j int) bool { return all[i].Version < all[j].Version })
	for i := 1; i < len(all); i++ {
		if all[i].Version == all[i-1].Version {
			return nil, fmt.Errorf("schema: migrations %s and %s have one version", all[i-1].Name, all[i].Name)
		}
	}
	return all, nil
}

// load reads the migration files in dir of fsys.
func load(fsys fs.FS, dir string) ([]Migration, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("schema: list migrations: %w", err)
	}
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		base := path.Base(name)
		num, rest, ok := strings.Cut(base, "_")
		version, err := strconv.Atoi(num)
		if !ok || err != nil || version <= 0 || rest == ".sql" {
			return nil, fmt.Errorf("schema: migration %s: want a name NNNN_what.sql", base)
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("schema: read migration %s: %w", base, err)
		}
		out = append(out, Migration{Version: version, Name: base, SQL: string(body)})
	}
	return out, nil
}

// expand replaces every {{placeholder}} in sql with its spelling in d.
func expand(d Dialect, sql string) (string, error) {
	var unknown []string
	out := placeholderRE.ReplaceAllStringFunc(sql, func(p string) string {
		name := placeholderRE.FindStringSubmatch(p)[1]
		w, ok := d.word(name)
		if !ok {
			unknown = append(unknown, name)
		}
		return w
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("no %s spelling of {{%s}}", d, strings.Join(unknown, "}}, {{"))
	}
	if strings.Contains(out, "{{") {
		return "", fmt.Errorf("a placeholder is not of the form {{name}}")
	}
	return out, nil
}
