package recon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"zhifu"
	"zhifu/ledger"
)

// Run states.
const (
	Running     = "RUNNING"
	Done        = "DONE"
	Failed      = "FAILED"
	Interrupted = "INTERRUPTED" // its process stopped before it finished; a run again does the rest
)

// Run phases, in order.
const (
	PhaseReading    = "reading"    // the statement and the day's records, sorted as they come
	PhaseMatching   = "matching"   // merging the two
	PhaseConfirming = "confirming" // asking the bank about records the statement does not show
	PhaseOverdue    = "overdue"    // handing overdue transactions to operators
)

// Sources of a statement.
const (
	SourceBank = "bank" // the bank's statement endpoint
	SourceFile = "file" // a file the bank sent
)

// Scheduler is the StartedBy of the runs the service starts on its own.
const Scheduler = "scheduler"

// Tally is one class of a run: statement lines, records of the platform's
// and their amount (the line's, or the record's for a record alone).
type Tally struct {
	Lines   int64 `json:"lines"`
	Records int64 `json:"records"`
	Amount  int64 `json:"amount"`
}

// Summary is what a run found and did.
type Summary struct {
	Classes map[Class]Tally `json:"classes"`
	// Repaired counts the differences the run repaired itself, Opened the
	// review items it opened, Settled the transactions it decided from the
	// statement, Closed the overdue items it closed: together the run's
	// changes. A run of a day already reconciled changes nothing.
	Repaired int64 `json:"repaired"`
	Opened   int64 `json:"opened"`
	Settled  int64 `json:"settled"`
	Closed   int64 `json:"closed"`
	// Suspense is the net amount the run moved into suspense, fen.
	Suspense int64 `json:"suspense"`
	// Inquiries counts the bank inquiries about records the statement
	// does not show.
	Inquiries int64 `json:"inquiries"`
}

// Run is one reconciliation of one bank's day.
type Run struct {
	RunID      string
	Bank       string
	Day        string
	Source     string
	File       string
	StartedBy  string
	Node       string
	State      string
	Phase      string
	LinesTotal int64
	LinesDone  int64
	Records    int64
	Changes    int64
	Summary    Summary
	Opening    int64
	Closing    int64
	Error      string
	StartedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time
}

// Duration is how long the run took, or has taken so far.
func (r *Run) Duration(now time.Time) time.Duration {
	if r.FinishedAt.IsZero() {
		return now.Sub(r.StartedAt)
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

const runColumns = `run_id, bank, day, source, file, started_by, node, state, phase, lines_total, lines_done, records,
	changes, summary, opening, closing, error, started_at, updated_at, finished_at`

func scanRun(row ledger.Row) (*Run, error) {
	var r Run
	var summary string
	var started, updated, finished int64
	err := row.Scan(&r.RunID, &r.Bank, &r.Day, &r.Source, &r.File, &r.StartedBy, &r.Node, &r.State, &r.Phase, &r.LinesTotal,
		&r.LinesDone, &r.Records, &r.Changes, &summary, &r.Opening, &r.Closing, &r.Error, &started, &updated, &finished)
	if err != nil {
		return nil, err
	}
	if summary != "" {
		if err := json.Unmarshal([]byte(summary), &r.Summary); err != nil {
			return nil, fmt.Errorf("summary of %s: %w", r.RunID, err)
		}
	}
	r.StartedAt, r.UpdatedAt, r.FinishedAt = fromNanos(started), fromNanos(updated), fromNanos(finished)
	return &r, nil
}

func summaryJSON(s Summary) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic("recon: summary does not marshal: " + err.Error())
	}
	return string(b)
}

// GetRun returns a run, or NOT_FOUND.
func (s *Service) GetRun(ctx context.Context, runID string) (*Run, error) {
	r, err := scanRun(s.cfg.Store.Reader().QueryRow(ctx, `SELECT `+runColumns+` FROM recon_runs WHERE run_id = ?`, runID))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, zhifu.Errorf(zhifu.NotFound, "no reconciliation run %s", clip(runID, 40))
	}
	if err != nil {
		return nil, fmt.Errorf("recon: run %s: %w", runID, err)
	}
	s.withLive(r)
	return r, nil
}

