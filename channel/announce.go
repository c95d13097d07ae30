package channel

import (
	"context"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"

	"zhifu"
	"zhifu/bankapi"
	"zhifu/ledger"
)

// Limits of announcements.
const (
	announcementMessageRunesMax = 200
	announcementWindowMax       = 7 * 24 * time.Hour
	announcementsMax            = 1000
	// maintenanceTimeout bounds one read of a bank's maintenance notice.
	maintenanceTimeout = 5 * time.Second
)

// Sources of an announcement.
const (
	SourceOperator = "operator"
	SourceBank     = "bank"
)

// Announcement is a maintenance window of one bank, announced ahead so the
// cashier can route around it, or of the whole platform (Bank ""). Operators
// announce them; banks publish theirs, which the platform reads.
type Announcement struct {
	AnnouncementID string
	Bank           string
	StartsAt       time.Time
	EndsAt         time.Time
	Message        string
	Source         string
}

// Announce records an operator's maintenance window for a bank, or with
// bankName "" for the whole platform (which the edge enforces; bank routing
// ignores it).
func (s *Service) Announce(ctx context.Context, bankName string, starts, ends time.Time, message string) (*Announcement, error) {
	name := "the platform"
	if bankName != "" {
		b, err := s.bankOf(bankName, "bank")
		if err != nil {
			return nil, err
		}
		name = b.name
	}
	now := s.now()
	switch {
	case starts.IsZero() || ends.IsZero():
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "starts_at", Message: "starts_at and ends_at are required (RFC 3339)"}
	case !ends.After(starts) || ends.Sub(starts) > announcementWindowMax:
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "ends_at",
			Message: fmt.Sprintf("ends_at must be after starts_at, by at most %s", announcementWindowMax)}
	case !ends.After(now):
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "ends_at", Message: "the window has already ended"}
	case !utf8.ValidString(message) || utf8.RuneCountInString(message) > announcementMessageRunesMax:
		return nil, &zhifu.Error{Code: zhifu.InvalidRequest, Param: "message",
			Message: fmt.Sprintf("message must be at most %d characters", announcementMessageRunesMax)}
	}
	if message == "" {
		message = fmt.Sprintf("%s maintenance", name)
	}
	a := Announcement{AnnouncementID: s.newID("AN"), Bank: bankName, StartsAt: starts.UTC(), EndsAt: ends.UTC(),
		Message: message, Source: SourceOperator}
	if err := s.cfg.Batcher.Do(ctx, &announceOp{a: a, now: now}); err != nil {
		return nil, fmt.Errorf("announce: %w", err)
	}
	if err := s.loadAnnouncements(ctx); err != nil {
		return nil, err
	}
	return &a, nil
}

type announceOp struct {
	a   Announcement
	now time.Time
}

func (o *announceOp) Keys() []string { return []string{"announcement:" + o.a.AnnouncementID} }

func (o *announceOp) Prepare(context.Context, ledger.Tx) ([]ledger.Transfer, error) { return nil, nil }

func (o *announceOp) Finish(ctx context.Context, tx ledger.Tx, _ []ledger.TransferResult) error {
	_, err := tx.Exec(ctx, `INSERT INTO announcements (announcement_id, bank, starts_at, ends_at, message, created_at)
		VALUES (?, ?, ?, ?, ?, ?)`, o.a.AnnouncementID, o.a.Bank, nanos(o.a.StartsAt), nanos(o.a.EndsAt), o.a.Message, nanos(o.now))
	if err != nil {
		return fmt.Errorf("channel: insert announcement: %w", err)
	}
	return nil
}

// loadAnnouncements reads the operator's windows not yet over.
func (s *Service) loadAnnouncements(ctx context.Context) error {
	read := s.announceReads.Add(1)
	rows, err := s.cfg.Store.Reader().Query(ctx, `SELECT announcement_id, bank, starts_at, ends_at, message
		FROM announcements WHERE ends_at > ? ORDER BY starts_at LIMIT ?`, nanos(s.now()), announcementsMax)
	if err != nil {
		return fmt.Errorf("channel: announcements: %w", err)
	}
	defer rows.Close()
	var out []Announcement
	for rows.Next() {
		a := Announcement{Source: SourceOperator}
		var starts, ends int64
		if err := rows.Scan(&a.AnnouncementID, &a.Bank, &starts, &ends, &a.Message); err != nil {
			return fmt.Errorf("channel: announcements: %w", err)
		}
		a.StartsAt, a.EndsAt = fromNanos(starts), fromNanos(ends)
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("channel: announcements: %w", err)
	}
	s.announceMu.Lock()
	if read > s.announceRead {
		s.announcements, s.announceRead = out, read
	}
	s.announceMu.Unlock()
	return nil
}

// RefreshMaintenance reads every bank's own maintenance notice. A bank
// that does not answer keeps the notice read last.
func (s *Service) RefreshMaintenance(ctx context.Context) error {
	var firstErr error
	for _, b := range s.order {
		cctx, cancel := context.WithTimeout(ctx, maintenanceTimeout)
		n, err := b.client.Maintenance(cctx)
		cancel()
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("maintenance notice of %s: %w", b.name, err)
			}
			continue
		}
		b.mu.Lock()
		b.maintenance = n.Windows
		b.mu.Unlock()
	}
	return firstErr
}

// Announcements lists the maintenance windows not yet over, the
// operator's and the banks' own, by start.
func (s *Service) Announcements() []Announcement {
	now := s.now()
	var out []Announcement
	s.announceMu.RLock()
	for _, a := range s.announcements {
		if a.EndsAt.After(now) {
			out = append(out, a)
		}
	}
	s.announceMu.RUnlock()
	for _, b := range s.order {
		for _, w := range b.notice() {
			if w.End.After(now) {
				out = append(out, Announcement{Bank: b.name, StartsAt: w.Start.UTC(), EndsAt: w.End.UTC(),
					Message: b.name + " announced maintenance", Source: SourceBank})
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Announcement) int { return x.StartsAt.Compare(y.StartsAt) })
	return out
}

func (b *bank) notice() []bankapi.Window {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.maintenance)
}

// maintenanceAt returns the window, announced by either, that holds bank b
// at now; of several, the one ending last.
func (s *Service) maintenanceAt(b *bank, now time.Time) (bankapi.Window, bool) {
	var found bankapi.Window
	ok := false
	take := func(start, end time.Time) {
		if !now.Before(start) && now.Before(end) && (!ok || end.After(found.End)) {
			found, ok = bankapi.Window{Start: start, End: end}, true
		}
	}
	s.announceMu.RLock()
	for _, a := range s.announcements {
		if a.Bank == b.name {
			take(a.StartsAt, a.EndsAt)
		}
	}
	s.announceMu.RUnlock()
	for _, w := range b.notice() {
		take(w.Start, w.End)
	}
	return found, ok
}
