package jail

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: namespaces, mounts, mknod and setuid are real")
	}
}

func randID(t *testing.T) string {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return "t-" + hex.EncodeToString(b[:])
}

// syncBuf is a concurrency-safe writer for the child's stderr.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// running is a started jail with its stdio.
type running struct {
	t      *testing.T
	j      *Jail
	lines  chan string
	stdin  *os.File // closing it ends the child
	stderr *syncBuf
	waited bool
}

// startChild starts the test binary as the child with scenario and
// returns once Start has returned.
func startChild(t *testing.T, spec Spec, scenario string) (*running, error) {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &running{t: t, lines: make(chan string, 64), stdin: inW, stderr: &syncBuf{}}
	spec.Args = []string{scenario}
	spec.Stdin, spec.Stdout, spec.Stderr = inR, outW, r.stderr
	j, err := Start(spec)
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, err
	}
	r.j = j
	go func() {
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			r.lines <- sc.Text()
		}
		close(r.lines)
		outR.Close()
	}()
	t.Cleanup(func() {
		if !r.waited {
			_ = j.Signal(syscall.SIGKILL)
			r.stdin.Close()
			_, _ = j.Wait()
		}
	})
	return r, nil
}

// expect reads the child's next line, which must start with prefix, and
// returns the rest.
func (r *running) expect(prefix string) string {
	r.t.Helper()
	select {
	case l, ok := <-r.lines:
		if !ok {
			r.t.Fatalf("child stdout closed while waiting for %q; stderr: %s", prefix, r.stderr)
		}
		if !strings.HasPrefix(l, prefix) {
			r.t.Fatalf("child said %q, want %q...; stderr: %s", l, prefix, r.stderr)
		}
		return strings.TrimSpace(strings.TrimPrefix(l, prefix))
	case <-time.After(10 * time.Second):
		r.t.Fatalf("timed out waiting for %q; stderr: %s", prefix, r.stderr)
	}
	return ""
}

// finish closes the child's stdin and waits for it.
func (r *running) finish() *os.ProcessState {
	r.t.Helper()
	r.stdin.Close()
	st, err := r.j.Wait()
	r.waited = true
	if err != nil {
		r.t.Fatalf("Wait: %v", err)
	}
	return st
}

func readStatus(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return statusFields(string(b))
}

