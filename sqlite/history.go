package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"zhifu/ledger"
)

// historyRunShift is the width of the runs by which an account's history is
// indexed: seq >> historyRunShift, then account, then seq (migration 0025,
// whose index expression must be the same; TestHistoryPlan checks that
// the reads below use it). New entries all go to the newest run's part of
// each index, so the commit path's cost does not grow with the history;
// a read seeks once per run it covers.
const historyRunShift = 17

// historyRunsMax bounds the runs one statement covers. A read starts with
// the run at its near end and doubles the window while the account's
// entries fall short of the limit, so an account busy in the latest run
// costs one statement and a quiet one a few, whatever the history's length.
const historyRunsMax = 256

var (
	historyNewestSQL = historySQL("seq DESC")
	historyOldestSQL = historySQL("seq")
)

// historySQL reads an account's transfers in a list of runs, bounded by
// seq on both sides, in the order given.
func historySQL(order string) string {
	run := "(seq >> " + strconv.Itoa(historyRunShift) + ")"
	return `SELECT seq, ` + transferColumns + ` FROM (
		SELECT * FROM transfers WHERE ` + run + ` IN (SELECT value FROM json_each(?1))
			AND debit_account_id = ?2 AND seq > ?3 AND seq < ?4
		UNION ALL
		SELECT * FROM transfers WHERE ` + run + ` IN (SELECT value FROM json_each(?1))
			AND credit_account_id = ?2 AND seq > ?3 AND seq < ?4
	) ORDER BY ` + order + ` LIMIT ?5`
}

// Entries returns an account's history, newest first: up to limit entries
// (a negative limit: all) with seq below beforeSeq (<= 0: from the newest).
func (db *DB) Entries(ctx context.Context, accountID, beforeSeq int64, limit int) ([]ledger.Entry, error) {
	out, err := db.history(ctx, accountID, 0, beforeSeq, limit, true)
	if err != nil {
		return nil, fmt.Errorf("sqlite: entries: %w", err)
	}
	return out, nil
}

// EntriesAfter returns an account's history, oldest first: up to limit
// entries with afterSeq < seq < beforeSeq (beforeSeq <= 0: to the newest).
func (db *DB) EntriesAfter(ctx context.Context, accountID, afterSeq, beforeSeq int64, limit int) ([]ledger.Entry, error) {
	out, err := db.history(ctx, accountID, afterSeq, beforeSeq, limit, false)
	if err != nil {
		return nil, fmt.Errorf("sqlite: entries: %w", err)
	}
	return out, nil
}

// history walks the runs between after and before from the end asked
// for, in one read transaction so that every statement sees one state.
func (db *DB) history(ctx context.Context, accountID, after, before int64, limit int, newestFirst bool) ([]ledger.Entry, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	after = max(after, 0)
	if limit == 0 || before-after < 2 {
		return nil, nil
	}
	query := historyOldestSQL
	if newestFirst {
		query = historyNewestSQL
	}
	// Kept prepared, and prepared before the transaction takes a
	// connection of the pool, so that preparing never waits for one.
	kept := db.readStmts.get(ctx, db.reader, query, false, true)
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	run := func(args ...any) (*sql.Rows, error) { return tx.QueryContext(ctx, query, args...) }
	if kept != nil {
		st := tx.StmtContext(ctx, kept)
		defer st.Close()
		run = func(args ...any) (*sql.Rows, error) { return st.QueryContext(ctx, args...) }
	}
	var last int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM transfers`).Scan(&last); err != nil {
		return nil, err
	}
	lo, hi := (after+1)>>historyRunShift, min(before-1, last)>>historyRunShift
	if min(before-1, last) <= after {
		return nil, nil
	}
	var out []ledger.Entry
	for width := int64(1); lo <= hi && (limit < 0 || len(out) < limit); width = min(2*width, historyRunsMax) {
		runs := make([]int64, 0, width)
		for len(runs) < int(width) && lo <= hi {
			if newestFirst {
				runs = append(runs, hi)
				hi--
			} else {
				runs = append(runs, lo)
				lo++
			}
		}
		want := -1
		if limit >= 0 {
			want = limit - len(out)
		}
		rows, err := run(jsonInts(runs), accountID, after, before, want)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var seq int64
			t, err := scanTransfer(rows, &seq)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out = append(out, ledger.EntryOf(seq, t, accountID))
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, err
		}
		rows.Close()
	}
	return out, nil
}
