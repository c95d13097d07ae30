//go:build !unix

package main

import "os"

// tryLock cannot lock where flock(2) does not exist: the data folder is
// not protected from a second server there.
func tryLock(f *os.File) (held bool, err error) { return false, nil }
