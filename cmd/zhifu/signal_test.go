package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long the built program may take to say it
// listens; it is a deadline for a failure message, not a wait.
const startTimeout = 30 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary builds the program once for the tests that run it as a process.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "zhifu-bin-"); buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "zhifu")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("%v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v", buildErr)
	}
	return buildPath
}

var listeningRE = regexp.MustCompile(`msg=listening url=(http://\S+)`)

// process is the built program running as a child.
type process struct {
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	exited chan error
}

// start runs "zhifu serve" on a free port and waits until its log says it
// listens.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	c, err := startChild(t, listeningRE, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s", err, c.log.String())
	}
	return c.process
}

// child is the built program running as a child, its log kept.
type child struct {
	*process
	log *syncBuffer
}

// startChild runs the built program and waits until a line of its log
// matches re, whose group is its URL. If the program exits first it
// returns an error rather than failing the test, so that the caller may
// try again.
func startChild(t *testing.T, re *regexp.Regexp, args ...string) (*child, error) {
	t.Helper()
	p := &process{cmd: exec.Command(binary(t), args...), stdout: &syncBuffer{}, exited: make(chan error, 1)}
	c := &child{process: p, log: &syncBuffer{}}
	p.cmd.Env = cleanEnv()
	p.cmd.Stdout = p.stdout
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			c.log.Write([]byte(sc.Text() + "\n"))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case urls <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.exited <- p.cmd.Wait()
	}()
	// Killing a process that already exited is a harmless error.
	t.Cleanup(func() { p.cmd.Process.Kill() })
	select {
	case p.url = <-urls:
		return c, nil
	case err := <-p.exited:
		return c, fmt.Errorf("%s exited before listening: %v", args[0], err)
	case <-time.After(startTimeout):
		t.Fatalf("zhifu %s did not log that it listens:\n%s", args[0], c.log.String())
	}
	return nil, nil
}

// cleanEnv keeps the test's own ZHIFU_ settings from leaking into the child.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ZHIFU_") {
			env = append(env, kv)
		}
	}
	return env
}

// stop sends SIGTERM and returns the exit code.
func (p *process) stop(t *testing.T) int {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := <-p.exited
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func TestSIGTERM(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "z.db")
	const tok = "sigterm-test-token"
	p := start(t, "--db", db, "--admin-token", tok, "--data", dir)
	call(t, p.url, tok, "POST", "/v1/admin/ledger/accounts",
		`{"accounts":[{"id":"1","code":1},{"id":"10","code":10}]}`, nil)
	var res struct{ Results []struct{ ID, Result string } }
	call(t, p.url, tok, "POST", "/v1/admin/ledger/transfers",
		`{"transfers":[{"id":"before-sigterm","debit_account_id":"10","credit_account_id":"1","amount":"7.77","code":1}]}`, &res)
	if len(res.Results) != 1 || res.Results[0].Result != "ok" {
		t.Fatalf("transfer = %+v", res)
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0", code)
	}

	p = start(t, "--db", db, "--admin-token", tok, "--data", dir)
	var acct struct{ Balance string }
	call(t, p.url, tok, "GET", "/v1/admin/ledger/accounts/1", "", &acct)
	if acct.Balance != "7.77" {
		t.Errorf("balance after restart = %q, want 7.77", acct.Balance)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("second exit code = %d, want 0", code)
	}
}

func TestUnknownCommandExits2(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {}, {"serve", "--bogus"}} {
		cmd := exec.Command(binary(t), args...)
		cmd.Env = cleanEnv()
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("zhifu %q: %v, want exit code 2", args, err)
		}
		if !strings.Contains(string(out), "Usage") {
			t.Errorf("zhifu %q printed %q, want usage", args, out)
		}
	}
	out, _ := exec.Command(binary(t), "bogus").CombinedOutput()
	if !strings.Contains(string(out), `unknown command "bogus"`) {
		t.Errorf("output %q does not name the unknown command", out)
	}
}
