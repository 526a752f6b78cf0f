//go:build linux

package memory

import (
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These wrappers keep unsafe out of mmap_linux.go. Mappings are handled as
// []byte over non-Go memory: the garbage collector ignores such pointers, and
// slicing keeps the address arithmetic bounds-checked.

// mmapReserve maps length bytes of PROT_NONE address space.
func mmapReserve(length uintptr) ([]byte, error) {
	p, err := unix.MmapPtr(-1, 0, nil, length, unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mmap reservation of %#x bytes: %w", length, err)
	}
	return unsafe.Slice((*byte)(p), length), nil
}

// mmapFixed replaces the pages under dst (inside a reservation we own) with
// a new mapping; MAP_FIXED is added to flags.
func mmapFixed(dst []byte, prot, flags, fd int, off int64) error {
	want := unsafe.Pointer(unsafe.SliceData(dst))
	p, err := unix.MmapPtr(fd, off, want, uintptr(len(dst)), prot, flags|unix.MAP_FIXED)
	if err != nil {
		return fmt.Errorf("mmap %#x bytes at %p: %w", len(dst), want, err)
	}
	if p != want {
		return fmt.Errorf("mmap: MAP_FIXED returned %p, want %p", p, want)
	}
	return nil
}

// munmapBytes unmaps the pages under b.
func munmapBytes(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(len(b))); err != nil {
		return fmt.Errorf("munmap %#x bytes at %p: %w", len(b), unsafe.SliceData(b), err)
	}
	return nil
}

// addrOf returns the host address of b[0].
func addrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
