package jail

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Jail is a running child started by Start.
type Jail struct {
	cmd    *exec.Cmd
	pid    int
	pidNS  uint64 // inode of the child's pid namespace, to detect pid reuse
	ctl    *os.File
	dir    *vmDir // nil without Isolate
	onVCPU func([]int) error
	// beforeExec is Spec.BeforeExec, run on the forking thread.
	beforeExec func() error

	exited  chan struct{} // closed by the supervising goroutine after cmd.Wait
	waitErr error         // set before exited is closed
	ctlDone chan struct{} // closed when serve returns

	waitOnce sync.Once
	waitRes  error
}

// Pid is the child's pid on the host (in the caller's pid namespace).
func (j *Jail) Pid() int { return j.pid }

// Reclaimed reports whether Start reused the BaseDir/ID a killed
// supervisor had left behind (worth a log line).
func (j *Jail) Reclaimed() bool { return j.dir != nil && j.dir.reclaimed }

// Signal sends sig to the child. The child is PID 1 of its own pid
// namespace when isolated, so only SIGKILL, SIGSTOP and signals it has a
// handler for reach it (the Go runtime installs handlers for SIGTERM and
// SIGINT, and exits with status 2 on them unless the program catches them
// with os/signal).
func (j *Jail) Signal(sig os.Signal) error { return j.cmd.Process.Signal(sig) }

// Wait waits for the child to exit, then removes BaseDir/ID. The returned
// state is non-nil whenever the child was reaped, also when the error is
// not nil (a failure to clean up). A non-zero exit or death by a signal is
// not an error: read it from the state. Wait may be called more than once.
func (j *Jail) Wait() (*os.ProcessState, error) {
	j.waitOnce.Do(func() {
		<-j.exited
		j.ctl.Close() // unblocks serve if the child left it reading
		<-j.ctlDone
		var errs []error
		if j.waitErr != nil {
			errs = append(errs, fmt.Errorf("jail: waiting for the child: %w", j.waitErr))
		}
		if j.dir != nil {
			if err := j.dir.release(); err != nil {
				errs = append(errs, err)
			}
		}
		j.waitRes = errors.Join(errs...)
	})
	return j.cmd.ProcessState, j.waitRes
}

// prepared is a validated Spec, ready to start.
type prepared struct {
	wire     wireSpec
	baseDir  string
	required []uintptr
	optional []uintptr
}

