package sqlite

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"strconv"
)

// BytesWritten reports how many bytes this process has handed to write
// calls so far (Linux's /proc/self/io wchar): the WAL frames of every
// commit and the checkpoints that copy them into the database file. A
// benchmark that runs the store alone in its process divides the change
// by the transfers it committed to get the bytes written per transfer.
func (db *DB) BytesWritten(context.Context) (int64, error) {
	return procIO("wchar")
}

// procIO reads one counter of this process's /proc/self/io: wchar, the
// bytes handed to write calls, or syscw, the write calls made.
func procIO(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte(field+": ")); ok {
			return strconv.ParseInt(string(v), 10, 64)
		}
	}
	return 0, errors.New("sqlite: /proc/self/io has no " + field)
}
