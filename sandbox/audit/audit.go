// Package audit is `govmm check`: a read-only audit of the host a VMM is
// about to run on, against the NIST SP 800-125A Rev. 1 and BSI
// IT-Grundschutz SYS.1.5 recommendations that a host setting can satisfy or
// break. Each check reads a few files under /proc, /sys and /dev and never
// changes anything: an audit that fixes things would hide the state it was
// asked to report.
//
// References name the NIST baseline function (HY-BF1..5 of SP 800-125A
// Rev. 1) or the BSI requirement (SYS.1.5.An) whose intent the check
// serves. They are the closest matching recommendation, not a claim that
// the document names the Linux setting: neither document is Linux-specific.
package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/govmm/govmm/internal/hardening"
)

// Status is the verdict of one check.
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN" // weaker than recommended; govmm still runs
	Fail Status = "FAIL" // contradicts a recommendation outright
)

// Result is one check's finding. The JSON names are part of the
// `govmm check --json` interface: scripts parse them, so they do not change.
type Result struct {
	ID        string `json:"id"`
	Reference string `json:"reference"`
	Title     string `json:"title"`
	Status    Status `json:"status"`
	Detail    string `json:"detail"`
	Fix       string `json:"fix"`
}

// Recommendation identifiers used in Result.Reference.
const (
	refNISTIsolation = "NIST SP 800-125A Rev.1 HY-BF1" // VM process isolation
	refNISTDevEmu    = "NIST SP 800-125A Rev.1 HY-BF2" // device emulation (the VMM's own code)
	refNISTMgmt      = "NIST SP 800-125A Rev.1 HY-BF5" // management of the hypervisor platform
	refBSIConfig     = "BSI SYS.1.5.A3"                // Sichere Konfiguration virtueller IT-Systeme
	refBSIPlanning   = "BSI SYS.1.5.A8"                // Planung einer virtuellen Infrastruktur
	refBSIProtection = "BSI SYS.1.5.A15"               // Gast-Betriebssysteme mit unterschiedlichem Schutzbedarf
)

// Host says where the audit looks. The zero value audits the running host.
type Host struct {
	// Root is prepended to every host path (/dev, /proc, /sys, /etc), so
	// tests can lay out a fake host in a temporary directory. Empty means /.
	Root string
	// Stat stats a file; nil means os.Stat. It exists because tests cannot
	// portably create a character device or chown one to another user.
	Stat func(name string) (fs.FileInfo, error)
	// Executable is the binary whose hardening is checked; empty means
	// os.Executable(), i.e. govmm itself.
	Executable string
}

func (h Host) path(p string) string {
	if h.Root == "" {
		return p
	}
	return filepath.Join(h.Root, p)
}

// read returns the trimmed contents of a host file.
func (h Host) read(p string) (string, error) {
	b, err := os.ReadFile(h.path(p))
	return string(bytes.TrimSpace(b)), err
}

func (h Host) stat(p string) (fs.FileInfo, error) {
	if h.Stat != nil {
		return h.Stat(h.path(p))
	}
	return os.Stat(h.path(p))
}

// Check is one audit step.
type Check func(Host) Result

// Checks are all checks, in report order.
var Checks = []Check{
	CheckKVM, CheckLSM, CheckKSM, CheckOvercommit, CheckTHP,
	CheckCgroups, CheckUserNS, CheckASLR, CheckBinary,
}

// Run runs every check on h.
func Run(h Host) []Result {
	out := make([]Result, 0, len(Checks))
	for _, c := range Checks {
		out = append(out, c(h))
	}
	return out
}

// AnyFail reports whether some result is a FAIL: `govmm check` then exits 1.
func AnyFail(rs []Result) bool {
	return slices.ContainsFunc(rs, func(r Result) bool { return r.Status == Fail })
}

// FixNoKVM is the remedy for a host without a usable /dev/kvm, as `govmm
// check` and `govmm run` both give it.
const FixNoKVM = "load kvm_intel or kvm_amd (modprobe) and enable virtualization in the firmware (nested virtualization if this host is a VM)"

