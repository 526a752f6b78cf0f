//go:build linux && amd64

package seccomp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Filters cannot be removed, so every test that installs one does it in a
// child process: the test binary re-executes itself running only
// TestHelperProcess, with the scenario named in the environment. The child
// builds a Set, installs the baseline, starts a goroutine that installs a
// class program (or none, for the baseline alone), and runs an action
// there. The parent then looks at how the child ended.

const (
	envScenario = "GOVMM_SECCOMP_SCENARIO"
	// Exit codes of the child besides 0 (the action returned nil).
	exitFailed   = 2 // the action (or the set-up) returned an error
	exitSurvived = 3 // an action that should have been killed returned
)

// baselineOnly in a scenario means: no class program, the baseline alone.
const baselineOnly Class = -1

// action is something a child does on its filtered thread. prep runs
// before any filter is installed (open descriptors, create files); run
// runs on the filtered thread and returns nil on success. A run meant to be
// killed returns errSurvived-wrapped results if it is not.
type action struct {
	prep func() (any, error)
	run  func(state any) error
}

var errSurvived = errors.New("the forbidden call returned")

func survived(what string, r1 uintptr, errno syscall.Errno) error {
	return fmt.Errorf("%w: %s = %d, errno %v", errSurvived, what, int(r1), errno)
}

// wantErrno checks a raw call that the filter must let through to the
// kernel, which then refuses it with want.
func wantErrno(what string, r1 uintptr, got, want syscall.Errno) error {
	if got != want {
		return fmt.Errorf("%s = %d, errno %v; want errno %v", what, int(r1), got, want)
	}
	return nil
}

func noPrep() (any, error) { return nil, nil }

// forbiddenOnPage is an action that maps a fresh read-write page and makes
// the forbidden call on it: the filter must kill the process first, so the
// call returning at all (with any result) is the failure.
func forbiddenOnPage(what string, call func(b []byte) error) action {
	return simple(func() error {
		b, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		return fmt.Errorf("%w: %s: %v", errSurvived, what, call(b))
	})
}

func simple(run func() error) action {
	return action{prep: noPrep, run: func(any) error { return run() }}
}

