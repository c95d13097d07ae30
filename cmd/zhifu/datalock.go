package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// lockFileBytesMax bounds what is read back from a lock file: a pid.
const lockFileBytesMax = 64

// dataLock is the lock one "zhifu serve" holds on its data folder for as
// long as it runs. The folder keeps the admin token, the banks' secrets,
// the in-process banks' books and, by default, the SQLite database: a
// second server on it would run a second set of simulated banks over the
// same books and race the first to make the secrets. (Several servers may
// share one database, each with its own data folder.) The lock is an
// flock(2) on <data>/LOCK, so the operating system drops it when the
// process ends however it ends, and a killed server never keeps the next
// from starting. The file holds the holder's pid, for the message of a
// server that finds the folder taken.
type dataLock struct {
	f *os.File
}

// lockDataDir creates the data folder if needed and locks it, or says which
// process holds it.
func lockDataDir(dir string) (*dataLock, error) {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data folder: %w", err)
	}
	path := filepath.Join(dir, dataLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data folder: %w", err)
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data folder %s: %w", dir, err)
	}
	if held {
		holder := "another zhifu process"
		if pid := lockHolder(f); pid != 0 {
			holder += fmt.Sprintf(" (pid %d)", pid)
		}
		f.Close()
		return nil, fmt.Errorf("data folder %s is in use by %s: one server per data folder (stop it, or give this one another --data)", dir, holder)
	}
	pid := []byte(strconv.Itoa(os.Getpid()) + "\n")
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(pid, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock data folder %s: write pid: %w", dir, err)
	}
	return &dataLock{f: f}, nil
}

// lockHolder reads the pid a lock file names, 0 if it names none.
func lockHolder(f *os.File) int {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, lockFileBytesMax), lockFileBytesMax))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// release unlocks the folder. The file stays: removing it would let a
// process that opened it just before lock a file nobody else can find.
func (l *dataLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the only descriptor drops the flock
	l.f = nil
	return err
}