func nsLink(t *testing.T, pid, kind string) string {
	t.Helper()
	l, err := os.Readlink("/proc/" + pid + "/ns/" + kind)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// jailFiles lists everything under the child's root, from outside.
func jailFiles(t *testing.T, pid int) []string {
	t.Helper()
	root := fmt.Sprintf("/proc/%d/root/", pid) // the slash: /proc/PID/root is a symlink
	var got []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != root {
			got = append(got, strings.TrimPrefix(p, root))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	return got
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestJailEndToEnd starts a real jail and checks the child from outside.
// Where the host has no /dev/kvm the jail is still built and checked, only
// without the KVM device node: the jail refuses to hand a VM a /dev/kvm its
// uid cannot open, and on such a host nobody can.
func TestJailEndToEnd(t *testing.T) {
	needRoot(t)
	_, err := os.Stat("/dev/kvm")
	hasKVM := err == nil
	if !hasKVM {
		t.Logf("no /dev/kvm on this host (%v): the jail is checked without the KVM device", err)
	}
	base := t.TempDir()
	files := t.TempDir() // 0700 root: the jailed uid could not reach it by path
	roPath, rwPath := filepath.Join(files, "kernel"), filepath.Join(files, "disk.img")
	writeFile(t, roPath, "kernel bytes", 0o666) // writable by mode, so a write meets EROFS, not EACCES
	writeFile(t, rwPath, "old disk content here", 0o666)
	extraPath := filepath.Join(files, "console.log")
	extra, err := os.Create(extraPath)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()

	id := randID(t)
	var startPID int
	var gotTIDs []int
	spec := Spec{
		ID: id, Isolate: true, BaseDir: base, KVM: hasKVM, TUN: true,
		Binds: []Bind{
			{Host: roPath, Jail: "/kernel", ReadOnly: true},
			{Host: rwPath, Jail: "/disks/rw"},
		},
		ExtraFiles: []*os.File{extra},
		OnStart: func(pid int) error {
			startPID = pid
			// The child must still be waiting for the go-ahead: root,
			// outside nothing yet.
			if st := readStatus(t, fmt.Sprintf("/proc/%d/status", pid)); !strings.HasPrefix(st["Uid"], "0 ") {
				return fmt.Errorf("child already dropped to %s before OnStart returned", st["Uid"])
			}
			return nil
		},
		OnVCPUThreads: func(host []int) error { gotTIDs = append([]int(nil), host...); return nil },
	}
	r, err := startChild(t, spec, "basic")
	if err != nil {
		t.Fatal(err)
	}
	pid := r.j.Pid()
	spid := strconv.Itoa(pid)
	if startPID != pid {
		t.Errorf("OnStart got pid %d, want %d", startPID, pid)
	}
	if nsPID := r.expect("entered"); nsPID != "1" {
		t.Errorf("child's own pid is %s, want 1", nsPID)
	}
	said := []struct{ key, want string }{
		{"rowrite", "EROFS"},
		{"roread", `ok "kernel bytes"`},
		{"rwwrite", "ok"},
		{"passwd", "ENOENT"},
		{"proc", "ENOENT"},
		{"rootwrite", "EROFS"},
		{"kvmapi", "12"},
		{"kvm", "ok"},
		{"tun", "ok"},
		{"hostname", id},
		{"extra", "ok"},
		{"setuid0", "EPERM"},
	}
	if !hasKVM {
		said = slices.DeleteFunc(said, func(c struct{ key, want string }) bool { return c.key == "kvmapi" })
		for i := range said {
			if said[i].key == "kvm" {
				said[i].want = "ENOENT" // not made in the jail
			}
		}
	}
	for _, c := range said {
		if got := r.expect(c.key); got != c.want {
			t.Errorf("child %s: %s, want %s", c.key, got, c.want)
		}
	}
	nsTIDs := strings.Fields(r.expect("tids"))
	if got := r.expect("reported"); got != "ok" {
		t.Errorf("ReportThreads: %s", got)
	}
	r.expect("waiting")

	// Credentials, capabilities, no_new_privs, on every thread.
	tasks, err := os.ReadDir("/proc/" + spid + "/task")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 3 {
		t.Errorf("only %d threads", len(tasks))
	}
	zero := "0000000000000000"
	for _, task := range tasks {
		st := readStatus(t, "/proc/"+spid+"/task/"+task.Name()+"/status")
		for k, want := range map[string]string{
			"Uid": "65534 65534 65534 65534", "Gid": "65534 65534 65534 65534", "Groups": "",
			"CapInh": zero, "CapPrm": zero, "CapEff": zero, "CapBnd": zero, "CapAmb": zero,
			"NoNewPrivs": "1",
		} {
			if st[k] != want {
				t.Errorf("thread %s: %s = %q, want %q", task.Name(), k, st[k], want)
			}
		}
	}
	st := readStatus(t, "/proc/"+spid+"/status")
	if f := strings.Fields(st["NSpid"]); len(f) < 2 || f[len(f)-1] != "1" {
		t.Errorf("NSpid %q: want the child to be 1 in its own pid namespace", st["NSpid"])
	}
	for _, kind := range []string{"mnt", "pid", "ipc", "uts"} {
		if nsLink(t, spid, kind) == nsLink(t, "self", kind) {
			t.Errorf("%s namespace is the test's own", kind)
		}
	}
	if nsLink(t, spid, "net") != nsLink(t, "self", "net") {
		t.Errorf("net namespace changed without NetNS")
	}

	// Exactly the expected files, and only the jail's mounts.
	want := []string{"dev", "dev/kvm", "dev/net", "dev/net/tun", "disks", "disks/rw", "kernel"}
	type node struct {
		path         string
		major, minor uint32
	}
	nodes := []node{{"dev/kvm", 10, 232}, {"dev/net/tun", 10, 200}}
	if !hasKVM {
		want = slices.DeleteFunc(want, func(p string) bool { return p == "dev/kvm" })
		nodes = nodes[1:]
	}
	if got := jailFiles(t, pid); !slices.Equal(got, want) {
		t.Errorf("jail holds %q, want %q", got, want)
	}
	for _, n := range nodes {
		var s unix.Stat_t
		if err := unix.Stat("/proc/"+spid+"/root/"+n.path, &s); err != nil {
			t.Fatal(err)
		}
		if s.Mode != unix.S_IFCHR|0o600 || unix.Major(s.Rdev) != n.major || unix.Minor(s.Rdev) != n.minor || s.Uid != 65534 || s.Gid != 65534 {
			t.Errorf("%s: mode %o dev %d:%d owner %d:%d, want char 0600 %d:%d 65534:65534",
				n.path, s.Mode, unix.Major(s.Rdev), unix.Minor(s.Rdev), s.Uid, s.Gid, n.major, n.minor)
		}
	}
	mi, err := os.ReadFile("/proc/" + spid + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	mounts := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(mi)), "\n") {
		f := strings.Fields(line)
		mounts[f[4]] = f[5]
	}
	if len(mounts) != 3 || !strings.HasPrefix(mounts["/"], "ro,") || !strings.HasPrefix(mounts["/kernel"], "ro,") || !strings.HasPrefix(mounts["/disks/rw"], "rw,") {
		t.Errorf("child's mounts:\n%s\nwant only / (ro), /kernel (ro), /disks/rw (rw)", mi)
	}
	for mp, opts := range mounts {
		if !strings.Contains(opts, "nosuid") || !strings.Contains(opts, "noexec") {
			t.Errorf("mount %s is %s, want nosuid,noexec", mp, opts)
		}
	}

	// Only the expected fds: stdio, control, the extra file, and the Go
	// runtime's poller.
	fds, err := os.ReadDir("/proc/" + spid + "/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		n, _ := strconv.Atoi(fd.Name())
		target, _ := os.Readlink("/proc/" + spid + "/fd/" + fd.Name())
		switch {
		case n <= 2, n == FirstExtraFD && target == extraPath:
		case strings.HasPrefix(target, "anon_inode:"):
		default:
			t.Errorf("child has fd %d → %s open", n, target)
		}
	}

	// rlimits.
	lim, err := os.ReadFile("/proc/" + spid + "/limits")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct{ name, v string }{
		{"Max open files", "4096"}, {"Max processes", strconv.Itoa(DefaultNPROC)}, {"Max file size", strconv.Itoa(DefaultFSIZE)},
	} {
		re := l.name + " " + l.v + " " + l.v + " "
		if !strings.Contains(strings.Join(strings.Fields(string(lim)), " "), re) {
			t.Errorf("limits lack %q:\n%s", re, lim)
		}
	}

	// Thread report: host TIDs of the child's threads, matching its view.
	if len(gotTIDs) != len(nsTIDs) {
		t.Fatalf("OnVCPUThreads got %v for child TIDs %v", gotTIDs, nsTIDs)
	}
	for i, h := range gotTIDs {
		st := readStatus(t, fmt.Sprintf("/proc/%d/task/%d/status", pid, h))
		if f := strings.Fields(st["NSpid"]); f[0] != strconv.Itoa(h) || f[len(f)-1] != nsTIDs[i] {
			t.Errorf("host TID %d has NSpid %q, want it to be %s in the child", h, st["NSpid"], nsTIDs[i])
		}
	}

	// The per-VM root exists while the VM runs, only inside the child.
	vmDir := filepath.Join(base, id)
	if ents, err := os.ReadDir(filepath.Join(vmDir, "root")); err != nil || len(ents) != 0 {
		t.Errorf("host view of the jail root: %v %v, want an empty directory", ents, err)
	}

	// A second VM with the same id fails while this one runs.
	_, err = Start(Spec{ID: id, Isolate: true, BaseDir: base, Args: []string{"plain"}})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Start with id %s: %v, want an 'in use' error", id, err)
	}

	stState := r.finish()
	if stState.ExitCode() != 0 {
		t.Errorf("child exit: %v; stderr: %s", stState, r.stderr)
	}
	if _, err := os.Stat(vmDir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s after Wait: %v, want it gone", vmDir, err)
	}
	if b, _ := os.ReadFile(rwPath); string(b) != "written in the jailre" {
		t.Errorf("rw bind content %q", b)
	}
	if b, _ := os.ReadFile(extraPath); string(b) != "extra fd ok\n" {
		t.Errorf("extra file content %q", b)
	}
}

// TestSupervisorThreadsUntouched: the thread Start changed dies with the
// child; no other thread of the supervisor ever had its state changed.
func TestSupervisorThreadsUntouched(t *testing.T) {
	needRoot(t)
	before := readStatus(t, "/proc/self/status")
	r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir()}, "plain")
	if err != nil {
		t.Fatal(err)
	}
	r.expect("plain")
	tainted := func() []string {
		var bad []string
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + task.Name() + "/status")
			if err != nil {
				continue
			}
			st := statusFields(string(b))
			if st["NoNewPrivs"] != "0" || st["CapBnd"] != before["CapBnd"] {
				bad = append(bad, task.Name())
			}
		}
		return bad
	}
	if bad := tainted(); len(bad) != 1 {
		t.Errorf("while the child runs, %d threads are changed (%v), want exactly the one that forked it", len(bad), bad)
	}
	r.finish()
	deadline := time.Now().Add(3 * time.Second)
	for len(tainted()) != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if bad := tainted(); len(bad) != 0 {
		t.Errorf("after Wait, threads %v still have no_new_privs or a changed bounding set", bad)
	}
	if after := readStatus(t, "/proc/self/status"); after["CapBnd"] != before["CapBnd"] || after["CapInh"] != before["CapInh"] {
		t.Errorf("main thread changed: %v → %v", before, after)
	}
}

