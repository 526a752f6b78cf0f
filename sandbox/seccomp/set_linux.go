//go:build linux && amd64

package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync/atomic"
	"time"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Set is a compiled policy: classic-BPF programs for the baseline and for
// each thread class, ready for seccomp(2). It is built once per process
// (the tgkill rule names this process's pid) and is safe to use from any
// goroutine.
type Set struct {
	opts     Options
	pid      int
	pol      policy
	baseline []unix.SockFilter
	class    [numClasses][]unix.SockFilter
	// installed is set once the baseline is on every thread: a class
	// program loaded without it would leave the runtime's other threads
	// unfiltered, and its seccomp(2) call needs the no_new_privs bit
	// that InstallProcess sets.
	installed atomic.Bool
}

// Build compiles the policy for opts. With ModeOff it compiles nothing,
// and the Install methods do nothing; Syscalls still reports the policy.
func Build(opts Options) (*Set, error) {
	var def libseccomp.ScmpAction
	switch opts.Mode {
	case ModeKill:
		def = libseccomp.ActKillProcess
	case ModeLog:
		def = libseccomp.ActLog
	case ModeOff:
	default:
		return nil, fmt.Errorf("seccomp: %v: want ModeKill, ModeLog or ModeOff", opts.Mode)
	}
	s := &Set{opts: opts, pid: os.Getpid()}
	s.pol = newPolicy(opts, s.pid)
	if opts.Mode == ModeOff {
		return s, nil
	}
	var err error
	if s.baseline, err = compile("baseline", s.pol.baseline, def); err != nil {
		return nil, err
	}
	for c := Class(0); c < numClasses; c++ {
		if s.class[c], err = compile(c.String(), s.pol.class[c], def); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Syscalls returns the sorted names of the system calls the class program
// allows (some only with the arguments docs/seccomp.md lists). clone3 is
// in no list: every program answers it with ENOSYS.
func (s *Set) Syscalls(c Class) []string {
	if !c.valid() {
		return nil
	}
	return names(s.pol.class[c])
}

// BaselineSyscalls returns the sorted names of the system calls the
// process-wide baseline allows: the union of every class and what the Go
// runtime's ordinary threads need.
func (s *Set) BaselineSyscalls() []string { return names(s.pol.baseline) }

// InstallProcess sets no_new_privs and loads the baseline on every thread
// of the process (SECCOMP_FILTER_FLAG_TSYNC); threads created afterwards
// inherit it. Call it once, after set-up and before InstallThread.
//
// It first does, while it still can, the lazy one-time initialisations
// that a thread could otherwise hit later and be killed for: loading the
// local time zone (slog's time stamps open /etc/localtime on first use),
// and starting the netpoller (the first timer creates an epoll fd and an
// eventfd). glibc malloc's look-ups of /sys and /proc are turned off
// before any thread exists (govmm_tame_malloc in malloc_linux.go). It
// then sets no_new_privs, which
// stays set for the life of the process: no later execve can gain
// privileges (set-uid or file capabilities).
func (s *Set) InstallProcess() error {
	if s.opts.Mode == ModeOff {
		return nil
	}
	if pid := os.Getpid(); pid != s.pid {
		return fmt.Errorf("seccomp: set built by process %d cannot be installed in process %d", s.pid, pid)
	}
	if !s.installed.CompareAndSwap(false, true) {
		return errors.New("seccomp: InstallProcess called twice")
	}
	warmUp()
	// no_new_privs is a per-thread bit, and TSYNC copies it only from the
	// calling thread to the others: prctl and seccomp must run on the
	// same thread. The lock is released afterwards because the baseline
	// is the same on every thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		s.installed.Store(false)
		return fmt.Errorf("seccomp: prctl(PR_SET_NO_NEW_PRIVS): %w", err)
	}
	tid, err := load(s.baseline, unix.SECCOMP_FILTER_FLAG_TSYNC)
	if err != nil {
		s.installed.Store(false)
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) of the baseline: %w", err)
	}
	if tid != 0 {
		// TSYNC fails as a whole, returning a thread that cannot take the
		// filter: one that already has a filter of its own (a class
		// program loaded before InstallProcess).
		s.installed.Store(false)
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) of the baseline: thread %d has a different filter", tid)
	}
	return nil
}

