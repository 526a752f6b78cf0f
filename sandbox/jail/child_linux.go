package jail

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// envMarker is the one environment variable Start gives a child; its name
// is also compiled into the C constructor (ctor_linux.h).
const (
	envMarker      = "_GOVMM_JAIL_CHILD"
	envMarkerValue = "1"
)

// isChild is read once at package init: Enter clears the environment.
var isChild = os.Getenv(envMarker) == envMarkerValue

// IsChild reports whether this process was started by Start (the marker
// is in its environment). It stays true after Enter cleared the
// environment.
func IsChild() bool { return isChild }

// Child is the child's side of the jail, returned by Enter.
type Child struct {
	mu       sync.Mutex
	ctl      *os.File
	reported bool
	id       string
	isolated bool
}

// ID is the VM id the supervisor gave.
func (c *Child) ID() string { return c.id }

// Isolated reports whether the child is jailed (Spec.Isolate).
func (c *Child) Isolated() bool { return c.isolated }

// stepError names the step of Enter that failed.
type stepError struct {
	step string
	err  error
}

func (e *stepError) Error() string { return "jail: step " + e.step + ": " + e.err.Error() }
func (e *stepError) Unwrap() error { return e.err }

func step(name string, err error) error {
	if err == nil {
		return nil
	}
	return &stepError{name, err}
}

// Enter is the child's first act: it waits for the supervisor's go-ahead
// (sent after OnStart), then, with Spec.Isolate, builds the jail and
// locks itself in. Call it before opening any file: afterwards only the
// jail's files exist, under their in-jail paths. On error the supervisor
// is told (Start returns the error there too) and the caller should exit.
//
// Steps, in order (each error names its step):
//
//	control          fd 3 is the control socket; read the spec (the go-ahead)
//	pid-namespace    we are PID 1 of a new pid namespace
//	capabilities-inheritable  the C constructor cleared them (see doc.go)
//	fds              nothing but stdio, fd 3 and the extra files is open
//	environment      cleared
//	mount-private    mount --make-rprivate /
//	root-tmpfs       a small tmpfs on BaseDir/ID/root
//	binds            each file bind-mounted, then remounted nosuid,noexec
//	                 (nodev unless a block device, ro if ReadOnly)
//	devices          /dev/kvm, /dev/net/tun: mknod 0600, chown UID:GID
//	hostname         the VM id (UTS namespace)
//	pivot-root       pivot_root into the tmpfs, detach the old root
//	root-readonly    remount / read-only
//	rlimits          NOFILE, FSIZE, NPROC (soft = hard)
//	drop-uid         setgroups([]), setresgid, setresuid (all threads)
//	no-new-privs     checked set (inherited from the supervisor's thread)
//	verify           every thread: uid/gid, no capabilities, empty
//	                 bounding set, no_new_privs
//	access           every bind and device opens as UID:GID
func Enter() (*Child, error) {
	if !isChild {
		return nil, errors.New("jail: Enter called in a process not started by jail.Start")
	}
	ctl, err := openControl()
	if err != nil {
		return nil, step("control", err)
	}
	c := &Child{ctl: ctl}
	w, err := c.enter()
	if err != nil {
		_ = writeMsg(ctl, formatMsg(msgFail, sanitize(err.Error())))
		ctl.Close()
		return nil, err
	}
	if err := writeMsg(ctl, formatMsg(msgReady, "")); err != nil {
		ctl.Close()
		return nil, step("ready", err)
	}
	c.id, c.isolated = w.ID, w.Isolate
	return c, nil
}