func TestNetNS(t *testing.T) {
	needRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) not installed")
	}
	name := "govmm-jail-test-" + randID(t)[2:]
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	path := "/run/netns/" + name
	r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir(), NetNS: path}, "plain")
	if err != nil {
		t.Fatal(err)
	}
	r.expect("plain")
	var a, b unix.Stat_t
	if err := unix.Stat(path, &a); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", r.j.Pid()), &b); err != nil {
		t.Fatal(err)
	}
	if a.Ino != b.Ino || a.Dev != b.Dev {
		t.Errorf("child's netns is %d:%d, want %s (%d:%d)", b.Dev, b.Ino, path, a.Dev, a.Ino)
	}
	if nsLink(t, "self", "net") == fmt.Sprintf("net:[%d]", a.Ino) {
		t.Error("the test process itself joined the netns")
	}
	r.finish()

	_, err = Start(Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir(), NetNS: "/etc/hostname"})
	if err == nil || !strings.Contains(err.Error(), "not a namespace file") {
		t.Errorf("NetNS on a plain file: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	files := t.TempDir()
	ok := filepath.Join(files, "ok")
	writeFile(t, ok, "x", 0o644)
	big := filepath.Join(files, "big")
	writeFile(t, big, "", 0o666)
	if err := os.Truncate(big, 2<<30); err != nil { // sparse
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"bad id", Spec{ID: "a/b", Isolate: true}, `VM id "a/b"`},
		{"missing bind", Spec{ID: randID(t), Isolate: true, BaseDir: base, Binds: []Bind{{Host: filepath.Join(files, "nope"), Jail: "/disk0"}}}, filepath.Join(files, "nope") + ": no such file"},
		{"directory bind", Spec{ID: randID(t), Isolate: true, BaseDir: base, Binds: []Bind{{Host: files, Jail: "/disk0"}}}, "is a directory"},
		{"bad jail path", Spec{ID: randID(t), Isolate: true, BaseDir: base, Binds: []Bind{{Host: ok, Jail: "/a/../b"}}}, "not clean"},
		{"conflict", Spec{ID: randID(t), Isolate: true, BaseDir: base, KVM: true, Binds: []Bind{{Host: ok, Jail: "/dev"}}}, "both a file and the directory"},
		{"root uid", Spec{ID: randID(t), Isolate: true, BaseDir: base, UID: -1}, "uid -1"},
		{"relative base", Spec{ID: randID(t), Isolate: true, BaseDir: "srv"}, "not an absolute clean path"},
		{"binds without isolate", Spec{ID: randID(t), Binds: []Bind{{Host: ok, Jail: "/x"}}}, "need Isolate"},
		{"small nofile", Spec{ID: randID(t), Isolate: true, BaseDir: base, Rlimits: Rlimits{NOFILE: 10}}, "at least 64"},
		{"small fsize", Spec{ID: randID(t), Isolate: true, BaseDir: base, Binds: []Bind{{Host: big, Jail: "/disk0"}}, Rlimits: Rlimits{FSIZE: 1 << 30}}, "below the size of the largest writable bind"},
		{"char device bind", Spec{ID: randID(t), Isolate: true, BaseDir: base, Binds: []Bind{{Host: "/dev/null", Jail: "/null"}}}, "is a character device"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Start(c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start: %v, want an error containing %q", err, c.want)
			}
		})
	}
	if ents, _ := os.ReadDir(base); len(ents) != 0 {
		t.Errorf("failed Starts left %v in the base directory", ents)
	}
	// A world-writable base directory is refused.
	loose := t.TempDir()
	if err := os.Chmod(loose, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := Start(Spec{ID: randID(t), Isolate: true, BaseDir: loose}); err == nil || !strings.Contains(err.Error(), "not writable by group or others") {
		t.Errorf("world-writable base: %v", err)
	}
}

