package storetest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// The crash test runs a child process (this test binary again) that posts
// transfers under load and prints an acknowledgement line for each one the
// batcher reported durable. The parent kills it with SIGKILL at a random
// moment, restarts it, and after every kill checks that each acknowledged
// transfer is in the store exactly as sent, that every stored transfer is one
// the child could have sent (nothing invented), that money is conserved and
// that the audit is clean.

// CrashChildEnv names the environment variable that turns a test binary into
// a crash-test child; its value is the database locator.
const CrashChildEnv = "ZHIFU_CRASH_CHILD"

const (
	crashWallets  = 16
	crashFunding  = 1_000_000
	crashWorkers  = 32
	crashBankID   = 1000
	crashLinesMax = 1 << 20
)

// crashTransfer derives a transfer entirely from its id, so the parent can
// tell whether a stored transfer is one the child could have sent.
func crashTransfer(round, worker, n int) ledger.Transfer {
	id := fmt.Sprintf("c%d-%d-%d", round, worker, n)
	h := uint64(round*1_000_003+worker*10_007+n) * 0x9E3779B97F4A7C15
	from := int64(h%crashWallets) + 1
	to := (from+int64(h>>8%(crashWallets-1)))%crashWallets + 1
	return ledger.Transfer{ID: id, DebitAccountID: from, CreditAccountID: to,
		Amount: int64(h>>20%50_000) + 1, Ledger: cny, Code: 1}
}

func parseCrashID(id string) (round, worker, n int, ok bool) {
	parts := strings.Split(strings.TrimPrefix(id, "c"), "-")
	if len(parts) != 3 || !strings.HasPrefix(id, "c") {
		return 0, 0, 0, false
	}
	var err [3]error
	round, err[0] = strconv.Atoi(parts[0])
	worker, err[1] = strconv.Atoi(parts[1])
	n, err[2] = strconv.Atoi(parts[2])
	return round, worker, n, err[0] == nil && err[1] == nil && err[2] == nil
}

// RunCrashChild is the child's main: call it from TestMain when
// CrashChildEnv is set. round distinguishes the ids of successive children.
func RunCrashChild(open func(locator string) (ledger.Store, error)) {
	st, err := open(os.Getenv(CrashChildEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	round, _ := strconv.Atoi(os.Getenv(CrashChildEnv + "_ROUND"))
	ctx := context.Background()
	accounts := []ledger.Account{bank(crashBankID)}
	var fund []ledger.Transfer
	for i := int64(1); i <= crashWallets; i++ {
		accounts = append(accounts, wallet(i))
		fund = append(fund, tr(fmt.Sprint("fund-", i), crashBankID, i, crashFunding))
	}
	if _, err := ledger.CreateAccounts(ctx, st, accounts); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	if _, err := ledger.Commit(ctx, st, [][]ledger.Transfer{fund}, time.Now().UnixNano()); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(3)
	}
	b := ledger.NewBatcher(st, time.Now)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	fmt.Fprintln(out, "ready")
	out.Flush()
	var wg sync.WaitGroup
	for w := 0; w < crashWorkers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for n := 0; ; n++ {
				t := crashTransfer(round, w, n)
				res, err := b.Submit(ctx, []ledger.Transfer{t})
				if err != nil {
					fmt.Fprintln(os.Stderr, "crash child:", err)
					os.Exit(3)
				}
				mu.Lock()
				fmt.Fprintf(out, "ack %s %s\n", t.ID, res[0])
				out.Flush()
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
}

// Crash runs kills rounds of start-load-SIGKILL-verify against one database.
// The seed (logged; ZHIFU_TEST_SEED replays it) draws the moments of the
// kills; what the child has committed by then still depends on its speed.
func Crash(t *testing.T, b Backend, kills int) {
	loc := b.NewDatabase(t)
	acked := make(map[string]ledger.TransferResult)
	rng := rand.New(rand.NewPCG(testkit.Seed(t), 1))
	for round := 1; round <= kills; round++ {
		runCrashRound(t, loc, round, time.Duration(20+rng.IntN(300))*time.Millisecond, acked)
		st := b.Open(t, loc)
		verifyCrash(t, st, round, acked)
		st.Close()
	}
	t.Logf("%d kills, %d acknowledged transfers verified", kills, len(acked))
}

func runCrashRound(t *testing.T, loc string, round int, after time.Duration, acked map[string]ledger.TransferResult) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), CrashChildEnv+"="+loc, fmt.Sprintf("%s_ROUND=%d", CrashChildEnv, round))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() || lines.Text() != "ready" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("round %d: child did not start: %q", round, lines.Text())
	}
	timer := time.AfterFunc(after, func() { cmd.Process.Signal(syscall.SIGKILL) })
	defer timer.Stop()
	n := 0
	for lines.Scan() && n < crashLinesMax {
		f := strings.Fields(lines.Text())
		if len(f) != 3 || f[0] != "ack" {
			continue // a line cut short by the kill
		}
		n++
		r := ledger.TransferOK
		if f[2] != "ok" {
			r = ledger.TransferExceedsCredits
			if f[2] != r.String() {
				t.Errorf("round %d: %s ended %s", round, f[1], f[2])
			}
		}
		acked[f[1]] = r
	}
	io.Copy(io.Discard, stdout)
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
		t.Fatalf("round %d: child ended without being killed: %v", round, err)
	}
	if n == 0 {
		t.Logf("round %d: killed before any acknowledgement", round)
	}
}

func verifyCrash(t *testing.T, st ledger.Store, round int, acked map[string]ledger.TransferResult) {
	t.Helper()
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	found := make(map[string]ledger.Transfer)
	for len(ids) > 0 {
		n := min(len(ids), 4096)
		got, err := st.LookupTransfers(ctx, ids[:n])
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range got {
			found[x.ID] = x
		}
		ids = ids[n:]
	}
	for id, r := range acked {
		_, ok := found[id]
		if r == ledger.TransferOK && !ok {
			t.Fatalf("round %d: acknowledged transfer %s lost", round, id)
		}
		if r != ledger.TransferOK && ok {
			t.Fatalf("round %d: refused transfer %s stored", round, id)
		}
	}
	snap, err := st.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, a := range snap.Accounts {
		if a.Code == 1 {
			total += a.Balance()
		}
	}
	if total != crashWallets*crashFunding {
		t.Fatalf("round %d: wallets hold %d, want %d", round, total, crashWallets*crashFunding)
	}
	if r := ledger.CheckSnapshot(snap); !r.OK {
		t.Fatalf("round %d: ledger check: %v", round, r.Violations)
	}
	verifyNothingInvented(t, st, round)
}

// verifyNothingInvented reads every wallet's history and checks each
// transfer is one the children could have sent, exactly as they would have.
func verifyNothingInvented(t *testing.T, st ledger.Store, round int) {
	t.Helper()
	for w := int64(1); w <= crashWallets; w++ {
		before := int64(0)
		for {
			page, err := st.Entries(ctx, w, before, 1000)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				x := e.Transfer
				if strings.HasPrefix(x.ID, "fund-") {
					continue
				}
				r, wk, n, ok := parseCrashID(x.ID)
				want := crashTransfer(r, wk, n)
				if !ok || r > round || x.DebitAccountID != want.DebitAccountID ||
					x.CreditAccountID != want.CreditAccountID || x.Amount != want.Amount {
					t.Fatalf("round %d: stored transfer %+v was never sent", round, x)
				}
			}
			if len(page) < 1000 {
				break
			}
			before = page[len(page)-1].Seq
		}
	}
}
