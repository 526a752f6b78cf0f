//go:build linux && amd64

package seccomp

import (
	"sort"

	"golang.org/x/sys/unix"
)

// This file is the policy: which system calls each program allows, with
// which arguments, and why. Everything else in the package only compiles
// and loads it. The lists were found by reading the code each thread runs
// (vmm/vcpu_linux.go, vmm/worker_linux.go, devices/virtio/blk,
// cmd/govmm/main.go, the Go runtime in $GOROOT/src/runtime) and checked
// against strace of `govmm run` with the vblk and vblk_hostile guests,
// classified by thread; docs/seccomp.md has the method and the result.
//
// Not allowed anywhere, on purpose: open/openat (every file is opened
// during set-up), execve/execveat, fork/vfork and clone without
// CLONE_THREAD, ptrace, process_vm_readv/writev, kill (only tgkill, and
// only within this process), mprotect/mmap with PROT_EXEC, pkey_mprotect,
// mremap, io_uring_*, bpf, perf_event_open, userfaultfd, keyctl, mount and
// every namespace call.

// cond is a masked-equality test on one system call argument:
// (args[arg] & mask) == value. Masked equality is the only comparison the
// policy uses: it expresses "bit clear", "bit set" and "equals" alike, and
// with a 32-bit mask it ignores the upper half of arguments the kernel
// itself truncates to int (ioctl's cmd, socket's family, futex's op), so a
// caller cannot dodge a rule by setting bits the kernel never looks at.
type cond struct {
	arg   uint
	mask  uint64
	value uint64
}

// rule allows one system call: unconditionally when alts is empty,
// otherwise when every cond of at least one alternative holds.
type rule struct {
	name string
	alts [][]cond
}

const low32 = 0xffffffff

// eq32 matches an argument the kernel reads as a 32-bit int.
func eq32(arg uint, v uint64) cond { return cond{arg: arg, mask: low32, value: v} }

// eq64 matches a full 64-bit argument (unsigned long).
func eq64(arg uint, v uint64) cond { return cond{arg: arg, mask: ^uint64(0), value: v} }

// oneOf32 allows name when argument arg is one of vals.
func oneOf32(name string, arg uint, vals ...uint64) rule {
	r := rule{name: name}
	for _, v := range vals {
		r.alts = append(r.alts, []cond{eq32(arg, v)})
	}
	return r
}

// Kernel ABI values x/sys/unix does not export.
const (
	futexWait        = 0
	futexWake        = 1
	futexRequeue     = 3
	futexCmpRequeue  = 4
	futexWakeOp      = 5
	futexWaitBitset  = 9
	futexWakeBitset  = 10
	futexPrivateFlag = 128
	futexClockRT     = 256
)

// futexRule allows the plain wait/wake/requeue operations, with or without
// FUTEX_PRIVATE_FLAG and FUTEX_CLOCK_REALTIME, and nothing else. The Go
// runtime uses only FUTEX_WAIT_PRIVATE and FUTEX_WAKE_PRIVATE
// (runtime/os_linux.go); glibc's locks and condition variables (run by
// cgo's thread creation) use the rest of this set. The priority-inheritance
// operations (LOCK_PI, UNLOCK_PI, TRYLOCK_PI, LOCK_PI2, WAIT_REQUEUE_PI,
// CMP_REQUEUE_PI) are refused: no code of ours uses them and they are the
// futex code with the worst history of kernel exploits (CVE-2014-3153
// among them). This is the set Chromium's sandbox allows.
func futexRule() rule {
	r := rule{name: "futex"}
	cmdMask := uint64(low32 &^ (futexPrivateFlag | futexClockRT))
	for _, op := range []uint64{futexWait, futexWake, futexRequeue, futexCmpRequeue, futexWakeOp, futexWaitBitset, futexWakeBitset} {
		r.alts = append(r.alts, []cond{{arg: 1, mask: cmdMask, value: op}})
	}
	return r
}