func openControl() (*os.File, error) {
	typ, err := unix.GetsockoptInt(ControlFD, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return nil, fmt.Errorf("fd %d is not the control socket: %w", ControlFD, err)
	}
	dom, err := unix.GetsockoptInt(ControlFD, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || typ != unix.SOCK_SEQPACKET || dom != unix.AF_UNIX {
		return nil, fmt.Errorf("fd %d is not an AF_UNIX SOCK_SEQPACKET socket", ControlFD)
	}
	unix.CloseOnExec(ControlFD)
	if err := unix.SetNonblock(ControlFD, true); err != nil {
		return nil, err
	}
	return os.NewFile(ControlFD, "jail-control"), nil
}

func (c *Child) enter() (*wireSpec, error) {
	kind, body, err := readMsg(c.ctl, maxSpecMsg, goAheadTimeout)
	if err != nil {
		return nil, step("control", fmt.Errorf("waiting for the spec: %w", err))
	}
	if kind != msgSpec {
		return nil, step("control", fmt.Errorf("got %q, want the spec", sanitize(kind)))
	}
	w, err := decodeWireSpec([]byte(body))
	if err != nil {
		return nil, step("control", err)
	}
	if w.Isolate && os.Getpid() != 1 {
		return nil, step("pid-namespace", fmt.Errorf("pid %d, want 1 in a new pid namespace", os.Getpid()))
	}
	if w.Isolate {
		if err := clearInheritable(); err != nil {
			return nil, step("capabilities-inheritable", err)
		}
	}
	if !w.Isolate {
		return w, nil
	}
	if err := checkFDs(FirstExtraFD + w.ExtraFiles); err != nil {
		return nil, step("fds", err)
	}
	return w, build(w)
}

// checkFDs fails if an fd other than 0..limit-1 is open, apart from the Go
// runtime's poller (an epoll and an eventfd, anonymous inodes that name
// no file). The supervisor marked all its fds close-on-exec, so anything
// else would be a leak: say which, rather than close it under whoever
// owns it.
func checkFDs(limit int) error {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	var leaks []string
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < limit || uintptr(fd) == d.Fd() {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + n)
		if target == "anon_inode:[eventpoll]" || target == "anon_inode:[eventfd]" {
			continue
		}
		leaks = append(leaks, n+" -> "+target)
	}
	if len(leaks) > 0 {
		return fmt.Errorf("unexpected open fds (want only 0..%d): %s", limit-1, strings.Join(leaks, ", "))
	}
	return nil
}

// build does the isolated steps of Enter, in the mount namespace the
// child was cloned into.
func build(w *wireSpec) error {
	os.Clearenv()
	last, err := lastCap()
	if err != nil {
		return step("verify", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return step("mount-private", fmt.Errorf("mount --make-rprivate /: %w", err))
	}
	// Bounded: the tmpfs holds empty mount points, directories and two
	// device nodes, and is read-only once built.
	opts := "mode=0755,size=1m,nr_inodes=" + strconv.Itoa(64+8*len(w.Binds)*maxJailDepth)
	if err := unix.Mount("tmpfs", w.Root, "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, opts); err != nil {
		return step("root-tmpfs", fmt.Errorf("mount tmpfs on %s: %w", w.Root, err))
	}
	for _, b := range w.Binds {
		if err := bindFile(w.Root, b); err != nil {
			return step("binds", err)
		}
	}
	if w.KVM {
		if err := makeNode(w.Root, kvmPath, 10, 232, w.UID, w.GID); err != nil {
			return step("devices", err)
		}
	}
	if w.TUN {
		if err := makeNode(w.Root, tunPath, 10, 200, w.UID, w.GID); err != nil {
			return step("devices", err)
		}
	}
	if err := unix.Sethostname([]byte(w.ID)); err != nil {
		return step("hostname", err)
	}
	// Opened before the pivot, used after the drop to check every thread,
	// closed before Enter returns: the only way back to the host file
	// system, held only while nothing but this code runs, as uid UID.
	tasks, err := os.Open("/proc/self/task")
	if err != nil {
		return step("verify", err)
	}
	defer tasks.Close()
	if err := pivot(w.Root); err != nil {
		return step("pivot-root", err)
	}
	if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NOEXEC, ""); err != nil {
		return step("root-readonly", err)
	}
	for _, l := range []struct {
		res  int
		name string
		v    uint64
	}{{unix.RLIMIT_NOFILE, "NOFILE", w.Rlimits.NOFILE}, {unix.RLIMIT_FSIZE, "FSIZE", w.Rlimits.FSIZE}, {unix.RLIMIT_NPROC, "NPROC", w.Rlimits.NPROC}} {
		// syscall.Setrlimit, not unix: it keeps the runtime's idea of
		// RLIMIT_NOFILE in step. Rlimits are per process.
		if err := syscall.Setrlimit(l.res, &syscall.Rlimit{Cur: l.v, Max: l.v}); err != nil {
			return step("rlimits", fmt.Errorf("RLIMIT_%s %d: %w", l.name, l.v, err))
		}
	}
	// syscall's, not unix's: with cgo they go through the C library, which
	// applies them to every thread (unix.Setgroups is one raw syscall on
	// one thread). Leaving uid 0 clears the permitted, effective and
	// ambient sets of each thread as it changes uid.
	if err := syscall.Setgroups(nil); err != nil {
		return step("drop-uid", fmt.Errorf("setgroups: %w", err))
	}
	if err := syscall.Setresgid(w.GID, w.GID, w.GID); err != nil {
		return step("drop-uid", fmt.Errorf("setresgid %d: %w", w.GID, err))
	}
	if err := syscall.Setresuid(w.UID, w.UID, w.UID); err != nil {
		return step("drop-uid", fmt.Errorf("setresuid %d: %w", w.UID, err))
	}
	// Inherited from the supervisor's thread by every thread; setting it
	// again is harmless and covers this thread should that ever change.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return step("no-new-privs", err)
	}
	if err := verifySelf(w, last); err != nil {
		return step("verify", err)
	}
	if err := verifyThreads(tasks, w); err != nil {
		return step("verify", err)
	}
	if err := tasks.Close(); err != nil {
		return step("verify", err)
	}
	if err := probeAccess(w); err != nil {
		return step("access", err)
	}
	return nil
}

