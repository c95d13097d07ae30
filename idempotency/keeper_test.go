package idempotency_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"zhifu"
	"zhifu/idempotency"
	"zhifu/internal/testdb"
	"zhifu/internal/testkit"
	"zhifu/ledger"
)

// node is one process's view of a store: its batcher and its keeper.
type node struct {
	st      ledger.Store
	batcher *ledger.Batcher
	keeper  *idempotency.Keeper
	clock   *testkit.Clock
}

func newNode(t *testing.T, st ledger.Store, clock *testkit.Clock) *node {
	t.Helper()
	b := ledger.NewBatcher(st, clock.Now)
	k := idempotency.New(idempotency.Config{Batcher: b, Reader: st.Reader(), Clock: clock})
	n := &node{st: st, batcher: b, keeper: k, clock: clock}
	t.Cleanup(n.stop)
	return n
}

// stop is the node's process ending: its batcher commits what it queued.
func (n *node) stop() {
	n.keeper.Close()
	n.batcher.Close()
}

// backends runs f on SQLite and on PostgreSQL.
func backends(t *testing.T, f func(t *testing.T, open func() ledger.Store)) { testdb.Each(t, f) }

// thingOp is a business change as the services make them: its row's id
// derives from the request (here, the key), so running it again finds the
// row rather than making a second one, as a request recovering its lost
// answer does. It uses the nonces table, which has the shape it needs.
// The tests count rows to tell how many times a change was applied.
type thingOp struct {
	id string

	made bool
}

func (o *thingOp) Keys() []string { return []string{"thing:" + o.id} }

func (o *thingOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.made = false
	return nil, nil
}

func (o *thingOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	n, err := tx.Exec(ctx, `INSERT INTO nonces (merchant_id, nonce, expires_at) VALUES ('things', ?, 0)
		ON CONFLICT DO NOTHING`, o.id)
	o.made = n == 1
	return err
}