// warmUp triggers the standard library's lazy initialisations that make
// system calls no program allows.
func warmUp() {
	_, _ = time.Now().Zone() // loads time.Local: openat, read, close
	// The first timer starts the netpoller (epoll_create1, eventfd2).
	time.AfterFunc(time.Hour, func() {}).Stop()
}

// InstallThread loads the program of class c on the calling OS thread
// only, on top of the baseline; the thread can then make only the calls
// both allow. It locks the calling goroutine to its thread
// (runtime.LockOSThread) if the caller has not already, and the goroutine
// must never unlock it: the filter belongs to the thread, so the
// goroutine must be the only one that ever runs on it.
//
// Why this is safe with the Go runtime (checked against Go 1.26's
// runtime/proc.go). A thread created by clone inherits its creator's
// filter, so a filtered thread must never create the runtime's threads,
// or every later goroutine could inherit the vCPU program. The runtime
// guarantees it never does from a locked thread:
//
//   - newm, which every new M goes through, looks at the calling M: when
//     gp.m.lockedExt != 0 (LockOSThread was called) or gp.m.incgo, it does
//     not clone; it queues the M on newmHandoff and wakes the template
//     thread, which creates it ("We're on a locked M or a thread that may
//     have been started by C. The kernel state of this thread may be
//     strange ... We don't want to clone that into another thread.").
//     This covers every path that reaches newm on a locked M, including
//     startm from handoffp when the locked goroutine blocks and its P is
//     handed off, and wakep when it readies another goroutine. This
//     package's tests start goroutines, allocate and run the GC from
//     class threads under ModeKill, and would be killed if a clone slipped
//     through: no class program allows clone.
//   - The template thread exists before any class filter. In a cgo binary
//     (govmm is one: it links libseccomp) runtime.main starts it before
//     main.main runs ("Start the template thread in case we enter Go from
//     a C-created thread"); otherwise LockOSThread starts it
//     (startTemplateThread) if it is not running, with a plain newm from
//     the still unlocked M, before it increments lockedExt. Either way it
//     is cloned from an ordinary thread before the goroutine that locks
//     can load a class program, so it carries the baseline at most (TSYNC
//     gives it that), and so do the threads it creates.
//   - A locked goroutine runs nowhere else, and no other goroutine runs on
//     its M: schedule() on a locked M only ever hands the P off
//     (stoplockedm) and waits for its own goroutine.
//   - When the goroutine exits still locked, gdestroy sends the M to
//     mstart's exit path instead of the idle pool ("Kill it rather than
//     returning it to the thread pool"): mexit, then the thread exits. The
//     one exception is the main thread m0, which mexit wedges forever
//     instead; it then runs nothing, so its filter is harmless.
//
// Checked against the source of Go 1.26.8, the usual description ("newm
// hands thread creation to the template thread when m.lockedExt != 0; the
// first LockOSThread creates the template thread") holds, with two
// refinements: newm hands off for gp.m.incgo as well, and in cgo binaries
// the template thread predates any LockOSThread. The check is on the M, so
// it also applies when newm runs on that M's system stack (g0), as it does
// from startm.
func (s *Set) InstallThread(c Class) error {
	if !c.valid() {
		return fmt.Errorf("seccomp: InstallThread(%v): no such class", c)
	}
	if s.opts.Mode == ModeOff {
		return nil
	}
	if !s.installed.Load() {
		return fmt.Errorf("seccomp: InstallThread(%v) before InstallProcess", c)
	}
	runtime.LockOSThread() // deliberately never unlocked
	tid, err := load(s.class[c], 0)
	if err != nil {
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER) of the %v program: %w", c, err)
	}
	if tid != 0 {
		return fmt.Errorf("seccomp: seccomp(SECCOMP_SET_MODE_FILTER) of the %v program returned %d", c, tid)
	}
	return nil
}