// TestChildStepFails: a step failing inside the child comes back from
// Start naming the step and the file, and cleans up.
func TestChildStepFails(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	secret := filepath.Join(t.TempDir(), "secret.img")
	writeFile(t, secret, "root only", 0o600)
	id := randID(t)
	_, err := startChild(t, Spec{ID: id, Isolate: true, BaseDir: base, Binds: []Bind{{Host: secret, Jail: "/disk0"}}}, "plain")
	if err == nil || !strings.Contains(err.Error(), "step access") || !strings.Contains(err.Error(), "/disk0") || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Start with a root-only rw disk: %v, want a 'step access' error naming /disk0", err)
	}
	if _, err := os.Stat(filepath.Join(base, id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("per-VM dir after a failed Start: %v", err)
	}
}

func TestOnStartError(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	id := randID(t)
	var pid int
	_, err := startChild(t, Spec{ID: id, Isolate: true, BaseDir: base, OnStart: func(p int) error {
		pid = p
		return errors.New("no cgroup for you")
	}}, "plain")
	if err == nil || !strings.Contains(err.Error(), "no cgroup for you") {
		t.Fatalf("Start: %v", err)
	}
	if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
		t.Errorf("child %d after OnStart failed: kill 0 = %v, want it gone", pid, err)
	}
	if _, err := os.Stat(filepath.Join(base, id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("per-VM dir after a failed Start: %v", err)
	}
}

