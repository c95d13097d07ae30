package notify

import (
	"context"
	"fmt"

	"zhifu/ledger"
)

// ReleaseHolder frees the delivery leases of a process that died (named by
// Config.Holder), inside the caller's transaction: its rows are due again
// at once for the other workers, rather than when their lease would end.
// Should the process be alive after all, its attempt finds the lease gone
// when it records the outcome (LostLease), and the merchant may hear the
// notification twice, as it may anyway.
func ReleaseHolder(ctx context.Context, q ledger.Querier, holder string) error {
	if holder == "" {
		return nil
	}
	if _, err := q.Exec(ctx, `UPDATE notifications SET lease_until = 0, leased_by = ''
		WHERE status = 'pending' AND lease_until > 0 AND leased_by = ?`, holder); err != nil {
		return fmt.Errorf("notify: release the leases of %s: %w", holder, err)
	}
	return nil
}
