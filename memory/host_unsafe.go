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
	w, err := g.Word16(gpa)
	if err != nil {
		return 0, err
	}
	return w.Load(), nil
}

// StoreU16Release atomically stores v as a little-endian u16 at the
// 2-aligned gpa with (at least) release ordering, leaving the other half of
// the containing word as the guest last wrote it.
func (g *Guest) StoreU16Release(gpa uint64, v uint16) error {
	w, err := g.Word16(gpa)
	if err != nil {
		return err
	}
	return w.Store(v)
}

// Word16 is a bounds-checked handle to one u16 of guest RAM for atomic
// access, for a field that is touched on every request (a virtqueue index):
// the check and the region look-up are done once, by Guest.Word16, instead
// of on every access. The zero value is not usable.
//
// Lifetime: like a slice from Guest.Slice, a handle points into guest RAM
// and must not be used after Guest.Close; Close comes only after every user
// of the guest has stopped (see Guest).
type Word16 struct {
	w     *uint32 // the aligned word holding the u16, inside one region
	shift uint    // 0 or 16: where the u16 sits in *w
}

// Word16 checks the u16 at gpa for atomic access and returns its handle:
// gpa must be 2-aligned and the whole naturally aligned 4-byte word around
// it must lie inside one region (the guest's other half of the word is
// preserved by Store).
func (g *Guest) Word16(gpa uint64) (Word16, error) {
	w, shift, err := g.word16(gpa)
	if err != nil {
		return Word16{}, err
	}
	return Word16{w: w, shift: shift}, nil
}

// Load atomically loads the u16 with (at least) acquire ordering.
func (w Word16) Load() uint16 { return uint16(atomic.LoadUint32(w.w) >> w.shift) }

// Store atomically stores v with (at least) release ordering, leaving the
// other half of the word as the guest last wrote it. It fails with
// ErrContended if the guest keeps rewriting that other half.
func (w Word16) Store(v uint16) error {
	mask := uint32(0xffff) << w.shift
	for range maxCASRetries {
		old := atomic.LoadUint32(w.w)
		if atomic.CompareAndSwapUint32(w.w, old, old&^mask|uint32(v)<<w.shift) {
			return nil
		}
	}
	return fmt.Errorf("%w: u16 at host %p", ErrContended, w.w)
}

// Word32 is a bounds-checked handle to one naturally aligned u32 of guest
// RAM for atomic access: for two u16 fields that one side owns together,
// such as a virtqueue's used->flags and used->idx, which the device then
// publishes with one plain atomic store instead of a compare-and-swap
// loop. Lifetime as for Word16.
type Word32 struct {
	w *uint32
}

// Word32 checks the u32 at the 4-aligned gpa for atomic access.
func (g *Guest) Word32(gpa uint64) (Word32, error) {
	if gpa%4 != 0 {
		return Word32{}, fmt.Errorf("%w: u32 at gpa %#x", ErrMisaligned, gpa)
	}
	r, off, err := g.findRegion(gpa, 4)
	if err != nil {
		return Word32{}, err
	}
	p := unsafe.Pointer(&r.Host[off])
	if uintptr(p)%4 != 0 { // only possible for FromSlices regions
		return Word32{}, fmt.Errorf("%w: u32 at gpa %#x has host address %p", ErrMisaligned, gpa, p)
	}
	return Word32{w: (*uint32)(p)}, nil
}

// Load atomically loads the little-endian u32 with (at least) acquire
// ordering.
func (w Word32) Load() uint32 { return atomic.LoadUint32(w.w) }

// Store atomically stores v with (at least) release ordering. sync/atomic
// stores are sequentially consistent, so a later atomic load is also
// ordered after it (the store->load barrier of notification suppression).
func (w Word32) Store(v uint32) { atomic.StoreUint32(w.w, v) }
