//go:build linux && cgo

package mac

// #include "landlock_ctor_linux.h"
import "C"

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ExecRestricted re-executes the running binary with the same arguments,
// Landlock-restricted to ro (read) and rw (read and write) files from its
// very first instruction: the rules travel in the environment and an ELF
// constructor (landlock_ctor_linux.c) applies them while the new image
// has one thread. It is how a cgo binary confines all its threads where
// the kernel lacks LANDLOCK_RESTRICT_SELF_TSYNC. The PID stays the same,
// so whoever supervises us is unaffected. It returns only on error.
//
// Only regular files and devices are accepted: a directory rule would
// grant a whole subtree, which no VM needs. The new image learns that it
// was restricted through RestrictedAtStart.
func ExecRestricted(ro, rw []string) error {
	for _, list := range [][]string{ro, rw} {
		for _, p := range list {
			if err := ValidatePath(p); err != nil {
				return fmt.Errorf("landlock: %w", err)
			}
			st, err := os.Stat(p)
			if err != nil {
				return fmt.Errorf("landlock: %w", err)
			}
			if st.IsDir() {
				return fmt.Errorf("landlock: %w %q: a directory, want a file", ErrInvalidPath, p)
			}
		}
	}
	if _, err := LandlockABI(); err != nil {
		return err
	}
	env := append(os.Environ(),
		C.GOVMM_LANDLOCK_RO_ENV+"="+strings.Join(ro, "\n"),
		C.GOVMM_LANDLOCK_RW_ENV+"="+strings.Join(rw, "\n"))
	// execve replaces every thread; inherited fds keep their CLOEXEC
	// flags, and Go opens everything CLOEXEC.
	err := syscall.Exec("/proc/self/exe", os.Args, env)
	return fmt.Errorf("landlock: execve /proc/self/exe: %w", err)
}

// ErrRestrictAtStart is returned by RestrictedAtStart when the
// constructor was asked to restrict the process and could not.
var ErrRestrictAtStart = errors.New("landlock: restricting at exec failed")

// RestrictedAtStart reports whether this process was Landlock-restricted
// by the constructor before the Go runtime started (see ExecRestricted).
func RestrictedAtStart() (bool, error) {
	switch s := int(C.govmm_landlock_ctor_state); {
	case s == 1:
		return true, nil
	case s < 0:
		path := C.GoString(&C.govmm_landlock_ctor_path[0])
		return false, fmt.Errorf("%w: %s %s: %w", ErrRestrictAtStart, C.GoString(C.govmm_landlock_ctor_step), path, unix.Errno(-s))
	}
	return false, nil
}
