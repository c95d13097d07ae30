package sqlite

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// SQLite writes each WAL frame as two system calls, its 24-byte header and
// then its page, so a commit of 30 pages makes 60 pwrite calls before its
// fsync. On the 2-core virtual machine of BENCHMARKS.md a pwrite under
// load costs several microseconds, and the committer of paid trades spent
// a fifth of its time in them.
//
// gatherVFS is SQLite's own unix VFS with one change: the writes to a WAL
// file are gathered in memory while they follow each other in the file,
// and reach the file as one write when a commit frame is complete, before
// any sync, read, size, truncate or close of that file, before a write
// elsewhere in it, and when the buffer is full. What SQLite asked to be
// durable is in the file before its sync returns, so a commit is exactly as
// durable as before; a crash before then loses only frames that no commit
// covered, which recovery ignores by their checksums. Other files (the
// database, its shared memory) are SQLite's unix files, untouched.
//
// Only the writer connection opens the database through it (Open).
const gatherVFSName = "zhifu-gather"

// gatherBufferMax bounds the bytes one WAL file holds back.
const gatherBufferMax = 4 << 20

// unixWriteMax is the most the unix VFS writes in one call: it keeps the
// low 17 bits of a write's length (os_unix.c, seekAndWrite), as SQLite
// itself never writes more than a 64 KiB page at once. So a flush goes out
// in pieces of up to 30 frames of 4 KiB.
const unixWriteMax = 30 * (walFrameHeaderSize + 4096)

var (
	gatherOnce sync.Once
	gatherErr  error
	// gatherVFS and gatherMethods live for the process, as SQLite keeps
	// pointers to both.
	gatherVFS     sqlite3.Tsqlite3_vfs
	gatherMethods sqlite3.Tsqlite3_io_methods
	// unixOpen and unixMethods are the unix VFS's, to which every call is
	// passed on; unixMethods is set from the first WAL file opened, and
	// every unix file shares the one table.
	unixVFS     uintptr
	unixOpen    func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32
	unixMethods struct {
		sync.Once
		close    func(*libc.TLS, uintptr) int32
		read     func(*libc.TLS, uintptr, uintptr, int32, int64) int32
		write    func(*libc.TLS, uintptr, uintptr, int32, int64) int32
		truncate func(*libc.TLS, uintptr, int64) int32
		sync     func(*libc.TLS, uintptr, int32) int32
		fileSize func(*libc.TLS, uintptr, uintptr) int32
		control  func(*libc.TLS, uintptr, int32, uintptr) int32
		fetch    func(*libc.TLS, uintptr, int64, int32, uintptr) int32
		table    uintptr
	}
	// walFiles holds the gathered writes of each open WAL file, by the
	// address of its sqlite3_file.
	walFilesMu sync.Mutex
	walFiles   = map[uintptr]*walFile{}
)

// walFile is one open WAL file's writes not yet in the file: buf holds the
// bytes from offset start on, in the order of the file.
type walFile struct {
	buf   []byte
	start int64
	// commitHeader says the last write was a commit frame's header, so the
	// frame is complete once its page follows (whatever was flushed
	// between the two).
	commitHeader bool
}

// registerGatherVFS registers gatherVFS with SQLite, once for the process.
func registerGatherVFS() error {
	gatherOnce.Do(func() { gatherErr = doRegisterGatherVFS() })
	return gatherErr
}

func doRegisterGatherVFS() error {
	tls := libc.NewTLS()
	defer tls.Close()
	unixVFS = sqlite3.Xsqlite3_vfs_find(tls, 0)
	if unixVFS == 0 {
		return fmt.Errorf("sqlite: no default VFS")
	}
	unix := (*sqlite3.Tsqlite3_vfs)(cptr(unixVFS))
	gatherVFS = *unix
	name, err := libc.CString(gatherVFSName)
	if err != nil {
		return err
	}
	gatherVFS.FzName = name
	gatherVFS.FpNext = 0
	unixOpen = cfunc[func(*libc.TLS, uintptr, uintptr, uintptr, int32, uintptr) int32](unix.FxOpen)
	setCFunc(&gatherVFS.FxOpen, gatherOpen)
	if rc := sqlite3.Xsqlite3_vfs_register(tls, uintptr(unsafe.Pointer(&gatherVFS)), 0); rc != sqlite3.SQLITE_OK {
		return fmt.Errorf("sqlite: register VFS: code %d", rc)
	}
	return nil
}

