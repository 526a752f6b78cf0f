// Package tests holds govmm's integration tests: freestanding guest
// programs (tests/guest) booted under the real govmm binary on the real
// /dev/kvm, with assertions on their serial output and on how govmm exits.
package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RepoRoot finds the module root by walking up to go.mod.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("tests: go.mod not found above the working directory")
		}
		dir = parent
	}
}

// RequireKVM skips the test when /dev/kvm is absent, and only then. Where
// the device exists but cannot be opened, that is a failure, not a skip.
func RequireKVM(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat("/dev/kvm"); errors.Is(err, os.ErrNotExist) {
		tb.Skip("skipping: /dev/kvm does not exist on this host, so no guest can run")
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		tb.Fatalf("/dev/kvm exists but cannot be opened: %v", err)
	}
	f.Close()
}

var (
	binOnce sync.Once
	binPath string
	binErr  error

	guestOnce sync.Once
	guestDir  string
	guestErr  error
)

// GovmmBin returns the govmm binary under test: $GOVMM_BIN (set by
// `make test` to the hardened build), else a fresh `make build`.
func GovmmBin(tb testing.TB) string {
	tb.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("GOVMM_BIN"); p != "" {
			binPath = p
			return
		}
		root := RepoRoot(tb)
		cmd := exec.Command("make", "-s", "-C", root, "build")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("make build: %v\n%s", err, out)
			return
		}
		binPath = filepath.Join(root, "bin", "govmm")
	})
	if binErr != nil {
		tb.Fatal(binErr)
	}
	return binPath
}

// Guest returns the path of a built guest program, e.g. Guest(t, "hello").
// The programs come from $GOVMM_GUESTS (set by `make test`), else they are
// built now with `make -C tests/guest`.
func Guest(tb testing.TB, name string) string {
	tb.Helper()
	guestOnce.Do(func() {
		if d := os.Getenv("GOVMM_GUESTS"); d != "" {
			guestDir = d
			return
		}
		root := RepoRoot(tb)
		cmd := exec.Command("make", "-s", "-C", filepath.Join(root, "tests", "guest"), "all")
		if out, err := cmd.CombinedOutput(); err != nil {
			guestErr = fmt.Errorf("building guest programs: %v\n%s", err, out)
			return
		}
		guestDir = filepath.Join(root, "tests", "guest", "build")
	})
	if guestErr != nil {
		tb.Fatal(guestErr)
	}
	p := filepath.Join(guestDir, name+".elf")
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("guest program %s: %v", name, err)
	}
	return p
}

// Result is what one govmm run produced.
type Result struct {
	Console  string // the guest's serial output (govmm's stdout)
	Stderr   string
	ExitCode int
	// Status is how the process ended (ExitCode is -1 for a signal; the
	// signal is Status.Signal()).
	Status  syscall.WaitStatus
	Elapsed time.Duration
}

// Lines returns the console output split into lines, without \r.
func (r Result) Lines() []string {
	s := strings.ReplaceAll(r.Console, "\r", "")
	return strings.Split(strings.TrimRight(s, "\n"), "\n")
}

// Has reports whether some console line equals line exactly.
func (r Result) Has(line string) bool {
	for _, l := range r.Lines() {
		if l == line {
			return true
		}
	}
	return false
}

// Run runs `govmm <args...>` with a deadline and returns what it did. A
// run that outlives timeout is killed and fails the test: a hung VMM is a
// bug, never a result.
func Run(tb testing.TB, timeout time.Duration, args ...string) Result {
	tb.Helper()
	return RunBin(tb, GovmmBin(tb), timeout, args...)
}

// RunBin is Run with another govmm binary (e.g. a test-hooks build).
func RunBin(tb testing.TB, bin string, timeout time.Duration, args ...string) Result {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := Result{Console: out.String(), Stderr: errb.String(), Elapsed: time.Since(start)}
	if ctx.Err() != nil {
		tb.Fatalf("govmm %s: still running after %v (killed)\nconsole:\n%s\nstderr:\n%s",
			strings.Join(args, " "), timeout, res.Console, res.Stderr)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.ExitCode = ee.ExitCode()
	default:
		tb.Fatalf("govmm %s: %v", strings.Join(args, " "), err)
	}
	res.Status = cmd.ProcessState.Sys().(syscall.WaitStatus)
	return res
}

// Boot runs guest program name under govmm with extra flags.
func Boot(tb testing.TB, name string, timeout time.Duration, flags ...string) Result {
	tb.Helper()
	args := append([]string{"run", "--kernel", Guest(tb, name)}, flags...)
	return Run(tb, timeout, args...)
}

// RequirePassed fails unless the console has "PASS <name>" and no FAIL line.
func RequirePassed(tb testing.TB, r Result, name string) {
	tb.Helper()
	for _, l := range r.Lines() {
		if strings.HasPrefix(l, "FAIL") {
			tb.Errorf("guest reported %q", l)
		}
	}
	if !r.Has("PASS " + name) {
		tb.Errorf("no %q line from the guest", "PASS "+name)
	}
	if tb.Failed() {
		tb.Logf("console:\n%s\nstderr:\n%s\nexit code %d", r.Console, r.Stderr, r.ExitCode)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startGovmm starts govmm in the background; the test's cleanup kills it
// if it is still running.
func startGovmm(tb testing.TB, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	tb.Helper()
	cmd := exec.Command(GovmmBin(tb), args...)
	out, errb := &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, errb
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, out, errb
}

// waitFor polls the console until it contains s.
func waitFor(tb testing.TB, out *syncBuffer, s string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(out.String(), s) {
		if time.Now().After(deadline) {
			tb.Fatalf("console never showed %q within %v; got:\n%s", s, timeout, out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitExit waits for cmd and returns its exit code, failing on a hang.
func waitExit(tb testing.TB, cmd *exec.Cmd, timeout time.Duration) int {
	tb.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			tb.Fatal(err)
		}
		return 0
	case <-time.After(timeout):
		cmd.Process.Kill()
		tb.Fatalf("govmm did not exit within %v", timeout)
		return -1
	}
}
