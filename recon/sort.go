package recon

import (
	"bufio"
	"cmp"
	"container/heap"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"zhifu/bankapi"
	"zhifu/channel"
)

// Both sides of a day, the statement's lines and the platform's records,
// are sorted by request id and merged, so that neither is ever held whole:
// each is sorted in chunks of at most chunkMax entries, a full chunk
// spilled to a temporary file as a sorted run, and the runs merged as they
// are read back. Memory is a chunk per side and a read buffer per run,
// whatever the day's size.

// Bounds of the sort.
const (
	// chunkMax bounds the entries of one side held in memory.
	chunkMax = 1 << 16
	// runBufferBytes is the read and write buffer of one run's file.
	runBufferBytes = 64 << 10
	// stringBytesMax bounds a string read back from a run: ids are at
	// most 64 bytes, so anything longer is a damaged file.
	stringBytesMax = 1 << 10
)

// codec writes and reads one entry of a run.
type codec[T any] struct {
	cmp func(a, b *T) int
	put func(w *runWriter, t *T)
	get func(r *runReader, t *T) error
}

// sorter sorts entries of T that do not fit in memory.
type sorter[T any] struct {
	c     codec[T]
	dir   string
	chunk []T
	max   int // chunkMax, or less in tests
	perm  []int32
	runs  []string
	n     int64
}

func newSorter[T any](c codec[T], dir string) *sorter[T] {
	return &sorter[T]{c: c, dir: dir, chunk: make([]T, 0, 1024), max: chunkMax}
}

// add adds an entry; a full chunk is sorted and spilled.
func (s *sorter[T]) add(t T) error {
	s.chunk = append(s.chunk, t)
	s.n++
	if len(s.chunk) >= s.max {
		return s.spill()
	}
	return nil
}

// order returns the chunk's positions in sorted order: sorting small
// positions moves 4 bytes a swap where the entries are tens.
func (s *sorter[T]) order() []int32 {
	if cap(s.perm) < len(s.chunk) {
		s.perm = make([]int32, len(s.chunk), cap(s.chunk))
	}
	perm := s.perm[:len(s.chunk)]
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(a, b int32) int { return s.c.cmp(&s.chunk[a], &s.chunk[b]) })
	return perm
}

func (s *sorter[T]) spill() error {
	perm := s.order()
	f, err := os.CreateTemp(s.dir, "recon-run-*")
	if err != nil {
		return fmt.Errorf("recon: sort: %w", err)
	}
	s.runs = append(s.runs, f.Name())
	w := &runWriter{w: bufio.NewWriterSize(f, runBufferBytes)}
	for _, i := range perm {
		s.c.put(w, &s.chunk[i])
	}
	err = errors.Join(w.w.Flush(), f.Close())
	if err != nil {
		return fmt.Errorf("recon: sort: %w", err)
	}
	clear(s.chunk)
	s.chunk = s.chunk[:0]
	return nil
}

// close removes the sorter's files.
func (s *sorter[T]) close() {
	for _, name := range s.runs {
		os.Remove(name)
	}
	s.runs = nil
}

// merged reads the entries back in order. The sorter takes no more adds.
func (s *sorter[T]) merged() (*merger[T], error) { return mergeAll([]*sorter[T]{s}) }

// mergeAll reads the entries of several sorters back in one order.
func mergeAll[T any](ss []*sorter[T]) (*merger[T], error) {
	m := &merger[T]{c: ss[0].c, h: mergeHeap[T]{cmp: ss[0].c.cmp}}
	for _, s := range ss {
		perm := s.order()
		mem := make([]T, len(perm))
		for i, j := range perm {
			mem[i] = s.chunk[j]
		}
		s.chunk, s.perm = nil, nil
		if err := m.fill(&runSource[T]{mem: mem}); err != nil {
			return nil, err
		}
		for _, name := range s.runs {
			f, err := os.Open(name)
			if err != nil {
				m.close()
				return nil, fmt.Errorf("recon: sort: %w", err)
			}
			m.files = append(m.files, f)
			if err := m.fill(&runSource[T]{r: &runReader{r: bufio.NewReaderSize(f, runBufferBytes)}}); err != nil {
				m.close()
				return nil, err
			}
		}
	}
	return m, nil
}

