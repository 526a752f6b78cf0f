package mac

import (
	"fmt"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ABI 1 file system rights: everything Landlock could restrict from the
// start. Handling all of them means anything not granted by a rule is
// denied.
const (
	llFileRights = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE |
		unix.LANDLOCK_ACCESS_FS_READ_FILE
	llABI1 = llFileRights | unix.LANDLOCK_ACCESS_FS_READ_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE |
		unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_FIFO | unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		unix.LANDLOCK_ACCESS_FS_MAKE_SYM
)

// LandlockABI returns the kernel's Landlock ABI version, or an error
// wrapping ErrNotAvailable that names the errno and what it means.
func LandlockABI() (int, error) {
	abi, reason, err := landlockProbe()
	if err != nil {
		return 0, err
	}
	if reason != "" {
		return 0, fmt.Errorf("landlock: %w: %s", ErrNotAvailable, reason)
	}
	return abi, nil
}

// LandlockAvailable reports whether Landlock can be used, and if not, why.
func LandlockAvailable() (bool, string) {
	_, reason, err := landlockProbe()
	if err != nil {
		return false, err.Error()
	}
	return reason == "", reason
}

// landlockProbe separates "the kernel says no" (reason) from errors we did
// not expect (err), so both the probe and LandlockABI can word them well.
func landlockProbe() (abi int, reason string, err error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	switch errno {
	case 0:
		return int(v), "", nil
	case unix.ENOSYS:
		return 0, "landlock_create_ruleset: ENOSYS (kernel built without CONFIG_SECURITY_LANDLOCK)", nil
	case unix.EOPNOTSUPP:
		return 0, "landlock_create_ruleset: EOPNOTSUPP (Landlock built in but not enabled; add it to lsm= on the kernel command line)", nil
	default:
		return 0, "", fmt.Errorf("landlock: landlock_create_ruleset(VERSION): %w", errno)
	}
}

// RestrictPaths confines the whole process to ro (read) and rw (read and
// write) paths; a directory grants its whole subtree. It cannot be undone,
// and it sets no_new_privs, which Landlock requires of unprivileged callers
// so that a setuid exec cannot escape the restriction.
//
// Landlock domains are per thread. A Go process has many threads, so the
// restriction must reach all of them: RestrictPaths uses the kernel's
// LANDLOCK_RESTRICT_SELF_TSYNC where it exists, else
// syscall.AllThreadsSyscall (which works only in cgo-free binaries). If
// neither is possible it fails rather than confine one thread of many; use
// RestrictThreadForExec then.
func RestrictPaths(ro, rw []string) error {
	return restrict(ro, rw, true)
}

// RestrictThreadForExec confines only the calling thread. It is for the
// jailer pattern: runtime.LockOSThread, RestrictThreadForExec, then
// syscall.Exec from the same thread, whose restriction the new program's
// only thread inherits.
func RestrictThreadForExec(ro, rw []string) error {
	return restrict(ro, rw, false)
}

func restrict(ro, rw []string, allThreads bool) error {
	abi, err := LandlockABI()
	if err != nil {
		return err
	}
	handled := uint64(llABI1)
	fileRW := uint64(unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE)
	if abi >= 2 {
		// Handle REFER but never grant it: no linking or renaming files
		// between directories.
		handled |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		handled |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
		fileRW |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	const dirRead = unix.LANDLOCK_ACCESS_FS_READ_FILE | unix.LANDLOCK_ACCESS_FS_READ_DIR
	dirRW := fileRW | dirRead | unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_REG |
		unix.LANDLOCK_ACCESS_FS_MAKE_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK

	attr := unix.LandlockRulesetAttr{Handled_access_fs: handled}
	// The full struct size is fine on older kernels: they accept a larger
	// struct whose unknown trailing fields are zero.
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET,
		uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return fmt.Errorf("landlock: create ruleset: %w", errno)
	}
	defer unix.Close(int(fd))

	addRule := func(p string, fileAccess, dirAccess uint64) error {
		if err := ValidatePath(p); err != nil {
			return fmt.Errorf("landlock: %w", err)
		}
		pfd, err := unix.Open(p, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("landlock: open %s: %w", p, err)
		}
		defer unix.Close(pfd)
		var st unix.Stat_t
		if err := unix.Fstat(pfd, &st); err != nil {
			return fmt.Errorf("landlock: stat %s: %w", p, err)
		}
		// Directory-only rights on a non-directory are EINVAL.
		access := fileAccess
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			access = dirAccess
		}
		pb := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(pfd)}
		_, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, fd, unix.LANDLOCK_RULE_PATH_BENEATH,
			uintptr(unsafe.Pointer(&pb)), 0, 0, 0)
		if errno != 0 {
			return fmt.Errorf("landlock: add rule for %s: %w", p, errno)
		}
		return nil
	}
	for _, p := range ro {
		if err := addRule(p, unix.LANDLOCK_ACCESS_FS_READ_FILE, dirRead); err != nil {
			return err
		}
	}
	for _, p := range rw {
		if err := addRule(p, fileRW, dirRW); err != nil {
			return err
		}
	}

	if !allThreads {
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("landlock: set no_new_privs: %w", err)
		}
		if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0); errno != 0 {
			return fmt.Errorf("landlock: restrict_self: %w", errno)
		}
		return nil
	}
	// no_new_privs on every thread first: restrict_self checks it per
	// thread, and seccomp-style TSYNC needs it too.
	if _, _, errno := syscall.AllThreadsSyscall(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0); errno != 0 {
		if errno != unix.ENOTSUP {
			return fmt.Errorf("landlock: set no_new_privs on all threads: %w", errno)
		}
		// cgo binary: set it here and hope TSYNC carries it; if the kernel
		// disagrees, restrict_self below fails with EPERM and we say so.
		if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
			return fmt.Errorf("landlock: set no_new_privs: %w", err)
		}
	}
	_, _, errno = unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, unix.LANDLOCK_RESTRICT_SELF_TSYNC, 0)
	if errno == 0 {
		return nil
	}
	if errno != unix.EINVAL {
		return fmt.Errorf("landlock: restrict_self(TSYNC): %w", errno)
	}
	// The kernel predates TSYNC: do each thread ourselves.
	_, _, errno = syscall.AllThreadsSyscall(unix.SYS_LANDLOCK_RESTRICT_SELF, fd, 0, 0)
	switch {
	case errno == 0:
		return nil
	case errno == unix.ENOTSUP:
		return fmt.Errorf("landlock: %w: cannot restrict every thread (kernel lacks LANDLOCK_RESTRICT_SELF_TSYNC and this is a cgo binary); use RestrictThreadForExec before exec", ErrNotAvailable)
	default:
		return fmt.Errorf("landlock: restrict_self on all threads: %w", errno)
	}
}
