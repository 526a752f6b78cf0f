//go:build linux && amd64

package kvm

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// maxEINTRRetries bounds the internal EINTR retry loop. EINTR from the
// non-RUN KVM ioctls only happens when mutex_lock_killable is interrupted,
// i.e. a fatal signal is pending and the process is about to die; the bound
// only guarantees the loop cannot spin forever if that assumption breaks.
const maxEINTRRetries = 1000

// ioctl issues an ioctl whose argument is a plain integer, retrying on
// EINTR (see the package documentation for why that is safe).
func ioctl(fd int, name string, req, arg uintptr) (uintptr, error) {
	for i := 0; ; i++ {
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, arg)
		if errno == 0 {
			return r, nil
		}
		if errno != unix.EINTR || i >= maxEINTRRetries {
			return 0, fmt.Errorf("%s: %w", name, errno)
		}
	}
}

// ioctlPtr issues an ioctl whose argument points to *p, retrying on EINTR.
// T must be a pointer-free kernel struct mirror: the kernel reads and
// writes it as raw bytes.
func ioctlPtr[T any](fd int, name string, req uintptr, p *T) (uintptr, error) {
	for i := 0; ; i++ {
		// The unsafe.Pointer to uintptr conversion must stay inside the call
		// expression so the compiler keeps *p alive and unmoved for the call.
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(unsafe.Pointer(p)))
		if errno == 0 {
			return r, nil
		}
		if errno != unix.EINTR || i >= maxEINTRRetries {
			return 0, fmt.Errorf("%s: %w", name, errno)
		}
	}
}

// ioctlRunOnce issues KVM_RUN exactly once and returns the raw errno: the
// caller must see EINTR, never have it retried away.
func ioctlRunOnce(fd int) unix.Errno {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), ioctlRun, 0)
	return errno
}

// flex is a kernel struct made of a fixed header H followed by a flexible
// array of E (struct kvm_cpuid2, kvm_msrs, kvm_msr_list, kvm_irq_routing).
// The memory is one []uint64 allocation, so it is 8-byte aligned and holds
// no Go pointers; hdr and ents are views into it.
type flex[H, E any] struct {
	buf  []uint64
	hdr  *H
	ents []E
}

// newFlex allocates a zeroed header with room for n entries. n must be
// bounded by the caller (every caller caps it well below overflow).
func newFlex[H, E any](n int) (*flex[H, E], error) {
	var h H
	var e E
	hsz, esz, ealign := unsafe.Sizeof(h), unsafe.Sizeof(e), unsafe.Alignof(e)
	if n < 0 || unsafe.Alignof(h) > 8 || ealign > 8 || esz == 0 {
		return nil, fmt.Errorf("flexible array of %d entries: %w", n, ErrInvalidArgument)
	}
	off := (hsz + ealign - 1) &^ (ealign - 1)
	if uint64(n) > (1<<31)/uint64(esz) {
		return nil, fmt.Errorf("flexible array of %d entries: %w", n, ErrTooLarge)
	}
	total := off + uintptr(n)*esz
	buf := make([]uint64, (total+7)/8)
	base := unsafe.Pointer(&buf[0])
	f := &flex[H, E]{buf: buf, hdr: (*H)(base)}
	if n > 0 {
		f.ents = unsafe.Slice((*E)(unsafe.Add(base, off)), n)
	}
	return f, nil
}

// ioctl passes the flexible struct to the kernel.
func (f *flex[H, E]) ioctl(fd int, name string, req uintptr) (uintptr, error) {
	r, err := ioctlPtr(fd, name, req, f.hdr)
	runtime.KeepAlive(f.buf)
	return r, err
}

// runWord0 returns the 32-bit word at the start of kvm_run, which holds
// request_interrupt_window (byte 0) and immediate_exit (byte 1). Both are
// userspace-owned and may be set from different threads (the vCPU thread
// and a stopper), so they are updated with a CAS on the containing word.
func runWord0(mem []byte) (*uint32, error) {
	if len(mem) < 4 {
		return nil, fmt.Errorf("kvm_run mapping of %d bytes: %w", len(mem), ErrInvalidArgument)
	}
	p := unsafe.Pointer(&mem[0])
	if uintptr(p)%4 != 0 {
		return nil, fmt.Errorf("kvm_run mapping not 4-byte aligned: %w", ErrInvalidArgument)
	}
	return (*uint32)(p), nil
}