// runSource is one sorted run being merged: a file, or a last chunk still
// in memory (r nil).
type runSource[T any] struct {
	r    *runReader
	mem  []T
	head T
}

// merger merges sorted runs with a heap of their heads.
type merger[T any] struct {
	c     codec[T]
	files []*os.File
	h     mergeHeap[T]
}

// fill reads src's next entry onto the heap, or drops src at its end.
func (m *merger[T]) fill(src *runSource[T]) error {
	if src.r == nil {
		if len(src.mem) == 0 {
			return nil
		}
		src.head, src.mem = src.mem[0], src.mem[1:]
	} else {
		err := m.c.get(src.r, &src.head)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("recon: sort: read run: %w", err)
		}
	}
	heap.Push(&m.h, src)
	return nil
}

// peek returns the smallest entry left, or nil at the end.
func (m *merger[T]) peek() *T {
	if len(m.h.srcs) == 0 {
		return nil
	}
	return &m.h.srcs[0].head
}

// next takes the smallest entry.
func (m *merger[T]) next() (T, bool, error) {
	var zero T
	if len(m.h.srcs) == 0 {
		return zero, false, nil
	}
	src := heap.Pop(&m.h).(*runSource[T])
	t := src.head
	if err := m.fill(src); err != nil {
		return zero, false, err
	}
	return t, true, nil
}

func (m *merger[T]) close() {
	for _, f := range m.files {
		f.Close()
	}
	m.files = nil
}

// mergeHeap orders run sources by their heads.
type mergeHeap[T any] struct {
	srcs []*runSource[T]
	cmp  func(a, b *T) int
}

func (h *mergeHeap[T]) Len() int           { return len(h.srcs) }
func (h *mergeHeap[T]) Less(i, j int) bool { return h.cmp(&h.srcs[i].head, &h.srcs[j].head) < 0 }
func (h *mergeHeap[T]) Swap(i, j int)      { h.srcs[i], h.srcs[j] = h.srcs[j], h.srcs[i] }
func (h *mergeHeap[T]) Push(x any)         { h.srcs = append(h.srcs, x.(*runSource[T])) }
func (h *mergeHeap[T]) Pop() any {
	n := len(h.srcs) - 1
	x := h.srcs[n]
	h.srcs = h.srcs[:n]
	return x
}

// runWriter and runReader encode entries: strings with a length, numbers
// as varints.
type runWriter struct {
	w   *bufio.Writer
	buf [binary.MaxVarintLen64]byte
}

func (w *runWriter) str(s string) {
	w.int(int64(len(s)))
	w.w.WriteString(s)
}

func (w *runWriter) int(n int64) {
	k := binary.PutVarint(w.buf[:], n)
	w.w.Write(w.buf[:k])
}

func (w *runWriter) byte(b byte) { w.w.WriteByte(b) }

type runReader struct {
	r   *bufio.Reader
	buf []byte
}

func (r *runReader) int() (int64, error) { return binary.ReadVarint(r.r) }

func (r *runReader) str() (string, error) {
	n, err := r.int()
	if err != nil {
		return "", err
	}
	if n < 0 || n > stringBytesMax {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return "", noEOF(err)
	}
	return string(b), nil
}

// resolvedBy reads a record's resolved_by, one of a few words, without
// allocating it.
func (r *runReader) resolvedBy() (string, error) {
	n, err := r.int()
	if err != nil || n == 0 {
		return "", err
	}
	if n > stringBytesMax {
		return "", fmt.Errorf("string of %d bytes", n)
	}
	if cap(r.buf) < int(n) {
		r.buf = make([]byte, n)
	}
	b := r.buf[:n]
	if _, err := io.ReadFull(r.r, b); err != nil {
		return "", noEOF(err)
	}
	switch string(b) {
	case channel.ByCallback:
		return channel.ByCallback, nil
	case channel.ByInquiry:
		return channel.ByInquiry, nil
	case channel.ByAnswer:
		return channel.ByAnswer, nil
	case channel.ByStatement:
		return channel.ByStatement, nil
	case channel.ByRecon:
		return channel.ByRecon, nil
	}
	return string(b), nil
}

