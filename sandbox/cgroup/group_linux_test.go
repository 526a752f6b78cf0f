//go:build linux

package cgroup

// These tests use the host's real cgroupfs (no mocks) and need root. They
// skip only where no cgroup filesystem is mounted at all. Every group they
// create is "govmm/test-<random>" and is removed by t.Cleanup even when a
// test fails. The test process itself never joins a group: children do
// (a `sleep`, or this test binary re-executed as a helper, see TestMain).

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const helperEnv = "GOVMM_CGROUP_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "spin":
		helperSpin()
	case "self":
		helperSelf()
	default:
		fmt.Fprintln(os.Stderr, "unknown helper", os.Getenv(helperEnv))
		os.Exit(2)
	}
}

// helperSpin prints "tid N" for a goroutine locked to its thread, then
// makes that thread spin while stdin says "spin" and idle after "idle",
// answering each command with "ok"; it exits at EOF.
func helperSpin() {
	var spin atomic.Bool
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		x := uint64(1)
		for {
			if !spin.Load() {
				time.Sleep(time.Millisecond)
				continue
			}
			for i := 0; i < 100000; i++ {
				x = x*6364136223846793005 + 1442695040888963407
			}
			if x == 42 {
				fmt.Println("unlikely")
			}
		}
	}()
	fmt.Printf("tid %d\n", <-tid)
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		spin.Store(sc.Text() == "spin")
		fmt.Println("ok")
	}
	os.Exit(0)
}

// helperSelf creates the group named in $GOVMM_CGROUP_TEST_NAME, joins it,
// puts a locked thread in the vcpu child, and removes the group while it
// is still a member; it then prints its own /proc/self/cgroup.
func helperSelf() {
	die := func(err error) {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	g, err := New(os.Getenv("GOVMM_CGROUP_TEST_NAME"), Resources{})
	if err != nil {
		die(err)
	}
	if err := g.AddProcess(os.Getpid()); err != nil {
		_ = g.Remove()
		die(err)
	}
	tid := make(chan int)
	go func() {
		runtime.LockOSThread()
		tid <- unix.Gettid()
		select {} // stays alive and locked: in the vcpu child during Remove
	}()
	if err := g.AddVCPUThreads([]int{<-tid}); err != nil {
		_ = g.Remove()
		die(err)
	}
	if err := g.Remove(); err != nil {
		die(err)
	}
	for _, d := range g.dirs {
		if exists(d.dir) {
			die(fmt.Errorf("%s still exists", d.dir))
		}
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		die(err)
	}
	os.Stdout.Write(b)
	os.Exit(0)
}

// requireCgroupfs skips the test only where no cgroup filesystem exists.
func requireCgroupfs(t *testing.T) layout {
	t.Helper()
	l, err := hostLayout()
	if errors.Is(err, ErrNoCgroupfs) {
		t.Skipf("skipping: no cgroup or cgroup2 filesystem is mounted on this host (%v), so there is nothing to create groups in", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Logf("not root (euid %d): creating cgroups will probably fail with EACCES", os.Geteuid())
	}
	return l
}

func testName(t *testing.T) string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "govmm/test-" + hex.EncodeToString(b[:])
}

// newTestGroup creates a group and registers its removal.
func newTestGroup(t *testing.T, r Resources) *Group {
	t.Helper()
	name := testName(t)
	g, err := New(name, r)
	if err != nil {
		t.Fatalf("New(%q, %+v): %v", name, r, err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Errorf("cleanup: Remove(%s): %v", name, err)
		}
	})
	return g
}

func readTrim(t *testing.T, p string) string {
	t.Helper()
	s, err := readFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(s)
}

func expectFile(t *testing.T, dir, file, want string) {
	t.Helper()
	if got := readTrim(t, filepath.Join(dir, file)); got != want {
		t.Errorf("%s/%s = %q, want %q", dir, file, got, want)
	}
}

// startSleep starts a `sleep` child that the test kills (and reaps) at
// cleanup, before the group's cleanup runs.
func startSleep(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { killWait(cmd) })
	return cmd
}

func killWait(cmd *exec.Cmd) {
	if cmd.ProcessState == nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
}

