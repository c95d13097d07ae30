package campaign

import (
	"context"
	"time"

	"zhifu/approval"
	"zhifu/ledger"
)

// approvalRecord writes one line of the audit log by the monitor (the
// campaigns' own moves: start, widen, end, return).
func approvalRecord(ctx context.Context, q ledger.Querier, now time.Time, action, id, detail string) error {
	return approval.Record(ctx, q, approval.Entry{At: now, OperatorID: Monitor, Action: action, Subject: id,
		Detail: detail, Applied: true})
}

// supersede withdraws the pending launch of campaign id, which stopped.
func supersede(ctx context.Context, q ledger.Querier, id string, now time.Time) error {
	return approval.Supersede(ctx, q, KindLaunch, id, Monitor, "campaign stopped", now)
}