// mkdirs creates the directories of rel (a validated in-jail path) under
// root, mode 0755 whatever the umask.
func mkdirs(root, rel string) error {
	p := root
	for _, comp := range strings.Split(strings.TrimPrefix(rel, "/"), "/") {
		p += "/" + comp
		err := unix.Mkdir(p, 0o755)
		if errors.Is(err, unix.EEXIST) {
			var st unix.Stat_t
			if err := unix.Lstat(p, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
				return fmt.Errorf("%s exists and is not a directory", strings.TrimPrefix(p, root))
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", strings.TrimPrefix(p, root), err)
		}
		if err := unix.Chmod(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func bindFile(root string, b wireBind) error {
	if err := mkdirs(root, filepath.Dir(b.Jail)); err != nil {
		return err
	}
	target := root + b.Jail
	fd, err := unix.Open(target, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("mount point %s: %w", b.Jail, err)
	}
	unix.Close(fd)
	if err := unix.Mount(b.Host, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s on %s: %w", b.Host, b.Jail, err)
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_NOSUID | unix.MS_NOEXEC)
	if !b.Block {
		flags |= unix.MS_NODEV
	}
	if b.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s (read-only %v): %w", b.Jail, b.ReadOnly, err)
	}
	// The supervisor checked the source's type; check what got mounted.
	var st unix.Stat_t
	if err := unix.Stat(target, &st); err != nil {
		return fmt.Errorf("%s: %w", b.Jail, err)
	}
	want := uint32(unix.S_IFREG)
	if b.Block {
		want = unix.S_IFBLK
	}
	if st.Mode&unix.S_IFMT != want {
		return fmt.Errorf("%s: %s changed type since Start checked it", b.Jail, b.Host)
	}
	return nil
}

func makeNode(root, path string, major, minor uint32, uid, gid int) error {
	if err := mkdirs(root, filepath.Dir(path)); err != nil {
		return err
	}
	p := root + path
	if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(major, minor))); err != nil {
		return fmt.Errorf("mknod %s c %d %d: %w", path, major, minor, err)
	}
	if err := unix.Chmod(p, 0o600); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := unix.Chown(p, uid, gid); err != nil {
		return fmt.Errorf("chown %s %d:%d: %w", path, uid, gid, err)
	}
	return nil
}

// pivot makes root the root of this mount namespace and detaches the old
// one, the way runc does it: pivot_root(".", ".") stacks the old root on
// top of the new one, so no put_old directory is left in the jail.
func pivot(root string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	newRoot, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(newRoot)
	if err := unix.Fchdir(newRoot); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", root, err)
	}
	// "." is now the old root (the kernel moves the cwd of every task of
	// the namespace); fchdir there explicitly rather than rely on it.
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the old root: %w", err)
	}
	return unix.Chdir("/")
}

func verifySelf(w *wireSpec, last uintptr) error {
	if r, e, s := unix.Getresuid(); r != w.UID || e != w.UID || s != w.UID {
		return fmt.Errorf("uids %d/%d/%d, want %d", r, e, s, w.UID)
	}
	if r, e, s := unix.Getresgid(); r != w.GID || e != w.GID || s != w.GID {
		return fmt.Errorf("gids %d/%d/%d, want %d", r, e, s, w.GID)
	}
	if g, err := unix.Getgroups(); err != nil || len(g) != 0 {
		return fmt.Errorf("supplementary groups %v (%v), want none", g, err)
	}
	caps, err := getCaps()
	if err != nil {
		return err
	}
	if !caps.zero() {
		return fmt.Errorf("capabilities left: %+v", caps.data)
	}
	for c := uintptr(0); c <= last; c++ {
		if in, err := inBoundingSet(c); err != nil || in {
			return fmt.Errorf("%s in the bounding set", capNameOf(c))
		}
		if a, err := unix.PrctlRetInt(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_IS_SET, c, 0, 0); err != nil || a != 0 {
			return fmt.Errorf("%s is ambient", capNameOf(c))
		}
	}
	if n, err := unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0); err != nil || n != 1 {
		return errors.New("no_new_privs is not set")
	}
	return nil
}