// CheckKVM: whoever can open /dev/kvm can create VMs and reach the whole
// KVM ioctl surface of the host kernel, so access must be limited to root
// and a dedicated group.
func CheckKVM(h Host) Result {
	r := Result{ID: "GOVMM-KVM-1", Reference: refNISTMgmt, Title: "/dev/kvm mode and owner"}
	fi, err := h.stat("/dev/kvm")
	if err != nil {
		r.Status, r.Detail = Fail, fmt.Sprintf("/dev/kvm: %v", unwrapPath(err))
		r.Fix = FixNoKVM
		return r
	}
	if fi.Mode()&fs.ModeCharDevice == 0 {
		r.Status, r.Detail = Fail, fmt.Sprintf("/dev/kvm is not a character device (mode %v)", fi.Mode())
		r.Fix = "remove the file and let udev recreate /dev/kvm (char 10:232)"
		return r
	}
	perm := fi.Mode().Perm()
	uid, gid := -1, -1
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	group := h.groupName(gid)
	r.Detail = fmt.Sprintf("/dev/kvm %#o uid %d gid %d (%s)", perm, uid, gid, group)
	r.Fix = "chown root:kvm /dev/kvm && chmod 0660 /dev/kvm (persist with a udev rule)"
	switch {
	case perm&0o002 != 0:
		// Write without read still lets nobody open O_RDWR, but a mode
		// that grants it to the world is wrong whatever the read bit says.
		r.Status = Fail
		r.Detail += ": world-writable, every local user can create VMs"
	case uid != 0:
		r.Status = Fail
		r.Detail += ": not owned by root"
	case perm&0o004 != 0:
		r.Status = Warn
		r.Detail += ": world-readable"
	case gid != 0 && group != "kvm":
		r.Status = Warn
		r.Detail += ": group is neither kvm nor root"
	default:
		r.Status, r.Fix = Pass, "none needed"
	}
	return r
}

// groupName resolves gid through the host's /etc/group (under Root), not
// os/user, so that tests' fake hosts are honoured.
func (h Host) groupName(gid int) string {
	if gid == 0 {
		return "root"
	}
	data, err := h.read("/etc/group")
	if err == nil {
		for _, line := range strings.Split(data, "\n") {
			f := strings.Split(line, ":")
			if len(f) >= 3 && f[2] == fmt.Sprint(gid) {
				return f[0]
			}
		}
	}
	return "unknown group"
}

// CheckLSM: without a MAC module the only thing between an escaped VMM and
// the host is DAC, namespaces and seccomp; sVirt-style confinement needs
// SELinux, AppArmor or Landlock.
func CheckLSM(h Host) Result {
	r := Result{ID: "GOVMM-LSM-1", Reference: refNISTIsolation, Title: "mandatory access control (LSM)"}
	r.Fix = "boot a kernel with SELinux, AppArmor or Landlock (lsm= on the kernel command line)"
	list, err := h.read("/sys/kernel/security/lsm")
	if err != nil {
		r.Status = Warn
		r.Detail = "no SELinux/AppArmor/Landlock: MAC confinement unavailable (" + describeMissing(h, "/sys/kernel/security/lsm", err) + ")"
		return r
	}
	var mac []string
	for _, m := range strings.Split(list, ",") {
		if m == "selinux" || m == "apparmor" || m == "landlock" {
			mac = append(mac, m)
		}
	}
	if len(mac) == 0 {
		r.Status = Warn
		r.Detail = fmt.Sprintf("no SELinux/AppArmor/Landlock: MAC confinement unavailable (active LSMs: %q)", list)
		return r
	}
	r.Status, r.Fix = Pass, "none needed"
	r.Detail = "MAC available: " + strings.Join(mac, ", ") + " (active LSMs: " + list + ")"
	return r
}