// noExec allows mmap or mprotect only without PROT_EXEC (argument 2): no
// thread may create executable memory, so code that got control of one
// cannot load more code; it has to make do with the calls its filter
// allows.
func noExec(name string) rule {
	return rule{name: name, alts: [][]cond{{{arg: 2, mask: unix.PROT_EXEC, value: 0}}}}
}

// madviseRule allows the advice the Go runtime gives its heap
// (runtime/mem_linux.go: MADV_DONTNEED or MADV_FREE to release pages,
// MADV_HUGEPAGE, MADV_NOHUGEPAGE and MADV_COLLAPSE for transparent huge
// pages) and glibc gives a dead thread's stack (MADV_DONTNEED). Refused,
// among others: MADV_MERGEABLE, which would hand guest RAM back to KSM
// (memory.New marks it MADV_UNMERGEABLE: no page sharing between VMs),
// and MADV_DODUMP, which would put guest RAM back into core dumps.
func madviseRule() rule {
	return oneOf32("madvise", 2, unix.MADV_DONTNEED, unix.MADV_FREE, unix.MADV_HUGEPAGE, unix.MADV_NOHUGEPAGE, unix.MADV_COLLAPSE)
}

// runtimeRules is what the Go runtime may do on ANY thread at any time,
// including a vCPU or device thread locked with LockOSThread, and what a
// locked thread does when its goroutine exits and the thread dies. pid is
// this process's id, the only thread group tgkill may signal.
func runtimeRules(pid int) []rule {
	return []rule{
		// nanotime/walltime go through the vDSO; the kernel falls back
		// to the system call where the clock source has no vDSO support
		// (hpet, acpi_pm, some hypervisors).
		{name: "clock_gettime"},
		// startTheWorldWithSema polls the netpoller without blocking
		// (netpoll(0)) on whichever thread restarts the world, and a
		// goroutine that allocates (a vCPU handling an exit, a device
		// worker) can be the one that started a GC and so restarts it.
		{name: "epoll_pwait"},
		// exit: a locked goroutine that returns takes its thread with it
		// (runtime.gdestroy -> mexit; with cgo, glibc's start_thread ends
		// in exit). exit_group: os.Exit and fatal runtime errors.
		{name: "exit"},
		{name: "exit_group"},
		// Every sleep and wake-up of the scheduler, runtime locks,
		// notes; sync.Mutex contention ends here too.
		futexRule(),
		// getpid, tgkill: preemption (runtime.signalM sends SIGURG with
		// tgkill(getpid(), tid)), which the GC uses from any thread, and
		// vmm's vCPU kick. gettid: runtime.raise in crash paths and minit.
		{name: "getpid"},
		{name: "gettid"},
		{name: "tgkill", alts: [][]cond{{eq32(0, uint64(pid))}}},
		// The heap: growth (mmap), scavenging and huge-page advice
		// (madvise), freeing (munmap) all happen on the allocating
		// thread. glibc's thread exit returns the stack with
		// madvise(MADV_DONTNEED).
		madviseRule(),
		noExec("mmap"),
		{name: "munmap"},
		// runtime.usleep (osyield/usleep back-off in suspendG, runqgrab,
		// lock spinning) and sched_yield.
		{name: "nanosleep"},
		{name: "sched_yield"},
		// Go 1.25+ names its anonymous mappings (runtime.setVMAName) on
		// kernels with CONFIG_ANON_VMA_NAME; only that prctl is allowed.
		{name: "prctl", alts: [][]cond{{eq32(0, unix.PR_SET_VMA), eq64(1, unix.PR_SET_VMA_ANON_NAME)}}},
		// A nanosleep or timed futex wait interrupted by a signal that
		// runs no handler (SIGSTOP/SIGCONT: job control, the cgroup
		// freezer, a debugger) is resumed by the kernel through
		// restart_syscall, which seccomp sees as a call of its own.
		{name: "restart_syscall"},
		// Signals: the handler's return (rt_sigreturn), the signal mask
		// and alternate stack a thread sets up in minit and tears down in
		// mexit (rt_sigprocmask, sigaltstack).
		{name: "rt_sigprocmask"},
		{name: "rt_sigreturn"},
		{name: "sigaltstack"},
		// Fatal error reports (fd 2), netpollBreak's eventfd write when a
		// goroutine readies a timer, and on our side serial output,
		// irqfd and eventfd writes, log lines, the pipe to the jailer.
		{name: "write"},
	}
}

