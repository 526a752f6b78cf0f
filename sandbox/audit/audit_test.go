package audit

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeHost lays files out under a temporary root. Keys are host paths.
func fakeHost(t *testing.T, files map[string]string) Host {
	t.Helper()
	root := t.TempDir()
	for p, data := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return Host{Root: root}
}

type fileCase struct {
	name   string
	files  map[string]string
	want   Status
	detail string // substring of Detail
}

func runFileCases(t *testing.T, check Check, id string, cases []fileCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := check(fakeHost(t, c.files))
			if r.ID != id {
				t.Errorf("ID = %q, want %q", r.ID, id)
			}
			if r.Status != c.want || !strings.Contains(r.Detail, c.detail) {
				t.Errorf("got %s %q, want %s containing %q", r.Status, r.Detail, c.want, c.detail)
			}
			if r.Fix == "" || r.Reference == "" || r.Title == "" {
				t.Errorf("incomplete result %+v", r)
			}
		})
	}
}

func TestCheckLSM(t *testing.T) {
	const p = "/sys/kernel/security/lsm"
	runFileCases(t, CheckLSM, "GOVMM-LSM-1", []fileCase{
		{"no securityfs", map[string]string{"/sys/kernel/x": ""}, Warn, "/sys/kernel/security absent"},
		{"no MAC module", map[string]string{p: "capability,yama\n"}, Warn, "MAC confinement unavailable"},
		{"apparmor", map[string]string{p: "lockdown,capability,landlock,yama,apparmor\n"}, Pass, "landlock, apparmor"},
		{"selinux", map[string]string{p: "capability,selinux"}, Pass, "selinux"},
	})
}

func TestCheckKSM(t *testing.T) {
	const p = "/sys/kernel/mm/ksm/run"
	runFileCases(t, CheckKSM, "GOVMM-KSM-1", []fileCase{
		{"running", map[string]string{p: "1\n"}, Warn, "cross-VM side channels"},
		{"stopped", map[string]string{p: "0\n"}, Pass, "run=0"},
		{"unmerging", map[string]string{p: "2\n"}, Pass, "run=2"},
		{"not built", nil, Pass, "not built"},
		{"garbage", map[string]string{p: "7"}, Warn, "unknown"},
	})
}

func TestCheckOvercommit(t *testing.T) {
	const p = "/proc/sys/vm/overcommit_memory"
	runFileCases(t, CheckOvercommit, "GOVMM-MEM-1", []fileCase{
		{"always", map[string]string{p: "1\n"}, Warn, "always"},
		{"heuristic", map[string]string{p: "0\n"}, Pass, "heuristic"},
		{"never", map[string]string{p: "2\n"}, Pass, "never"},
		{"missing", nil, Warn, "cannot read"},
	})
}

func TestCheckTHP(t *testing.T) {
	const p = "/sys/kernel/mm/transparent_hugepage/enabled"
	runFileCases(t, CheckTHP, "GOVMM-MEM-2", []fileCase{
		{"always", map[string]string{p: "[always] madvise never\n"}, Warn, "[always]"},
		{"madvise", map[string]string{p: "always [madvise] never\n"}, Pass, "[madvise]"},
		{"never", map[string]string{p: "always madvise [never]\n"}, Pass, "[never]"},
		{"no selection", map[string]string{p: "always madvise never\n"}, Warn, "unrecognised"},
		{"not built", nil, Pass, "not built"},
	})
}

// Mountinfo lines as the kernel writes them, one per hierarchy kind.
const (
	miTmpfs  = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
	miV1Mem  = "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
	miV1Pids = "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime shared:9 - cgroup cgroup rw,pids\n"
	miHybrid = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
	miPure   = "30 23 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
	miProc   = "22 1 0:21 / /proc rw,relatime - proc proc rw\n"
)

