package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"zhifu/ledger"
	"zhifu/postgres"
	"zhifu/sqlite"
)

const (
	addrDefault    = "127.0.0.1:8080"
	dataDirDefault = "./data"
	// dbFileName is the SQLite database inside the data folder.
	dbFileName = "zhifu.db"
	// adminTokenFile keeps the generated admin token inside the data folder.
	adminTokenFile = "admin-token"
	// adminTokenBytes is the random part of a generated admin token.
	adminTokenBytes = 32
	// adminTokenFileBytesMax bounds what we read back from the token file.
	adminTokenFileBytesMax = 4096
)

// serveFlag is one flag of "zhifu serve" and the environment variable that
// supplies it when the command line does not.
type serveFlag struct {
	name, env, usage string
	dst              *string
	def              string
}

func (m *Main) serveFlags() []serveFlag {
	return []serveFlag{
		{"addr", "ZHIFU_ADDR", "HTTP listen address", &m.Addr, addrDefault},
		{"db", "ZHIFU_DB", "database: sqlite:///abs/path.db, sqlite://relative/path.db or postgres://… (default sqlite://<data>/" + dbFileName + ")", &m.DB, ""},
		{"admin-token", "ZHIFU_ADMIN_TOKEN", "operator bearer token (default: read or generate <data>/" + adminTokenFile + ")", &m.adminToken, ""},
		{"data", "ZHIFU_DATA", "data folder", &m.DataDir, dataDirDefault},
	}
}

// parseServeFlags reads serve's flags. Environment variables fill in what
// the command line leaves out. They are applied after parsing rather than as
// flag defaults, so that -h never prints a secret taken from the environment.
func (m *Main) parseServeFlags(args []string) error {
	fset := flag.NewFlagSet("zhifu serve", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	flags := m.serveFlags()
	for _, f := range flags {
		fset.StringVar(f.dst, f.name, f.def, f.usage+" (env "+f.env+")")
	}
	var help strings.Builder
	help.WriteString("Usage: zhifu serve [flags]\n\nFlags:\n")
	fset.SetOutput(&help)
	fset.PrintDefaults()
	fset.SetOutput(io.Discard)

	err := fset.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(m.Stdout, help.String())
		return err
	case err != nil:
		return &UsageError{Msg: err.Error(), Usage: help.String()}
	case fset.NArg() > 0:
		return &UsageError{Msg: fmt.Sprintf("unexpected argument %q", fset.Arg(0)), Usage: help.String()}
	}
	set := make(map[string]bool)
	fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, f := range flags {
		if v := m.Getenv(f.env); !set[f.name] && v != "" {
			*f.dst = v
		}
	}
	if m.DB == "" {
		m.DB = "sqlite://" + filepath.Join(m.DataDir, dbFileName)
	}
	return nil
}

// openStore opens the ledger store a --db URL names.
func openStore(ctx context.Context, db string) (ledger.Store, error) {
	switch {
	case strings.HasPrefix(db, "sqlite://"):
		path := strings.TrimPrefix(db, "sqlite://")
		if path == "" || strings.ContainsAny(path, "?#") {
			return nil, fmt.Errorf("--db %q: want sqlite:///abs/path.db or sqlite://relative/path.db", db)
		}
		return sqlite.Open(ctx, path)
	case strings.HasPrefix(db, "postgres://"), strings.HasPrefix(db, "postgresql://"):
		st, err := postgres.Open(ctx, db)
		if err != nil {
			// The driver's message may quote the URL, password included.
			return nil, fmt.Errorf("open %s: %s", redactDB(db), redactString(err.Error(), db))
		}
		return st, nil
	}
	scheme, _, _ := strings.Cut(db, "://")
	return nil, fmt.Errorf("--db: unsupported scheme %q: want sqlite:// or postgres://", scheme)
}

// redactDB is a database URL safe to log: a PostgreSQL password is masked.
func redactDB(db string) string {
	if strings.HasPrefix(db, "sqlite://") {
		return db
	}
	u, err := url.Parse(db)
	if err != nil {
		return "(unparsable database URL)"
	}
	return u.Redacted()
}

// redactString removes the password of database URL db from s.
func redactString(s, db string) string {
	u, err := url.Parse(db)
	if err != nil || u.User == nil {
		return s
	}
	if pw, ok := u.User.Password(); ok && pw != "" {
		s = strings.ReplaceAll(s, pw, "xxxxx")
	}
	return s
}

// loadAdminToken reads the token saved in the data folder, or generates one
// on a fresh start, saves it readable by this user only, and prints it once.
func (m *Main) loadAdminToken() error {
	path := filepath.Join(m.DataDir, adminTokenFile)
	tok, err := readAdminToken(path)
	if err == nil {
		m.adminToken = tok
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	raw := make([]byte, adminTokenBytes)
	if _, err := io.ReadFull(m.Rand, raw); err != nil {
		return fmt.Errorf("generate admin token: %w", err)
	}
	tok = hex.EncodeToString(raw)
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data folder: %w", err)
	}
	// O_EXCL: if another process created the file since we looked, its
	// token wins and we must not overwrite it.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return m.loadAdminToken()
	}
	if err != nil {
		return fmt.Errorf("save admin token: %w", err)
	}
	_, werr := f.WriteString(tok + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("save admin token: %w", err)
	}
	m.adminToken = tok
	fmt.Fprintf(m.Stdout, "admin token: %s (saved in %s)\n", tok, path)
	return nil
}

func readAdminToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, adminTokenFileBytesMax))
	if err != nil {
		return "", fmt.Errorf("read admin token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return "", fmt.Errorf("admin token file %s is empty: delete it to generate a new token", path)
	}
	return tok, nil
}