func things(t *testing.T, st ledger.Store) int {
	t.Helper()
	var n int
	if err := st.Reader().QueryRow(context.Background(),
		`SELECT count(*) FROM nonces WHERE merchant_id = 'things'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// change returns a run function that applies the thingOp of key and
// answers 201.
func change(n *node, key string, calls *atomic.Int64, recovering *atomic.Int64) func(context.Context) idempotency.Response {
	return func(ctx context.Context) idempotency.Response {
		c := calls.Add(1)
		if idempotency.Recovering(ctx) {
			recovering.Add(1)
		}
		if err := n.batcher.Do(ctx, &thingOp{id: key}); err != nil {
			var e *zhifu.Error
			if errors.As(err, &e) {
				return idempotency.Response{Status: 409, Body: []byte(e.Code)}
			}
			return idempotency.Response{Status: 500, Body: []byte(err.Error())}
		}
		return idempotency.Response{Status: 201, ContentType: "application/json", Body: fmt.Appendf(nil, `{"call":%d}`, c)}
	}
}

func req(key, hash string) idempotency.Request {
	return idempotency.Request{Scope: "user:U1", Key: key, Hash: hash}
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var e *zhifu.Error
	if !errors.As(err, &e) || e.Code != code {
		t.Fatalf("got %v, want %s", err, code)
	}
}

// settle waits until the node's stored responses are written: a batcher
// that closes commits its riders.
func settle(n *node) { n.stop() }

func clock0() *testkit.Clock { return testkit.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) }

func TestReplayAndReuse(t *testing.T) {
	backends(t, func(t *testing.T, open func() ledger.Store) {
		st, clock := open(), clock0()
		n := newNode(t, st, clock)
		var calls, rec atomic.Int64
		first, replayed, err := n.keeper.Do(context.Background(), req("k", "h1"), change(n, "k", &calls, &rec))
		if err != nil || replayed || first.Status != 201 {
			t.Fatalf("first: %+v %v %v", first, replayed, err)
		}
		// At once from this process's memory, and after its rider from the
		// database (a fresh process).
		again, replayed, err := n.keeper.Do(context.Background(), req("k", "h1"), change(n, "k", &calls, &rec))
		if err != nil || !replayed || string(again.Body) != string(first.Body) {
			t.Fatalf("replay: %+v %v %v", again, replayed, err)
		}
		_, _, err = n.keeper.Do(context.Background(), req("k", "h2"), change(n, "k", &calls, &rec))
		wantCode(t, err, zhifu.IdempotencyKeyReused)
		settle(n)
		n2 := newNode(t, st, clock)
		again, replayed, err = n2.keeper.Do(context.Background(), req("k", "h1"), change(n2, "k", &calls, &rec))
		if err != nil || !replayed || again.Status != 201 || string(again.Body) != string(first.Body) ||
			again.ContentType != "application/json" {
			t.Fatalf("replay from the database: %+v %v %v", again, replayed, err)
		}
		_, _, err = n2.keeper.Do(context.Background(), req("k", "h2"), change(n2, "k", &calls, &rec))
		wantCode(t, err, zhifu.IdempotencyKeyReused)
		if calls.Load() != 1 || things(t, st) != 1 {
			t.Fatalf("%d calls, %d changes; want 1 and 1", calls.Load(), things(t, st))
		}
		// A day later the key is free again, whatever the request.
		clock.Advance(idempotency.TTL)
		if _, replayed, err := n2.keeper.Do(context.Background(), req("k", "h2"), change(n2, "k", &calls, &rec)); err != nil || replayed {
			t.Fatalf("after expiry: %v %v", replayed, err)
		}
	})
}

func TestInUseOnlyWhileRunning(t *testing.T) {
	st, clock := openSQLite(t), clock0()
	n := newNode(t, st, clock)
	entered, release := make(chan struct{}), make(chan struct{})
	done := make(chan idempotency.Response)
	go func() {
		resp, _, _ := n.keeper.Do(context.Background(), req("k", "h"), func(context.Context) idempotency.Response {
			close(entered)
			<-release
			return idempotency.Response{Status: 201, Body: []byte("first")}
		})
		done <- resp
	}()
	<-entered
	_, _, err := n.keeper.Do(context.Background(), req("k", "h"), nil)
	wantCode(t, err, zhifu.IdempotencyKeyInUse)
	_, _, err = n.keeper.Do(context.Background(), req("k", "other"), nil)
	wantCode(t, err, zhifu.IdempotencyKeyReused)
	close(release)
	<-done
	resp, replayed, err := n.keeper.Do(context.Background(), req("k", "h"), nil)
	if err != nil || !replayed || string(resp.Body) != "first" {
		t.Fatalf("after: %+v %v %v", resp, replayed, err)
	}
}

func openSQLite(t *testing.T) ledger.Store { return testdb.SQLite(t)() }

func TestUnknownOutcomeNotKept(t *testing.T) {
	st, clock := openSQLite(t), clock0()
	n := newNode(t, st, clock)
	for _, status := range []int{500, 503, 429} {
		key := fmt.Sprint("k", status)
		var calls atomic.Int64
		run := func(context.Context) idempotency.Response {
			if calls.Add(1) == 1 {
				return idempotency.Response{Status: status}
			}
			return idempotency.Response{Status: 201}
		}
		n.keeper.Do(context.Background(), req(key, "h"), run)
		resp, replayed, err := n.keeper.Do(context.Background(), req(key, "h"), run)
		if err != nil || replayed || resp.Status != 201 || calls.Load() != 2 {
			t.Fatalf("%d: the retry did not run: %+v %v %v", status, resp, replayed, err)
		}
	}
	// A 4xx is an answer and is kept.
	var calls atomic.Int64
	run := func(context.Context) idempotency.Response {
		calls.Add(1)
		return idempotency.Response{Status: 400, Body: []byte("bad")}
	}
	n.keeper.Do(context.Background(), req("bad", "h"), run)
	if resp, replayed, _ := n.keeper.Do(context.Background(), req("bad", "h"), run); !replayed || resp.Status != 400 || calls.Load() != 1 {
		t.Fatalf("4xx not replayed: %+v %v", resp, replayed)
	}
}

// TestCrashAfterChange is the process dying between its change's commit
// and its response's: the retry, in a fresh process, is not refused but
// recovers, and the change is not made again by the keeper.
func TestCrashAfterChange(t *testing.T) {
	backends(t, func(t *testing.T, open func() ledger.Store) {
		st, clock := open(), clock0()
		n := newNode(t, st, clock)
		var calls, rec atomic.Int64
		if _, _, err := n.keeper.Do(context.Background(), req("k", "h"), change(n, "k", &calls, &rec)); err != nil {
			t.Fatal(err)
		}
		settle(n)
		// What a crash before the rider leaves: the key beside the change,
		// without the response.
		if _, err := st.Reader().Exec(context.Background(),
			`UPDATE idempotency_keys SET state = 2, status = 0, body = '' WHERE idem_key = 'k'`); err != nil {
			t.Fatal(err)
		}
		n2 := newNode(t, st, clock)
		run := func(ctx context.Context) idempotency.Response {
			calls.Add(1)
			if !idempotency.Recovering(ctx) {
				t.Error("the retry does not know it recovers")
			}
			return idempotency.Response{Status: 201, Body: []byte("recovered")}
		}
		resp, replayed, err := n2.keeper.Do(context.Background(), req("k", "h"), run)
		if err != nil || replayed || string(resp.Body) != "recovered" {
			t.Fatalf("retry after the crash: %+v %v %v", resp, replayed, err)
		}
		if things(t, st) != 1 {
			t.Fatalf("%d changes, want 1", things(t, st))
		}
		// And what it answered is now the key's stored response.
		settle(n2)
		n3 := newNode(t, st, clock)
		if resp, replayed, _ := n3.keeper.Do(context.Background(), req("k", "h"), nil); !replayed || string(resp.Body) != "recovered" {
			t.Fatalf("after recovery: %+v %v", resp, replayed)
		}
	})
}

// TestCrashBeforeChange is the process dying before its change committed,
// including a claim left by a version that wrote one before running: the
// retry runs at once, as new.
func TestCrashBeforeChange(t *testing.T) {
	backends(t, func(t *testing.T, open func() ledger.Store) {
		st, clock := open(), clock0()
		if _, err := st.Reader().Exec(context.Background(), `INSERT INTO idempotency_keys
			(scope, idem_key, request_hash, state, created_at) VALUES ('user:U1', 'k', 'h', 0, ?)`,
			clock.Now().UnixNano()); err != nil {
			t.Fatal(err)
		}
		n := newNode(t, st, clock)
		var calls, rec atomic.Int64
		resp, replayed, err := n.keeper.Do(context.Background(), req("k", "h"), change(n, "k", &calls, &rec))
		if err != nil || replayed || resp.Status != 201 || rec.Load() != 0 || things(t, st) != 1 {
			t.Fatalf("retry: %+v %v %v, recovering %d, changes %d", resp, replayed, err, rec.Load(), things(t, st))
		}
	})
}

// TestKeyCommitsWithChange: a key is recorded only in the transaction of
// a change; a failed change leaves no key, and a request that changed
// nothing leaves only its stored answer.
func TestKeyCommitsWithChange(t *testing.T) {
	st, clock := openSQLite(t), clock0()
	n := newNode(t, st, clock)
	failing := func(ctx context.Context) idempotency.Response {
		err := n.batcher.Do(ctx, &failOp{})
		return idempotency.Response{Status: 500, Body: []byte(fmt.Sprint(err))}
	}
	n.keeper.Do(context.Background(), req("f", "h"), failing)
	settle(n)
	var count int
	if err := st.Reader().QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 0 {
		t.Fatalf("%d keys after a failed change, want 0", count)
	}
}

type failOp struct{}

func (failOp) Keys() []string { return nil }
func (failOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	return nil, nil
}
func (failOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	if _, err := tx.Exec(ctx, `INSERT INTO nonces (merchant_id, nonce, expires_at) VALUES ('things', 'x', 0)`); err != nil {
		return err
	}
	return errors.New("the database failed")
}

// TestTwoNodes races one key on two processes sharing the database: the
// change is applied once, and every answer is that change's or a refusal
// to wait (never a second change).
func TestTwoNodes(t *testing.T) {
	backends(t, func(t *testing.T, open func() ledger.Store) {
		clock := clock0()
		a, b := newNode(t, open(), clock), newNode(t, open(), clock)
		for round := range 20 {
			key := fmt.Sprint("race-", round)
			var calls, rec atomic.Int64
			var wg sync.WaitGroup
			var applied, inUse atomic.Int64
			for _, n := range []*node{a, b, a, b} {
				wg.Go(func() {
					resp, _, err := n.keeper.Do(context.Background(), req(key, "h"), change(n, key, &calls, &rec))
					switch {
					case err != nil:
						wantCode(t, err, zhifu.IdempotencyKeyInUse)
						inUse.Add(1)
					case resp.Status == 201:
						applied.Add(1)
					case resp.Status == 409:
						inUse.Add(1)
					default:
						t.Errorf("answer %+v", resp)
					}
				})
			}
			wg.Wait()
			if applied.Load() == 0 {
				t.Fatalf("round %d: nobody applied the change", round)
			}
		}
		if got := things(t, a.st); got != 20 {
			t.Fatalf("%d changes for 20 keys", got)
		}
	})
}

func TestSweep(t *testing.T) {
	st, clock := openSQLite(t), clock0()
	n := newNode(t, st, clock)
	var calls, rec atomic.Int64
	for i := range 10 {
		n.keeper.Do(context.Background(), req(fmt.Sprint("old", i), "h"), change(n, fmt.Sprint("old", i), &calls, &rec))
	}
	settle(n)
	n = newNode(t, st, clock)
	clock.Advance(idempotency.TTL + time.Second)
	for i := range 3 {
		n.keeper.Do(context.Background(), req(fmt.Sprint("new", i), "h"), change(n, fmt.Sprint("new", i), &calls, &rec))
	}
	settle(n)
	n = newNode(t, st, clock)
	if err := n.keeper.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	var count int
	if err := st.Reader().QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 3 {
		t.Fatalf("%d keys left, want the 3 new ones", count)
	}
}
