package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// One server per data folder; and a start that fails on something cheap
// (the folder in use, the port taken, the database unreachable) fails before
// it makes, prints or saves a secret.

// exitedRun is a run of the built program that was expected to end.
type exitedRun struct {
	code           int
	stdout, stderr string
}

// runToExit runs the built program and waits for it to exit, failing the
// test if it is still running after startTimeout.
func runToExit(t *testing.T, args ...string) exitedRun {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Env = cleanEnv()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Fatal(err)
		}
		return exitedRun{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	case <-time.After(startTimeout):
		cmd.Process.Kill()
		<-done
		t.Fatalf("zhifu %s still runs after %v; it should have failed:\n%s", strings.Join(args, " "), startTimeout, stderr.String())
	}
	return exitedRun{}
}

// folderEntries lists the names in dir, or nil if dir does not exist.
func folderEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// wantOnlyLock fails unless dir holds nothing but the lock file.
func wantOnlyLock(t *testing.T, dir string) {
	t.Helper()
	if got := folderEntries(t, dir); len(got) > 1 || len(got) == 1 && got[0] != dataLockFile {
		t.Errorf("the failed start left %v in the data folder, want at most %s", got, dataLockFile)
	}
}

// TestSecondServerRefused starts a server, then a second on the same data
// folder: the second exits non-zero naming the folder and the first's pid,
// prints no token, and the first goes on serving.
func TestSecondServerRefused(t *testing.T) {
	dir := t.TempDir()
	first := start(t, "--data", dir)
	token, err := readAdminToken(filepath.Join(dir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}

	second := runToExit(t, "serve", "--addr", "127.0.0.1:0", "--data", dir)
	if second.code == 0 {
		t.Fatalf("the second server exited 0:\n%s", second.stderr)
	}
	for _, want := range []string{dir, "another zhifu process", fmt.Sprintf("pid %d", first.cmd.Process.Pid)} {
		if !strings.Contains(second.stderr, want) {
			t.Errorf("the second server's message lacks %q:\n%s", want, second.stderr)
		}
	}
	if second.stdout != "" || strings.Contains(second.stderr, token) {
		t.Errorf("the second server printed %q (log %q)", second.stdout, second.stderr)
	}

	if code := call(t, first.url, token, "GET", "/v1/admin/ledger/check", "", nil); code != 200 {
		t.Errorf("the first server after the second's attempt: %d, want 200", code)
	}
	if code := first.stop(t); code != 0 {
		t.Errorf("the first server's exit code = %d, want 0", code)
	}
}

// TestKilledServerFreesDataFolder: the lock dies with its process, so a
// server killed with SIGKILL never keeps the next from starting.
func TestKilledServerFreesDataFolder(t *testing.T) {
	dir := t.TempDir()
	first := start(t, "--data", dir)
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.exited
	token, err := readAdminToken(filepath.Join(dir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	next := start(t, "--data", dir)
	if code := call(t, next.url, token, "GET", "/v1/admin/ledger/check", "", nil); code != 200 {
		t.Errorf("the next server with the saved token: %d, want 200", code)
	}
	if out := next.stdout.String(); out != "" {
		t.Errorf("the next server printed %q; the token was already saved", out)
	}
	if code := next.stop(t); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
}

// TestPortTakenMakesNoSecrets: with the port taken the server exits non-zero
// before it generates a token or the banks' secrets: nothing printed,
// nothing in the data folder but the lock.
func TestPortTakenMakesNoSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	run := runToExit(t, "serve", "--addr", ln.Addr().String(), "--data", dir)
	if run.code == 0 {
		t.Fatalf("serve on a taken port exited 0:\n%s", run.stderr)
	}
	if !strings.Contains(run.stderr, "address already in use") || !strings.Contains(run.stderr, ln.Addr().String()) {
		t.Errorf("the message does not say the port is taken:\n%s", run.stderr)
	}
	if run.stdout != "" || strings.Contains(run.stderr, "admin token") {
		t.Errorf("printed %q (log %q); want no token", run.stdout, run.stderr)
	}
	wantOnlyLock(t, dir)
}

// TestDataFolderLockInProcess runs two Mains in one process on one data
// folder, over each store (a PostgreSQL database keeps its secrets in the
// data folder too): the second is refused, and starts once the first closed.
func TestDataFolderLockInProcess(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			dir := t.TempDir()
			db := testDatabase(t, dir, backend)
			first := newTestMain(nil)
			serveTestMain(t, first, "--data", dir, "--db", db)

			second := newTestMain(nil)
			args := []string{"serve", "--addr", "127.0.0.1:0", "--data", dir, "--db", db}
			if err := second.ParseFlags(context.Background(), args); err != nil {
				t.Fatal(err)
			}
			err := second.Run(context.Background())
			second.Close()
			if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
				t.Fatalf("second Main on the folder: %v, want it refused naming the folder and the pid", err)
			}
			if second.stdout.String() != "" {
				t.Errorf("the refused Main printed %q", second.stdout.String())
			}

			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			third := newTestMain(nil)
			serveTestMain(t, third, "--data", dir, "--db", db)
			if third.AdminToken() != first.AdminToken() {
				t.Error("the next Main has another admin token")
			}
		})
	}
}

// TestFailedStartMakesNoSecrets: a start that fails on the port or on the
// database leaves the data folder as it was but for the lock, and prints
// nothing.
func TestFailedStartMakesNoSecrets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Port 1 on the loopback refuses connections at once.
	unreachable := "postgres://postgres@127.0.0.1:1/zhifu?sslmode=disable&connect_timeout=5"
	for name, args := range map[string][]string{
		"port taken":           {"--addr", ln.Addr().String()},
		"database unreachable": {"--addr", "127.0.0.1:0", "--db", unreachable},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			m := newTestMain(nil)
			if err := m.ParseFlags(context.Background(), append([]string{"serve", "--data", dir}, args...)); err != nil {
				t.Fatal(err)
			}
			err := m.Run(context.Background())
			if cerr := m.Close(); cerr != nil {
				t.Error(cerr)
			}
			if err == nil {
				t.Fatal("Run succeeded")
			}
			if m.stdout.String() != "" || m.AdminToken() != "" {
				t.Errorf("printed %q, token %q: want neither", m.stdout.String(), m.AdminToken())
			}
			wantOnlyLock(t, dir)
			if got := folderEntries(t, dir); !slices.Contains(got, dataLockFile) {
				t.Errorf("data folder holds %v: the lock was not taken first", got)
			}
		})
	}
}