// CheckKSM: page deduplication across VMs is a timing side channel (a
// write to a merged page is slow, which reveals the other VM's contents).
func CheckKSM(h Host) Result {
	r := Result{ID: "GOVMM-KSM-1", Reference: refBSIProtection, Title: "kernel samepage merging (KSM)"}
	v, err := h.read("/sys/kernel/mm/ksm/run")
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Status, r.Detail, r.Fix = Pass, "KSM not built into this kernel", "none needed"
	case err != nil:
		r.Status, r.Detail = Warn, fmt.Sprintf("cannot read KSM state: %v", unwrapPath(err))
		r.Fix = "run govmm check as root"
	case v == "0":
		r.Status, r.Detail, r.Fix = Pass, "KSM stopped (run=0)", "none needed"
	case v == "2":
		r.Status, r.Detail, r.Fix = Pass, "KSM stopped, merged pages being unmerged (run=2)", "none needed"
	case v == "1":
		r.Status = Warn
		r.Detail = "KSM running (run=1): govmm marks its guest RAM unmergeable, but other VMMs' pages may be merged: cross-VM side channels"
		r.Fix = "echo 2 > /sys/kernel/mm/ksm/run (stop and unmerge)"
	default:
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("unknown KSM state run=%q", v), "echo 2 > /sys/kernel/mm/ksm/run"
	}
	return r
}

// CheckOvercommit: with "always" the kernel promises memory it may not
// have, and a VM that touches its RAM late is then killed by the OOM
// killer instead of failing at start.
func CheckOvercommit(h Host) Result {
	r := Result{ID: "GOVMM-MEM-1", Reference: refBSIPlanning, Title: "memory overcommit policy"}
	v, err := h.read("/proc/sys/vm/overcommit_memory")
	switch {
	case err != nil:
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("cannot read overcommit policy: %v", unwrapPath(err)), "mount /proc"
	case v == "1":
		r.Status = Warn
		r.Detail = "vm.overcommit_memory=1 (always): allocations never fail, guests die to the OOM killer instead"
		r.Fix = "sysctl -w vm.overcommit_memory=0 (or 2), or run guests with --prefault"
	case v == "0":
		r.Status, r.Detail, r.Fix = Pass, "vm.overcommit_memory=0 (heuristic: obvious overcommits are refused)", "none needed"
	case v == "2":
		r.Status, r.Detail, r.Fix = Pass, "vm.overcommit_memory=2 (never: commit limited by vm.overcommit_ratio)", "none needed"
	default:
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("unknown vm.overcommit_memory=%q", v), "sysctl -w vm.overcommit_memory=0"
	}
	return r
}

// CheckTHP: govmm asks for huge pages explicitly (--hugepages, hugetlbfs);
// with THP "always" every anonymous mapping, every VMM's guest RAM
// included, is collapsed into huge pages in the background by khugepaged,
// so a VM's resident memory grows beyond what its guest touched and host
// memory planning becomes guesswork. "madvise" keeps THP opt-in.
func CheckTHP(h Host) Result {
	r := Result{ID: "GOVMM-MEM-2", Reference: refBSIPlanning, Title: "transparent huge pages"}
	v, err := h.read("/sys/kernel/mm/transparent_hugepage/enabled")
	if errors.Is(err, fs.ErrNotExist) {
		r.Status, r.Detail, r.Fix = Pass, "THP not built into this kernel", "none needed"
		return r
	}
	if err != nil {
		r.Status, r.Detail, r.Fix = Warn, fmt.Sprintf("cannot read THP mode: %v", unwrapPath(err)), "mount /sys"
		return r
	}
	mode := selected(v)
	switch mode {
	case "always":
		r.Status = Warn
		r.Detail = "THP [always]: khugepaged collapses all anonymous memory, guest RAM included, so per-VM memory use is unpredictable"
		r.Fix = "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"
	case "madvise", "never":
		r.Status, r.Fix = Pass, "none needed"
		r.Detail = "THP [" + mode + "]: huge pages only where a process asks for them"
	default:
		r.Status, r.Detail = Warn, fmt.Sprintf("unrecognised THP setting %q", v)
		r.Fix = "echo madvise > /sys/kernel/mm/transparent_hugepage/enabled"
	}
	return r
}

