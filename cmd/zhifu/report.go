package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"zhifu/report"
)

// reportTimeout bounds reading one report.
const reportTimeout = 5 * time.Minute

const reportUsage = `Usage: zhifu report bank --month YYYY-MM [flags]

Prints the banks' monthly report of the platform's database.

Flags:
`

// runReport runs "zhifu report …" and returns the exit code: 0, 1 when the
// report could not be made, 2 for a usage mistake. It reads the database
// of "zhifu serve" (the same --data and --db), which may be running.
func runReport(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	if len(args) == 0 || args[0] != "bank" {
		fmt.Fprintf(stderr, "zhifu report: want the report's name: bank\n\n%s", reportUsage)
		return 2
	}
	fset := flag.NewFlagSet("zhifu report bank", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	month := fset.String("month", "", "the month, YYYY-MM (China time)")
	format := fset.String("format", "text", "text, csv, json or html")
	out := fset.String("out", "", "write to this file instead of standard output")
	data := fset.String("data", envOr(getenv, "ZHIFU_DATA", dataDirDefault), "data folder (env ZHIFU_DATA)")
	db := fset.String("db", getenv("ZHIFU_DB"), "database (env ZHIFU_DB; default sqlite://<data>/"+dbFileName+")")
	if err := fset.Parse(args[1:]); err != nil || fset.NArg() > 0 || *month == "" {
		var help strings.Builder
		fset.SetOutput(&help)
		fset.PrintDefaults()
		msg := "--month is required"
		switch {
		case errors.Is(err, flag.ErrHelp):
			fmt.Fprint(stdout, reportUsage+help.String())
			return 0
		case err != nil:
			msg = err.Error()
		case fset.NArg() > 0:
			msg = fmt.Sprintf("unexpected argument %q", fset.Arg(0))
		}
		fmt.Fprintf(stderr, "zhifu report: %s\n\n%s%s", msg, reportUsage, help.String())
		return 2
	}
	if err := writeBankReport(ctx, *month, *format, *out, *data, *db, stdout); err != nil {
		fmt.Fprintln(stderr, "zhifu report:", err)
		return 1
	}
	return 0
}

func writeBankReport(ctx context.Context, month, format, out, data, db string, stdout io.Writer) error {
	write := map[string]func(*report.Month, io.Writer) error{
		"text": (*report.Month).WriteText, "csv": (*report.Month).WriteCSV,
		"json": (*report.Month).WriteJSON, "html": (*report.Month).WriteHTML,
	}[format]
	if write == nil {
		return fmt.Errorf("--format %q: want text, csv, json or html", format)
	}
	if db == "" {
		path := filepath.Join(data, dbFileName)
		// Opening a file that is not there would make an empty database.
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no database at %s (see --data and --db)", path)
		}
		db = "sqlite://" + path
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	st, err := openStore(ctx, db)
	if err != nil {
		return err
	}
	defer st.Close()
	m, err := report.New(st, nil).Banks(ctx, month)
	if err != nil {
		return err
	}
	if out == "" {
		return write(m, stdout)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := write(m, f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