func TestThreadReports(t *testing.T) {
	needRoot(t)
	t.Run("callback error", func(t *testing.T) {
		r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir(),
			OnVCPUThreads: func([]int) error { return errors.New("cgroup full") }}, "report-only")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.expect("reported"); !strings.Contains(got, "supervisor: cgroup full") {
			t.Errorf("child's ReportThreads: %s", got)
		}
		r.finish()
	})
	t.Run("bogus", func(t *testing.T) {
		called := false
		r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir(),
			OnVCPUThreads: func([]int) error { called = true; return nil }}, "bogus-report")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.expect("bogus"); !strings.Contains(got, "reported twice") {
			t.Errorf("reply to a bogus report: %s", got)
		}
		r.finish()
		if called {
			t.Error("OnVCPUThreads ran on a bogus report")
		}
	})
	t.Run("foreign tid", func(t *testing.T) {
		r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir(),
			OnVCPUThreads: func([]int) error { t.Error("OnVCPUThreads ran on a foreign tid"); return nil }}, "foreign-tid")
		if err != nil {
			t.Fatal(err)
		}
		if got := r.expect("foreign"); !strings.Contains(got, "not a thread of the VMM") {
			t.Errorf("reply to a foreign tid: %s", got)
		}
		r.finish()
	})
	t.Run("not isolated", func(t *testing.T) {
		var got []int
		r, err := startChild(t, Spec{ID: randID(t), OnVCPUThreads: func(h []int) error { got = h; return nil }}, "report-only")
		if err != nil {
			t.Fatal(err)
		}
		if s := r.expect("reported"); s != "<nil>" {
			t.Errorf("ReportThreads: %s", s)
		}
		if len(got) != 1 {
			t.Fatalf("host TIDs %v", got)
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/task/%d", r.j.Pid(), got[0])); err != nil {
			t.Errorf("reported TID: %v", err)
		}
		st := readStatus(t, fmt.Sprintf("/proc/%d/status", r.j.Pid()))
		if !strings.HasPrefix(st["Uid"], "0 ") || nsLink(t, strconv.Itoa(r.j.Pid()), "mnt") != nsLink(t, "self", "mnt") {
			t.Errorf("a non-isolated child was jailed: %v", st)
		}
		r.finish()
	})
}