// cgroupsOf returns /proc/<pid>[/task/<tid>]/cgroup as parsed lines.
func cgroupsOf(t *testing.T, p string) []procCgroup {
	t.Helper()
	s, err := readFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return parseProcCgroup(s)
}

// dirOf is where the task whose cgroup file gave lines is, in h.
func dirOf(t *testing.T, lines []procCgroup, h *hierarchy) string {
	t.Helper()
	cg, ok := cgroupOf(lines, h)
	if !ok {
		t.Fatalf("no line for %s in %+v", h, lines)
	}
	dir, ok := h.fsPath(cg)
	if !ok {
		t.Fatalf("cgroup %q not visible at %s", cg, h.point)
	}
	return dir
}

func TestNewAppliesLimits(t *testing.T) {
	requireCgroupfs(t)
	r := Resources{CPUWeight: 300, CPUQuota: 50 * time.Millisecond, CPUPeriod: 100 * time.Millisecond,
		MemoryMax: 256 << 20, PidsMax: 64}
	g := newTestGroup(t, r)
	paths := g.Paths()
	t.Logf("cgroup v%d, paths %v", g.Version(), paths)
	for c, dir := range paths {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			t.Errorf("%s: %s: %v", c, dir, err)
		}
		if !strings.HasSuffix(dir, "/"+g.Name()) {
			t.Errorf("%s directory %s does not end in the name %s", c, dir, g.Name())
		}
	}
	for _, c := range []string{"cpu", "memory", "pids"} {
		if paths[c] == "" {
			t.Fatalf("no %s directory (this host mounts all three)", c)
		}
	}
	mem := strconv.FormatInt(r.MemoryMax, 10)
	switch g.Version() {
	case 1:
		expectFile(t, paths["cpu"], "cpu.shares", "7841")
		expectFile(t, paths["cpu"], "cpu.cfs_period_us", "100000")
		expectFile(t, paths["cpu"], "cpu.cfs_quota_us", "50000")
		if paths["cpuacct"] == "" {
			t.Error("v1 without a cpuacct directory")
		}
	case 2:
		expectFile(t, paths["cpu"], "cpu.weight", "300")
		expectFile(t, paths["cpu"], "cpu.max", "50000 100000")
	default:
		t.Fatalf("Version() = %d", g.Version())
	}
	if g.ctl["memory"].h.version == 1 {
		expectFile(t, paths["memory"], "memory.limit_in_bytes", mem)
		if exists(filepath.Join(paths["memory"], "memory.memsw.limit_in_bytes")) {
			expectFile(t, paths["memory"], "memory.memsw.limit_in_bytes", mem)
		}
	} else {
		expectFile(t, paths["memory"], "memory.max", mem)
		if exists(filepath.Join(paths["memory"], "memory.swap.max")) {
			expectFile(t, paths["memory"], "memory.swap.max", "0")
		}
	}
	expectFile(t, paths["pids"], "pids.max", "64")
}

func TestNewDefaults(t *testing.T) {
	requireCgroupfs(t)
	g := newTestGroup(t, Resources{})
	p := g.Paths()
	if g.Version() == 1 {
		expectFile(t, p["cpu"], "cpu.shares", strconv.FormatUint(WeightToShares(DefaultCPUWeight), 10))
		expectFile(t, p["cpu"], "cpu.cfs_quota_us", "-1")
	} else {
		expectFile(t, p["cpu"], "cpu.weight", "100")
		expectFile(t, p["cpu"], "cpu.max", "max 100000")
	}
	if d := g.ctl["pids"]; d != nil {
		expectFile(t, d.dir, "pids.max", "max")
	}
	if d := g.ctl["memory"]; d != nil && d.h.version == 1 {
		// No limit: v1 shows "unlimited" as the page-rounded LONG_MAX.
		if v, _ := strconv.ParseInt(readTrim(t, filepath.Join(d.dir, "memory.limit_in_bytes")), 10, 64); v < 1<<62 {
			t.Errorf("memory.limit_in_bytes = %d without a limit", v)
		}
	}
}

