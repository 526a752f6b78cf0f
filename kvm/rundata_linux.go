//go:build linux && amd64

package kvm

import (
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
)

// RunData is a view of a vCPU's mmap'd struct kvm_run.
//
// Exit fields are written by the kernel during KVM_RUN and read here after
// it returns, on the vCPU thread; accessors copy values out with
// bounds-checked reads, so a corrupt mapping can produce ErrBadExit but
// never an out-of-range access. IO and MMIO return slices into the mapping
// so that data for IN / MMIO-read exits can be filled in for the next
// KVM_RUN; those slices are valid only until the next Run or the VCPU's
// Close. The immediate_exit and request_interrupt_window bytes are written
// atomically and may be set from any goroutine.
//
// Locking: mu guards mem against VCPU.Close, which unmaps the page. Every
// accessor holds the read lock; after Close accessors return zero values
// (and IO returns ErrClosed), setters do nothing.
type RunData struct {
	mu    sync.RWMutex
	mem   []byte  // the whole mapping; len >= sizeofKVMRun; nil after release
	word0 *uint32 // first word of mem (see runWord0); nil after release
}

// newRunData wraps a kvm_run mapping (or, in tests, an aligned buffer).
func newRunData(mem []byte) (*RunData, error) {
	if uint64(len(mem)) < uint64(sizeofKVMRun) {
		return nil, fmt.Errorf("kvm_run mapping of %d bytes, need %d: %w", len(mem), sizeofKVMRun, ErrInvalidArgument)
	}
	w, err := runWord0(mem)
	if err != nil {
		return nil, err
	}
	return &RunData{mem: mem, word0: w}, nil
}

// release detaches the view from the mapping before it is unmapped.
func (r *RunData) release() {
	r.mu.Lock()
	r.mem, r.word0 = nil, nil
	r.mu.Unlock()
}

// setFlagByte atomically sets the byte at bit position shift of the first
// word to 0 or 1, leaving the other bytes untouched.
func (r *RunData) setFlagByte(shift uint, on bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.word0 == nil {
		return
	}
	mask := uint32(0xff) << shift
	var v uint32
	if on {
		v = 1 << shift
	}
	for {
		old := atomic.LoadUint32(r.word0)
		if atomic.CompareAndSwapUint32(r.word0, old, old&^mask|v) {
			return
		}
	}
}

func (r *RunData) flagByte(shift uint) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.word0 == nil {
		return false
	}
	return (atomic.LoadUint32(r.word0)>>shift)&0xff != 0
}

// Byte positions of the two userspace-written flags inside the first
// little-endian word of kvm_run.
const (
	shiftRequestInterruptWindow = uint(8 * runOffRequestInterruptWindow)
	shiftImmediateExit          = uint(8 * runOffImmediateExit)
)

// SetImmediateExit sets kvm_run.immediate_exit. While set, KVM_RUN returns
// EINTR without entering the guest; see the package documentation for the
// stop protocol. Safe to call from any goroutine.
func (r *RunData) SetImmediateExit(on bool) { r.setFlagByte(shiftImmediateExit, on) }

// ImmediateExit reports whether immediate_exit is set.
func (r *RunData) ImmediateExit() bool { return r.flagByte(shiftImmediateExit) }

// RequestInterruptWindow sets kvm_run.request_interrupt_window: in
// no-irqchip mode, ask KVM to exit with ExitIRQWindowOpen as soon as the
// guest can accept an interrupt.
func (r *RunData) RequestInterruptWindow(on bool) { r.setFlagByte(shiftRequestInterruptWindow, on) }

func (r *RunData) u8(off uintptr) uint8 {
	if off >= uintptr(len(r.mem)) {
		return 0
	}
	return r.mem[off]
}

func (r *RunData) u16(off uintptr) uint16 {
	if off > uintptr(len(r.mem)) || uintptr(len(r.mem))-off < 2 {
		return 0
	}
	return binary.LittleEndian.Uint16(r.mem[off:])
}

func (r *RunData) u32(off uintptr) uint32 {
	if off > uintptr(len(r.mem)) || uintptr(len(r.mem))-off < 4 {
		return 0
	}
	return binary.LittleEndian.Uint32(r.mem[off:])
}

func (r *RunData) u64(off uintptr) uint64 {
	if off > uintptr(len(r.mem)) || uintptr(len(r.mem))-off < 8 {
		return 0
	}
	return binary.LittleEndian.Uint64(r.mem[off:])
}

// ExitReason returns kvm_run.exit_reason.
func (r *RunData) ExitReason() ExitReason {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return ExitReason(r.u32(runOffExitReason))
}

// ReadyForInterruptInjection reports kvm_run.ready_for_interrupt_injection
// (no-irqchip mode: KVM_INTERRUPT would be accepted now).
func (r *RunData) ReadyForInterruptInjection() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.u8(runOffReadyForInterruptInjection) != 0
}

// IFFlag reports kvm_run.if_flag, the guest's RFLAGS.IF at exit.
func (r *RunData) IFFlag() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.u8(runOffIFFlag) != 0
}

