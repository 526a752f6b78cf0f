//go:build linux

package blk

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// iovec is struct iovec. Base points into guest RAM (a memory.Guest slice)
// or the bounce buffer; the Disk clears its iovecs after every request so no
// stale pointer into guest RAM outlives it.
type iovec = unix.Iovec

// preadv and pwritev are the raw syscalls. unix.Preadv/Pwritev build their
// iovec array per call and allocate it once a request has more than 8
// segments; these take the Disk's reused array instead, so a request of any
// shape costs no allocation. iov must not be empty.
//
// The kernel takes the offset as pos_l, pos_h halves of a long each
// (pos_from_hilo). Shifting twice by half a long, as the kernel does, gives
// pos_h = 0 on 64-bit and the high word on 32-bit.
func offHiLo(off int64) (lo, hi uintptr) {
	const halfLong = 4 * unsafe.Sizeof(uintptr(0))
	return uintptr(off), uintptr(uint64(off) >> halfLong >> halfLong)
}

func preadv(fd int, iov []iovec, off int64) (int, error) {
	lo, hi := offHiLo(off)
	n, _, e := unix.Syscall6(unix.SYS_PREADV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), lo, hi, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func pwritev(fd int, iov []iovec, off int64) (int, error) {
	lo, hi := offHiLo(off)
	n, _, e := unix.Syscall6(unix.SYS_PWRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)), lo, hi, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
