package sqlite

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// The write-ahead log's layout (SQLite's file format, section 4.1): a
// 32-byte header, then frames of a 24-byte header and one page each. A
// frame whose second word is not zero ends a commit; frames whose salts
// differ from the header's are left from before the log last restarted.
const (
	walHeaderSize      = 32
	walFrameHeaderSize = 24
)

// WALMark is a place in the write-ahead log, from which WALPages counts.
type WALMark struct {
	salt   uint64
	frames int
}

// WALPages is what the commits since a mark wrote, page by page.
type WALPages struct {
	Commits int
	Frames  int
	// Restarted says the log was checkpointed and restarted after the
	// mark: what it counts is only the tail after the restart.
	Restarted bool
	// Pages is, per table or index, how many of its pages the commits
	// wrote (each page once a commit, however often it changed).
	Pages map[string]int
}

// WALMark returns the log's end now.
func (db *DB) WALMark() (WALMark, error) {
	log, err := db.readWAL()
	if err != nil {
		return WALMark{}, err
	}
	return WALMark{salt: log.salt, frames: len(log.frames)}, nil
}

// WALPages reads the commits written since mark (all the log holds if it
// restarted since) and names the table or index of every page they wrote,
// from SQLite's dbstat table: where the bytes written per commit go. It
// reads the whole log and every page of the database: for benchmarks, not
// for a server's hot path.
func (db *DB) WALPages(ctx context.Context, mark WALMark) (WALPages, error) {
	log, err := db.readWAL()
	if err != nil {
		return WALPages{}, err
	}
	frames := log.frames
	restarted := log.salt != mark.salt || mark.frames > len(frames)
	if !restarted {
		frames = frames[mark.frames:]
	}
	owner := map[uint32]string{}
	rows, err := db.reader.QueryContext(ctx, `SELECT name, pageno FROM dbstat`)
	if err != nil {
		return WALPages{}, fmt.Errorf("sqlite: read dbstat: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name string
		var page uint32
		if err := rows.Scan(&name, &page); err != nil {
			return WALPages{}, err
		}
		owner[page] = name
	}
	if err := rows.Err(); err != nil {
		return WALPages{}, err
	}
	out := WALPages{Frames: len(frames), Restarted: restarted, Pages: map[string]int{}}
	commit := map[uint32]bool{}
	for _, f := range frames {
		commit[f.page] = true
		if !f.commit {
			continue
		}
		out.Commits++
		for page := range commit {
			name := owner[page]
			if name == "" {
				name = "(free or new)"
			}
			out.Pages[name]++
		}
		clear(commit)
	}
	return out, nil
}

type walFrame struct {
	page   uint32
	commit bool
}

type walLog struct {
	salt   uint64
	frames []walFrame
}

// readWAL reads the valid frames of the write-ahead log beside the file.
func (db *DB) readWAL() (walLog, error) {
	b, err := os.ReadFile(db.path + "-wal")
	if errors.Is(err, os.ErrNotExist) {
		return walLog{}, nil
	}
	if err != nil {
		return walLog{}, err
	}
	if len(b) < walHeaderSize {
		return walLog{}, nil
	}
	pageSize := int(binary.BigEndian.Uint32(b[8:]))
	if pageSize < 512 || pageSize > 65536 {
		return walLog{}, fmt.Errorf("sqlite: write-ahead log page size %d", pageSize)
	}
	log := walLog{salt: binary.BigEndian.Uint64(b[16:])}
	for off := walHeaderSize; off+walFrameHeaderSize+pageSize <= len(b); off += walFrameHeaderSize + pageSize {
		if binary.BigEndian.Uint64(b[off+8:]) != log.salt {
			break
		}
		log.frames = append(log.frames, walFrame{page: binary.BigEndian.Uint32(b[off:]),
			commit: binary.BigEndian.Uint32(b[off+4:]) != 0})
	}
	return log, nil
}
