//go:build linux && amd64

package seccomp

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var classNamesAll = []string{"vcpu", "device", "api", "baseline"}

// TestKilled: a call outside a program's allowlist kills the whole process
// with SIGSYS, and the kill comes from the filter, not from the action
// returning.
func TestKilled(t *testing.T) {
	tests := []struct {
		action  string
		classes []string
	}{
		{"openat", classNamesAll},
		{"mmap-exec", classNamesAll},
		{"mprotect-exec", classNamesAll}, // no mprotect at all in the classes
		{"madvise-mergeable", classNamesAll},
		{"madvise-dodump", classNamesAll},
		{"fork", classNamesAll},
		{"clone-thread-newnet", classNamesAll},
		{"execve", classNamesAll},
		{"kill", classNamesAll},
		{"tgkill-other", classNamesAll},
		{"futex-lock-pi", classNamesAll},
		{"ptrace", classNamesAll},
		{"seccomp-tsync", classNamesAll},
		{"ioctl-kvm-create-vm", classNamesAll},
		{"ioctl-tcgets", classNamesAll},
		{"ioctl-kvm-run", []string{"device", "api"}},
		{"ioctl-tun", []string{"vcpu", "device", "api", "baseline"}}, // without Options.Net
		{"readv-writev", []string{"vcpu", "device", "api", "baseline"}},
		{"socket-inet", classNamesAll},
		{"socket-unix", []string{"vcpu", "device"}},
		{"unix-conn", []string{"vcpu", "device"}},
		{"block-io", []string{"vcpu", "api"}},
		{"eventfd-read", []string{"vcpu"}},
		{"clone-thread-einval", []string{"vcpu", "device", "api"}},
		{"mprotect-rw", []string{"vcpu", "device", "api"}},
	}
	for _, tt := range tests {
		for _, class := range tt.classes {
			sc := "kill/" + class + "/" + tt.action
			t.Run(sc, func(t *testing.T) {
				t.Parallel()
				ws, out := runChild(t, sc)
				if !ws.Signaled() || ws.Signal() != syscall.SIGSYS {
					t.Errorf("child %s, want killed by SIGSYS; output:\n%s", describe(ws), out)
				}
			})
		}
	}
}

// TestAllowed: what each thread needs works under its program, and the
// process survives the thread's exit.
func TestAllowed(t *testing.T) {
	tests := []struct {
		action  string
		classes []string
		net     bool
	}{
		{"getpid-write", classNamesAll, false},
		{"mmap-rw", classNamesAll, false},
		{"clone3", classNamesAll, false},
		{"tgkill-self", classNamesAll, false},
		{"futex-wake", classNamesAll, false},
		{"runtime", classNamesAll, false},
		{"runtime", []string{"device", "baseline"}, true},
		{"ioctl-kvm-run", []string{"vcpu", "baseline"}, false},
		{"block-io", []string{"device", "baseline"}, false},
		{"eventfd-read", []string{"device", "api", "baseline"}, false},
		{"ioctl-tun", []string{"device", "baseline"}, true},
		{"readv-writev", []string{"device", "baseline"}, true},
		{"socket-unix", []string{"api", "baseline"}, false},
		{"unix-conn", []string{"api", "baseline"}, false},
		{"signal", []string{"api", "baseline"}, false},
		{"clone-thread-einval", []string{"baseline"}, false},
		{"mprotect-rw", []string{"baseline"}, false},
	}
	for _, tt := range tests {
		for _, class := range tt.classes {
			sc := "kill/" + class + "/" + tt.action
			if tt.net {
				sc += "/net"
			}
			t.Run(sc, func(t *testing.T) {
				t.Parallel()
				ws, out := runChild(t, sc)
				if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(out, "ok") {
					t.Errorf("child %s, want exit 0; output:\n%s", describe(ws), out)
				}
			})
		}
	}
}

// TestModeLog: in log mode nothing is killed; forbidden calls go through
// (the kernel logs them), while clone3 still gets ENOSYS.
func TestModeLog(t *testing.T) {
	for _, sc := range []string{"log/vcpu/openat", "log/api/socket-inet", "log/device/mmap-exec", "log/vcpu/clone3"} {
		t.Run(sc, func(t *testing.T) {
			t.Parallel()
			ws, out := runChild(t, sc)
			want := exitSurvived // the forbidden call returned
			if strings.HasSuffix(sc, "/clone3") {
				want = 0 // ENOSYS, as in kill mode
			}
			if !ws.Exited() || ws.ExitStatus() != want {
				t.Errorf("child %s, want exit %d; output:\n%s", describe(ws), want, out)
			}
		})
	}
}

