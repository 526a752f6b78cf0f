package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmm/govmm/vmm"
)

// procStatus reads /proc/PID/status into a map of field -> value.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m
}

// childOf returns the only child process of pid.
func childOf(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		var kids []string
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			kids = append(kids, strings.Fields(string(b))...)
		}
		if len(kids) == 1 {
			n, _ := strconv.Atoi(kids[0])
			return n
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("process %d has no single child", pid)
	return 0
}

// listTree lists every path under root, relative to it, without following
// symlinks.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root+"/", func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != root+"/" {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestJailedVMFromOutside boots a spinning guest with --jail and inspects
// the jailed VMM process from outside, as an operator (or an attacker's
// target) would see it.
func TestJailedVMFromOutside(t *testing.T) {
	RequireKVM(t)
	id := fmt.Sprintf("jt-%d", os.Getpid())
	base := t.TempDir()
	disk := jailImage(t, 64)
	ro := jailImage(t, 8)
	cmd, out, errb := startGovmm(t, "run", "--jail", "--id", id, "--jail-base", base,
		"--kernel", Guest(t, "spin"), "--disk", "path="+disk, "--disk", "path="+ro+",readonly=on",
		"--cpus", "2", "--cpu-weight", "200")
	waitFor(t, out, "spin: start", 60*time.Second)
	vmPID := childOf(t, cmd.Process.Pid)

	for _, task := range listTasks(t, vmPID) {
		st := procStatus(t, task)
		for _, f := range []string{"Uid", "Gid"} {
			for _, v := range strings.Fields(st[f]) {
				if v == "0" {
					t.Errorf("task %d: %s %q includes root", task, f, st[f])
				}
			}
		}
		for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
			if st[f] != "0000000000000000" {
				t.Errorf("task %d: %s = %s, want none", task, f, st[f])
			}
		}
		if st["NoNewPrivs"] != "1" {
			t.Errorf("task %d: NoNewPrivs = %q", task, st["NoNewPrivs"])
		}
		if st["Seccomp"] != "2" {
			t.Errorf("task %d: Seccomp = %q, want 2 (filter)", task, st["Seccomp"])
		}
	}
	st := procStatus(t, vmPID)
	if ns := strings.Fields(st["NSpid"]); len(ns) != 2 || ns[1] != "1" {
		t.Errorf("NSpid = %q: want PID 1 in its own PID namespace", st["NSpid"])
	}
	for _, ns := range []string{"mnt", "pid", "ipc", "uts"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", vmPID, ns))
		if err != nil || its == mine {
			t.Errorf("%s namespace: VM %q, test %q: want its own", ns, its, mine)
		}
	}
	// Its root holds only what it needs: the kernel, the two disks and
	// /dev/kvm. /dev/net/tun is made only for a VM with a network
	// device (the jail package's tests cover it), and this one has none.
	got := strings.Join(listTree(t, fmt.Sprintf("/proc/%d/root", vmPID)), " ")
	want := "dev dev/kvm disk0 disk1 kernel"
	if got != want {
		t.Errorf("jail root = %q, want %q", got, want)
	}
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/root/etc/passwd", vmPID)); err == nil {
		t.Error("the jail can see the host's /etc/passwd")
	}
	// Its cgroup, and the vCPU threads in the vcpu child.
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", vmPID))
	if !strings.Contains(string(cg), "/govmm/"+id) {
		t.Errorf("VM process not in cgroup govmm/%s:\n%s", id, cg)
	}
	// The vCPU threads (named vcpuN by the VMM), and only they, are in
	// the vcpu child. KVM's own kernel worker for the VM
	// (kvm-nx-lpage-recovery) joins the cgroup of the vCPU that started
	// it, which is where its work belongs.
	for _, task := range listTasks(t, vmPID) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/cgroup", vmPID, task))
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/comm", vmPID, task))
		name := strings.TrimSpace(string(comm))
		inVCPU := strings.Contains(string(b), "/govmm/"+id+"/vcpu")
		if strings.HasPrefix(name, "kvm-") {
			continue
		}
		if inVCPU != strings.HasPrefix(name, "vcpu") {
			t.Errorf("thread %d (%s): in govmm/%s/vcpu = %v", task, name, id, inVCPU)
		}
		if !strings.Contains(string(b), "/govmm/"+id) {
			t.Errorf("thread %d (%s) is outside the VM's cgroup:\n%s", task, name, b)
		}
	}

	cmd.Process.Signal(syscall.SIGTERM)
	if code := waitExit(t, cmd, 30*time.Second); code != vmm.CodeStopped {
		t.Fatalf("exit code %d, want %d (stopped)\n%s", code, vmm.CodeStopped, errb.String())
	}
	if _, err := os.Stat(filepath.Join(base, id)); !os.IsNotExist(err) {
		t.Errorf("jail directory %s left behind (%v)", filepath.Join(base, id), err)
	}
	for _, d := range []string{"cpu", "memory", "pids", "unified", ""} {
		p := filepath.Join("/sys/fs/cgroup", d, "govmm", id)
		if _, err := os.Stat(p); err == nil {
			t.Errorf("cgroup %s left behind", p)
		}
	}
}

// jailUID is the uid/gid a jailed VMM drops to by default (nobody).
const jailUID = 65534

// jailImage is makeImage owned by the jail's uid: the jailed VMM opens its
// disks as that uid, and the jail refuses, naming the file, what it could
// not open.
func jailImage(t *testing.T, sectors int) string {
	t.Helper()
	p := makeImage(t, sectors)
	if err := os.Chown(p, jailUID, jailUID); err != nil {
		t.Fatal(err)
	}
	return p
}

// listTasks lists the thread ids of pid.
func listTasks(t *testing.T, pid int) []int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, e := range ents {
		n, _ := strconv.Atoi(e.Name())
		out = append(out, n)
	}
	return out
}

// TestJailedVMRunsGuest: the virtio-blk guest passes inside the jail, so
// the jail gives the VM everything it needs, and the disk it wrote is
// the host's file.
func TestJailedVMRunsGuest(t *testing.T) {
	RequireKVM(t)
	img := jailImage(t, 64)
	r := Boot(t, "vblk", guestTimeout, "--jail", "--jail-base", t.TempDir(), "--disk", "path="+img+",serial=govmm-disk-0",
		"--cmdline", "console=ttyS0 vblk.expect_id=govmm-disk-0")
	requireVblkPassed(t, r)
}

// TestSandboxFlagErrors: bad confinement flags get one clear line and the
// usage exit code, before anything is created.
func TestSandboxFlagErrors(t *testing.T) {
	cases := []struct {
		args    []string
		mention string
	}{
		{[]string{"--id", "bad/id"}, "--id"},
		{[]string{"--id", strings.Repeat("a", 65)}, "--id"},
		{[]string{"--seccomp", "maybe"}, "--seccomp"},
		{[]string{"--mac", "tomoyo"}, "--mac"},
		{[]string{"--cgroup", "yes"}, "--cgroup"},
		{[]string{"--cpu-weight", "0"}, "--cpu-weight"},
		{[]string{"--cpu-weight", "10001"}, "--cpu-weight"},
		{[]string{"--cpu-max", "abc"}, "--cpu-max"},
		{[]string{"--jail", "--uid", "0"}, "--uid"},
		{[]string{"--netns", "/run/netns/x"}, "--netns"},
		{[]string{"--cgroup=off", "--cpu-weight", "5"}, "--cgroup=off"},
	}
	for _, c := range cases {
		r := Run(t, 20*time.Second, append([]string{"run"}, c.args...)...)
		requireOneLineError(t, r, vmm.CodeUsage, c.mention)
	}
}