// Request numbers for the vCPU program (see ioctl_linux.go for how they
// are computed and checked).
var vcpuIoctls = []uint64{
	kvmRun,      // vcpu.loop: enter the guest
	kvmGetRegs,  // vcpu.dump: register dump of a crash or VMM error
	kvmGetSregs, // vcpu.dump
	// The 16550A raises its interrupt while the guest writes THR or IER,
	// i.e. on the vCPU thread, with KVM_IRQ_LINE on the VM fd
	// (vmm.irqLine.SetLevel).
	kvmIRQLine,
}

// tunIoctls are what a virtio-net device sets on its tap fd when the
// driver negotiates features: the interface (TUNSETIFF, refused by the
// kernel on an fd that is already attached, so it cannot attach another
// interface), the offloads and the vnet header size.
var tunIoctls = []uint64{unix.TUNSETIFF, unix.TUNSETOFFLOAD, unix.TUNSETVNETHDRSZ}

// classRules is what one class needs on top of the runtime.
func classRules(c Class, opts Options) []rule {
	switch c {
	case ClassVCPU:
		// The exit path is KVM_RUN, device register accesses (pure Go:
		// bus dispatch, the UART, the virtio-mmio registers), serial
		// output (write on stdout or the console file), interrupts
		// (KVM_IRQ_LINE, irqfd write), the i8042 reset ending the VM
		// (tgkill of the other vCPUs) and, on a crash, the register dump.
		return []rule{oneOf32("ioctl", 1, vcpuIoctls...)}
	case ClassDevice:
		r := []rule{
			// deviceWorker.loop: drain an ioeventfd or the stop eventfd.
			{name: "read"},
			// blk: preadv/pwritev straight into guest memory, pread64/
			// pwrite64 through the O_DIRECT bounce buffer.
			{name: "pread64"},
			{name: "preadv"},
			{name: "pwrite64"},
			{name: "pwritev"},
			// blk FLUSH, and DISCARD/WRITE_ZEROES (punch hole, zero range).
			{name: "fdatasync"},
			{name: "fallocate"},
		}
		if opts.Net {
			r = append(r,
				rule{name: "readv"}, // frames from the tap
				rule{name: "writev"},
				oneOf32("ioctl", 1, tunIoctls...))
		}
		return r
	case ClassAPI:
		return []rule{
			// The jailer pipe and the management connection.
			{name: "read"},
			// VM.Close: KVM, eventfd, image and memfd descriptors;
			// closing sockets and pipes.
			{name: "close"},
			// The netpoller registers every socket and pipe the API
			// opens or accepts, and removes it on close.
			{name: "epoll_ctl"},
			// os.NewFile's and SetNonblock's O_NONBLOCK probe and set.
			oneOf32("fcntl", 1, unix.F_GETFL, unix.F_SETFL),
			// signal.Ignore/Reset and os/signal's crash path restore
			// default handlers.
			{name: "rt_sigaction"},
			// The management socket: local only, never the network.
			oneOf32("socket", 0, unix.AF_UNIX),
			// net.Listen sets SO_REUSEADDR; nothing else.
			{name: "setsockopt", alts: [][]cond{{eq32(1, unix.SOL_SOCKET), eq32(2, unix.SO_REUSEADDR)}}},
			{name: "bind"},
			{name: "listen"},
			{name: "accept4"},
			{name: "connect"},
			// net fills in the local and remote addresses of every
			// listener and connection.
			{name: "getsockname"},
			{name: "getpeername"},
		}
	}
	return nil
}

// cloneMask is CLONE_THREAD and every namespace flag clone(2) accepts.
// CLONE_NEWTIME is left out: in clone(2) that bit is part of the exit
// signal byte.
const cloneMask = unix.CLONE_THREAD | unix.CLONE_NEWNS | unix.CLONE_NEWCGROUP | unix.CLONE_NEWUTS |
	unix.CLONE_NEWIPC | unix.CLONE_NEWUSER | unix.CLONE_NEWPID | unix.CLONE_NEWNET

