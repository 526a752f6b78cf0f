//go:build linux && amd64

package seccomp

import (
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKVMIoctlNumbers checks the request numbers computed in
// ioctl_linux.go against the kernel headers: the values kvm's
// TestIoctlNumbers pins (printed by kvm/testdata/cabi.c) and, where gcc is
// installed, the output of testdata/ioctls.c compiled right now.
func TestKVMIoctlNumbers(t *testing.T) {
	got := map[string]uint64{
		"KVM_RUN": kvmRun, "KVM_GET_REGS": kvmGetRegs, "KVM_GET_SREGS": kvmGetSregs, "KVM_IRQ_LINE": kvmIRQLine,
		"TUNSETIFF": unix.TUNSETIFF, "TUNSETOFFLOAD": unix.TUNSETOFFLOAD, "TUNSETVNETHDRSZ": unix.TUNSETVNETHDRSZ,
	}
	pinned := map[string]uint64{
		"KVM_RUN": 0x0000ae80, "KVM_GET_REGS": 0x8090ae81, "KVM_GET_SREGS": 0x8138ae83, "KVM_IRQ_LINE": 0x4008ae61,
		"TUNSETIFF": 0x400454ca, "TUNSETOFFLOAD": 0x400454d0, "TUNSETVNETHDRSZ": 0x400454d8,
	}
	for name, want := range pinned {
		if got[name] != want {
			t.Errorf("%s = %#x, want %#x", name, got[name], want)
		}
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed: checked against the pinned values only")
	}
	bin := filepath.Join(t.TempDir(), "ioctls")
	if out, err := exec.Command(gcc, "-o", bin, filepath.Join("testdata", "ioctls.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc testdata/ioctls.c: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		name, val, ok := strings.Cut(l, " ")
		if !ok {
			t.Fatalf("bad line %q", l)
		}
		want, err := strconv.ParseUint(strings.TrimPrefix(val, "0x"), 16, 64)
		if err != nil {
			t.Fatal(err)
		}
		if g, ok := got[name]; !ok || g != want {
			t.Errorf("%s = %#x, C headers say %#x", name, g, want)
		}
		seen++
	}
	if seen != len(got) {
		t.Errorf("ioctls.c printed %d values, want %d", seen, len(got))
	}
}

// forbidden are calls no program may allow (docs/seccomp.md, "Denied").
var forbidden = []string{
	"open", "openat", "openat2", "creat", "execve", "execveat", "fork", "vfork", "clone3",
	"ptrace", "process_vm_readv", "process_vm_writev", "kill", "tkill", "rt_sigqueueinfo",
	"mremap", "pkey_mprotect", "io_uring_setup", "io_uring_enter", "io_uring_register",
	"bpf", "perf_event_open", "userfaultfd", "mount", "umount2", "unshare", "setns",
	"memfd_create", "init_module", "finit_module", "kexec_load", "keyctl", "add_key",
	"request_key", "personality", "chroot", "pivot_root", "socketpair", "sendmsg", "recvmsg",
	"unlink", "unlinkat", "mknod", "mknodat", "setuid", "setgid", "capset", "prlimit64",
}

func TestPolicy(t *testing.T) {
	for _, opts := range []Options{{Mode: ModeKill}, {Mode: ModeKill, Net: true}, {Mode: ModeLog}} {
		s, err := Build(opts)
		if err != nil {
			t.Fatalf("Build(%+v): %v", opts, err)
		}
		base := s.pol.baseline
		lists := map[string][]string{"baseline": s.BaselineSyscalls()}
		for c := Class(0); c < numClasses; c++ {
			lists[c.String()] = s.Syscalls(c)
			// Stacked filters intersect: the baseline must allow all a
			// class allows, with the same arguments or more.
			for _, r := range s.pol.class[c] {
				i := slices.IndexFunc(base, func(b rule) bool { return b.name == r.name })
				if i < 0 {
					t.Errorf("%+v: %v allows %s, the baseline does not", opts, c, r.name)
					continue
				}
				if len(base[i].alts) == 0 {
					continue
				}
				if len(r.alts) == 0 {
					t.Errorf("%+v: %v allows %s unconditionally, the baseline only with arguments", opts, c, r.name)
				}
				for _, a := range r.alts {
					if !hasAlt(base[i].alts, a) {
						t.Errorf("%+v: %v allows %s with %v, the baseline does not", opts, c, r.name, a)
					}
				}
			}
		}
		for name, l := range lists {
			if !slices.IsSorted(l) || len(slices.Compact(slices.Clone(l))) != len(l) {
				t.Errorf("%+v: %s list not sorted and unique: %v", opts, name, l)
			}
			for _, f := range forbidden {
				if slices.Contains(l, f) {
					t.Errorf("%+v: %s allows %s", opts, name, f)
				}
			}
		}
		// Thread creation, executable memory and sockets stay out of the
		// classes that do not need them.
		for _, c := range []Class{ClassVCPU, ClassDevice, ClassAPI} {
			for _, f := range []string{"clone", "mprotect", "brk", "seccomp"} {
				if slices.Contains(lists[c.String()], f) {
					t.Errorf("%+v: %v allows %s", opts, c, f)
				}
			}
		}
		for _, c := range []Class{ClassVCPU, ClassDevice} {
			for _, f := range []string{"socket", "connect", "accept4", "bind", "listen", "close", "epoll_ctl"} {
				if slices.Contains(lists[c.String()], f) {
					t.Errorf("%+v: %v allows %s", opts, c, f)
				}
			}
		}
		if got := slices.Contains(lists["device"], "readv"); got != opts.Net {
			t.Errorf("%+v: device class allows readv: %v", opts, got)
		}
		if s.Syscalls(Class(5)) != nil {
			t.Errorf("Syscalls(Class(5)) is not nil")
		}
		// Every program's mmap (and the baseline's mprotect) refuses
		// PROT_EXEC.
		for _, rules := range append([][]rule{base}, s.pol.class[:]...) {
			for _, r := range rules {
				if r.name != "mmap" && r.name != "mprotect" {
					continue
				}
				if len(r.alts) != 1 || len(r.alts[0]) != 1 || r.alts[0][0] != (cond{arg: 2, mask: unix.PROT_EXEC}) {
					t.Errorf("%s rule %+v does not refuse PROT_EXEC", r.name, r.alts)
				}
			}
		}
		if len(s.baseline) == 0 || len(s.baseline) > unix.BPF_MAXINSNS {
			t.Errorf("baseline program of %d instructions", len(s.baseline))
		}
	}
	if _, err := Build(Options{Mode: Mode(7)}); err == nil {
		t.Errorf("Build with Mode(7) succeeded")
	}
}

func TestDecode(t *testing.T) {
	for _, n := range []int{0, 7, 9, (unix.BPF_MAXINSNS + 1) * 8} {
		if _, err := decode(make([]byte, n)); err == nil {
			t.Errorf("decode of %d bytes succeeded", n)
		}
	}
	b := []byte{0x20, 0x00, 1, 2, 4, 0, 0, 0}
	p, err := decode(b)
	if err != nil || len(p) != 1 || p[0] != (unix.SockFilter{Code: 0x20, Jt: 1, Jf: 2, K: 4}) {
		t.Errorf("decode = %+v, %v", p, err)
	}
}