// actions are the things children can do, by name.
var actions = map[string]action{
	"getpid-write": {prep: pipePrep, run: func(st any) error {
		p := st.([2]int)
		if pid := unix.Getpid(); pid != os.Getpid() {
			return fmt.Errorf("getpid = %d", pid)
		}
		if _, err := unix.Write(p[1], []byte("x")); err != nil {
			return fmt.Errorf("write to pipe: %w", err)
		}
		return nil
	}},
	"openat": simple(func() error {
		fd, err := unix.Openat(unix.AT_FDCWD, "/proc/self/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("openat: %w", err)
		}
		unix.Close(fd)
		return errSurvived
	}),
	"mmap-exec": simple(func() error {
		r, _, e := unix.Syscall6(unix.SYS_MMAP, 0, 4096, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS, ^uintptr(0), 0)
		return survived("mmap(PROT_READ|PROT_EXEC)", r, e)
	}),
	"mmap-rw": simple(func() error {
		b, err := unix.Mmap(-1, 0, 1<<20, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("mmap(PROT_READ|PROT_WRITE): %w", err)
		}
		b[0] = 1
		if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
			return fmt.Errorf("madvise: %w", err)
		}
		return unix.Munmap(b)
	}),
	// KSM must never get guest RAM back, nor core dumps see it.
	"madvise-mergeable": forbiddenOnPage("madvise(MADV_MERGEABLE)", func(b []byte) error {
		return unix.Madvise(b, unix.MADV_MERGEABLE)
	}),
	"madvise-dodump": forbiddenOnPage("madvise(MADV_DODUMP)", func(b []byte) error {
		return unix.Madvise(b, unix.MADV_DODUMP)
	}),
	"mprotect-exec": forbiddenOnPage("mprotect(PROT_EXEC)", func(b []byte) error {
		return unix.Mprotect(b, unix.PROT_READ|unix.PROT_EXEC)
	}),
	"mprotect-rw": simple(func() error {
		b, err := unix.Mmap(-1, 0, 4096, unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return fmt.Errorf("mmap: %w", err)
		}
		if err := unix.Mprotect(b, unix.PROT_READ|unix.PROT_WRITE); err != nil {
			return fmt.Errorf("mprotect(PROT_READ|PROT_WRITE): %w", err)
		}
		return unix.Munmap(b)
	}),
	// KVM_RUN is allowed on the vCPU thread whatever the fd: the kernel,
	// not the filter, refuses it on a bad fd or a non-KVM fd.
	"ioctl-kvm-run": {prep: pipePrep, run: func(st any) error {
		p := st.([2]int)
		r, _, e := unix.Syscall(unix.SYS_IOCTL, ^uintptr(0), uintptr(kvmRun), 0)
		if err := wantErrno("ioctl(-1, KVM_RUN)", r, e, unix.EBADF); err != nil {
			return err
		}
		r, _, e = unix.Syscall(unix.SYS_IOCTL, uintptr(p[0]), uintptr(kvmRun), 0)
		if err := wantErrno("ioctl(pipe, KVM_RUN)", r, e, unix.ENOTTY); err != nil {
			return err
		}
		// The kernel reads cmd as an unsigned int, and so does the filter:
		// bits above 31 change nothing.
		r, _, e = unix.Syscall(unix.SYS_IOCTL, ^uintptr(0), uintptr(kvmRun|0xdead<<32), 0)
		if err := wantErrno("ioctl(-1, KVM_RUN | garbage<<32)", r, e, unix.EBADF); err != nil {
			return err
		}
		for _, req := range []uint64{kvmGetRegs, kvmGetSregs, kvmIRQLine} {
			r, _, e = unix.Syscall(unix.SYS_IOCTL, ^uintptr(0), uintptr(req), 0)
			if err := wantErrno(fmt.Sprintf("ioctl(-1, %#x)", req), r, e, unix.EBADF); err != nil {
				return err
			}
		}
		return nil
	}},
	// KVM_CREATE_VM is a real KVM request, but not the vCPU thread's.
	"ioctl-kvm-create-vm": simple(func() error {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, ^uintptr(0), 0xae01, 0)
		return survived("ioctl(-1, KVM_CREATE_VM)", r, e)
	}),
	"ioctl-tcgets": simple(func() error {
		r, _, e := unix.Syscall(unix.SYS_IOCTL, 0, unix.TCGETS, 0)
		return survived("ioctl(0, TCGETS)", r, e)
	}),
	"ioctl-tun": {prep: pipePrep, run: func(st any) error {
		p := st.([2]int)
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(p[0]), unix.TUNSETIFF, 0)
		return wantErrno("ioctl(pipe, TUNSETIFF)", r, e, unix.ENOTTY)
	}},
	"readv-writev": {prep: pipePrep, run: func(st any) error {
		p := st.([2]int)
		if _, err := unix.Writev(p[1], [][]byte{[]byte("ab"), []byte("c")}); err != nil {
			return fmt.Errorf("writev: %w", err)
		}
		b := make([]byte, 3)
		if _, err := unix.Readv(p[0], [][]byte{b}); err != nil {
			return fmt.Errorf("readv: %w", err)
		}
		return nil
	}},
	"socket-inet": simple(func() error {
		r, _, e := unix.Syscall(unix.SYS_SOCKET, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return survived("socket(AF_INET)", r, e)
	}),
	"socket-unix": simple(func() error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("socket(AF_UNIX): %w", err)
		}
		return unix.Close(fd)
	}),
	// The management socket through Go's net package: the listener is
	// made during set-up (net.Listen reads /proc/sys/net/core/somaxconn
	// once), connections are dialled, accepted and used afterwards.
	"unix-conn": {
		prep: func() (any, error) {
			dir, err := os.MkdirTemp("", "seccomp-api")
			if err != nil {
				return nil, err
			}
			return net.Listen("unix", filepath.Join(dir, "api.sock"))
		},
		run: func(st any) error {
			l := st.(net.Listener)
			l.(*net.UnixListener).SetUnlinkOnClose(false) // unlink is not allowed
			errc := make(chan error, 1)
			go func() {
				c, err := l.Accept()
				if err != nil {
					errc <- fmt.Errorf("accept: %w", err)
					return
				}
				defer c.Close()
				b := make([]byte, 4)
				if _, err := c.Read(b); err != nil {
					errc <- fmt.Errorf("server read: %w", err)
					return
				}
				_, err = c.Write([]byte("pong"))
				errc <- err
			}()
			c, err := net.Dial("unix", l.Addr().String())
			if err != nil {
				return fmt.Errorf("dial: %w", err)
			}
			if _, err := c.Write([]byte("ping")); err != nil {
				return fmt.Errorf("client write: %w", err)
			}
			b := make([]byte, 4)
			if _, err := c.Read(b); err != nil || string(b) != "pong" {
				return fmt.Errorf("client read %q: %v", b, err)
			}
			if err := <-errc; err != nil {
				return err
			}
			c.Close()
			return l.Close()
		},
	},
	// os/signal on the API thread: Notify, a signal to ourselves, Stop.
	"signal": simple(func() error {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGUSR1)
		defer signal.Stop(ch)
		if err := unix.Tgkill(unix.Getpid(), unix.Gettid(), unix.SIGUSR1); err != nil {
			return fmt.Errorf("tgkill: %w", err)
		}
		select {
		case <-ch:
			return nil
		case <-time.After(5 * time.Second):
			return errors.New("SIGUSR1 not delivered")
		}
	}),
	"clone3": simple(func() error {
		r, _, e := unix.RawSyscall(unix.SYS_CLONE3, 0, 0, 0)
		return wantErrno("clone3", r, e, unix.ENOSYS)
	}),
	// A plain fork. Should the filter fail to kill us, the new process
	// leaves at once without touching the Go runtime.
	"fork": simple(func() error {
		r, _, e := unix.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		if r == 0 && e == 0 {
			unix.RawSyscall(unix.SYS_EXIT_GROUP, 7, 0, 0)
		}
		return survived("clone(SIGCHLD)", r, e)
	}),
	// clone with CLONE_THREAD passes the filter; the kernel refuses it
	// without CLONE_SIGHAND and CLONE_VM, so nothing is created.
	"clone-thread-einval": simple(func() error {
		r, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_THREAD, 0, 0, 0, 0, 0)
		return wantErrno("clone(CLONE_THREAD)", r, e, unix.EINVAL)
	}),
	// A namespace flag next to CLONE_THREAD is refused by the filter.
	"clone-thread-newnet": simple(func() error {
		r, _, e := unix.RawSyscall6(unix.SYS_CLONE, unix.CLONE_THREAD|unix.CLONE_NEWNET, 0, 0, 0, 0, 0)
		return survived("clone(CLONE_THREAD|CLONE_NEWNET)", r, e)
	}),
	"execve": simple(func() error {
		err := unix.Exec("/bin/true", []string{"true"}, nil)
		return fmt.Errorf("%w: execve: %v", errSurvived, err)
	}),
	"kill": simple(func() error {
		r, _, e := unix.RawSyscall(unix.SYS_KILL, uintptr(unix.Getpid()), 0, 0)
		return survived("kill(getpid(), 0)", r, e)
	}),
	"tgkill-self": simple(func() error {
		return unix.Tgkill(unix.Getpid(), unix.Gettid(), 0)
	}),
	"tgkill-other": simple(func() error {
		ppid := unix.Getppid() // the parent test process: alive, not ours
		r, _, e := unix.RawSyscall(unix.SYS_TGKILL, uintptr(ppid), uintptr(ppid), 0)
		return survived("tgkill(parent, parent, 0)", r, e)
	}),
	"futex-wake": simple(func() error {
		r, _, e := unix.Syscall6(unix.SYS_FUTEX, futexWordAddr(), futexWake|futexPrivateFlag, 1, 0, 0, 0)
		if e != 0 {
			return fmt.Errorf("futex(FUTEX_WAKE_PRIVATE) = %d, errno %v", int(r), e)
		}
		return nil
	}),
	"futex-lock-pi": simple(func() error {
		const futexLockPI = 6
		r, _, e := unix.Syscall6(unix.SYS_FUTEX, futexWordAddr(), futexLockPI|futexPrivateFlag, 0, 0, 0, 0)
		return survived("futex(FUTEX_LOCK_PI)", r, e)
	}),
	"ptrace": simple(func() error {
		r, _, e := unix.RawSyscall6(unix.SYS_PTRACE, unix.PTRACE_ATTACH, uintptr(unix.Getppid()), 0, 0, 0, 0)
		return survived("ptrace(PTRACE_ATTACH)", r, e)
	}),
	"seccomp-tsync": simple(func() error {
		r, _, e := unix.RawSyscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, 0)
		return survived("seccomp(SET_MODE_FILTER, TSYNC)", r, e)
	}),
	// The device worker's data path on a real file.
	"block-io": {
		prep: func() (any, error) {
			f, err := os.CreateTemp("", "seccomp-disk")
			if err != nil {
				return nil, err
			}
			os.Remove(f.Name())
			return int(f.Fd()), f.Truncate(1 << 20)
		},
		run: func(st any) error {
			fd := st.(int)
			buf := make([]byte, 4096)
			if _, err := unix.Pwrite(fd, buf, 0); err != nil {
				return fmt.Errorf("pwrite64: %w", err)
			}
			if _, err := unix.Pread(fd, buf, 4096); err != nil {
				return fmt.Errorf("pread64: %w", err)
			}
			if _, err := unix.Pwritev(fd, [][]byte{buf, buf}, 8192); err != nil {
				return fmt.Errorf("pwritev: %w", err)
			}
			if _, err := unix.Preadv(fd, [][]byte{buf, buf}, 8192); err != nil {
				return fmt.Errorf("preadv: %w", err)
			}
			if err := unix.Fdatasync(fd); err != nil {
				return fmt.Errorf("fdatasync: %w", err)
			}
			err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 0, 4096)
			if err != nil && !errors.Is(err, unix.EOPNOTSUPP) {
				return fmt.Errorf("fallocate: %w", err)
			}
			return nil
		},
	},
	"eventfd-read": {
		prep: func() (any, error) { return unix.Eventfd(1, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK) },
		run: func(st any) error {
			var b [8]byte
			_, err := unix.Read(st.(int), b[:])
			return err
		},
	},
	"runtime": simple(runtimeWorkout),
	// A long sleep during which the parent stops and continues the
	// process (TestStopCont): the kernel resumes the interrupted
	// nanosleep, and the runtime's timed futex waits, with
	// restart_syscall.
	"sleep": simple(func() error {
		fmt.Println("sleeping")
		return unix.Nanosleep(&unix.Timespec{Nsec: 400e6}, nil)
	}),
}

