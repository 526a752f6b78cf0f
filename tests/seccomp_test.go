package tests

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	hookBinOnce sync.Once
	hookBin     string
	hookBinErr  error
)

// testHooksBin builds govmm with -tags govmm_testhooks, the only build
// with --test-syscall, into a directory that outlives single tests.
func testHooksBin(t *testing.T) string {
	t.Helper()
	hookBinOnce.Do(func() {
		dir, err := os.MkdirTemp("", "govmm-testhooks-")
		if err != nil {
			hookBinErr = err
			return
		}
		hookBin = filepath.Join(dir, "govmm")
		cmd := exec.Command("go", "build", "-tags", "govmm_testhooks", "-o", hookBin, "./cmd/govmm")
		cmd.Dir = RepoRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			hookBinErr = errors.New("go build -tags govmm_testhooks: " + err.Error() + "\n" + string(out))
		}
	})
	if hookBinErr != nil {
		t.Fatal(hookBinErr)
	}
	return hookBin
}

// hookRun runs the test-hooks govmm and returns stderr and how it ended.
func hookRun(t *testing.T, args ...string) (stderr string, ws syscall.WaitStatus) {
	t.Helper()
	r := RunBin(t, testHooksBin(t), 60*time.Second, args...)
	return r.Stderr, r.Status
}

// TestSeccompKillsForbiddenSyscall: each thread class issues openat (which
// no class may make) right after its filter went on, and the whole VMM
// dies by SIGSYS; getpid, which every class may make, lets the guest run
// to its end. --seccomp=off and --seccomp=log are the controls that show
// the hook really issues the call.
func TestSeccompKillsForbiddenSyscall(t *testing.T) {
	RequireKVM(t)
	disk := makeImage(t, 64)
	base := []string{"run", "--kernel", Guest(t, "hello"), "--mac=off", "--cgroup=off", "--disk", "path=" + disk}
	for _, class := range []string{"vcpu", "device", "api"} {
		t.Run(class, func(t *testing.T) {
			errOut, ws := hookRun(t, append(base, "--test-syscall", class+":openat")...)
			if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
				t.Fatalf("%s openat: want death by SIGSYS, got %v\n%s", class, ws, errOut)
			}
			if strings.Contains(errOut, "openat returned") {
				t.Fatalf("the call returned before the kill:\n%s", errOut)
			}

			errOut, ws = hookRun(t, append(base, "--test-syscall", class+":getpid")...)
			if ws.Signaled() || ws.ExitStatus() != 0 || !strings.Contains(errOut, "testhook: "+class+" getpid") {
				t.Fatalf("%s getpid: want a normal run (exit 0) with the hook's line, got %v\n%s", class, ws, errOut)
			}

			errOut, ws = hookRun(t, append(base, "--seccomp=log", "--test-syscall", class+":openat")...)
			if ws.Signaled() || ws.ExitStatus() != 0 || !strings.Contains(errOut, class+" openat returned") {
				t.Fatalf("%s openat with --seccomp=log: want it allowed, got %v\n%s", class, ws, errOut)
			}
		})
	}
	errOut, ws := hookRun(t, append(base, "--seccomp=off", "--test-syscall", "vcpu:openat")...)
	if ws.Signaled() || !strings.Contains(errOut, "vcpu openat returned") {
		t.Fatalf("--seccomp=off: the hook's openat should run unfiltered, got %v\n%s", ws, errOut)
	}
}