// verifyThreads checks every thread's status, through the task directory
// opened before the pivot.
func verifyThreads(tasks *os.File, w *wireSpec) error {
	if _, err := tasks.Seek(0, io.SeekStart); err != nil {
		return err
	}
	names, err := tasks.Readdirnames(-1)
	if err != nil {
		return err
	}
	zero := "0000000000000000"
	want := map[string]string{
		"CapInh": zero, "CapPrm": zero, "CapEff": zero, "CapBnd": zero, "CapAmb": zero,
		"NoNewPrivs": "1",
		"Uid":        strings.TrimSpace(strings.Repeat(strconv.Itoa(w.UID)+" ", 4)),
		"Gid":        strings.TrimSpace(strings.Repeat(strconv.Itoa(w.GID)+" ", 4)),
	}
	for _, n := range names {
		fd, err := unix.Openat(int(tasks.Fd()), n+"/status", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // exited meanwhile
		}
		f := os.NewFile(uintptr(fd), "status")
		b, err := io.ReadAll(io.LimitReader(f, 64<<10))
		f.Close()
		if err != nil {
			return fmt.Errorf("thread %s: %w", n, err)
		}
		got := statusFields(string(b))
		for k, v := range want {
			if got[k] != v {
				return fmt.Errorf("thread %s: %s is %q, want %q", n, k, got[k], v)
			}
		}
	}
	return nil
}

// statusFields parses a /proc status file, each value's fields joined by
// single spaces.
func statusFields(status string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(status, "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// probeAccess opens (and closes) every jail file the way the VMM will, as
// UID:GID, so a file the jailed user may not read or write fails here,
// naming it, rather than deep inside VM setup.
func probeAccess(w *wireSpec) error {
	try := func(path, host string, flags int) error {
		fd, err := unix.Open(path, flags|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
		if err != nil {
			how := "read-write"
			if flags == unix.O_RDONLY {
				how = "read-only"
			}
			return fmt.Errorf("uid %d gid %d cannot open %s (%s) %s: %w; make it accessible to them (owner, group or ACL)", w.UID, w.GID, path, host, how, err)
		}
		return unix.Close(fd)
	}
	for _, b := range w.Binds {
		flags := unix.O_RDWR
		if b.ReadOnly {
			flags = unix.O_RDONLY
		}
		if err := try(b.Jail, "host "+b.Host, flags); err != nil {
			return err
		}
	}
	if w.KVM {
		if err := try(kvmPath, "device 10:232", unix.O_RDWR); err != nil {
			return err
		}
	}
	if w.TUN {
		if err := try(tunPath, "device 10:200", unix.O_RDWR); err != nil {
			return err
		}
	}
	return nil
}

// ReportThreads tells the supervisor the TIDs (as gettid returns them in
// this process) of the vCPU threads, and blocks until its OnVCPUThreads
// has run; its error comes back here. It may be called once. The control
// socket is closed afterwards.
func (c *Child) ReportThreads(vcpuTIDs []int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reported {
		return errors.New("jail: threads already reported")
	}
	c.reported = true
	defer c.ctl.Close()
	if len(vcpuTIDs) == 0 || len(vcpuTIDs) > MaxVCPUThreads {
		return fmt.Errorf("jail: %d thread ids (want 1..%d)", len(vcpuTIDs), MaxVCPUThreads)
	}
	for _, t := range vcpuTIDs {
		if t < 1 || t > pidMax {
			return fmt.Errorf("jail: bad thread id %d", t)
		}
	}
	if err := writeMsg(c.ctl, formatMsg(msgVCPUs, formatTIDs(vcpuTIDs))); err != nil {
		return fmt.Errorf("jail: reporting threads: %w", err)
	}
	kind, body, err := readMsg(c.ctl, maxReplyMsg, reportTimeout)
	if err != nil {
		return fmt.Errorf("jail: waiting for the supervisor to place the threads: %w", err)
	}
	switch kind {
	case msgOK:
		return nil
	case msgError:
		return fmt.Errorf("jail: supervisor: %s", sanitize(body))
	}
	return fmt.Errorf("jail: unexpected reply %q from the supervisor", sanitize(kind))
}

// Close drops the control socket, for a child that will not report
// threads.
func (c *Child) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reported = true
	return c.ctl.Close()
}