// TestSignal: SIGTERM reaches the child (PID 1 of its namespace) because
// it has a handler.
func TestSignal(t *testing.T) {
	needRoot(t)
	r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir()}, "plain")
	if err != nil {
		t.Fatal(err)
	}
	r.expect("plain")
	if err := r.j.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	st, err := r.j.Wait()
	r.waited = true
	if err != nil || st.ExitCode() != 7 {
		t.Errorf("after SIGTERM: %v %v, want exit 7 (the child's handler)", st, err)
	}
}

// TestSupervisorKilled: a SIGKILLed supervisor takes the child with it
// (Pdeathsig), leaves BaseDir/ID behind, and the next Start with that id
// reclaims it.
func TestSupervisorKilled(t *testing.T) {
	needRoot(t)
	base := t.TempDir()
	id := randID(t)
	cmd := exec.Command("/proc/self/exe", "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+base+":"+id)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		t.Fatal("supervisor said nothing")
	}
	line := sc.Text()
	pidStr, ok := strings.CutPrefix(line, "child ")
	if !ok {
		_ = cmd.Process.Kill()
		t.Fatalf("supervisor: %s", line)
	}
	child, _ := strconv.Atoi(pidStr)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil || strings.Contains(string(b), ") Z ") {
			break // gone or a zombie of whoever adopted it
		}
		if time.Now().After(deadline) {
			t.Fatalf("jailed child %d outlived its SIGKILLed supervisor", child)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(base, id, "lock")); err != nil {
		t.Fatalf("want a stale per-VM dir: %v", err)
	}
	r, err := startChild(t, Spec{ID: id, Isolate: true, BaseDir: base}, "plain")
	if err != nil {
		t.Fatalf("Start over a stale dir: %v", err)
	}
	if !r.j.Reclaimed() {
		t.Error("the stale dir was not reported as reclaimed")
	}
	r.expect("plain")
	r.finish()
	if _, err := os.Stat(filepath.Join(base, id)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("per-VM dir after Wait: %v", err)
	}
}

