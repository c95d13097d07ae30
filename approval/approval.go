package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/idempotency"
	"zhifu/identity"
	"zhifu/ledger"
)

// Proposal states.
const (
	Pending    = "PENDING"
	Approved   = "APPROVED"   // approved and carried out, in one transaction
	Rejected   = "REJECTED"   // a second operator said no
	Superseded = "SUPERSEDED" // what it concerns changed before it was decided
)

// Bounds on proposals.
const (
	// PageMax bounds one page of proposals.
	PageMax = 100
	// summaryLenMax and reasonLenMax bound the texts a person reads.
	summaryLenMax = 512
	reasonLenMax  = 512
	// payloadBytesMax bounds what a kind keeps with a proposal.
	payloadBytesMax = 16 << 10
)

// Proposal is an action waiting for, or decided by, a second operator.
type Proposal struct {
	ID         string
	Kind       string // which Kind carries it out: "recon.resolve"
	Subject    string // what it concerns: a review item's id, a campaign's id
	Summary    string // what the approver is asked to agree to, in words
	Payload    string // the kind's own description of the action (JSON)
	State      string
	ProposedBy string
	ProposedAt time.Time
	DecidedBy  string
	DecidedAt  time.Time
	Reason     string // why it was rejected or superseded
}

// Kind carries out approved proposals of one kind.
type Kind interface {
	// Carry returns the op that does what p proposes. It runs in the same
	// transaction as the approval, which is recorded only if the op
	// applied its change (ledger.Applier); an op that refuses (a balance
	// no longer there) may say why through Refusal() error, and the
	// proposal then stays pending.
	Carry(p Proposal) (ledger.Op, error)
}

// Approver is a Kind with more to say about who may approve than that
// the proposer may not: a campaign's creator may not approve a change
// another operator proposed either.
type Approver interface {
	MayApprove(ctx context.Context, p Proposal, by *identity.Operator) error
}

// Config is what the service needs.
type Config struct {
	Store   ledger.Store
	Batcher *ledger.Batcher
	Clock   zhifu.Clock
	Logger  *slog.Logger
}

// Service files and decides proposals.
type Service struct {
	cfg   Config
	kinds map[string]Kind
}

// New returns the service; kinds are registered with Register before use.
func New(cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = zhifu.SystemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, kinds: map[string]Kind{}}
}

// Register makes k carry out proposals of kind name. It is not safe to
// call once requests are served.
func (s *Service) Register(name string, k Kind) { s.kinds[name] = k }

