//go:build linux && amd64

package seccomp

import (
	"errors"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// load calls seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) on the calling
// thread. With SECCOMP_FILTER_FLAG_TSYNC the kernel returns, instead of
// an error, the id of a thread it could not synchronise; that id is
// returned as tid (0 on success).
func load(prog []unix.SockFilter, flags uintptr) (tid int, err error) {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return 0, errors.New("program length out of range")
	}
	fprog := unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}
	// The kernel copies the program during the call; the conversion stays
	// inside the call expression so fprog is kept alive and unmoved.
	r, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, flags, uintptr(unsafe.Pointer(&fprog)))
	runtime.KeepAlive(prog)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
}