// TestInheritedFDNotLeaked: an fd the supervisor holds without O_CLOEXEC
// (as one inherited from its own parent would be) does not reach the
// child; Enter's fd check would refuse to start otherwise.
func TestInheritedFDNotLeaked(t *testing.T) {
	needRoot(t)
	leak := filepath.Join(t.TempDir(), "leak")
	writeFile(t, leak, "secret", 0o644)
	fd, err := unix.Open(leak, unix.O_RDONLY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	r, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir()}, "plain")
	if err != nil {
		t.Fatal(err)
	}
	r.expect("plain")
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", r.j.Pid()))
	for _, e := range fds {
		if target, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", r.j.Pid(), e.Name())); target == leak {
			t.Errorf("child holds the supervisor's fd as %s", e.Name())
		}
	}
	r.finish()
}

// TestControlSocketLimits: the largest spec fits one datagram, and an
// oversized datagram is refused, not split or truncated silently.
func TestControlSocketLimits(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		if err := unix.SetNonblock(fd, true); err != nil {
			t.Fatal(err)
		}
	}
	a, b := os.NewFile(uintptr(fds[0]), "a"), os.NewFile(uintptr(fds[1]), "b")
	defer a.Close()
	defer b.Close()
	big := formatMsg(msgSpec, strings.Repeat("x", maxSpecMsg-len(msgSpec)-2))
	if len(big) != maxSpecMsg {
		t.Fatalf("test message is %d bytes", len(big))
	}
	if err := writeMsg(a, big); err != nil {
		t.Fatalf("sending a %d-byte spec: %v", len(big), err)
	}
	if kind, body, err := readMsg(b, maxSpecMsg, time.Second); err != nil || kind != msgSpec || len(body) != maxSpecMsg-len(msgSpec)-2 {
		t.Fatalf("receiving it: %q %d %v", kind, len(body), err)
	}
	if err := writeMsg(a, formatMsg(msgVCPUs, strings.Repeat("1", maxChildMsg))); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readMsg(b, maxChildMsg, time.Second); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Errorf("oversized datagram: %v", err)
	}
	a.Close()
	if _, _, err := readMsg(b, maxChildMsg, time.Second); !errors.Is(err, io.EOF) {
		t.Errorf("closed peer: %v, want EOF", err)
	}
}

// TestBeforeExec: the hook runs on the thread that forks the child, so a
// per-thread attribute it sets (here the nice value, which Linux keeps
// per thread and a child inherits from the forking thread) reaches the
// child and no other thread of the supervisor; its error aborts Start.
func TestBeforeExec(t *testing.T) {
	needRoot(t)
	for _, isolate := range []bool{true, false} {
		t.Run(fmt.Sprintf("isolate=%v", isolate), func(t *testing.T) {
			var hookTID int
			r, err := startChild(t, Spec{ID: randID(t), Isolate: isolate, BaseDir: t.TempDir(), BeforeExec: func() error {
				hookTID = unix.Gettid()
				return unix.Setpriority(unix.PRIO_PROCESS, 0, 7)
			}}, "plain")
			if err != nil {
				t.Fatal(err)
			}
			if hookTID == 0 || hookTID == unix.Getpid() {
				t.Errorf("BeforeExec ran on thread %d (main is %d)", hookTID, unix.Getpid())
			}
			if nice, err := unix.Getpriority(unix.PRIO_PROCESS, r.j.Pid()); err != nil || 20-nice != 7 {
				t.Errorf("child nice = %d (%v), want 7 from BeforeExec", 20-nice, err)
			}
			if nice, _ := unix.Getpriority(unix.PRIO_PROCESS, unix.Gettid()); 20-nice == 7 {
				t.Error("BeforeExec changed a thread other than the forking one")
			}
			r.finish()
		})
	}
	_, err := startChild(t, Spec{ID: randID(t), Isolate: true, BaseDir: t.TempDir(),
		BeforeExec: func() error { return errors.New("no label for you") }}, "plain")
	if err == nil || !strings.Contains(err.Error(), "no label for you") {
		t.Fatalf("Start with a failing BeforeExec: %v", err)
	}
}