// withLive gives a run this process is doing its progress as of now
// rather than as of its last heartbeat.
func (s *Service) withLive(r *Run) {
	v, ok := s.live.Load(r.RunID)
	if !ok || r.State != Running {
		return
	}
	p := v.(*progress)
	r.Phase, r.LinesTotal, r.LinesDone, r.Records = *p.phase.Load(), p.linesTotal.Load(), p.linesDone.Load(), p.records.Load()
}

// PageMax bounds one page of runs or items.
const PageMax = 100

// RunFilter picks runs for ListRuns.
type RunFilter struct {
	Bank, Day     string
	StartingAfter string // a run id
	Limit         int
}

// ListRuns lists runs, newest first.
func (s *Service) ListRuns(ctx context.Context, f RunFilter) ([]*Run, bool, error) {
	f.Limit = min(max(f.Limit, 1), PageMax)
	q := `SELECT ` + runColumns + ` FROM recon_runs WHERE 1 = 1`
	var args []any
	if f.StartingAfter != "" {
		after, err := s.GetRun(ctx, f.StartingAfter)
		if err != nil {
			return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "starting_after",
				Message: "starting_after must be the id of a run"}
		}
		q += ` AND (started_at < ? OR (started_at = ? AND run_id < ?))`
		at := after.StartedAt.UnixNano()
		args = append(args, at, at, after.RunID)
	}
	if f.Bank != "" {
		q += ` AND bank = ?`
		args = append(args, f.Bank)
	}
	if f.Day != "" {
		q += ` AND day = ?`
		args = append(args, f.Day)
	}
	q += ` ORDER BY started_at DESC, run_id DESC LIMIT ?`
	rows, err := s.cfg.Store.Reader().Query(ctx, q, append(args, f.Limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("recon: runs: %w", err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, false, fmt.Errorf("recon: runs: %w", err)
		}
		s.withLive(r)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("recon: runs: %w", err)
	}
	if len(out) > f.Limit {
		return out[:f.Limit], true, nil
	}
	return out, false, nil
}

// Item statuses.
const (
	Open     = "OPEN"     // waiting for an operator
	Repaired = "REPAIRED" // the run repaired it itself
	Resolved = "RESOLVED" // an operator's resolution, approved by a second, was carried out
	Closed   = "CLOSED"   // an overdue transaction the bank decided after all, or one a later item took over
)

// Item is a review item: one difference between a bank and the platform.
type Item struct {
	ItemID     string
	Bank       string
	Key        string
	Day        string
	RunID      string
	Class      Class
	Status     string
	TxnID      string
	Kind       string
	UserID     string
	RequestID  string
	BankTxnID  string
	BankAmount int64
	OurAmount  int64
	// Suspense is what sits in the suspense account for the item, fen:
	// positive when the bank holds money the platform owes someone,
	// negative when the platform recorded money the bank does not have.
	Suspense int64
	// Books is what the bank moved for the item beyond what the
	// platform's bank transactions show, on the side of the item's kind
	// (debits for a top-up, credits for a withdrawal), fen.
	Books      int64
	Repair     string
	Detail     string
	ProposalID string
	Action     string
	Note       string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	ResolvedAt time.Time
}

const itemColumns = `item_id, bank, item_key, day, run_id, class, status, txn_id, kind, user_id, request_id,
	bank_txn_id, bank_amount, our_amount, suspense, books, repair, detail, proposal_id, action, note, resolved_at,
	created_at, updated_at`

func scanItem(row ledger.Row) (*Item, error) {
	var it Item
	var class string
	var resolved, created, updated int64
	err := row.Scan(&it.ItemID, &it.Bank, &it.Key, &it.Day, &it.RunID, &class, &it.Status, &it.TxnID, &it.Kind,
		&it.UserID, &it.RequestID, &it.BankTxnID, &it.BankAmount, &it.OurAmount, &it.Suspense, &it.Books, &it.Repair, &it.Detail,
		&it.ProposalID, &it.Action, &it.Note, &resolved, &created, &updated)
	if err != nil {
		return nil, err
	}
	it.Class = Class(class)
	it.ResolvedAt, it.CreatedAt, it.UpdatedAt = fromNanos(resolved), fromNanos(created), fromNanos(updated)
	return &it, nil
}