// compile turns rules into a classic-BPF program with libseccomp: the
// native architecture only (any other ABI, such as int 0x80, gets the
// default action), allow rules, and clone3 answered with ENOSYS.
func compile(what string, rules []rule, def libseccomp.ScmpAction) (_ []unix.SockFilter, err error) {
	f, err := libseccomp.NewFilter(def)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %s program: seccomp_init: %w", what, err)
	}
	defer f.Release()
	if err := f.SetBadArchAction(def); err != nil {
		return nil, fmt.Errorf("seccomp: %s program: bad-arch action: %w", what, err)
	}
	for _, r := range rules {
		if err := addRule(f, r); err != nil {
			return nil, fmt.Errorf("seccomp: %s program: %w", what, err)
		}
	}
	// glibc's pthread_create (the thread creation of cgo builds) calls
	// clone3 first and falls back to clone(2) only on ENOSYS. clone3's
	// flags are in a struct in memory, out of a filter's reach, so it
	// cannot be allowed safely; answering ENOSYS keeps thread creation
	// working through clone(2), whose flags the baseline checks.
	clone3, err := libseccomp.GetSyscallFromName("clone3")
	if err != nil {
		return nil, fmt.Errorf("seccomp: %s program: syscall clone3: %w", what, err)
	}
	if err := f.AddRule(clone3, libseccomp.ActErrno.SetReturnCode(int16(unix.ENOSYS))); err != nil {
		return nil, fmt.Errorf("seccomp: %s program: rule for clone3: %w", what, err)
	}
	prog, err := export(f)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %s program: %w", what, err)
	}
	return prog, nil
}

func addRule(f *libseccomp.ScmpFilter, r rule) error {
	sc, err := libseccomp.GetSyscallFromName(r.name)
	if err != nil {
		return fmt.Errorf("syscall %s: %w", r.name, err)
	}
	if len(r.alts) == 0 {
		if err := f.AddRule(sc, libseccomp.ActAllow); err != nil {
			return fmt.Errorf("rule for %s: %w", r.name, err)
		}
		return nil
	}
	for _, alt := range r.alts {
		conds := make([]libseccomp.ScmpCondition, 0, len(alt))
		for _, c := range alt {
			sc, err := libseccomp.MakeCondition(c.arg, libseccomp.CompareMaskedEqual, c.mask, c.value)
			if err != nil {
				return fmt.Errorf("condition on %s arg %d: %w", r.name, c.arg, err)
			}
			conds = append(conds, sc)
		}
		if err := f.AddRuleConditional(sc, libseccomp.ActAllow, conds); err != nil {
			return fmt.Errorf("rule for %s: %w", r.name, err)
		}
	}
	return nil
}

// export writes the filter as kernel BPF into a memfd (libseccomp 2.5 can
// only export to a file descriptor) and decodes it.
func export(f *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("govmm-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mf := os.NewFile(uintptr(fd), "govmm-seccomp")
	defer mf.Close()
	if err := f.ExportBPF(mf); err != nil {
		return nil, fmt.Errorf("seccomp_export_bpf: %w", err)
	}
	if _, err := mf.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("lseek memfd: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(mf, maxProgBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read memfd: %w", err)
	}
	return decode(b)
}

// sockFilterSize is sizeof(struct sock_filter): u16 code, u8 jt, u8 jf,
// u32 k.
const sockFilterSize = 8

// maxProgBytes is BPF_MAXINSNS instructions, the most seccomp(2) takes.
const maxProgBytes = unix.BPF_MAXINSNS * sockFilterSize

// decode parses the kernel's struct sock_filter array, in host byte order
// as libseccomp writes it.
func decode(b []byte) ([]unix.SockFilter, error) {
	switch {
	case len(b) == 0:
		return nil, errors.New("empty BPF program")
	case len(b)%sockFilterSize != 0:
		return nil, fmt.Errorf("BPF program of %d bytes is not a whole number of instructions", len(b))
	case len(b) > maxProgBytes:
		return nil, fmt.Errorf("BPF program longer than %d instructions", unix.BPF_MAXINSNS)
	}
	prog := make([]unix.SockFilter, len(b)/sockFilterSize)
	for i := range prog {
		ins := b[i*sockFilterSize:]
		prog[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(ins[0:2]),
			Jt:   ins[2],
			Jf:   ins[3],
			K:    binary.NativeEndian.Uint32(ins[4:8]),
		}
	}
	return prog, nil
}
