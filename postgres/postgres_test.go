package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"zhifu/ledger"
	"zhifu/ledgerload"
	"zhifu/postgres"
	"zhifu/storetest"
)

// The tests need a PostgreSQL server and fail, rather than skip, without
// one: a store that silently goes untested is worse than a red build.
func baseURL() string {
	if u := os.Getenv("ZHIFU_TEST_POSTGRES"); u != "" {
		return u
	}
	return postgres.DefaultTestURL
}

// testing.TB so benchmarks can use them too.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	url, drop, err := postgres.CreateTestDatabase(context.Background(), baseURL())
	if err != nil {
		tb.Fatalf("PostgreSQL at %s (set ZHIFU_TEST_POSTGRES): %v", baseURL(), err)
	}
	tb.Cleanup(drop)
	return url
}

func open(tb testing.TB, url string) *postgres.DB {
	tb.Helper()
	db, err := postgres.Open(context.Background(), url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

var backend = storetest.Backend{
	NewDatabase: func(t *testing.T) string { return newDatabase(t) },
	Open:        func(t *testing.T, url string) ledger.Store { return open(t, url) },
}

func TestStore(t *testing.T) { storetest.Run(t, backend) }

func TestMain(m *testing.M) {
	if os.Getenv(storetest.CrashChildEnv) != "" {
		storetest.RunCrashChild(func(url string) (ledger.Store, error) {
			return postgres.Open(context.Background(), url)
		})
		return
	}
	os.Exit(m.Run())
}

// TestCrash kills a process committing under load and checks that every
// transfer it was told is durable is stored and nothing else is.
func TestCrash(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 3
	}
	storetest.Crash(t, backend, kills)
}

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	db := open(t, newDatabase(t))
	const cny = 156
	res, err := ledger.CreateAccounts(ctx, db, []ledger.Account{
		{ID: 1, Ledger: cny, Code: 10},
		{ID: 2, Ledger: cny, Code: 1, Flags: ledger.DebitsMustNotExceedCredits},
		{ID: 3, Ledger: cny, Code: 1, Flags: ledger.DebitsMustNotExceedCredits},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r != ledger.AccountOK {
			t.Fatalf("account %d: %v", i, r)
		}
	}
	tr := func(id string, dr, cr, amount int64) ledger.Transfer {
		return ledger.Transfer{ID: id, DebitAccountID: dr, CreditAccountID: cr, Amount: amount, Ledger: cny, Code: 1}
	}
	hold := tr("hold", 2, 3, 30)
	hold.Flags = ledger.Pending
	subs := [][]ledger.Transfer{
		{tr("fund", 1, 2, 100)},
		{tr("pay", 2, 3, 40), hold},
		{tr("overdraw", 2, 3, 31)},
		{{ID: "post", PendingID: "hold", Flags: ledger.PostPending, Amount: 20}},
	}
	out, err := ledger.Commit(ctx, db, subs, time.Now().UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	want := [][]ledger.TransferResult{{ledger.TransferOK}, {ledger.TransferOK, ledger.TransferOK},
		{ledger.TransferExceedsCredits}, {ledger.TransferOK}}
	for i := range want {
		for j := range want[i] {
			if out[i][j] != want[i][j] {
				t.Fatalf("results %v, want %v", out, want)
			}
		}
	}
	// A second batch: a replay and a void of an already posted transfer.
	out, err = ledger.Commit(ctx, db, [][]ledger.Transfer{
		{tr("fund", 1, 2, 100), {ID: "void", PendingID: "hold", Flags: ledger.VoidPending}},
	}, time.Now().UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	if out[0][0] != ledger.TransferExists || out[0][1] != ledger.TransferPendingTransferAlreadyPosted {
		t.Fatalf("replay results %v", out)
	}

	as, err := db.LookupAccounts(ctx, []int64{3, 2, 404})
	if err != nil || len(as) != 2 || as[0].ID != 2 || as[1].ID != 3 {
		t.Fatalf("lookup accounts: %+v %v", as, err)
	}
	if a := as[0]; a.DebitsPosted != 60 || a.DebitsPending != 0 || a.CreditsPosted != 100 || a.Available() != 40 {
		t.Fatalf("account 2 = %+v", a)
	}
	ts, err := db.LookupTransfers(ctx, []string{"post", "nope"})
	if err != nil || len(ts) != 1 || ts[0].PendingID != "hold" || ts[0].DebitAccountID != 2 || ts[0].Amount != 20 {
		t.Fatalf("lookup transfers: %+v %v", ts, err)
	}

	r, err := ledger.Check(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK || r.Transfers != 4 || r.Accounts != 3 || r.TotalDebits[cny] != 160 {
		t.Fatalf("check: %+v", r)
	}

	// Account 2's history, newest first: post, hold, pay, fund.
	es, err := db.Entries(ctx, 2, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(es []ledger.Entry) (out []string) {
		for _, e := range es {
			out = append(out, e.Transfer.ID)
		}
		return out
	}
	if got := fmt.Sprint(ids(es)); got != "[post hold pay fund]" {
		t.Fatalf("entries %s", got)
	}
	for i := 1; i < len(es); i++ {
		if es[i].Seq >= es[i-1].Seq {
			t.Fatalf("entries not newest first: %+v", es)
		}
	}
	if es[0].Amount != -20 || es[0].Balance != 40 || es[1].Amount != 0 || es[3].Amount != 100 {
		t.Fatalf("entries %+v", es)
	}
	page, err := db.Entries(ctx, 2, es[1].Seq, 1)
	if err != nil || fmt.Sprint(ids(page)) != "[pay]" {
		t.Fatalf("page: %v %v", ids(page), err)
	}
}

// TestUniqueViolationRetries checks that a duplicate key from COPY surfaces
// as SQLSTATE 23505 and that Update retries it, a bounded number of times.
func TestUniqueViolationRetries(t *testing.T) {
	ctx := context.Background()
	db := open(t, newDatabase(t))
	dup := []ledger.Transfer{{ID: "x", DebitAccountID: 1, CreditAccountID: 2, Amount: 1, Ledger: 1, Code: 1}}
	if err := db.Update(ctx, func(tx ledger.Tx) error { return tx.InsertTransfers(ctx, dup) }); err != nil {
		t.Fatal(err)
	}
	attempts := 0
	err := db.Update(ctx, func(tx ledger.Tx) error {
		attempts++
		return tx.InsertTransfers(ctx, dup)
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "23505" {
		t.Fatalf("err = %v, want a unique violation", err)
	}
	if attempts != 10 {
		t.Fatalf("%d attempts, want 10", attempts)
	}
	// Errors of fn's own are returned as they are, at once.
	mine := errors.New("mine")
	attempts = 0
	if err := db.Update(ctx, func(ledger.Tx) error { attempts++; return mine }); err != mine || attempts != 1 {
		t.Fatalf("err = %v after %d attempts", err, attempts)
	}
}

// TestConcurrentOpen opens one empty database from several handles at once,
// as processes starting together would: the migration lock lets one apply
// the schema and the others find it applied.
func TestConcurrentOpen(t *testing.T) {
	url := newDatabase(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			db, err := postgres.Open(context.Background(), url)
			if err != nil {
				errs <- err
				return
			}
			db.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	db := open(t, url)
	// Each migration is recorded exactly once, however many processes raced.
	var n, distinct int
	if err := db.Pool().QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&n, &distinct); err != nil || n != distinct || n == 0 {
		t.Fatalf("schema_migrations rows: %d (%d distinct) %v", n, distinct, err)
	}
}

// TestMigrationsRecorded: a database records each migration by version and
// file name, and one whose record names another file for a version (another
// program's schema) is refused.
func TestMigrationsRecorded(t *testing.T) {
	ctx := context.Background()
	url := newDatabase(t)
	db := open(t, url)
	rows, err := db.Pool().Query(ctx, `SELECT version::text || ' ' || name FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	want := "1 0001_ledger.sql|2 0002_platform.sql|3 0003_identity.sql|5 0005_gateway.sql|6 0006_channels.sql"
	if g := strings.Join(got, "|"); !strings.HasPrefix(g, want) {
		t.Errorf("recorded %s, want %s first", g, want)
	}
	if _, err := db.Pool().Exec(ctx, `UPDATE schema_migrations SET name = '0003_other.sql' WHERE version = 3`); err != nil {
		t.Fatal(err)
	}
	if other, err := postgres.Open(ctx, url); err == nil || !strings.Contains(err.Error(), "0003_other.sql") {
		if err == nil {
			other.Close()
		}
		t.Fatalf("open with another program's migration 3: %v", err)
	}
}

// BenchmarkCommit commits batches of 4096 transfers among 10,000 accounts
// through ledger.Commit, each batch one durable transaction, and reports
// transfers per second.
func BenchmarkCommit(b *testing.B) {
	const accountCount, batchTransfers, submissionTransfers = 10_000, 4096, 1024
	ctx := context.Background()
	db := open(b, newDatabase(b))
	accounts := make([]ledger.Account, accountCount)
	for i := range accounts {
		accounts[i] = ledger.Account{ID: int64(i + 1), Ledger: 156, Code: 1}
	}
	if _, err := ledger.CreateAccounts(ctx, db, accounts); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 0
	batch := func() [][]ledger.Transfer {
		subs := make([][]ledger.Transfer, 0, batchTransfers/submissionTransfers)
		for range batchTransfers / submissionTransfers {
			sub := make([]ledger.Transfer, submissionTransfers)
			for i := range sub {
				n++
				dr := rng.Int64N(accountCount) + 1
				cr := (dr+rng.Int64N(accountCount-1))%accountCount + 1
				sub[i] = ledger.Transfer{ID: fmt.Sprint("b-", n), DebitAccountID: dr, CreditAccountID: cr,
					Amount: rng.Int64N(1000) + 1, Ledger: 156, Code: 1}
			}
			subs = append(subs, sub)
		}
		return subs
	}
	var elapsed time.Duration
	batches := 0
	for b.Loop() {
		b.StopTimer()
		subs := batch()
		b.StartTimer()
		start := time.Now()
		out, err := ledger.Commit(ctx, db, subs, time.Now().UnixNano())
		elapsed += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if out[0][0] != ledger.TransferOK {
			b.Fatalf("result %v", out[0][0])
		}
		batches++
	}
	b.ReportMetric(float64(batches*batchTransfers)/elapsed.Seconds(), "transfers/s")
	b.StopTimer()
	if r, err := ledger.Check(ctx, db); err != nil || !r.OK {
		b.Fatalf("check: %+v %v", r, err)
	}
}

// BenchmarkLedger: go test -run '^$' -bench Ledger -benchtime 100000x ./postgres
func BenchmarkLedger(b *testing.B) {
	ledgerload.Benchmark(b, func(b *testing.B) ledger.Store { return open(b, newDatabase(b)) })
}