// ItemID is the id of the item of key at bank: the same difference always
// names the same item.
func ItemID(bank, key string) string { return zhifu.KeyedID("RI", bank, key) }

func loadItem(ctx context.Context, q ledger.Querier, id string, lock bool) (*Item, error) {
	query := `SELECT ` + itemColumns + ` FROM recon_items WHERE item_id = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	it, err := scanItem(q.QueryRow(ctx, query, id))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("recon: item %s: %w", id, err)
	}
	return it, nil
}

func insertItem(ctx context.Context, q ledger.Querier, it *Item) error {
	n, err := q.Exec(ctx, `INSERT INTO recon_items (`+itemColumns+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		it.ItemID, it.Bank, it.Key, it.Day, it.RunID, string(it.Class), it.Status, it.TxnID, it.Kind, it.UserID,
		it.RequestID, it.BankTxnID, it.BankAmount, it.OurAmount, it.Suspense, it.Books, clip(it.Repair, textLenMax),
		clip(it.Detail, textLenMax), it.ProposalID, it.Action, it.Note, toNanos(it.ResolvedAt), toNanos(it.CreatedAt),
		toNanos(it.UpdatedAt))
	if err != nil {
		return fmt.Errorf("recon: insert item %s: %w", it.ItemID, err)
	}
	if n != 1 {
		return fmt.Errorf("recon: item %s recorded concurrently: %w", it.ItemID, ledger.ErrConflict)
	}
	return nil
}

// textLenMax bounds the texts of an item.
const textLenMax = 512

// GetItem returns a review item, or NOT_FOUND.
func (s *Service) GetItem(ctx context.Context, id string) (*Item, error) {
	it, err := loadItem(ctx, s.cfg.Store.Reader(), id, false)
	if err != nil {
		return nil, err
	}
	if it == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no review item %s", clip(id, 40))
	}
	return it, nil
}

// ItemFilter picks items for ListItems.
type ItemFilter struct {
	Status        string // "" for every status
	StartingAfter string // an item id
	Limit         int
}

// ListItems lists review items, oldest first: the work queue's order.
func (s *Service) ListItems(ctx context.Context, f ItemFilter) ([]*Item, bool, error) {
	f.Limit = min(max(f.Limit, 1), PageMax)
	q := `SELECT ` + itemColumns + ` FROM recon_items WHERE 1 = 1`
	var args []any
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, f.Status)
	}
	if f.StartingAfter != "" {
		after, err := s.GetItem(ctx, f.StartingAfter)
		if err != nil {
			return nil, false, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "starting_after",
				Message: "starting_after must be the id of a review item"}
		}
		at := after.CreatedAt.UnixNano()
		q += ` AND (created_at > ? OR (created_at = ? AND item_id > ?))`
		args = append(args, at, at, after.ItemID)
	}
	q += ` ORDER BY created_at, item_id LIMIT ?`
	rows, err := s.cfg.Store.Reader().Query(ctx, q, append(args, f.Limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("recon: items: %w", err)
	}
	defer rows.Close()
	var out []*Item
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, false, fmt.Errorf("recon: items: %w", err)
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("recon: items: %w", err)
	}
	if len(out) > f.Limit {
		return out[:f.Limit], true, nil
	}
	return out, false, nil
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func toNanos(t time.Time) int64 { return nanos(t) }

// clip shortens s to at most n bytes, on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}

// closeOp closes an open item with a word on why.
type closeOp struct {
	itemID, detail string
	now            time.Time
	closed         bool
}

func (o *closeOp) Keys() []string { return []string{"recon-item:" + o.itemID} }

func (o *closeOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) {
	o.closed = false
	return nil, nil
}

func (o *closeOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	n, err := tx.Exec(ctx, `UPDATE recon_items SET status = ?, detail = ?, updated_at = ? WHERE item_id = ? AND status = ?`,
		Closed, clip(o.detail, textLenMax), toNanos(o.now), o.itemID, Open)
	if err != nil {
		return fmt.Errorf("recon: close item %s: %w", o.itemID, err)
	}
	o.closed = n == 1
	return nil
}