// gatherOpen opens a file as the unix VFS does and, for a WAL file, puts
// gatherMethods in front of the unix file's methods. The file is the unix
// VFS's own, so the methods not gathered are called with it unchanged.
func gatherOpen(tls *libc.TLS, _ uintptr, zName uintptr, pFile uintptr, flags int32, pOutFlags uintptr) int32 {
	rc := unixOpen(tls, unixVFS, zName, pFile, flags, pOutFlags)
	if rc != sqlite3.SQLITE_OK || flags&sqlite3.SQLITE_OPEN_WAL == 0 {
		return rc
	}
	file := (*sqlite3.Tsqlite3_file)(cptr(pFile))
	if file.FpMethods == 0 {
		return rc
	}
	unixMethods.Do(func() { initGatherMethods(file.FpMethods) })
	if file.FpMethods != unixMethods.table {
		// Not the unix table the gathered methods pass calls on to: leave
		// this file as it is.
		return rc
	}
	walFilesMu.Lock()
	walFiles[pFile] = &walFile{}
	walFilesMu.Unlock()
	file.FpMethods = uintptr(unsafe.Pointer(&gatherMethods))
	return rc
}

// initGatherMethods copies the unix file methods at p into gatherMethods and
// replaces those that touch a WAL file's bytes.
func initGatherMethods(p uintptr) {
	m := (*sqlite3.Tsqlite3_io_methods)(cptr(p))
	gatherMethods = *m
	u := &unixMethods
	u.table = p
	u.close = cfunc[func(*libc.TLS, uintptr) int32](m.FxClose)
	u.read = cfunc[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](m.FxRead)
	u.write = cfunc[func(*libc.TLS, uintptr, uintptr, int32, int64) int32](m.FxWrite)
	u.truncate = cfunc[func(*libc.TLS, uintptr, int64) int32](m.FxTruncate)
	u.sync = cfunc[func(*libc.TLS, uintptr, int32) int32](m.FxSync)
	u.fileSize = cfunc[func(*libc.TLS, uintptr, uintptr) int32](m.FxFileSize)
	u.control = cfunc[func(*libc.TLS, uintptr, int32, uintptr) int32](m.FxFileControl)
	setCFunc(&gatherMethods.FxClose, gatherClose)
	setCFunc(&gatherMethods.FxRead, gatherRead)
	setCFunc(&gatherMethods.FxWrite, gatherWrite)
	setCFunc(&gatherMethods.FxTruncate, gatherTruncate)
	setCFunc(&gatherMethods.FxSync, gatherSync)
	setCFunc(&gatherMethods.FxFileSize, gatherFileSize)
	setCFunc(&gatherMethods.FxFileControl, gatherFileControl)
	if m.FiVersion >= 3 && m.FxFetch != 0 {
		u.fetch = cfunc[func(*libc.TLS, uintptr, int64, int32, uintptr) int32](m.FxFetch)
		setCFunc(&gatherMethods.FxFetch, gatherFetch)
	}
}

func walFileOf(pFile uintptr) *walFile {
	walFilesMu.Lock()
	w := walFiles[pFile]
	walFilesMu.Unlock()
	return w
}

// flush writes the gathered bytes to the file.
func (w *walFile) flush(tls *libc.TLS, pFile uintptr) int32 {
	if len(w.buf) == 0 {
		return sqlite3.SQLITE_OK
	}
	rc := int32(sqlite3.SQLITE_OK)
	for done := 0; done < len(w.buf) && rc == sqlite3.SQLITE_OK; {
		n := min(len(w.buf)-done, unixWriteMax)
		rc = unixMethods.write(tls, pFile, uintptr(unsafe.Pointer(&w.buf[done])), int32(n), w.start+int64(done))
		done += n
	}
	runtime.KeepAlive(w.buf)
	w.buf = w.buf[:0]
	return rc
}