// prepare validates spec and resolves its defaults. Every error names what
// is wrong and, for files, the path.
func prepare(spec *Spec) (*prepared, error) {
	if err := ValidateID(spec.ID); err != nil {
		return nil, err
	}
	p := &prepared{wire: wireSpec{
		Version: wireVersion, ID: spec.ID, Isolate: spec.Isolate,
		ExtraFiles: len(spec.ExtraFiles),
	}}
	if len(spec.ExtraFiles) > MaxExtraFiles {
		return nil, fmt.Errorf("jail: %d extra files (at most %d)", len(spec.ExtraFiles), MaxExtraFiles)
	}
	for i, f := range spec.ExtraFiles {
		if f == nil {
			return nil, fmt.Errorf("jail: ExtraFiles[%d] is nil", i)
		}
	}
	if spec.NetNS != "" && !filepath.IsAbs(spec.NetNS) {
		return nil, fmt.Errorf("jail: network namespace %q is not an absolute path", spec.NetNS)
	}
	if !spec.Isolate {
		if len(spec.Binds) != 0 {
			return nil, errors.New("jail: Binds need Isolate")
		}
		return p, p.wire.validate()
	}

	p.baseDir = spec.BaseDir
	if p.baseDir == "" {
		p.baseDir = DefaultBaseDir
	}
	if !filepath.IsAbs(p.baseDir) || filepath.Clean(p.baseDir) != p.baseDir {
		return nil, fmt.Errorf("jail: base directory %q is not an absolute clean path", p.baseDir)
	}
	w := &p.wire
	w.UID, w.GID = spec.UID, spec.GID
	if w.UID == 0 {
		w.UID = DefaultUID
	}
	if w.GID == 0 {
		w.GID = DefaultGID
	}
	if w.UID < 0 || w.UID >= 1<<32-1 || w.GID < 0 || w.GID >= 1<<32-1 {
		return nil, fmt.Errorf("jail: uid %d gid %d: want 1..4294967294 each (0 means %d)", spec.UID, spec.GID, DefaultUID)
	}
	w.KVM, w.TUN = spec.KVM, spec.TUN
	if len(spec.Binds) > MaxBinds {
		return nil, fmt.Errorf("jail: %d binds (at most %d)", len(spec.Binds), MaxBinds)
	}
	var largestRW uint64
	for _, b := range spec.Binds {
		if err := ValidateJailPath(b.Jail); err != nil {
			return nil, err
		}
		wb, size, err := resolveBind(b)
		if err != nil {
			return nil, err
		}
		if !b.ReadOnly && size > largestRW {
			largestRW = size
		}
		w.Binds = append(w.Binds, wb)
	}
	r := spec.Rlimits
	if r.NOFILE == 0 {
		r.NOFILE = DefaultNOFILE
	}
	if r.NPROC == 0 {
		r.NPROC = DefaultNPROC
	}
	if r.FSIZE == 0 {
		r.FSIZE = max(DefaultFSIZE, largestRW)
	} else if r.FSIZE < largestRW {
		return nil, fmt.Errorf("jail: RLIMIT_FSIZE %d is below the size of the largest writable bind (%d bytes): writes to it would fail", r.FSIZE, largestRW)
	}
	w.Rlimits = r
	// Root is filled in by acquireDir; validate the rest now, with a
	// stand-in, so a bad spec fails before anything is created.
	w.Root = filepath.Join(p.baseDir, spec.ID, "root")
	if err := w.validate(); err != nil {
		return nil, err
	}
	p.required, p.optional = childCaps(w.KVM || w.TUN)
	return p, nil
}

// resolveBind makes the source absolute and checks it exists and is a
// regular file or a block device. It returns the size of the file.
func resolveBind(b Bind) (wireBind, uint64, error) {
	if b.Host == "" || strings.IndexByte(b.Host, 0) >= 0 {
		return wireBind{}, 0, fmt.Errorf("jail: bind %s: bad source path %q", b.Jail, b.Host)
	}
	host, err := filepath.Abs(b.Host)
	if err != nil {
		return wireBind{}, 0, fmt.Errorf("jail: bind %s: source %s: %w", b.Jail, b.Host, err)
	}
	st, err := os.Stat(host)
	if err != nil {
		return wireBind{}, 0, fmt.Errorf("jail: bind %s: source %w", b.Jail, err)
	}
	wb := wireBind{Host: host, Jail: b.Jail, ReadOnly: b.ReadOnly}
	switch m := st.Mode(); {
	case m.IsRegular():
		return wb, uint64(st.Size()), nil
	case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
		wb.Block = true
		f, err := os.Open(host)
		if err != nil {
			return wireBind{}, 0, fmt.Errorf("jail: bind %s: source %w", b.Jail, err)
		}
		defer f.Close()
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			return wireBind{}, 0, fmt.Errorf("jail: bind %s: size of block device %s: %w", b.Jail, host, err)
		}
		return wb, uint64(size), nil
	default:
		return wireBind{}, 0, fmt.Errorf("jail: bind %s: source %s is a %s, want a regular file or a block device", b.Jail, host, describeMode(m))
	}
}