func TestCheckCgroups(t *testing.T) {
	const mi = "/proc/self/mountinfo"
	runFileCases(t, CheckCgroups, "GOVMM-CG-1", []fileCase{
		{"v2 with controllers", map[string]string{
			mi: miProc + miPure, "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
		}, Pass, "controllers: cpuset cpu io memory pids"},
		{"v2 without controllers", map[string]string{
			mi: miProc + miPure, "/sys/fs/cgroup/cgroup.controllers": "\n",
		}, Warn, "no controllers"},
		{"hybrid", map[string]string{
			mi: miProc + miTmpfs + miV1Mem + miV1Pids + miHybrid, "/sys/fs/cgroup/unified/cgroup.controllers": "hugetlb\n",
		}, Warn, `hybrid: cgroup v1 hierarchies: memory,pids; cgroup2 at /sys/fs/cgroup/unified with controllers "hugetlb"`},
		{"v1 only", map[string]string{mi: miProc + miTmpfs + miV1Mem}, Warn, "cgroup v1 hierarchies: memory"},
		{"none", map[string]string{mi: miProc + miTmpfs}, Fail, "no cgroup hierarchy"},
		{"no mountinfo", nil, Fail, "cannot read mountinfo"},
	})
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/sys/fs/cgroup`:         "/sys/fs/cgroup",
		`/mnt/my\040cgroup`:      "/mnt/my cgroup",
		`/a\134b`:                `/a\b`,
		`/trailing\04`:           `/trailing\04`, // too short to be an escape
		`/not\08x`:               `/not\08x`,
		`\011tab\040and\040sp`:   "\ttab and sp",
		`/x\0400`:                "/x 0",
		`/end\`:                  `/end\`,
		``:                       ``,
		`/sys/fs/cgroup/unified`: "/sys/fs/cgroup/unified",
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheckUserNS(t *testing.T) {
	const clone, max = "/proc/sys/kernel/unprivileged_userns_clone", "/proc/sys/user/max_user_namespaces"
	runFileCases(t, CheckUserNS, "GOVMM-USERNS-1", []fileCase{
		{"enabled upstream", map[string]string{max: "96365\n"}, Warn, "enabled"},
		{"enabled debian", map[string]string{clone: "1\n", max: "96365\n"}, Warn, "unprivileged_userns_clone=1"},
		{"debian switch off", map[string]string{clone: "0\n", max: "96365\n"}, Pass, "disabled"},
		{"max zero", map[string]string{max: "0\n"}, Pass, "max_user_namespaces=0"},
		{"unreadable", map[string]string{"/proc/sys/x": ""}, Warn, "cannot read"},
	})
}

func TestCheckASLR(t *testing.T) {
	const p = "/proc/sys/kernel/randomize_va_space"
	runFileCases(t, CheckASLR, "GOVMM-ASLR-1", []fileCase{
		{"full", map[string]string{p: "2\n"}, Pass, "=2"},
		{"partial", map[string]string{p: "1\n"}, Warn, "heap"},
		{"off", map[string]string{p: "0\n"}, Fail, "ASLR off"},
		{"missing", nil, Fail, "cannot read"},
	})
}

// fakeInfo is a stat result with chosen mode and owner: tests cannot mknod
// or chown without privileges, and the checker must not need a real node.
type fakeInfo struct {
	mode     fs.FileMode
	uid, gid uint32
}

func (f fakeInfo) Name() string       { return "kvm" }
func (f fakeInfo) Size() int64        { return 0 }
func (f fakeInfo) Mode() fs.FileMode  { return f.mode }
func (f fakeInfo) ModTime() time.Time { return time.Time{} }
func (f fakeInfo) IsDir() bool        { return false }
func (f fakeInfo) Sys() any           { return &syscall.Stat_t{Uid: f.uid, Gid: f.gid} }

func TestCheckKVM(t *testing.T) {
	const chr = fs.ModeDevice | fs.ModeCharDevice
	cases := []struct {
		name   string
		info   *fakeInfo // nil: /dev/kvm missing
		want   Status
		detail string
	}{
		{"root:kvm 0660", &fakeInfo{chr | 0o660, 0, 108}, Pass, "gid 108 (kvm)"},
		{"root:root 0600", &fakeInfo{chr | 0o600, 0, 0}, Pass, "(root)"},
		{"world rw", &fakeInfo{chr | 0o666, 0, 108}, Fail, "world-writable"},
		{"world w only", &fakeInfo{chr | 0o662, 0, 108}, Fail, "world-writable"},
		{"world r", &fakeInfo{chr | 0o664, 0, 108}, Warn, "world-readable"},
		{"user owner", &fakeInfo{chr | 0o660, 1000, 108}, Fail, "not owned by root"},
		{"other group", &fakeInfo{chr | 0o660, 0, 1000}, Warn, "neither kvm nor root"},
		{"regular file", &fakeInfo{0o660, 0, 108}, Fail, "not a character device"},
		{"block device", &fakeInfo{fs.ModeDevice | 0o660, 0, 108}, Fail, "not a character device"},
		{"missing", nil, Fail, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := fakeHost(t, map[string]string{"/etc/group": "root:x:0:\nkvm:x:108:\nusers:x:1000:\n"})
			h.Stat = func(name string) (fs.FileInfo, error) {
				if name != filepath.Join(h.Root, "/dev/kvm") {
					t.Errorf("stat of %q, want the /dev/kvm under Root", name)
				}
				if c.info == nil {
					return nil, &fs.PathError{Op: "stat", Path: name, Err: syscall.ENOENT}
				}
				return *c.info, nil
			}
			r := CheckKVM(h)
			if r.Status != c.want || !strings.Contains(r.Detail, c.detail) {
				t.Errorf("got %s %q, want %s containing %q", r.Status, r.Detail, c.want, c.detail)
			}
		})
	}
}

// buildC links a trivial C program with the given gcc flags.
func buildC(t *testing.T, flags ...string) string {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found: %v", err)
	}
	dir := t.TempDir()
	src, out := filepath.Join(dir, "p.c"), filepath.Join(dir, "p")
	if err := os.WriteFile(src, []byte("int main(void){return 0;}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, flags...), "-o", out, src)
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, b)
	}
	return out
}

func TestCheckBinary(t *testing.T) {
	notELF := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(notELF, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		exe    func(t *testing.T) string
		want   Status
		detail string
	}{
		{"hardened", func(t *testing.T) string {
			return buildC(t, "-O2", "-fPIE", "-pie", "-Wl,-z,relro,-z,now", "-Wl,-z,noexecstack")
		}, Pass, "PIE, full RELRO"},
		{"no pie, partial relro", func(t *testing.T) string {
			return buildC(t, "-O2", "-fno-pie", "-no-pie", "-Wl,-z,relro,-z,lazy")
		}, Fail, "missing PIE"},
		{"not ELF", func(*testing.T) string { return notELF }, Fail, "hardening:"},
		{"missing", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }, Fail, "no such file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := CheckBinary(Host{Executable: c.exe(t)})
			if r.Status != c.want || !strings.Contains(r.Detail, c.detail) {
				t.Errorf("got %s %q, want %s containing %q", r.Status, r.Detail, c.want, c.detail)
			}
		})
	}
}

func TestAnyFail(t *testing.T) {
	cases := []struct {
		in   []Status
		want bool
	}{
		{nil, false},
		{[]Status{Pass, Warn}, false},
		{[]Status{Pass, Fail, Warn}, true},
	}
	for _, c := range cases {
		var rs []Result
		for _, s := range c.in {
			rs = append(rs, Result{Status: s})
		}
		if got := AnyFail(rs); got != c.want {
			t.Errorf("AnyFail(%v) = %v, want %v", c.in, got, c.want)
		}
	}
}

// TestRealHost runs the audit on the machine the tests run on: every check
// must run and give a complete result with a valid status. The verdicts
// themselves depend on the host and are not asserted.
func TestRealHost(t *testing.T) {
	rs := Run(Host{})
	wantIDs := []string{"GOVMM-KVM-1", "GOVMM-LSM-1", "GOVMM-KSM-1", "GOVMM-MEM-1", "GOVMM-MEM-2",
		"GOVMM-CG-1", "GOVMM-USERNS-1", "GOVMM-ASLR-1", "GOVMM-ELF-1"}
	if len(rs) != len(wantIDs) {
		t.Fatalf("%d results, want %d", len(rs), len(wantIDs))
	}
	for i, r := range rs {
		t.Logf("%s %s %s: %s", r.Status, r.ID, r.Reference, r.Detail)
		if r.ID != wantIDs[i] {
			t.Errorf("result %d is %s, want %s", i, r.ID, wantIDs[i])
		}
		switch r.Status {
		case Pass, Warn, Fail:
		default:
			t.Errorf("%s: invalid status %q", r.ID, r.Status)
		}
		if r.Reference == "" || r.Title == "" || r.Detail == "" || r.Fix == "" {
			t.Errorf("%s: incomplete result %+v", r.ID, r)
		}
	}
}