// File records proposal p in the transaction of q (a caller's op: the
// change that needs approving and its proposal commit together), as
// proposed by p.ProposedBy now. Pending proposals of the same kind and
// subject are superseded: the approver decides on the latest.
func File(ctx context.Context, q ledger.Querier, p *Proposal, now time.Time) error {
	if err := check(p); err != nil {
		return err
	}
	if err := Supersede(ctx, q, p.Kind, p.Subject, p.ProposedBy, "changed by "+p.ProposedBy, now); err != nil {
		return err
	}
	p.ID = zhifu.NewID("AP", now)
	p.State, p.ProposedAt = Pending, now.UTC()
	_, err := q.Exec(ctx, `INSERT INTO approvals (approval_id, kind, subject, summary, payload, state, proposed_by,
		proposed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, p.ID, p.Kind, p.Subject, p.Summary, p.Payload, p.State,
		p.ProposedBy, p.ProposedAt.UnixNano())
	if err != nil {
		return fmt.Errorf("approval: file: %w", err)
	}
	return Record(ctx, q, Entry{At: now, OperatorID: p.ProposedBy, Action: "approval.propose", Subject: p.ID,
		Detail: p.Kind + " " + p.Subject + ": " + p.Summary, Applied: true})
}

func check(p *Proposal) error {
	switch {
	case p.Kind == "" || p.Subject == "" || p.ProposedBy == "":
		return fmt.Errorf("approval: a proposal needs a kind, a subject and a proposer")
	case utf8.RuneCountInString(p.Summary) > summaryLenMax || !utf8.ValidString(p.Summary):
		return fmt.Errorf("approval: summary of %d characters", utf8.RuneCountInString(p.Summary))
	case len(p.Payload) > payloadBytesMax:
		return fmt.Errorf("approval: payload of %d bytes", len(p.Payload))
	}
	return nil
}

// Supersede marks the pending proposals of a kind and subject superseded,
// in the transaction of q, by operator by and for reason.
func Supersede(ctx context.Context, q ledger.Querier, kind, subject, by, reason string, now time.Time) error {
	n, err := q.Exec(ctx, `UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, reason = ?
		WHERE kind = ? AND subject = ? AND state = ?`, Superseded, by, now.UnixNano(), clip(reason), kind, subject, Pending)
	if err != nil {
		return fmt.Errorf("approval: supersede: %w", err)
	}
	if n == 0 {
		return nil
	}
	return Record(ctx, q, Entry{At: now, OperatorID: by, Action: "approval.supersede", Subject: kind + " " + subject,
		Detail: reason, Applied: true})
}

// Propose files p on its own, for a proposal that needs no other change.
func (s *Service) Propose(ctx context.Context, p Proposal) (*Proposal, error) {
	if _, ok := s.kinds[p.Kind]; !ok {
		return nil, fmt.Errorf("approval: no kind %q", p.Kind)
	}
	op := &fileOp{p: p, now: s.cfg.Clock.Now()}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, err
	}
	return &op.p, nil
}

type fileOp struct {
	p   Proposal
	now time.Time
}

func (o *fileOp) Keys() []string { return []string{"approval-subject:" + o.p.Kind + ":" + o.p.Subject} }

func (o *fileOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *fileOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	return File(ctx, tx, &o.p, o.now)
}

// Get returns a proposal by id, or NOT_FOUND.
func (s *Service) Get(ctx context.Context, id string) (*Proposal, error) {
	p, err := load(ctx, s.cfg.Store.Reader(), id, false)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, zhifu.Errorf(zhifu.NotFound, "no approval %s", clip(id))
	}
	return p, nil
}

// List returns proposals in state (all states for ""), newest first, limit
// of them proposed before the proposal named by startingAfter.
func (s *Service) List(ctx context.Context, state, startingAfter string, limit int) ([]Proposal, bool, error) {
	limit = min(max(limit, 1), PageMax)
	before := int64(1) << 62
	if startingAfter != "" {
		p, err := s.Get(ctx, startingAfter)
		if err != nil {
			return nil, false, err
		}
		before = p.ProposedAt.UnixNano()
	}
	q := `SELECT ` + columns + ` FROM approvals WHERE proposed_at < ?`
	args := []any{before}
	if state != "" {
		q += ` AND state = ?`
		args = append(args, state)
	}
	rows, err := s.cfg.Store.Reader().Query(ctx, q+` ORDER BY proposed_at DESC LIMIT ?`, append(args, limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("approval: list: %w", err)
	}
	defer rows.Close()
	var out []Proposal
	for rows.Next() {
		p, err := scan(rows)
		if err != nil {
			return nil, false, fmt.Errorf("approval: list: %w", err)
		}
		out = append(out, *p)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("approval: list: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// Approve is operator by approving proposal id: what it proposes is
// carried out, and the approval recorded, in one transaction. The operator
// who proposed it is FORBIDDEN to; a proposal no longer pending is
// CONTEXT_INCONSISTENT.
func (s *Service) Approve(ctx context.Context, id string, by *identity.Operator) (*Proposal, error) {
	p, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	k, ok := s.kinds[p.Kind]
	if !ok {
		return nil, fmt.Errorf("approval: proposal %s of unknown kind %q", p.ID, p.Kind)
	}
	if m, ok := k.(Approver); ok && p.State == Pending {
		if err := m.MayApprove(ctx, *p, by); err != nil {
			return nil, err
		}
	}
	inner, err := k.Carry(*p)
	if err != nil {
		return nil, err
	}
	op := &decideOp{id: id, by: by.OperatorID, state: Approved, inner: inner, now: s.cfg.Clock.Now()}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, err
	}
	if op.refusal != nil {
		return s.recovered(ctx, id, by, Approved, op.refusal)
	}
	return &op.p, nil
}

// recovered answers a decision refused as already made with the proposal,
// when the request is recovering the lost answer of its own earlier run
// (idempotency.Recovering) and that run made this very decision.
func (s *Service) recovered(ctx context.Context, id string, by *identity.Operator, state string, refusal error) (*Proposal, error) {
	if !idempotency.Recovering(ctx) {
		return nil, refusal
	}
	p, err := s.Get(ctx, id)
	if err != nil || p.State != state || p.DecidedBy != by.OperatorID {
		return nil, refusal
	}
	return p, nil
}

// Reject is operator by turning proposal id down, for reason. Its proposer
// may withdraw it this way too.
func (s *Service) Reject(ctx context.Context, id string, by *identity.Operator, reason string) (*Proposal, error) {
	if !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > reasonLenMax {
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "reason",
			Message: fmt.Sprintf("reason must be at most %d characters of UTF-8", reasonLenMax)}
	}
	op := &decideOp{id: id, by: by.OperatorID, state: Rejected, reason: reason, now: s.cfg.Clock.Now()}
	if err := s.cfg.Batcher.Do(ctx, op); err != nil {
		return nil, err
	}
	if op.refusal != nil {
		return s.recovered(ctx, id, by, Rejected, op.refusal)
	}
	return &op.p, nil
}

// decideOp approves (carrying out inner) or rejects one proposal.
type decideOp struct {
	id, by, state, reason string
	inner                 ledger.Op // nil for a rejection
	now                   time.Time

	p       Proposal
	refusal error
}

func (o *decideOp) Keys() []string {
	keys := []string{"approval:" + o.id}
	if o.inner != nil {
		keys = append(keys, o.inner.Keys()...)
	}
	return keys
}

func (o *decideOp) Prepare(ctx context.Context, tx ledger.Tx) ([]ledger.Transfer, error) {
	o.refusal = nil
	p, err := load(ctx, tx, o.id, true)
	switch {
	case err != nil:
		return nil, err
	case p == nil:
		o.refusal = zhifu.Errorf(zhifu.NotFound, "no approval %s", clip(o.id))
		return nil, nil
	case p.State != Pending:
		o.refusal = &zhifu.Error{Code: zhifu.ContextInconsistent, Param: "approval_id",
			Message: fmt.Sprintf("approval %s is %s, no longer pending", p.ID, p.State)}
		return nil, nil
	case o.state == Approved && p.ProposedBy == o.by:
		o.refusal = zhifu.Errorf(zhifu.Forbidden, "the operator who proposed %s cannot approve it; a second operator must", p.ID)
		return nil, nil
	}
	o.p = *p
	if o.inner == nil {
		return nil, nil
	}
	return o.inner.Prepare(ctx, tx)
}

func (o *decideOp) Finish(ctx context.Context, tx ledger.Tx, results []ledger.TransferResult) error {
	if o.refusal != nil {
		return nil
	}
	if o.inner != nil {
		if err := o.inner.Finish(ctx, tx, results); err != nil {
			return err
		}
		if a, ok := o.inner.(ledger.Applier); ok && !a.Applied() {
			o.refusal = zhifu.Errorf(zhifu.ContextInconsistent, "approval %s cannot be carried out now", o.p.ID)
			if r, ok := o.inner.(interface{ Refusal() error }); ok && r.Refusal() != nil {
				o.refusal = r.Refusal()
			}
			return nil
		}
	}
	n, err := tx.Exec(ctx, `UPDATE approvals SET state = ?, decided_by = ?, decided_at = ?, reason = ?
		WHERE approval_id = ? AND state = ?`, o.state, o.by, o.now.UnixNano(), clip(o.reason), o.id, Pending)
	if err != nil {
		return fmt.Errorf("approval: decide: %w", err)
	}
	if n != 1 {
		return fmt.Errorf("approval %s decided concurrently: %w", o.id, ledger.ErrConflict)
	}
	o.p.State, o.p.DecidedBy, o.p.DecidedAt, o.p.Reason = o.state, o.by, o.now.UTC(), o.reason
	action := "approval.approve"
	if o.state == Rejected {
		action = "approval.reject"
	}
	return Record(ctx, tx, Entry{At: o.now, OperatorID: o.by, Action: action, Subject: o.id,
		Detail: o.p.Kind + " " + o.p.Subject + ": " + o.p.Summary, Applied: true})
}

// Applied says whether the decision was recorded (ledger.Applier).
func (o *decideOp) Applied() bool { return o.refusal == nil }

const columns = `approval_id, kind, subject, summary, payload, state, proposed_by, proposed_at, decided_by,
	decided_at, reason`

func load(ctx context.Context, q ledger.Querier, id string, lock bool) (*Proposal, error) {
	query := `SELECT ` + columns + ` FROM approvals WHERE approval_id = ?`
	if lock {
		query += ` FOR UPDATE`
	}
	p, err := scan(q.QueryRow(ctx, query, id))
	if errors.Is(err, ledger.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("approval: load: %w", err)
	}
	return p, nil
}

func scan(r interface{ Scan(...any) error }) (*Proposal, error) {
	var p Proposal
	var proposed, decided int64
	if err := r.Scan(&p.ID, &p.Kind, &p.Subject, &p.Summary, &p.Payload, &p.State, &p.ProposedBy, &proposed,
		&p.DecidedBy, &decided, &p.Reason); err != nil {
		return nil, err
	}
	p.ProposedAt = time.Unix(0, proposed).UTC()
	if decided != 0 {
		p.DecidedAt = time.Unix(0, decided).UTC()
	}
	return &p, nil
}