func (r *runReader) byte() (byte, error) {
	b, err := r.r.ReadByte()
	return b, noEOF(err)
}

// noEOF turns an end of file inside an entry into ErrUnexpectedEOF: only
// the end between entries is the run's end.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// The two sides' codecs.

// lineOrder sorts lines by request id, then bank reference, then position.
func lineOrder(a, b *Line) int {
	if c := strings.Compare(a.RequestID, b.RequestID); c != 0 {
		return c
	}
	if c := strings.Compare(a.BankTxnID, b.BankTxnID); c != 0 {
		return c
	}
	return cmp.Compare(a.No, b.No)
}

// Kinds and statuses are written as one byte and read back as the
// package constants, so reading a run allocates only the ids.
var (
	lineKinds    = [...]string{bankapi.KindDebit, bankapi.KindCredit}
	lineStatuses = [...]string{bankapi.StatusSuccess, bankapi.StatusFailed}
	recKinds     = [...]channel.Kind{channel.KindTopup, channel.KindWithdrawal, channel.KindCardRepayment}
	recStatuses  = [...]channel.Status{channel.StatusSuccess, channel.StatusFailed, channel.StatusProcessing, channel.StatusQueued}
)

func indexOf[E comparable](list []E, e E) byte {
	for i, x := range list {
		if x == e {
			return byte(i)
		}
	}
	panic(fmt.Sprintf("recon: %v is none of %v", e, list))
}

func pick[E any](list []E, b byte) (E, error) {
	if int(b) >= len(list) {
		var zero E
		return zero, fmt.Errorf("code %d out of range", b)
	}
	return list[b], nil
}

var lineCodec = codec[Line]{
	cmp: lineOrder,
	put: func(w *runWriter, l *Line) {
		w.str(l.RequestID)
		w.str(l.BankTxnID)
		w.byte(indexOf(lineKinds[:], l.Kind))
		w.byte(indexOf(lineStatuses[:], l.Status))
		w.int(l.Amount)
		w.int(l.SettledAt)
		w.int(l.No)
	},
	get: func(r *runReader, l *Line) error {
		var err error
		if l.RequestID, err = r.str(); err != nil {
			return err // io.EOF here is the run's end
		}
		var errs [6]error
		l.BankTxnID, errs[0] = r.str()
		var k, s byte
		k, errs[1] = r.byte()
		s, errs[2] = r.byte()
		l.Amount, errs[3] = r.int()
		l.SettledAt, errs[4] = r.int()
		l.No, errs[5] = r.int()
		if err := errors.Join(errs[:]...); err != nil {
			return noEOF(err)
		}
		var e1, e2 error
		l.Kind, e1 = pick(lineKinds[:], k)
		l.Status, e2 = pick(lineStatuses[:], s)
		return errors.Join(e1, e2)
	},
}

func recordOrder(a, b *Record) int { return strings.Compare(a.TxnID, b.TxnID) }

var recordCodec = codec[Record]{
	cmp: recordOrder,
	put: func(w *runWriter, x *Record) {
		w.str(x.TxnID)
		w.str(x.BankTxnID)
		w.str(x.ResolvedBy)
		w.byte(indexOf(recKinds[:], x.Kind))
		w.byte(indexOf(recStatuses[:], x.Status))
		w.int(x.Amount)
		w.int(x.SettledAt)
	},
	get: func(r *runReader, x *Record) error {
		var err error
		if x.TxnID, err = r.str(); err != nil {
			return err
		}
		var errs [5]error
		x.BankTxnID, errs[0] = r.str()
		x.ResolvedBy, errs[1] = r.resolvedBy()
		var k, s byte
		k, errs[2] = r.byte()
		s, errs[3] = r.byte()
		x.Amount, errs[4] = r.int()
		if err := errors.Join(errs[:]...); err != nil {
			return noEOF(err)
		}
		var e error
		if x.SettledAt, e = r.int(); e != nil {
			return noEOF(e)
		}
		var e1, e2 error
		x.Kind, e1 = pick(recKinds[:], k)
		x.Status, e2 = pick(recStatuses[:], s)
		x.CardToken = ""
		return errors.Join(e1, e2)
	},
}