func TestNewRefusesExisting(t *testing.T) {
	l := requireCgroupfs(t)
	g := newTestGroup(t, Resources{CPUWeight: 200})
	_, err := New(g.Name(), Resources{CPUWeight: 500})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), g.Name()) {
		t.Fatalf("New on an existing name: %v, want ErrExists naming the directory", err)
	}
	t.Log(err)
	// The first group is untouched.
	if g.Version() == 1 {
		expectFile(t, g.Paths()["cpu"], "cpu.shares", strconv.FormatUint(WeightToShares(200), 10))
	} else {
		expectFile(t, g.Paths()["cpu"], "cpu.weight", "200")
	}

	// A name that exists in one hierarchy only (a VMM died half way) is
	// refused too, and nothing is created in the others.
	name := testName(t)
	last := l.hiers[len(l.hiers)-1]
	stray := filepath.Join(last.point, name)
	if err := os.MkdirAll(stray, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = removeTree(stray, time.Now().Add(time.Second)) })
	_, err = New(name, Resources{})
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), stray) {
		t.Fatalf("New with %s present: %v, want ErrExists naming it", stray, err)
	}
	for _, h := range l.hiers[:len(l.hiers)-1] {
		if p := filepath.Join(h.point, name); exists(p) {
			t.Errorf("%s was created although New failed", p)
		}
	}
}

func TestNewRejectsBadInput(t *testing.T) {
	l := requireCgroupfs(t)
	for _, tc := range []struct {
		name string
		r    Resources
		want error
	}{
		{"govmm/../etc", Resources{}, ErrInvalidName},
		{"/govmm/x", Resources{}, ErrInvalidName},
		{"", Resources{}, ErrInvalidName},
		{"ok", Resources{CPUWeight: 10001}, ErrInvalidWeight},
		{"ok", Resources{CPUQuota: time.Microsecond}, ErrInvalidCPUMax},
		{"ok", Resources{CPUPeriod: 2 * time.Second}, ErrInvalidCPUMax},
		{"ok", Resources{MemoryMax: -4096}, ErrInvalidLimit},
		{"ok", Resources{PidsMax: -2}, ErrInvalidLimit},
	} {
		name := tc.name
		if name == "ok" {
			name = testName(t)
		}
		g, err := New(name, tc.r)
		if !errors.Is(err, tc.want) {
			if g != nil {
				_ = g.Remove()
			}
			t.Errorf("New(%q, %+v) = %v, want %v", name, tc.r, err, tc.want)
			continue
		}
		t.Logf("New(%q, %+v): %v", name, tc.r, err)
		for _, h := range l.hiers {
			if exists(filepath.Join(h.point, name)) && name != "" {
				t.Errorf("New(%q) failed but left %s", name, filepath.Join(h.point, name))
			}
		}
	}
}

func TestAddProcess(t *testing.T) {
	requireCgroupfs(t)
	g := newTestGroup(t, Resources{})
	cmd := startSleep(t)
	if err := g.AddProcess(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	lines := cgroupsOf(t, fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid))
	for _, d := range g.dirs {
		if got := dirOf(t, lines, d.h); got != d.dir {
			t.Errorf("sleep is in %s, want %s", got, d.dir)
		}
	}
	for _, d := range g.dirs {
		if procs := readTrim(t, filepath.Join(d.dir, "cgroup.procs")); procs != strconv.Itoa(cmd.Process.Pid) {
			t.Errorf("%s/cgroup.procs = %q", d.dir, procs)
		}
	}
	// Bad pids are refused before anything is written.
	for _, pid := range []int{0, -1} {
		if err := g.AddProcess(pid); !errors.Is(err, ErrInvalidPID) {
			t.Errorf("AddProcess(%d) = %v", pid, err)
		}
	}
	// A pid that does not exist: the kernel's ESRCH, naming the file.
	if err := g.AddProcess(1 << 30); !errors.Is(err, unix.ESRCH) || !strings.Contains(err.Error(), "cgroup.procs") {
		t.Errorf("AddProcess(nonexistent) = %v, want ESRCH naming cgroup.procs", err)
	}
}

// spinner is a helper child with one locked, spin-on-command thread.
type spinner struct {
	cmd *exec.Cmd
	tid int
	in  io.WriteCloser
	out *bufio.Scanner
}