// TestProcStatus: after InstallProcess every thread has a filter and
// no_new_privs; the class thread has one filter more than the others.
func TestProcStatus(t *testing.T) {
	for _, class := range []string{"vcpu", "device", "api"} {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			// The child reports its class thread, says "ready" and waits
			// for its stdin to close; the parent reads /proc meanwhile.
			cmd := childCmd(t, "kill/"+class+"/status")
			stdin, err := cmd.StdinPipe()
			if err != nil {
				t.Fatal(err)
			}
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			defer stdin.Close()
			var classTID, out string
			for sc := bufio.NewScanner(stdout); sc.Scan(); {
				l := sc.Text()
				out += l + "\n"
				if tid, ok := strings.CutPrefix(l, "tid "); ok {
					classTID = tid
				}
				if l == "ready" {
					break
				}
			}
			if classTID == "" {
				t.Fatalf("child did not report its class thread:\n%s", out)
			}
			tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", cmd.Process.Pid))
			if err != nil || len(tasks) < 2 {
				t.Fatalf("tasks of the child: %v %v", tasks, err)
			}
			sawClass := false
			for _, p := range tasks {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				s := string(b)
				tid := filepath.Base(filepath.Dir(p))
				if statusInt(s, "Seccomp") != 2 || statusInt(s, "NoNewPrivs") != 1 {
					t.Errorf("task %s: want Seccomp: 2 and NoNewPrivs: 1:\n%s", tid, grepStatus(s))
				}
				want := 1
				if tid == classTID {
					want, sawClass = 2, true
				}
				if n := statusInt(s, "Seccomp_filters"); n != want {
					t.Errorf("task %s: Seccomp_filters %d, want %d", tid, n, want)
				}
			}
			if !sawClass {
				t.Errorf("class thread %s not among the tasks", classTID)
			}
		})
	}
}

// TestStopCont: SIGSTOP and SIGCONT (job control, a cgroup freezer, a
// debugger) while threads sleep make the kernel resume their sleeps with
// restart_syscall, which every program must allow.
func TestStopCont(t *testing.T) {
	for _, class := range []string{"vcpu", "device", "api"} {
		t.Run(class, func(t *testing.T) {
			t.Parallel()
			cmd := childCmd(t, "kill/"+class+"/sleep")
			stdout, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(stdout)
			for sc.Scan() && sc.Text() != "sleeping" {
			}
			time.Sleep(50 * time.Millisecond)
			for _, sig := range []syscall.Signal{syscall.SIGSTOP, syscall.SIGCONT, syscall.SIGSTOP, syscall.SIGCONT} {
				if err := cmd.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			var rest strings.Builder
			for sc.Scan() {
				rest.WriteString(sc.Text() + "\n")
			}
			cmd.Wait()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Exited() || ws.ExitStatus() != 0 {
				t.Errorf("child %s after SIGSTOP/SIGCONT, want exit 0; output:\n%s", describe(ws), rest.String())
			}
		})
	}
}

// TestTsyncConflict: TSYNC cannot reach a thread that already has a filter
// of its own, and InstallProcess names that thread.
func TestTsyncConflict(t *testing.T) {
	ws, out := runChild(t, "kill/baseline/tsync-conflict")
	if !ws.Exited() || ws.ExitStatus() != 0 {
		t.Fatalf("child %s; output:\n%s", describe(ws), out)
	}
	m := regexp.MustCompile(`tid (\d+)\nerr (.*)`).FindStringSubmatch(out)
	if m == nil || !strings.Contains(m[2], "thread "+m[1]+" ") {
		t.Errorf("want an error naming the filtered thread; output:\n%s", out)
	}
}

func TestInstallTwice(t *testing.T) {
	ws, out := runChild(t, "kill/baseline/install-twice")
	if !ws.Exited() || ws.ExitStatus() != 0 || !strings.Contains(out, "second seccomp: InstallProcess called twice") {
		t.Errorf("child %s; output:\n%s", describe(ws), out)
	}
}

// TestModeOff runs in the test process itself: ModeOff must load nothing.
func TestModeOff(t *testing.T) {
	s, err := Build(Options{Mode: ModeOff})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.InstallProcess(); err != nil {
		t.Errorf("InstallProcess: %v", err)
	}
	for c := Class(0); c < numClasses; c++ {
		if err := s.InstallThread(c); err != nil {
			t.Errorf("InstallThread(%v): %v", c, err)
		}
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	if statusInt(string(b), "Seccomp") != 0 {
		t.Errorf("ModeOff installed a filter:\n%s", grepStatus(string(b)))
	}
	if len(s.Syscalls(ClassVCPU)) == 0 || len(s.BaselineSyscalls()) == 0 {
		t.Errorf("ModeOff set reports no policy")
	}
}

// TestInstallThreadFirst runs in the test process: the misuse is refused
// before anything is loaded.
func TestInstallThreadFirst(t *testing.T) {
	s, err := Build(Options{Mode: ModeKill})
	if err != nil {
		t.Fatal(err)
	}
	err = s.InstallThread(ClassVCPU)
	if err == nil || !strings.Contains(err.Error(), "before InstallProcess") {
		t.Errorf("InstallThread before InstallProcess: %v", err)
	}
	if err := s.InstallThread(Class(7)); err == nil {
		t.Errorf("InstallThread(Class(7)) succeeded")
	}
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	case ws.Exited():
		return "exited with " + strconv.Itoa(ws.ExitStatus())
	}
	return fmt.Sprintf("status %#x", uint32(ws))
}

func statusInt(status, key string) int {
	m := regexp.MustCompile(`(?m)^` + key + `:\s*(\d+)$`).FindStringSubmatch(status)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

func grepStatus(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "Seccomp") || strings.HasPrefix(l, "NoNewPrivs") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