// baselineRules is what ordinary Go threads need besides the runtime and
// the union of the classes: thread creation, which never happens on a
// locked class thread (see InstallThread), the netpoller and sysmon, and
// loading the class programs.
func baselineRules() []rule {
	return []rule{
		// New Ms. CLONE_THREAD (which the kernel only accepts with
		// CLONE_SIGHAND and CLONE_VM) makes a thread, never a process,
		// and no namespace flag may come with it. glibc's pthread_create
		// (cgo builds) tries clone3 first and falls back to this when
		// clone3 returns ENOSYS, which every program answers.
		{name: "clone", alts: [][]cond{{{arg: 0, mask: cloneMask, value: unix.CLONE_THREAD}}}},
		// glibc's pthread_create: the new stack's guard page (mmap
		// PROT_NONE, then mprotect the rest read-write), malloc arenas
		// (mprotect, brk); in the new thread, rseq and set_robust_list.
		noExec("mprotect"),
		{name: "brk"},
		{name: "rseq"},
		{name: "set_robust_list"},
		// The netpoller: findRunnable's blocking poll drains the
		// netpollBreak eventfd (read); ordinary goroutines register the
		// fds they open (epoll_ctl); the console input pump reads stdin.
		{name: "read"},
		{name: "epoll_ctl"},
		{name: "close"},
		// sysmon's GOMAXPROCS check (runtime.defaultGOMAXPROCS): the CPU
		// affinity mask, and the cgroup cpu.max file kept open since
		// start-up, re-read with pread.
		{name: "sched_getaffinity"},
		{name: "pread64"},
		// rt_sigaction: os/signal.Notify of a new signal, crash paths.
		{name: "rt_sigaction"},
		// InstallThread on every class thread adds its program. A new
		// filter can only narrow what is allowed, so this gives nothing
		// away; flags must be 0 (no TSYNC, no listener, and not
		// SECCOMP_FILTER_FLAG_SPEC_ALLOW, which would turn off the
		// speculative store bypass mitigation).
		{name: "seccomp", alts: [][]cond{{eq32(0, unix.SECCOMP_SET_MODE_FILTER), eq32(1, 0)}}},
	}
}

// policy is the resolved rule set of every program.
type policy struct {
	baseline []rule
	class    [numClasses][]rule
}

func newPolicy(opts Options, pid int) policy {
	var p policy
	rt := runtimeRules(pid)
	all := [][]rule{rt, baselineRules()}
	for c := Class(0); c < numClasses; c++ {
		cr := classRules(c, opts)
		p.class[c] = merge(rt, cr)
		all = append(all, cr)
	}
	p.baseline = merge(all...)
	return p
}

// merge unions rule sets: one rule per name, unconditional if any input
// is, otherwise the alternatives of all inputs. The result is sorted by
// name so that programs and reports are deterministic.
func merge(sets ...[]rule) []rule {
	byName := map[string]*rule{}
	for _, set := range sets {
		for _, r := range set {
			m, ok := byName[r.name]
			if !ok {
				c := rule{name: r.name, alts: append([][]cond(nil), r.alts...)}
				byName[r.name] = &c
				continue
			}
			if len(m.alts) == 0 || len(r.alts) == 0 {
				m.alts = nil // unconditional wins
				continue
			}
			for _, a := range r.alts {
				if !hasAlt(m.alts, a) {
					m.alts = append(m.alts, a)
				}
			}
		}
	}
	out := make([]rule, 0, len(byName))
	for _, r := range byName {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func hasAlt(alts [][]cond, a []cond) bool {
	for _, b := range alts {
		if len(a) != len(b) {
			continue
		}
		same := true
		for i := range a {
			if a[i] != b[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func names(rules []rule) []string {
	out := make([]string, len(rules))
	for i, r := range rules {
		out[i] = r.name
	}
	return out
}