func gatherWrite(tls *libc.TLS, pFile uintptr, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	w := walFileOf(pFile)
	if len(w.buf) > 0 && (iOfst != w.start+int64(len(w.buf)) || len(w.buf)+int(iAmt) > gatherBufferMax) {
		if rc := w.flush(tls, pFile); rc != sqlite3.SQLITE_OK {
			return rc
		}
	}
	if int(iAmt) > gatherBufferMax {
		return unixMethods.write(tls, pFile, zBuf, iAmt, iOfst)
	}
	if len(w.buf) == 0 {
		w.start = iOfst
		if w.buf == nil {
			w.buf = make([]byte, 0, 256<<10)
		}
	}
	data := unsafe.Slice((*byte)(cptr(zBuf)), int(iAmt))
	w.buf = append(w.buf, data...)
	if w.commitHeader {
		// The commit frame's page: the commit is complete, and goes out
		// now, before SQLite shows it to other connections.
		w.commitHeader = false
		return w.flush(tls, pFile)
	}
	// SQLite writes a frame's header apart from its page (walpages.go has
	// the layout); the header's second word is nonzero only in a frame
	// that commits.
	w.commitHeader = iAmt == walFrameHeaderSize && binary.BigEndian.Uint32(data[4:8]) != 0
	return sqlite3.SQLITE_OK
}

func gatherRead(tls *libc.TLS, pFile uintptr, zBuf uintptr, iAmt int32, iOfst int64) int32 {
	if rc := walFileOf(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return unixMethods.read(tls, pFile, zBuf, iAmt, iOfst)
}

func gatherSync(tls *libc.TLS, pFile uintptr, flags int32) int32 {
	if rc := walFileOf(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return unixMethods.sync(tls, pFile, flags)
}

func gatherTruncate(tls *libc.TLS, pFile uintptr, size int64) int32 {
	if rc := walFileOf(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return unixMethods.truncate(tls, pFile, size)
}

func gatherFileSize(tls *libc.TLS, pFile uintptr, pSize uintptr) int32 {
	if rc := walFileOf(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return unixMethods.fileSize(tls, pFile, pSize)
}

func gatherFileControl(tls *libc.TLS, pFile uintptr, op int32, pArg uintptr) int32 {
	if rc := walFileOf(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return unixMethods.control(tls, pFile, op, pArg)
}

func gatherFetch(tls *libc.TLS, pFile uintptr, iOfst int64, iAmt int32, pp uintptr) int32 {
	if rc := walFileOf(pFile).flush(tls, pFile); rc != sqlite3.SQLITE_OK {
		return rc
	}
	return unixMethods.fetch(tls, pFile, iOfst, iAmt, pp)
}

// gatherClose writes what is gathered and closes the file; a failed write
// is reported, as the close itself would be.
func gatherClose(tls *libc.TLS, pFile uintptr) int32 {
	walFilesMu.Lock()
	w := walFiles[pFile]
	delete(walFiles, pFile)
	walFilesMu.Unlock()
	rc := w.flush(tls, pFile)
	if crc := unixMethods.close(tls, pFile); rc == sqlite3.SQLITE_OK {
		rc = crc
	}
	return rc
}

// cptr turns the address of memory SQLite allocated (outside the Go heap)
// into a pointer.
func cptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// cfunc turns a function pointer from one of SQLite's tables into the Go
// function it is, with the signature F of its slot.
func cfunc[F any](p uintptr) F { return *(*F)(unsafe.Pointer(&struct{ uintptr }{p})) }

// setCFunc puts Go function f in a slot of one of SQLite's tables.
func setCFunc[F any](slot *uintptr, f F) { *(*F)(unsafe.Pointer(slot)) = f }