func startSpinner(t *testing.T) *spinner {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=spin")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outp, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); killWait(cmd) })
	s := &spinner{cmd: cmd, in: in, out: bufio.NewScanner(outp)}
	if !s.out.Scan() {
		t.Fatalf("helper said nothing: %v", s.out.Err())
	}
	if _, err := fmt.Sscanf(s.out.Text(), "tid %d", &s.tid); err != nil {
		t.Fatalf("helper said %q: %v", s.out.Text(), err)
	}
	return s
}

func (s *spinner) say(t *testing.T, cmd string) {
	t.Helper()
	if _, err := fmt.Fprintln(s.in, cmd); err != nil {
		t.Fatal(err)
	}
	if !s.out.Scan() || s.out.Text() != "ok" {
		t.Fatalf("helper answered %q to %q", s.out.Text(), cmd)
	}
}

func TestVCPUThreadsAccounting(t *testing.T) {
	requireCgroupfs(t)
	g := newTestGroup(t, Resources{})
	s := startSpinner(t)
	pid := s.cmd.Process.Pid
	if err := g.AddProcess(pid); err != nil {
		t.Fatal(err)
	}
	if _, vcpu, err := g.CPUUsage(); err != nil || vcpu != 0 {
		t.Fatalf("CPUUsage before any vCPU thread: vcpu %v, %v", vcpu, err)
	}
	if err := g.AddVCPUThreads([]int{s.tid}); err != nil {
		t.Fatal(err)
	}
	// Again (a second vCPU later): the child is reused.
	if err := g.AddVCPUThreads([]int{s.tid}); err != nil {
		t.Fatalf("second AddVCPUThreads: %v", err)
	}
	// The spinning thread is in the vcpu child of the cpu (and cpuacct)
	// hierarchy; the process's other threads are not, and memory/pids
	// still see it at the group.
	self := cgroupsOf(t, fmt.Sprintf("/proc/%d/task/%d/cgroup", pid, s.tid))
	for _, d := range g.dirs {
		want := d.dir
		if slices.Contains(g.vcpuDirs, g.ctl[d.h.controllers[0]]) {
			want = filepath.Join(d.dir, VCPUChild)
		}
		if got := dirOf(t, self, d.h); got != want {
			t.Errorf("vCPU thread %d is in %s, want %s", s.tid, got, want)
		}
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	others := 0
	for _, e := range tasks {
		if e.Name() == strconv.Itoa(s.tid) {
			continue
		}
		others++
		lines := cgroupsOf(t, fmt.Sprintf("/proc/%d/task/%s/cgroup", pid, e.Name()))
		if got := dirOf(t, lines, g.cpu.h); got != g.cpu.dir {
			t.Errorf("thread %s (not a vCPU) is in %s, want %s", e.Name(), got, g.cpu.dir)
		}
	}
	if others == 0 {
		t.Error("the helper has no other threads to compare with")
	}
	if g.Version() == 1 {
		for _, d := range g.vcpuDirs {
			expectFile(t, filepath.Join(d.dir, VCPUChild), "tasks", strconv.Itoa(s.tid))
		}
	} else {
		expectFile(t, filepath.Join(g.cpu.dir, VCPUChild), "cgroup.type", "threaded")
	}

	total0, vcpu0, err := g.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	const spin = 500 * time.Millisecond
	s.say(t, "spin")
	time.Sleep(spin)
	s.say(t, "idle")
	total1, vcpu1, err := g.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	dv, dt := vcpu1-vcpu0, total1-total0
	t.Logf("spun %v: vcpu usage +%v (now %v), group total +%v (now %v)", spin, dv, vcpu1, dt, total1)
	// The host has other load; half the wall time is a safe floor.
	if dv < spin/2 {
		t.Errorf("vcpu usage grew by %v while its thread spun for %v", dv, spin)
	}
	if dt < dv {
		t.Errorf("group total grew by %v, less than its vcpu child (%v): the total must include it", dt, dv)
	}
	if total1 < vcpu1 {
		t.Errorf("total %v < vcpu %v", total1, vcpu1)
	}

	for _, tids := range [][]int{{0}, {s.tid, -5}} {
		if err := g.AddVCPUThreads(tids); !errors.Is(err, ErrInvalidPID) {
			t.Errorf("AddVCPUThreads(%v) = %v", tids, err)
		}
	}
}

func TestRemove(t *testing.T) {
	requireCgroupfs(t)
	g := newTestGroup(t, Resources{MemoryMax: 64 << 20, PidsMax: 16})
	s := startSpinner(t)
	if err := g.AddProcess(s.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := g.AddVCPUThreads([]int{s.tid}); err != nil {
		t.Fatal(err)
	}
	s.in.Close()
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	for _, d := range g.dirs {
		if exists(d.dir) {
			t.Errorf("%s still exists", d.dir)
		}
		if parent := filepath.Dir(d.dir); !exists(parent) {
			t.Errorf("the parent %s was removed; it should stay", parent)
		}
	}
	if err := g.Remove(); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := g.AddProcess(os.Getpid()); !errors.Is(err, ErrRemoved) {
		t.Errorf("AddProcess after Remove: %v", err)
	}
	if _, _, err := g.CPUUsage(); !errors.Is(err, ErrRemoved) {
		t.Errorf("CPUUsage after Remove: %v", err)
	}
	if _, err := Open(g.Name()); !errors.Is(err, ErrNotExist) {
		t.Errorf("Open after Remove: %v", err)
	}
	// A group someone else already removed: Remove is still fine.
	g2 := newTestGroup(t, Resources{})
	for _, d := range g2.dirs {
		if err := unix.Rmdir(d.dir); err != nil {
			t.Fatal(err)
		}
	}
	if err := g2.Remove(); err != nil {
		t.Errorf("Remove of an already removed group: %v", err)
	}
}

func TestRemoveBusy(t *testing.T) {
	requireCgroupfs(t)
	g := newTestGroup(t, Resources{})
	cmd := startSleep(t)
	if err := g.AddProcess(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := g.Remove()
	if el := time.Since(start); el > removeTimeout+time.Second {
		t.Errorf("Remove of a busy group took %v; the retry budget is %v for all hierarchies together", el, removeTimeout)
	}
	if !errors.Is(err, ErrBusy) || !errors.Is(err, unix.EBUSY) || !strings.Contains(err.Error(), strconv.Itoa(cmd.Process.Pid)) {
		t.Fatalf("Remove with a live process: %v, want ErrBusy/EBUSY naming pid %d", err, cmd.Process.Pid)
	}
	t.Logf("after %v: %v", time.Since(start).Round(time.Millisecond), err)
	killWait(cmd)
	if err := g.Remove(); err != nil {
		t.Fatalf("Remove once the process ended: %v", err)
	}
}

func TestRemoveMovesSelfOut(t *testing.T) {
	requireCgroupfs(t)
	name := testName(t)
	t.Cleanup(func() {
		if g, err := Open(name); err == nil {
			t.Errorf("the helper left %v", g.Paths())
			_ = g.Remove()
		}
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=self", "GOVMM_CGROUP_TEST_NAME="+name)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helper: %v\n%s", err, ee.Stderr)
		}
		t.Fatal(err)
	}
	// The helper started in this process's cgroups and must be back there.
	mine, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != string(mine) {
		t.Errorf("helper's cgroups after Remove:\n%s\nwant (where it started):\n%s", out, mine)
	}
}

func TestOpen(t *testing.T) {
	requireCgroupfs(t)
	if _, err := Open(testName(t)); !errors.Is(err, ErrNotExist) {
		t.Errorf("Open(absent) = %v, want ErrNotExist", err)
	}
	if _, err := Open("../x"); !errors.Is(err, ErrInvalidName) {
		t.Errorf("Open(../x) = %v", err)
	}
	g := newTestGroup(t, Resources{})
	o, err := Open(g.Name())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(o.Paths()) != fmt.Sprint(g.Paths()) || o.Version() != g.Version() {
		t.Errorf("Open: %v v%d, New: %v v%d", o.Paths(), o.Version(), g.Paths(), g.Version())
	}
	if total, vcpu, err := o.CPUUsage(); err != nil || total != 0 || vcpu != 0 {
		t.Errorf("CPUUsage of an empty group: %v %v %v", total, vcpu, err)
	}
}

// TestV2ThreadedChild runs the v2 code paths (threaded vcpu child,
// cgroup.threads, cpu.stat, moving out and removal) on a real cgroup2
// hierarchy even where, as on a hybrid host, it carries no controllers:
// cgroup.type, cgroup.threads and cpu.stat's usage_usec exist there
// regardless. On a pure v2 host the other tests cover this already.
func TestV2ThreadedChild(t *testing.T) {
	requireCgroupfs(t)
	mi, err := readFile(mountinfoPath)
	if err != nil {
		t.Fatal(err)
	}
	var point string
	for _, m := range parseMountinfo(mi) {
		if m.fstype == "cgroup2" {
			point = m.point
			break
		}
	}
	if point == "" {
		t.Skip("skipping: no cgroup2 mount on this host (the v1 tests cover it)")
	}
	h := &hierarchy{version: 2, point: point, root: "/"}
	name := testName(t)
	g := &Group{name: name, ctl: map[string]*groupDir{}, dirs: []groupDir{{h: h, dir: filepath.Join(point, name)}}}
	g.acct = &g.dirs[0]
	g.vcpuDirs = []*groupDir{&g.dirs[0]}
	if err := makeGroupDir(g.dirs[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := g.Remove(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	s := startSpinner(t)
	// A thread cannot enter the threaded child before its process is in
	// the group.
	err = g.AddVCPUThreads([]int{s.tid})
	if err == nil || !strings.Contains(err.Error(), "AddProcess first") {
		t.Errorf("AddVCPUThreads before AddProcess: %v, want the hint", err)
	}
	t.Log(err)
	if err := g.AddProcess(s.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if err := g.AddVCPUThreads([]int{s.tid}); err != nil {
		t.Fatal(err)
	}
	child := filepath.Join(g.dirs[0].dir, VCPUChild)
	expectFile(t, child, "cgroup.type", "threaded")
	expectFile(t, g.dirs[0].dir, "cgroup.type", "domain threaded")
	expectFile(t, child, "cgroup.threads", strconv.Itoa(s.tid))
	lines := cgroupsOf(t, fmt.Sprintf("/proc/%d/task/%d/cgroup", s.cmd.Process.Pid, s.tid))
	if got := dirOf(t, lines, h); got != child {
		t.Errorf("thread in %s, want %s", got, child)
	}
	_, vcpu0, err := g.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	s.say(t, "spin")
	time.Sleep(300 * time.Millisecond)
	s.say(t, "idle")
	total1, vcpu1, err := g.CPUUsage()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("v2 usage: total %v, vcpu %v (+%v)", total1, vcpu1, vcpu1-vcpu0)
	if vcpu1-vcpu0 < 150*time.Millisecond || total1 < vcpu1 {
		t.Errorf("v2 accounting: vcpu +%v, total %v", vcpu1-vcpu0, total1)
	}
	s.in.Close()
	_ = s.cmd.Wait()
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	if exists(g.dirs[0].dir) {
		t.Errorf("%s still exists", g.dirs[0].dir)
	}
}

// TestApplyV2Files checks what New writes on a v2 host, file by file. No
// hierarchy here has v2 controllers, so the files are plain files in a
// temporary directory: this checks formats, not the kernel's reaction
// (which the v1 tests and a pure v2 host do).
func TestApplyV2Files(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"cpu.weight", "cpu.max", "memory.max", "memory.swap.max", "pids.max"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("unset\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	h := &hierarchy{version: 2, point: filepath.Dir(dir), root: "/", controllers: []string{"cpu", "memory", "pids"}}
	g := newGroup(filepath.Base(dir), layout{hiers: []*hierarchy{h}, ctl: map[string]*hierarchy{"cpu": h, "memory": h, "pids": h}})
	r, err := Resources{CPUWeight: 250, CPUQuota: 150 * time.Millisecond, CPUPeriod: 50 * time.Millisecond, MemoryMax: 1 << 30, PidsMax: 99}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.apply(r); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"cpu.weight": "250", "cpu.max": "150000 50000", "memory.max": "1073741824",
		"memory.swap.max": "0", "pids.max": "99"} {
		expectFile(t, dir, f, want)
	}
	// Period alone: "max PERIOD".
	r, _ = Resources{CPUPeriod: 20 * time.Millisecond}.normalize()
	if err := g.apply(r); err != nil {
		t.Fatal(err)
	}
	expectFile(t, dir, "cpu.max", "max 20000")
}
