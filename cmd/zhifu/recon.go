package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// "zhifu recon" asks a running server to reconcile banks' days, through
// its admin API, and follows each run to its end. It does not open the
// store itself: the server owns what a run needs, the banks' clients
// (their secrets, capacity and health), the batcher that is the store's
// one writer (SQLite admits one, and the data folder one server), and the
// background work that a run's repairs hand on to (the refund payouts).
// The run's lease would keep two runs of a day apart even so; the API keeps
// one writer and one set of bank connections.

// Limits of the command.
const (
	reconPollDefault  = 500 * time.Millisecond
	reconCallTimeout  = 30 * time.Second
	reconAnswerMax    = 1 << 20
	reconFileBytesMax = 4 << 30
)

type reconFlags struct {
	date, bank, file, url, token, data string
	poll                               time.Duration
}

// reconCommand runs "zhifu recon" and returns the exit code: 0 when every
// run is DONE, 1 when one failed or could not start, 2 for a usage mistake.
func reconCommand(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	fs := flag.NewFlagSet("zhifu recon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f reconFlags
	fs.StringVar(&f.date, "date", "", "the day to reconcile, YYYY-MM-DD (Beijing); required")
	fs.StringVar(&f.bank, "bank", "", "the bank (ICBC, CMB…); default every bank the server has")
	fs.StringVar(&f.file, "file", "", "a statement file the bank sent (CSV, the banks' statement format); default the bank's statement endpoint")
	fs.StringVar(&f.url, "url", envOr(getenv, "ZHIFU_URL", "http://"+addrDefault), "the server's URL (env ZHIFU_URL)")
	fs.StringVar(&f.token, "admin-token", getenv("ZHIFU_ADMIN_TOKEN"), "an operator's token (env ZHIFU_ADMIN_TOKEN; default <data>/"+adminTokenFile+")")
	fs.StringVar(&f.data, "data", envOr(getenv, "ZHIFU_DATA", dataDirDefault), "the server's data folder: its token, and where --file is put for it (env ZHIFU_DATA)")
	fs.DurationVar(&f.poll, "poll", reconPollDefault, "how often to ask how a run is going")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: zhifu recon --date YYYY-MM-DD [--bank CMB] [--file statement.csv] [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if f.date == "" || fs.NArg() > 0 || (f.file != "" && f.bank == "") || f.poll <= 0 {
		fmt.Fprintln(stderr, "zhifu recon: --date is required, --file needs --bank, and nothing else may follow the flags")
		fs.Usage()
		return 2
	}
	if f.token == "" {
		b, err := os.ReadFile(filepath.Join(f.data, adminTokenFile))
		if err != nil {
			fmt.Fprintf(stderr, "zhifu recon: no --admin-token and none in %s: %v\n", f.data, err)
			return 1
		}
		f.token = strings.TrimSpace(string(b))
	}
	c := &reconClient{url: strings.TrimRight(f.url, "/"), token: f.token, http: &http.Client{Timeout: reconCallTimeout}}
	banks := []string{f.bank}
	if f.bank == "" {
		var err error
		if banks, err = c.banks(ctx); err != nil {
			fmt.Fprintln(stderr, "zhifu recon:", err)
			return 1
		}
	}
	code := 0
	for _, bank := range banks {
		if err := c.reconcile(ctx, stdout, f, bank); err != nil {
			fmt.Fprintf(stderr, "zhifu recon: %s %s: %v\n", bank, f.date, err)
			code = 1
		}
	}
	return code
}

// envOr is the environment variable key, or def when it is unset; for the
// one-shot commands, which read their settings without Main's flag table.
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// reconClient speaks to the server's admin API.
type reconClient struct {
	url, token string
	http       *http.Client
}

// reconRun is the part of a run the command shows.
type reconRun struct {
	RunID      string `json:"run_id"`
	State      string `json:"state"`
	Phase      string `json:"phase"`
	LinesTotal int64  `json:"lines_total"`
	LinesDone  int64  `json:"lines_done"`
	Records    int64  `json:"records"`
	Classes    map[string]struct {
		Lines   int64  `json:"lines"`
		Records int64  `json:"records"`
		Amount  string `json:"amount"`
	} `json:"classes"`
	Changes    int64  `json:"changes"`
	Suspense   string `json:"suspense"`
	Message    string `json:"message"`
	Error      string `json:"error"`
	DurationMs int64  `json:"duration_ms"`
}

func (c *reconClient) reconcile(ctx context.Context, out io.Writer, f reconFlags, bank string) error {
	body := map[string]string{"bank": bank, "date": f.date}
	if f.file != "" {
		name, err := placeStatement(f.file, filepath.Join(f.data, reconFilesDir), bank, f.date)
		if err != nil {
			return err
		}
		body["file"] = name
	}
	var run reconRun
	if err := c.call(ctx, http.MethodPost, "/v1/admin/recon/runs", body, http.StatusAccepted, &run); err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s: run %s started\n", bank, f.date, run.RunID)
	last := ""
	for run.State == "RUNNING" {
		if p := progressLine(run); p != last {
			fmt.Fprintf(out, "%s %s: %s\n", bank, f.date, p)
			last = p
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stopped following run %s, which goes on: %w", run.RunID, ctx.Err())
		case <-time.After(f.poll):
		}
		if err := c.call(ctx, http.MethodGet, "/v1/admin/recon/runs/"+run.RunID, nil, http.StatusOK, &run); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "%s %s: %s in %s: %d lines, %d of the platform's transactions; %s\n", bank, f.date, run.State,
		time.Duration(run.DurationMs)*time.Millisecond, run.LinesTotal, run.Records, run.Message)
	for _, class := range []string{"matched", "bank_only", "ours_only", "amount_mismatch", "duplicate", "late"} {
		t := run.Classes[class]
		fmt.Fprintf(out, "  %-16s %9d lines %9d records %16s\n", class, t.Lines, t.Records, t.Amount)
	}
	if run.State != "DONE" {
		return fmt.Errorf("run %s %s: %s", run.RunID, run.State, run.Error)
	}
	fmt.Fprintf(out, "  %d changes, %s into suspense\n", run.Changes, run.Suspense)
	return nil
}

func progressLine(r reconRun) string {
	if r.LinesTotal == 0 {
		return fmt.Sprintf("%s, %d lines read", r.Phase, r.LinesDone)
	}
	return fmt.Sprintf("%s, %d/%d lines", r.Phase, r.LinesDone, r.LinesTotal)
}

// placeStatement puts a statement file in the server's statements folder
// (unless it is there already) and returns its name there. It is copied
// whole under a temporary name and then renamed, so the server never reads
// half of it.
func placeStatement(path, dir, bank, date string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if absDir, err := filepath.Abs(dir); err == nil && filepath.Dir(abs) == absDir {
		return filepath.Base(abs), nil
	}
	src, err := os.Open(abs)
	if err != nil {
		return "", fmt.Errorf("statement file: %w", err)
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("statements folder: %w", err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	name := fmt.Sprintf("%s-%s-%s.csv", bank, date, hex.EncodeToString(b))
	tmp, err := os.CreateTemp(dir, ".incoming-*")
	if err != nil {
		return "", fmt.Errorf("statements folder: %w", err)
	}
	n, err := io.Copy(tmp, io.LimitReader(src, reconFileBytesMax+1))
	if err == nil && n > reconFileBytesMax {
		err = fmt.Errorf("larger than %d bytes", int64(reconFileBytesMax))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("copy the statement file: %w", err)
	}
	return name, nil
}

// banks lists the banks the server has channels to.
func (c *reconClient) banks(ctx context.Context) ([]string, error) {
	var list struct {
		Data []struct {
			Bank string `json:"bank"`
		} `json:"data"`
	}
	if err := c.call(ctx, http.MethodGet, "/v1/channels", nil, http.StatusOK, &list); err != nil {
		return nil, err
	}
	var out []string
	for _, b := range list.Data {
		out = append(out, b.Bank)
	}
	return out, nil
}

func (c *reconClient) call(ctx context.Context, method, path string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, reconAnswerMax))
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode != want {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, e.Error.Code, e.Error.Message)
	}
	return json.Unmarshal(b, out)
}