func pipePrep() (any, error) {
	var p [2]int
	err := unix.Pipe2(p[:], unix.O_CLOEXEC)
	return p, err
}

// runtimeWorkout makes the Go runtime do, from the filtered thread, what a
// long-running VMM makes it do: goroutines, allocation of fresh heap and
// its release, GCs started here (and so stopped and restarted from here),
// timers, sleeps, preemption of a busy goroutine, stack growth, goroutines
// that lock and leave threads (new Ms, created through the template
// thread), and goroutines blocked in system calls (sysmon hands their Ps
// off). A runtime system call missing from a program kills the child.
func runtimeWorkout() error {
	var wg sync.WaitGroup
	var sink atomic.Pointer[[]byte]
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 64; j++ {
				b := make([]byte, 64<<10)
				b[len(b)-1] = byte(j)
				sink.Store(&b)
			}
		}()
	}
	big := make([]byte, 64<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	wg.Wait()
	runtime.GC()
	big = nil
	debug.FreeOSMemory() // a GC plus scavenging from this thread
	time.Sleep(5 * time.Millisecond)
	t := time.NewTimer(2 * time.Millisecond)
	<-t.C
	fired := make(chan struct{})
	time.AfterFunc(time.Millisecond, func() { close(fired) })
	<-fired
	// A busy goroutine is preempted with SIGURG (tgkill; rt_sigreturn).
	var stop atomic.Bool
	spun := make(chan struct{})
	go func() {
		defer close(spun)
		for !stop.Load() {
		}
	}()
	time.Sleep(30 * time.Millisecond)
	stop.Store(true)
	<-spun
	// Goroutines that lock their thread and return with it locked: the
	// runtime needs a new M for each, and each of these threads exits
	// with its goroutine. Sixteen at once also takes glibc's malloc past
	// its arena_test threshold of eight arenas, where it would look up
	// the number of CPUs in /sys (see warmUp).
	var started sync.WaitGroup
	release := make(chan struct{})
	for i := 0; i < 16; i++ {
		wg.Add(1)
		started.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	wg.Wait()
	if depth(20000) != 20000 {
		return errors.New("recursion")
	}
	runtime.GC()
	return nil
}

//go:noinline
func depth(n int) int {
	var pad [64]byte
	if n == 0 {
		return int(pad[0])
	}
	return depth(n-1) + 1
}

// TestHelperProcess is the child's side; it does nothing in a normal run.
// The scenario is MODE/CLASS/ACTION[/net], CLASS being vcpu, device, api
// or baseline.
func TestHelperProcess(t *testing.T) {
	sc := os.Getenv(envScenario)
	if sc == "" {
		t.Skip("only run as a child process by the other tests")
	}
	os.Exit(child(sc))
}

func child(sc string) int {
	fail := func(format string, args ...any) int {
		fmt.Printf("FAIL "+format+"\n", args...)
		return exitFailed
	}
	// This goroutine keeps its thread, so the class goroutine below
	// cannot be scheduled on it (the child leaves with os.Exit).
	runtime.LockOSThread()
	// No core files from the processes the tests kill on purpose.
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	parts := strings.Split(sc, "/")
	if len(parts) < 3 {
		return fail("bad scenario %q", sc)
	}
	mode, err := ParseMode(parts[0])
	if err != nil {
		return fail("%v", err)
	}
	class, err := parseClass(parts[1])
	if err != nil {
		return fail("%v", err)
	}
	opts := Options{Mode: mode, Net: len(parts) > 3 && parts[3] == "net"}
	switch parts[2] {
	case "status":
		return childStatus(opts, class)
	case "tsync-conflict":
		return childTsyncConflict(opts)
	case "install-twice":
		return childInstallTwice(opts)
	}
	a, ok := actions[parts[2]]
	if !ok {
		return fail("no action %q", parts[2])
	}
	set, err := Build(opts)
	if err != nil {
		return fail("Build: %v", err)
	}
	st, err := a.prep()
	if err != nil {
		return fail("prep: %v", err)
	}
	if err := set.InstallProcess(); err != nil {
		return fail("InstallProcess: %v", err)
	}
	type result struct {
		tid int
		err error
	}
	done := make(chan result)
	go func() {
		// A class thread is locked for good: when this goroutine returns,
		// the runtime destroys the thread, under its class filter. The
		// main thread is the exception (mexit parks m0 for ever instead),
		// so the class goroutine moves off it first, to exercise the exit.
		for i := 0; i < 1000 && class != baselineOnly; i++ {
			runtime.LockOSThread()
			if unix.Gettid() != unix.Getpid() {
				break
			}
			runtime.UnlockOSThread()
			runtime.Gosched()
		}
		if class != baselineOnly {
			if err := set.InstallThread(class); err != nil {
				done <- result{err: fmt.Errorf("InstallThread: %w", err)}
				return
			}
		}
		done <- result{tid: unix.Gettid(), err: a.run(st)}
	}()
	r := <-done
	if r.err != nil {
		if errors.Is(r.err, errSurvived) {
			fmt.Printf("SURVIVED %v\n", r.err)
			return exitSurvived
		}
		return fail("%v", r.err)
	}
	if class != baselineOnly && r.tid != unix.Getpid() {
		// Wait for the class thread to go, so its exit path (the
		// runtime's mexit, glibc's start_thread epilogue) has run
		// filtered.
		for deadline := time.Now().Add(10 * time.Second); unix.Tgkill(unix.Getpid(), r.tid, 0) == nil; {
			if time.Now().After(deadline) {
				return fail("class thread %d did not exit", r.tid)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The process goes on under the baseline.
	runtime.GC()
	time.Sleep(time.Millisecond)
	fmt.Println("ok")
	return 0
}

func parseClass(s string) (Class, error) {
	if s == "baseline" {
		return baselineOnly, nil
	}
	for c := Class(0); c < numClasses; c++ {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("no class %q", s)
}

// childStatus installs the baseline and a class program on one thread,
// prints that thread's id and "ready", and waits for stdin to close, so
// that the parent can read /proc/PID/task/*/status meanwhile (the child
// cannot: openat is not allowed).
func childStatus(opts Options, class Class) int {
	set, err := Build(opts)
	if err != nil {
		fmt.Printf("FAIL Build: %v\n", err)
		return exitFailed
	}
	if err := set.InstallProcess(); err != nil {
		fmt.Printf("FAIL InstallProcess: %v\n", err)
		return exitFailed
	}
	ready := make(chan int)
	go func() {
		if err := set.InstallThread(class); err != nil {
			fmt.Printf("FAIL InstallThread: %v\n", err)
			os.Exit(exitFailed)
		}
		ready <- unix.Gettid()
		select {} // keep the thread alive and filtered
	}()
	fmt.Printf("tid %d\nready\n", <-ready)
	bufio.NewReader(os.Stdin).ReadString('\n') // returns at EOF
	return 0
}

// childTsyncConflict gives one thread a filter of its own first; TSYNC of
// the baseline must then fail and name that thread.
func childTsyncConflict(opts Options) int {
	set, err := Build(opts)
	if err != nil {
		fmt.Printf("FAIL Build: %v\n", err)
		return exitFailed
	}
	tidc := make(chan int)
	go func() {
		runtime.LockOSThread()
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			fmt.Printf("FAIL prctl: %v\n", err)
			os.Exit(exitFailed)
		}
		if _, err := load(set.class[ClassAPI], 0); err != nil {
			fmt.Printf("FAIL load: %v\n", err)
			os.Exit(exitFailed)
		}
		tidc <- unix.Gettid()
		select {}
	}()
	tid := <-tidc
	err = set.InstallProcess()
	fmt.Printf("tid %d\nerr %v\n", tid, err)
	return 0
}

func childInstallTwice(opts Options) int {
	set, err := Build(opts)
	if err != nil {
		fmt.Printf("FAIL Build: %v\n", err)
		return exitFailed
	}
	if err := set.InstallProcess(); err != nil {
		fmt.Printf("FAIL InstallProcess: %v\n", err)
		return exitFailed
	}
	fmt.Printf("second %v\n", set.InstallProcess())
	return 0
}

// childTimeout bounds a child: a hung child fails its test instead of
// the whole run.
const childTimeout = 60 * time.Second

func childCmd(t *testing.T, sc string) *exec.Cmd {
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), envScenario+"="+sc)
	return cmd
}

// runChild runs scenario sc and returns how the child ended and what it
// printed.
func runChild(t *testing.T, sc string) (syscall.WaitStatus, string) {
	t.Helper()
	cmd := childCmd(t, sc)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", sc, err)
	}
	return cmd.ProcessState.Sys().(syscall.WaitStatus), string(out)
}
