package approval

import (
	"context"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"zhifu/ledger"
)

// Bounds on what an audit entry keeps.
const (
	auditTextLenMax = 512 // characters of action, subject or detail
	// AuditPageMax bounds one page of the audit log.
	AuditPageMax = 100
)

// Entry is one line of the audit log.
type Entry struct {
	Seq        int64
	At         time.Time
	OperatorID string
	Action     string // what was done: "POST /v1/admin/deposits", "approval.approve"
	Subject    string // what it was done to: a path, a proposal id
	Detail     string // anything more, never a secret
	Applied    bool   // whether it changed anything
}

// Record writes e in the transaction of q, at e.At.
func Record(ctx context.Context, q ledger.Querier, e Entry) error {
	_, err := q.Exec(ctx, `INSERT INTO audit_log (at, operator_id, action, subject, detail, applied)
		VALUES (?, ?, ?, ?, ?, ?)`, e.At.UnixNano(), e.OperatorID, clip(e.Action), clip(e.Subject), clip(e.Detail),
		boolInt(e.Applied))
	if err != nil {
		return fmt.Errorf("audit: record: %w", err)
	}
	return nil
}

// AuditLog lists the audit log, newest first, limit entries with Seq below
// before (0 for the newest).
func AuditLog(ctx context.Context, q ledger.Querier, before int64, limit int) ([]Entry, bool, error) {
	limit = min(max(limit, 1), AuditPageMax)
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := q.Query(ctx, `SELECT seq, at, operator_id, action, subject, detail, applied FROM audit_log
		WHERE seq < ? ORDER BY seq DESC LIMIT ?`, before, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("audit: list: %w", err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		var e Entry
		var at int64
		var applied int
		if err := rows.Scan(&e.Seq, &at, &e.OperatorID, &e.Action, &e.Subject, &e.Detail, &applied); err != nil {
			return nil, false, fmt.Errorf("audit: list: %w", err)
		}
		e.At, e.Applied = time.Unix(0, at).UTC(), applied != 0
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("audit: list: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// Guard returns a ledger guard that records an operator's request in the
// audit log, in the transaction of the request's first change (or on its
// own, through Batcher.RunGuard, when the request changed nothing), so a
// change is never without its line.
func Guard(e Entry) ledger.Guard { return &auditGuard{e: e} }

type auditGuard struct{ e Entry }

func (g *auditGuard) Keys() []string { return nil }

func (g *auditGuard) Check(context.Context, ledger.Tx) (error, error) { return nil, nil }

func (g *auditGuard) Record(ctx context.Context, tx ledger.Tx, applied bool) error {
	e := g.e
	e.Applied = applied
	return Record(ctx, tx, e)
}

func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= auditTextLenMax {
		return s
	}
	return string([]rune(s)[:auditTextLenMax]) + "…"
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