func describeMode(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Start validates spec, creates BaseDir/ID (with Isolate), starts the
// child and returns once the child has finished Enter: at that point it
// is jailed and holds nothing but its files. See the package
// documentation for what happens on which thread and why.
func Start(spec Spec) (*Jail, error) {
	p, err := prepare(&spec)
	if err != nil {
		return nil, err
	}
	if spec.Isolate && os.Geteuid() != 0 {
		// Only a uid 0 → non-zero change makes the kernel clear the
		// permitted, effective and ambient sets on every thread.
		return nil, fmt.Errorf("jail: an isolated child needs a supervisor running as root (euid %d)", os.Geteuid())
	}
	var netns *os.File
	if spec.NetNS != "" {
		netns, err = openNetNS(spec.NetNS)
		if err != nil {
			return nil, err
		}
		defer netns.Close()
	}
	var dir *vmDir
	if spec.Isolate {
		dir, err = acquireDir(p.baseDir, spec.ID)
		if err != nil {
			return nil, err
		}
		p.wire.Root = dir.root
	}
	j, err := start(spec, p, netns, dir)
	if err != nil && dir != nil {
		if rerr := dir.release(); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	return j, err
}

func openNetNS(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("jail: network namespace: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil || st.Type != unix.NSFS_MAGIC {
		f.Close()
		return nil, fmt.Errorf("jail: network namespace %s is not a namespace file (want /run/netns/NAME or /proc/PID/ns/net)", path)
	}
	return f, nil
}

// start does the part of Start after the per-VM directory exists; on
// error the caller releases the directory.
func start(spec Spec, p *prepared, netns *os.File, dir *vmDir) (*Jail, error) {
	msg, err := p.wire.encode()
	if err != nil {
		return nil, fmt.Errorf("jail: encoding the spec: %w", err)
	}
	specMsg := formatMsg(msgSpec, string(msg))
	if len(specMsg) > maxSpecMsg {
		return nil, fmt.Errorf("jail: the spec is %d bytes encoded (at most %d; fewer or shorter bind paths)", len(specMsg), maxSpecMsg)
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("jail: control socket: %w", err)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, fmt.Errorf("jail: control socket: %w", err)
	}
	ctl := os.NewFile(uintptr(fds[0]), "jail-control")
	childEnd := os.NewFile(uintptr(fds[1]), "jail-control-child")

	cmd := &exec.Cmd{
		Path:       "/proc/self/exe",
		Args:       append([]string{argv0()}, spec.Args...),
		Env:        childEnv(spec.Isolate),
		Stdin:      spec.Stdin,
		Stdout:     spec.Stdout,
		Stderr:     spec.Stderr,
		ExtraFiles: append([]*os.File{childEnd}, spec.ExtraFiles...),
		SysProcAttr: &syscall.SysProcAttr{
			// No controlling terminal: a jailed process sharing the
			// user's tty could TIOCSTI keystrokes into the shell, and
			// tty signals (^C) go to the supervisor, which forwards.
			Setsid:    true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	if spec.Isolate {
		cmd.SysProcAttr.Cloneflags = unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS
	}
	j := &Jail{
		cmd: cmd, ctl: ctl, dir: dir, onVCPU: spec.OnVCPUThreads, beforeExec: spec.BeforeExec,
		exited: make(chan struct{}), ctlDone: make(chan struct{}),
	}
	started := make(chan error, 1)
	goLockedOffMain(func() { j.supervise(p, netns, started) })
	err = <-started
	childEnd.Close()
	if err != nil {
		<-j.exited
		ctl.Close()
		return nil, err
	}
	j.pid = cmd.Process.Pid

	// abort kills a child that has not finished Enter, and cleans up all
	// but the directory (the caller releases that).
	abort := func(err error) (*Jail, error) {
		_ = cmd.Process.Kill()
		<-j.exited
		ctl.Close()
		return nil, err
	}
	if spec.Isolate {
		ino, err := nsInode(j.pid, "pid")
		if err != nil {
			return abort(fmt.Errorf("jail: the child's pid namespace: %w", err))
		}
		j.pidNS = ino
	}
	if spec.OnStart != nil {
		if err := spec.OnStart(j.pid); err != nil {
			return abort(fmt.Errorf("jail: OnStart(%d): %w", j.pid, err))
		}
	}
	if err := writeMsg(ctl, specMsg); err != nil {
		return abort(fmt.Errorf("jail: sending the spec to the child: %w", j.childGone(err)))
	}
	kind, body, err := readMsg(ctl, maxChildMsg, readyTimeout)
	switch {
	case err != nil:
		return abort(fmt.Errorf("jail: waiting for the child to enter the jail: %w", j.childGone(err)))
	case kind == msgFail:
		return abort(fmt.Errorf("jail: child: %s", strings.TrimPrefix(sanitize(body), "jail: ")))
	case kind != msgReady || body != "":
		return abort(fmt.Errorf("jail: unexpected message %q from the child during setup", sanitize(kind)))
	}
	go j.serve()
	return j, nil
}

// childGone adds the child's exit status to err if the child has exited.
func (j *Jail) childGone(err error) error {
	select {
	case <-j.exited:
	case <-time.After(time.Second):
		return err
	}
	if st := j.cmd.ProcessState; st != nil {
		return fmt.Errorf("%w (child %s)", err, st)
	}
	return err
}

func argv0() string {
	if exe, err := os.Readlink("/proc/self/exe"); err == nil {
		return filepath.Base(strings.TrimSuffix(exe, " (deleted)"))
	}
	return "govmm"
}

// childEnv is the child's whole environment. A jailed child gets the
// marker and nothing else of ours. Both kinds get
// GODEBUG=containermaxprocs=0: otherwise the child's Go runtime opens the
// cgroup CPU limit files at startup and holds them open for its whole life
// (fds to host cgroupfs files inside the jail), and of the wrong cgroup at
// that, the supervisor's: OnStart moves the child only later. GOMAXPROCS
// then follows the CPUs the child may run on. A supervised, non-isolated
// child keeps the rest of our environment.
func childEnv(isolate bool) []string {
	env := []string{envMarker + "=" + envMarkerValue}
	godebug := "containermaxprocs=0"
	if !isolate {
		for _, kv := range os.Environ() {
			switch {
			case strings.HasPrefix(kv, envMarker+"="):
			case strings.HasPrefix(kv, "GODEBUG="):
				if v := strings.TrimPrefix(kv, "GODEBUG="); v != "" {
					godebug = v + "," + godebug // the last setting wins
				}
			default:
				env = append(env, kv)
			}
		}
	}
	return append(env, "GODEBUG="+godebug)
}

// goLockedOffMain runs f on a new goroutine locked to an OS thread that is
// not the process's main thread, and leaves it locked when f returns, so
// the runtime ends that thread. The main thread must be avoided: the Go
// runtime cannot end it, so it "wedges" it instead, and a wedged main
// thread would keep the changes f made (empty bounding set, no_new_privs,
// another netns) for the rest of the process's life. If the new goroutine
// lands on the main thread, it holds it (so no other goroutine can run
// there) until a second goroutine has locked a different thread, then
// gives it back unchanged.
func goLockedOffMain(f func()) {
	go func() {
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			f()
			return // still locked: the thread exits
		}
		locked := make(chan struct{})
		go func() {
			runtime.LockOSThread() // cannot be the main thread: it is ours
			close(locked)
			f()
		}()
		<-locked
		runtime.UnlockOSThread()
	}()
}

// supervise runs on its own goroutine, locked to an OS thread it never
// unlocks: that thread is changed for the child (netns, inheritable
// capabilities, empty bounding set, no_new_privs) and must die with the
// goroutine. It forks the child, reports the result on started, then
// waits for the child: Pdeathsig is tied to the forking thread, so that
// thread must live exactly as long as the child.
func (j *Jail) supervise(p *prepared, netns *os.File, started chan<- error) {
	runtime.LockOSThread() // never unlocked; see the package documentation
	defer close(j.exited)
	if unix.Gettid() == unix.Getpid() {
		started <- errors.New("jail: internal error: the supervising goroutine runs on the main thread")
		return
	}
	ambient, err := prepareThread(netns, p)
	if err != nil {
		started <- err
		return
	}
	j.cmd.SysProcAttr.AmbientCaps = ambient
	if j.beforeExec != nil {
		if err := j.beforeExec(); err != nil {
			started <- fmt.Errorf("jail: before exec: %w", err)
			return
		}
	}
	markInheritedCloexec()
	if err := j.cmd.Start(); err != nil {
		started <- fmt.Errorf("jail: starting the child: %w", err)
		return
	}
	started <- nil
	err = j.cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		err = nil
	}
	j.waitErr = err
}

// prepareThread makes the calling (locked) thread what the child must
// inherit. It returns the capabilities the child keeps across its exec.
func prepareThread(netns *os.File, p *prepared) ([]uintptr, error) {
	if netns != nil {
		if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
			return nil, fmt.Errorf("jail: step netns: joining %s: %w", netns.Name(), err)
		}
	}
	if !p.wire.Isolate {
		return nil, nil
	}
	caps, err := getCaps()
	if err != nil {
		return nil, fmt.Errorf("jail: step capabilities: %w", err)
	}
	var keep []uintptr
	for _, c := range p.required {
		in, err := inBoundingSet(c)
		if err != nil || !in || !caps.permitted(c) {
			return nil, fmt.Errorf("jail: step capabilities: the supervisor lacks %s, which the jail setup needs", capNameOf(c))
		}
		keep = append(keep, c)
	}
	for _, c := range p.optional {
		if in, err := inBoundingSet(c); err == nil && in && caps.permitted(c) {
			keep = append(keep, c)
		}
	}
	// (2) Inheritable first: capset may only add to it what is still in
	// the bounding set.
	for _, c := range keep {
		caps.addInheritable(c)
	}
	if err := caps.set(); err != nil {
		return nil, fmt.Errorf("jail: step capabilities: raising the inheritable set: %w", err)
	}
	// (3) Empty the bounding set.
	last, err := lastCap()
	if err != nil {
		return nil, fmt.Errorf("jail: step bounding-set: %w", err)
	}
	for c := uintptr(0); c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, c, 0, 0, 0); err != nil {
			return nil, fmt.Errorf("jail: step bounding-set: dropping %s: %w", capNameOf(c), err)
		}
	}
	for c := uintptr(0); c <= last; c++ {
		if in, err := inBoundingSet(c); err != nil || in {
			return nil, fmt.Errorf("jail: step bounding-set: %s is still in the bounding set", capNameOf(c))
		}
	}
	// (4) no_new_privs.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return nil, fmt.Errorf("jail: step no-new-privs: %w", err)
	}
	return keep, nil
}

