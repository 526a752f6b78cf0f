package mac

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

const selinuxXattr = "security.selinux"

// SELinuxAvailable reports whether SELinux is enabled in the running
// kernel, and if not, why.
func SELinuxAvailable() (bool, string) { return selinuxAvailableAt("/") }

// selinuxAvailableAt takes a root so tests can fake the host's /sys and
// /proc. selinuxfs is the signal: the kernel registers it only when
// SELinux is enabled, and userland mounts it at /sys/fs/selinux (or, on
// old systems, /selinux).
func selinuxAvailableAt(root string) (bool, string) {
	if _, err := os.Stat(filepath.Join(root, "sys/fs/selinux/enforce")); err == nil {
		return true, ""
	}
	if mountedFS(filepath.Join(root, "proc/self/mounts"), "selinuxfs") {
		return true, ""
	}
	reason := "/sys/fs/selinux not mounted"
	if !hasFilesystem(filepath.Join(root, "proc/filesystems"), "selinuxfs") {
		reason += " (no selinuxfs in /proc/filesystems: kernel without SELinux)"
	}
	return false, reason
}

func mountedFS(mounts, fstype string) bool {
	f, err := os.Open(mounts)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if fields := strings.Fields(s.Text()); len(fields) > 2 && fields[2] == fstype {
			return true
		}
	}
	return false
}

func hasFilesystem(list, fstype string) bool {
	b, err := os.ReadFile(list)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fstype {
			return true
		}
	}
	return false
}

func selinuxNotAvailable() error {
	ok, reason := SELinuxAvailable()
	if ok {
		return nil
	}
	return fmt.Errorf("selinux: %w: %s", ErrNotAvailable, reason)
}

// validContext is a sanity check on a full context before it reaches the
// kernel: the kernel is the authority on validity, but a NUL or newline
// means the caller built the string wrong, and we should say so ourselves.
func validContext(label string) error {
	if strings.Count(label, ":") < 3 || strings.ContainsAny(label, "\x00\n ") {
		return fmt.Errorf("selinux: %w: malformed context %q", ErrInvalidName, label)
	}
	return nil
}

// SetExecLabel makes the next execve of the calling thread run in label
// (from ProcessLabel). The attribute is per thread, so the caller must hold
// runtime.LockOSThread from this call through the exec (syscall.Exec, or an
// exec.Cmd started on that thread: the forked child copies the thread's
// credentials, exec attribute included). The kernel clears it at exec.
func SetExecLabel(label string) error {
	if err := selinuxNotAvailable(); err != nil {
		return err
	}
	if err := validContext(label); err != nil {
		return err
	}
	return writeAttr("/proc/thread-self/attr/exec", label)
}

// ClearExecLabel undoes SetExecLabel when the exec does not happen.
func ClearExecLabel() error {
	if err := selinuxNotAvailable(); err != nil {
		return err
	}
	return writeAttr("/proc/thread-self/attr/exec", "")
}

func writeAttr(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("mac: %w", err)
	}
	_, err = f.Write([]byte(value))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("mac: write %s: %w", path, err)
	}
	return nil
}

// Relabel remembers the labels files had before LabelFiles changed them,
// so the VM's images can be given back their own labels when it stops and
// the next VM cannot inherit access through a leftover category pair.
type Relabel struct {
	prev []fileLabel
}

type fileLabel struct {
	path  string
	label []byte // nil: the file had no label to restore
}

// LabelFiles sets label (from ImageLabel) on each path, reading the old
// label first. Symlinks are not followed (Lsetxattr): the caller names the
// real files, and following a link would label whatever it points at. On
// failure the files already relabeled are restored.
func LabelFiles(label string, paths ...string) (*Relabel, error) {
	if err := selinuxNotAvailable(); err != nil {
		return nil, err
	}
	if err := validContext(label); err != nil {
		return nil, err
	}
	r := &Relabel{}
	for _, p := range paths {
		old, err := getLabel(p)
		if err != nil {
			return nil, errors.Join(err, r.Restore())
		}
		if err := unix.Lsetxattr(p, selinuxXattr, []byte(label), 0); err != nil {
			return nil, errors.Join(fmt.Errorf("selinux: label %s: %w", p, err), r.Restore())
		}
		r.prev = append(r.prev, fileLabel{path: p, label: old})
	}
	return r, nil
}

func getLabel(path string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, selinuxXattr, buf)
		switch {
		case err == nil:
			return buf[:n], nil
		case errors.Is(err, unix.ERANGE) && len(buf) < 1<<16:
			buf = make([]byte, 2*len(buf))
		case errors.Is(err, unix.ENODATA):
			return nil, nil
		default:
			return nil, fmt.Errorf("selinux: read label of %s: %w", path, err)
		}
	}
}

// Restore puts the previous labels back, in reverse order, and reports
// every file it could not restore. It is idempotent.
func (r *Relabel) Restore() error {
	var errs []error
	for i := len(r.prev) - 1; i >= 0; i-- {
		fl := r.prev[i]
		var err error
		if fl.label == nil {
			err = unix.Lremovexattr(fl.path, selinuxXattr)
		} else {
			err = unix.Lsetxattr(fl.path, selinuxXattr, fl.label, 0)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("selinux: restore label of %s: %w", fl.path, err))
		}
	}
	r.prev = nil
	return errors.Join(errs...)
}
