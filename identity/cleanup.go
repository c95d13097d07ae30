package identity

import (
	"context"
	"log/slog"
	"time"
)

const (
	// cleanupInterval is how often expired nonces and sessions are deleted.
	// Expired rows are already refused; deleting them only bounds the tables.
	cleanupInterval = time.Minute
	// cleanupRowsMax bounds the rows of each table one cleanup op deletes.
	cleanupRowsMax = 1000
	// cleanupRoundsMax bounds the ops one Cleanup runs, so a large backlog
	// is worked off over several intervals rather than all at once.
	cleanupRoundsMax = 10
)

// Run deletes expired nonces and sessions every cleanupInterval until ctx
// ends.
func (s *Service) Run(ctx context.Context) {
	t := time.NewTicker(cleanupInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Cleanup(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logger.Warn("identity cleanup failed", slog.Any("err", err))
			}
		}
	}
}

// Cleanup deletes nonces and sessions that expired before the clock's now.
func (s *Service) Cleanup(ctx context.Context) error {
	for range cleanupRoundsMax {
		op := &cleanupOp{now: s.now().UnixNano()}
		if err := s.cfg.Batcher.Do(ctx, op); err != nil {
			return err
		}
		if op.nonces < cleanupRowsMax && op.sessions < cleanupRowsMax {
			return nil
		}
	}
	return nil
}