// markInheritedCloexec marks every fd from 3 up close-on-exec, so that fds
// this process inherited without O_CLOEXEC (Go opens everything with it)
// do not reach the child; the child gets stdio and ExtraFiles only, which
// exec.Cmd dup2s into place after the fork. Closing them instead would
// pull fds from under the Go runtime and other goroutines.
func markInheritedCloexec() {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Kernels before 5.11: one fd at a time.
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd >= 3 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

// nsInode is the inode of /proc/PID/ns/KIND.
func nsInode(pid int, kind string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/ns/"+kind, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// serve answers the child's one thread report. Everything the child sends
// is untrusted: bounded datagrams, strict parsing, TIDs mapped only to
// threads of this child. After one report (or any protocol error) it
// stops and closes the parent's end.
func (j *Jail) serve() {
	defer close(j.ctlDone)
	defer j.ctl.Close()
	kind, body, err := readMsg(j.ctl, maxChildMsg, 0)
	if err != nil {
		return // the child exited (EOF) or Wait closed the socket
	}
	if kind != msgVCPUs {
		_ = writeMsg(j.ctl, formatMsg(msgError, "unexpected message"))
		return
	}
	reply := formatMsg(msgOK, "")
	if err := j.handleVCPUs(body); err != nil {
		reply = formatMsg(msgError, sanitize(err.Error()))
	}
	_ = writeMsg(j.ctl, reply)
}

func (j *Jail) handleVCPUs(body string) error {
	tids, err := parseTIDs(body)
	if err != nil {
		return err
	}
	host, err := mapTIDs(j.pid, j.pidNS, tids)
	if err != nil {
		return err
	}
	if j.onVCPU == nil {
		return nil
	}
	return j.onVCPU(host)
}

// mapTIDs maps TIDs in the child's pid namespace to host TIDs, from the
// NSpid lines of /proc/PID/task/*/status (host first, the child's own
// namespace last). Only threads of process pid are considered; pidNS, if
// not 0, must still be its pid namespace before and after the scan, so a
// pid reused after the child died cannot be mistaken for it.
func mapTIDs(pid int, pidNS uint64, nsTIDs []int) ([]int, error) {
	check := func() error {
		if pidNS == 0 {
			return nil
		}
		ino, err := nsInode(pid, "pid")
		if err != nil || ino != pidNS {
			return errors.New("the child is gone")
		}
		return nil
	}
	if err := check(); err != nil {
		return nil, err
	}
	taskDir := "/proc/" + strconv.Itoa(pid) + "/task"
	ents, err := os.ReadDir(taskDir)
	if err != nil {
		return nil, fmt.Errorf("listing the child's threads: %w", err)
	}
	byNS := make(map[int]int, len(ents))
	for _, e := range ents {
		hostTID, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(taskDir + "/" + e.Name() + "/status")
		if err != nil {
			continue // the thread exited meanwhile
		}
		if ns, ok := innermostNSpid(string(b)); ok {
			byNS[ns] = hostTID
		}
	}
	if err := check(); err != nil {
		return nil, err
	}
	host := make([]int, len(nsTIDs))
	for i, t := range nsTIDs {
		h, ok := byNS[t]
		if !ok {
			return nil, fmt.Errorf("thread %d is not a thread of the VMM process", t)
		}
		host[i] = h
	}
	return host, nil
}

// innermostNSpid is the last number on the NSpid line of a status file.
func innermostNSpid(status string) (int, bool) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.Atoi(f[len(f)-1])
			return n, err == nil
		}
	}
	return 0, false
}

