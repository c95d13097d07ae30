package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"zhifu/ledger"
)

// Limits.
const (
	// prefetchReadsMax bounds the reads one batch runs ahead; past it the
	// rest run as usual, one round trip each.
	prefetchReadsMax = 4096
	// prefetchRowsMax bounds the rows kept of one read run ahead: the
	// reads named are of one row each (a trade, a nonce).
	prefetchRowsMax = 16
)

// prefetched is a read run ahead of its op's Prepare, with what it found.
type prefetched struct {
	fields []pgconn.FieldDescription
	rows   [][][]byte
}

// readKey is what a read is known by: its text and its arguments.
func readKey(query string, args []any) string {
	var b strings.Builder
	b.WriteString(query)
	for _, a := range args {
		fmt.Fprintf(&b, "\x00%T:%v", a, a)
	}
	return b.String()
}

// Prefetch runs the ops' named reads (ledger.Prefetcher) in one round trip
// and keeps their answers for the Prepares that make them. Locking reads
// (FOR UPDATE) take their locks here, in the ops' order, as the Prepares
// would have taken them one by one.
func (w *writeTx) Prefetch(ctx context.Context, reads []ledger.Read) error {
	if err := w.p.flush(ctx); err != nil {
		return err
	}
	reads = reads[:min(len(reads), prefetchReadsMax)]
	batch := &pgx.Batch{}
	keys := make([]string, 0, len(reads))
	seen := make(map[string]bool, len(reads))
	for _, r := range reads {
		k := readKey(r.Query, r.Args)
		if seen[k] {
			continue
		}
		seen[k] = true
		keys = append(keys, k)
		batch.Queue(rebind(r.Query), r.Args...)
	}
	br := w.tx.SendBatch(ctx, batch)
	got := make(map[string]*prefetched, len(keys))
	for _, k := range keys {
		rows, err := br.Query()
		if err != nil {
			br.Close()
			return fmt.Errorf("postgres: prefetch: %w", err)
		}
		pf := &prefetched{fields: append([]pgconn.FieldDescription(nil), rows.FieldDescriptions()...)}
		for rows.Next() {
			if len(pf.rows) == prefetchRowsMax {
				pf = nil // too many to keep: the Prepare reads it again
				break
			}
			raw := rows.RawValues()
			row := make([][]byte, len(raw))
			for i, v := range raw {
				if v != nil {
					row[i] = append([]byte{}, v...)
				}
			}
			pf.rows = append(pf.rows, row)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			br.Close()
			return fmt.Errorf("postgres: prefetch: %w", err)
		}
		if pf != nil {
			got[k] = pf
		}
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("postgres: prefetch: %w", err)
	}
	w.p.prefetched, w.p.typeMap = got, w.tx.Conn().TypeMap()
	return nil
}

// take hands out, once, the answer to a read run ahead; nil when there is
// none, or the transaction has written since.
func (p *pipeline) take(query string, args []any) *prefetched {
	if p == nil || len(p.prefetched) == 0 {
		return nil
	}
	k := readKey(query, args)
	pf := p.prefetched[k]
	delete(p.prefetched, k)
	return pf
}

// wrote drops every answer read ahead: the transaction has changed rows,
// and an answer read before may no longer be what a read would see.
func (p *pipeline) wrote() {
	if p != nil {
		p.prefetched = nil
	}
}

// prefetchedRows is a read's answer as ledger.Rows.
type prefetchedRows struct {
	pf      *prefetched
	typeMap *pgtype.Map
	i       int // the row Scan reads, 1-based; 0 before the first Next
}

func (r *prefetchedRows) Next() bool {
	if r.i >= len(r.pf.rows) {
		r.i = len(r.pf.rows) + 1
		return false
	}
	r.i++
	return true
}

func (r *prefetchedRows) Scan(dest ...any) error {
	if r.i < 1 || r.i > len(r.pf.rows) {
		return fmt.Errorf("postgres: scan with no current row")
	}
	return pgx.ScanRow(r.typeMap, r.pf.fields, r.pf.rows[r.i-1], dest...)
}

func (r *prefetchedRows) Err() error { return nil }
func (r *prefetchedRows) Close()     {}

// prefetchedRow is a read's answer as ledger.Row: its first row.
type prefetchedRow struct{ rows *prefetchedRows }

func (r prefetchedRow) Scan(dest ...any) error {
	if !r.rows.Next() {
		return ledger.ErrNoRows
	}
	return r.rows.Scan(dest...)
}