// selected returns the bracketed word of a sysfs choice list such as
// "always [madvise] never".
func selected(s string) string {
	for _, w := range strings.Fields(s) {
		if len(w) > 2 && w[0] == '[' && w[len(w)-1] == ']' {
			return w[1 : len(w)-1]
		}
	}
	return ""
}

// CheckCgroups: per-VM CPU, memory and pids limits are what keep one VM
// from starving the others; cgroup v2 gives them a single, delegable
// hierarchy, v1 splits them across controllers with weaker semantics.
func CheckCgroups(h Host) Result {
	r := Result{ID: "GOVMM-CG-1", Reference: refNISTIsolation, Title: "cgroup hierarchy"}
	mi, err := h.read("/proc/self/mountinfo")
	if err != nil {
		r.Status, r.Detail, r.Fix = Fail, fmt.Sprintf("cannot read mountinfo: %v", unwrapPath(err)), "mount /proc"
		return r
	}
	var v2 []string // cgroup2 mount points
	var v1 []string // cgroup v1 hierarchies, by mount point base name
	sc := bufio.NewScanner(strings.NewReader(mi))
	for sc.Scan() {
		// Fields: id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 {
			continue
		}
		mp := unescapeMount(f[4])
		switch g[0] {
		case "cgroup2":
			v2 = append(v2, mp)
		case "cgroup":
			v1 = append(v1, filepath.Base(mp))
		}
	}
	// The controllers usable in v2 are those of the v2 root; on a hybrid
	// host they are the ones no v1 hierarchy has claimed.
	var ctrls string
	if len(v2) > 0 {
		ctrls, _ = h.read(filepath.Join(v2[0], "cgroup.controllers"))
	}
	switch {
	case len(v2) == 0 && len(v1) == 0:
		r.Status, r.Detail = Fail, "no cgroup hierarchy mounted: govmm cannot limit a VM's CPU, memory or pids"
		r.Fix = "mount -t cgroup2 none /sys/fs/cgroup"
	case len(v1) > 0:
		r.Status = Warn
		r.Detail = "cgroup v1 hierarchies: " + strings.Join(v1, ",")
		if len(v2) > 0 {
			r.Detail = fmt.Sprintf("hybrid: %s; cgroup2 at %s with controllers %q", r.Detail, v2[0], ctrls)
		}
		r.Fix = "boot with systemd.unified_cgroup_hierarchy=1 (cgroup v2 only)"
	case ctrls == "":
		r.Status = Warn
		r.Detail = fmt.Sprintf("cgroup2 at %s has no controllers", v2[0])
		r.Fix = "enable cpu, memory and pids in cgroup2 (cgroup_no_v1=all on the kernel command line)"
	default:
		r.Status, r.Fix = Pass, "none needed"
		r.Detail = fmt.Sprintf("cgroup2 at %s, controllers: %s", v2[0], ctrls)
	}
	return r
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space, etc.).
func unescapeMount(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// CheckUserNS: unprivileged user namespaces hand every local user a
// "root" that can reach kernel code (netfilter, mount, filesystems) normally
// gated by CAP_SYS_ADMIN, a steady source of privilege escalations.
func CheckUserNS(h Host) Result {
	r := Result{ID: "GOVMM-USERNS-1", Reference: refBSIConfig, Title: "unprivileged user namespaces"}
	clone, cerr := h.read("/proc/sys/kernel/unprivileged_userns_clone") // Debian/Ubuntu patch
	max, merr := h.read("/proc/sys/user/max_user_namespaces")
	r.Fix = "sysctl -w user.max_user_namespaces=0 (or kernel.unprivileged_userns_clone=0 on Debian), if no rootless containers need them"
	var seen []string
	if cerr == nil {
		seen = append(seen, "kernel.unprivileged_userns_clone="+clone)
	}
	if merr == nil {
		seen = append(seen, "user.max_user_namespaces="+max)
	}
	switch {
	case cerr != nil && merr != nil:
		r.Status, r.Detail = Warn, "cannot read user namespace sysctls: "+describeMissing(h, "/proc/sys/user/max_user_namespaces", merr)
	case (cerr == nil && clone == "0") || (merr == nil && max == "0"):
		r.Status, r.Fix = Pass, "none needed"
		r.Detail = "disabled for unprivileged users (" + strings.Join(seen, ", ") + ")"
	default:
		r.Status = Warn
		r.Detail = "enabled for unprivileged users (" + strings.Join(seen, ", ") + "): extra kernel attack surface"
	}
	return r
}

// CheckASLR: without full randomisation an exploit in the device model
// knows where the VMM's heap and libraries are.
func CheckASLR(h Host) Result {
	r := Result{ID: "GOVMM-ASLR-1", Reference: refBSIConfig, Title: "address space layout randomisation"}
	v, err := h.read("/proc/sys/kernel/randomize_va_space")
	r.Fix = "sysctl -w kernel.randomize_va_space=2"
	switch {
	case err != nil:
		r.Status, r.Detail = Fail, fmt.Sprintf("cannot read kernel.randomize_va_space: %v", unwrapPath(err))
	case v == "2":
		r.Status, r.Detail, r.Fix = Pass, "kernel.randomize_va_space=2 (stack, mmap, vDSO and heap randomised)", "none needed"
	case v == "1":
		r.Status, r.Detail = Warn, "kernel.randomize_va_space=1: the heap (brk) is not randomised"
	case v == "0":
		r.Status, r.Detail = Fail, "kernel.randomize_va_space=0: ASLR off"
	default:
		r.Status, r.Detail = Warn, fmt.Sprintf("unknown kernel.randomize_va_space=%q", v)
	}
	return r
}

// CheckBinary: the VMM's device emulation parses guest-controlled data;
// PIE, full RELRO, NX stack and no RWX segments are what make a memory bug
// there hard to turn into code execution.
func CheckBinary(h Host) Result {
	r := Result{ID: "GOVMM-ELF-1", Reference: refNISTDevEmu, Title: "hardening of the govmm binary"}
	r.Fix = "build with make build (PIE, -z relro -z now, -z noexecstack)"
	exe := h.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			r.Status, r.Detail = Fail, fmt.Sprintf("cannot find own executable: %v", err)
			return r
		}
	}
	rep, err := hardening.CheckFile(exe)
	if err != nil {
		r.Status, r.Detail = Fail, fmt.Sprintf("%s: %v", exe, err)
		return r
	}
	var failed, advisory []string
	for _, e := range rep.Entries {
		switch e.Status() {
		case "FAIL":
			failed = append(failed, e.Name+" ("+e.Detail+")")
		case "WARN":
			advisory = append(advisory, e.Name)
		}
	}
	if !rep.OK() {
		r.Status = Fail
		r.Detail = exe + ": missing " + strings.Join(failed, "; ")
		return r
	}
	r.Status, r.Fix = Pass, "none needed"
	r.Detail = exe + ": PIE, full RELRO, NX stack, no RWX segments"
	// Advisory properties (C stack protector, FORTIFY) do not lower the
	// verdict: Go's runtime/cgo is built without them whatever we ask, so
	// a WARN here would be permanent noise on every correct build.
	if len(advisory) > 0 {
		r.Detail += "; advisory not met: " + strings.Join(advisory, ", ")
	}
	return r
}

// unwrapPath drops the path from a *fs.PathError: the detail line already
// names the file, and with a test Root the full path is only noise.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// describeMissing says which part of a missing path is absent, because
// "/sys/kernel/security absent" (no securityfs: no LSM at all) and a
// missing file under it mean different things to an administrator.
func describeMissing(h Host, p string, err error) string {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Sprintf("%s: %v", p, unwrapPath(err))
	}
	missing := p
	for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
		if _, e := os.Stat(h.path(d)); e == nil {
			break
		}
		missing = d
	}
	return missing + " absent"
}