// writeMsg sends one datagram.
func writeMsg(f *os.File, msg []byte) error {
	if err := f.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	n, err := f.Write(msg)
	if err == nil && n != len(msg) {
		err = io.ErrShortWrite
	}
	return err
}

// readMsg receives one datagram of at most max bytes (timeout 0: none).
// A closed peer is io.EOF.
func readMsg(f *os.File, max int, timeout time.Duration) (kind, body string, err error) {
	var dl time.Time
	if timeout > 0 {
		dl = time.Now().Add(timeout)
	}
	if err := f.SetReadDeadline(dl); err != nil {
		return "", "", err
	}
	buf := make([]byte, max+1)
	n, err := f.Read(buf)
	if err != nil {
		return "", "", err
	}
	if n == 0 {
		return "", "", io.EOF
	}
	return parseMsg(buf[:n], max)
}

// vmDir is BaseDir/ID, held with an exclusive flock on BaseDir/ID/lock for
// as long as the VM runs.
type vmDir struct {
	dir, root, lockPath string
	lock                *os.File
	reclaimed           bool // a stale directory of a dead supervisor was reused
}

// acquireDir creates BaseDir/ID (0700) and locks it. An existing directory
// whose lock nobody holds is the leftover of a supervisor that was killed
// before its Wait: it is reclaimed. A held lock means the id is in use.
func acquireDir(base, id string) (*vmDir, error) {
	if err := prepareBase(base); err != nil {
		return nil, err
	}
	d := &vmDir{dir: filepath.Join(base, id)}
	d.root = filepath.Join(d.dir, "root")
	d.lockPath = filepath.Join(d.dir, "lock")
	for attempt := 0; attempt < 8; attempt++ {
		err := os.Mkdir(d.dir, 0o700)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("jail: creating %s: %w", d.dir, err)
		}
		fresh := err == nil
		if st, err := os.Lstat(d.dir); err != nil {
			continue // removed under us: retry
		} else if !st.IsDir() {
			return nil, fmt.Errorf("jail: %s exists and is not a directory", d.dir)
		}
		lock, err := os.OpenFile(d.lockPath, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			continue // the directory went away between Mkdir and here
		}
		if err != nil {
			return nil, fmt.Errorf("jail: lock file: %w", err)
		}
		if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			lock.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("jail: VM id %q is in use: %s is locked by another running govmm", id, d.lockPath)
			}
			return nil, fmt.Errorf("jail: locking %s: %w", d.lockPath, err)
		}
		// The lock counts only if it is on the file that is at lockPath
		// now: a finishing supervisor unlinks it before unlocking.
		if !samePathFile(lock, d.lockPath) {
			lock.Close()
			continue
		}
		d.lock = lock
		if !fresh {
			if err := d.clearStale(); err != nil {
				d.lock.Close()
				return nil, err
			}
			d.reclaimed = true
		}
		if err := os.Mkdir(d.root, 0o700); err != nil {
			d.lock.Close()
			return nil, fmt.Errorf("jail: creating %s: %w", d.root, err)
		}
		return d, nil
	}
	return nil, fmt.Errorf("jail: could not lock %s: it kept being removed and recreated", d.dir)
}