// CR8 returns kvm_run.cr8 (the guest TPR at exit).
func (r *RunData) CR8() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.u64(runOffCR8)
}

// APICBase returns kvm_run.apic_base.
func (r *RunData) APICBase() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.u64(runOffAPICBase)
}

// IOExit describes a KVM_EXIT_IO. For IOOut, Data holds what the guest
// wrote; for IOIn, the VMM fills Data before the next Run. Data has
// exactly Size*Count bytes: Count > 1 is a rep ins/outs string operation,
// Count consecutive elements of Size bytes.
type IOExit struct {
	Direction IODirection
	Size      uint8 // 1, 2 or 4
	Port      uint16
	Count     uint32 // >= 1
	Data      []byte
}

// IO decodes the io member of kvm_run. Any direction, size, count or
// data_offset that does not describe data lying wholly inside the mapping
// and after the fixed kvm_run struct yields an error wrapping ErrBadExit.
func (r *RunData) IO() (IOExit, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.mem == nil {
		return IOExit{}, fmt.Errorf("kvm_run io: %w", ErrClosed)
	}
	io := IOExit{
		Direction: IODirection(r.u8(runOffIODirection)),
		Size:      r.u8(runOffIOSize),
		Port:      r.u16(runOffIOPort),
		Count:     r.u32(runOffIOCount),
	}
	off := r.u64(runOffIODataOffset)
	if io.Direction != IOIn && io.Direction != IOOut {
		return IOExit{}, fmt.Errorf("kvm_run io: direction %d: %w", io.Direction, ErrBadExit)
	}
	switch io.Size {
	case 1, 2, 4:
	default:
		return IOExit{}, fmt.Errorf("kvm_run io: size %d: %w", io.Size, ErrBadExit)
	}
	if io.Count == 0 {
		return IOExit{}, fmt.Errorf("kvm_run io: count 0: %w", ErrBadExit)
	}
	// size <= 4 and count < 2^32, so n < 2^34: no overflow in uint64.
	n := uint64(io.Size) * uint64(io.Count)
	l := uint64(len(r.mem))
	// The data must not alias the kvm_run fields themselves, and
	// off+n <= l is checked as n <= l-off so it cannot wrap.
	if off < uint64(sizeofKVMRun) || off > l || n > l-off {
		return IOExit{}, fmt.Errorf("kvm_run io: data_offset %#x + %d bytes outside %d-byte mapping: %w", off, n, l, ErrBadExit)
	}
	io.Data = r.mem[off : off+n : off+n]
	return io, nil
}

// MMIOExit describes a KVM_EXIT_MMIO. For a write, Data holds the bytes
// the guest stored; for a read, the VMM fills Data before the next Run.
// Data aliases kvm_run.mmio.data and has Len bytes when Len is valid
// (1..8); when kvm_run holds any other length Data is empty, which a bus
// rejects as a bad access width.
type MMIOExit struct {
	Addr    uint64
	Data    []byte
	Len     uint32 // kvm_run.mmio.len as reported, for diagnostics
	IsWrite bool
}

// MMIO decodes the mmio member of kvm_run.
func (r *RunData) MMIO() MMIOExit {
	r.mu.RLock()
	defer r.mu.RUnlock()
	m := MMIOExit{
		Addr:    r.u64(runOffMMIOPhysAddr),
		Len:     r.u32(runOffMMIOLen),
		IsWrite: r.u8(runOffMMIOIsWrite) != 0,
	}
	if r.mem != nil && m.Len >= 1 && uint64(m.Len) <= uint64(runMMIODataMax) {
		n := uintptr(m.Len)
		m.Data = r.mem[runOffMMIOData : runOffMMIOData+n : runOffMMIOData+n]
	}
	return m
}

// FailEntry decodes the fail_entry member of kvm_run (KVM_EXIT_FAIL_ENTRY).
func (r *RunData) FailEntry() (reason uint64, cpu uint32) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.u64(runOffFailEntryReason), r.u32(runOffFailEntryCPU)
}

// InternalError decodes the internal member of kvm_run
// (KVM_EXIT_INTERNAL_ERROR). ndata is clamped to the 16 entries the array
// holds; data is a copy.
func (r *RunData) InternalError() (suberror uint32, data []uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	suberror = r.u32(runOffInternalSuberror)
	n := uint64(r.u32(runOffInternalNData))
	if n > uint64(runInternalDataMax) {
		n = uint64(runInternalDataMax)
	}
	data = make([]uint64, n)
	for i := range data {
		data[i] = r.u64(runOffInternalData + uintptr(i)*8)
	}
	return suberror, data
}

// SystemEvent decodes the system_event member of kvm_run
// (KVM_EXIT_SYSTEM_EVENT): typ is a SystemEvent* value.
func (r *RunData) SystemEvent() (typ uint32, flags uint64) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.u32(runOffSystemEventType), r.u64(runOffSystemEventFlags)
}
