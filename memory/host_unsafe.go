package memory

import (
	"fmt"
	"sync/atomic"
	"unsafe"
)

// HostAddr returns the host virtual address of the start of r, for
// KVM_SET_USER_MEMORY_REGION. Only regions of a Guest made by New are
// suitable for KVM: FromSlices regions live on the Go heap.
func (r Region) HostAddr() uintptr {
	return uintptr(unsafe.Pointer(unsafe.SliceData(r.Host)))
}

// maxCASRetries bounds StoreU16Release against a guest that keeps rewriting
// the other half of the word; losing that many races in a row is not
// plausible for an honest guest.
const maxCASRetries = 1 << 12

// The 16-bit atomics are built on sync/atomic's 32-bit operations on the
// naturally aligned 4-byte word that contains the u16. Go has no 16-bit
// atomics, and a plain *uint16 access would rely on x86-64 hardware
// behaviour that the Go memory model does not promise (the compiler may
// reorder or merge plain accesses). sync/atomic operations are sequentially
// consistent, which is stronger than the acquire/release the virtqueue
// protocol needs. The price is that the whole 4-byte word must lie inside the
// same region; for the virtio rings (idx at offset 2 of a ring that has at
// least one more u16 or is preceded by flags) that always holds.

// word16 returns the aligned 32-bit word holding the u16 at gpa and the bit
// shift of that u16 within the word.
func (g *Guest) word16(gpa uint64) (*uint32, uint, error) {
	if gpa%2 != 0 {
		return nil, 0, fmt.Errorf("%w: u16 at gpa %#x", ErrMisaligned, gpa)
	}
	r, off, err := g.findRegion(gpa, 2)
	if err != nil {
		return nil, 0, err
	}
	addr := uintptr(unsafe.Pointer(&r.Host[off]))
	if addr%2 != 0 { // only possible for FromSlices regions
		return nil, 0, fmt.Errorf("%w: u16 at gpa %#x has host address %#x", ErrMisaligned, gpa, addr)
	}
	lead := uint64(addr % 4) // bytes of the word before the u16: 0 or 2
	if off < lead || off-lead+4 > r.Size {
		return nil, 0, fmt.Errorf("%w: aligned word around u16 at gpa %#x leaves the region", ErrOutOfRange, gpa)
	}
	w := (*uint32)(unsafe.Pointer(&r.Host[off-lead]))
	return w, uint(lead * 8), nil
}

// LoadU16Acquire atomically loads the little-endian u16 at the 2-aligned gpa
// with (at least) acquire ordering.
func (g *Guest) LoadU16Acquire(gpa uint64) (uint16, error) {
	w, shift, err := g.word16(gpa)
	if err != nil {
		return 0, err
	}
	return uint16(atomic.LoadUint32(w) >> shift), nil
}

// StoreU16Release atomically stores v as a little-endian u16 at the
// 2-aligned gpa with (at least) release ordering, leaving the other half of
// the containing word as the guest last wrote it.
func (g *Guest) StoreU16Release(gpa uint64, v uint16) error {
	w, shift, err := g.word16(gpa)
	if err != nil {
		return err
	}
	mask := uint32(0xffff) << shift
	for range maxCASRetries {
		old := atomic.LoadUint32(w)
		if atomic.CompareAndSwapUint32(w, old, old&^mask|uint32(v)<<shift) {
			return nil
		}
	}
	return fmt.Errorf("%w: u16 at gpa %#x", ErrContended, gpa)
}