func samePathFile(f *os.File, path string) bool {
	a, err1 := f.Stat()
	b, err2 := os.Lstat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// clearStale empties a reclaimed BaseDir/ID: only "lock" and an empty
// "root" may be there (root is a mount point only inside the dead child's
// mount namespace, so on the host it is an empty directory). Anything
// else is left for a human: rmdir, never a recursive removal, so a
// directory someone mounted something on is never emptied.
func (d *vmDir) clearStale() error {
	ents, err := os.ReadDir(d.dir)
	if err != nil {
		return fmt.Errorf("jail: reading stale %s: %w", d.dir, err)
	}
	for _, e := range ents {
		switch e.Name() {
		case "lock":
		case "root":
			if err := os.Remove(d.root); err != nil {
				return fmt.Errorf("jail: stale jail root of a dead supervisor could not be removed (remove it by hand): %w", err)
			}
		default:
			return fmt.Errorf("jail: stale %s holds an unexpected %q (remove it by hand)", d.dir, e.Name())
		}
	}
	return nil
}

// release removes BaseDir/ID, unlinking the lock file while still holding
// the lock, then unlocks.
func (d *vmDir) release() error {
	var errs []error
	if err := os.Remove(d.root); err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("jail: removing %s: %w", d.root, err))
	}
	if len(errs) == 0 {
		if err := os.Remove(d.lockPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("jail: removing %s: %w", d.lockPath, err))
		} else if err := os.Remove(d.dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("jail: removing %s: %w", d.dir, err))
		}
	}
	d.lock.Close()
	return errors.Join(errs...)
}

// prepareBase creates the base directory (0700) if needed and checks that
// it is a real directory only root can write.
func prepareBase(base string) error {
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return fmt.Errorf("jail: base directory: %w", err)
	}
	if err := os.Mkdir(base, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("jail: base directory: %w", err)
	}
	st, err := os.Lstat(base)
	if err != nil {
		return fmt.Errorf("jail: base directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("jail: base directory %s is not a directory (a symlink is not accepted)", base)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok || sys.Uid != 0 || st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("jail: base directory %s must be owned by root and not writable by group or others (it is %v)", base, st.Mode().Perm())
	}
	return nil
}
