// Package devices holds the emulated devices that the guest reaches through
// port I/O and MMIO exits, and the Bus that routes those exits to them.
//
// Everything here treats the guest as hostile: the address, access width and
// value of every access come straight from guest code. Devices never panic,
// block, or grow memory without bound on such input; they return ErrBadAccess
// or ignore the access as the real hardware would.
//
// This package never imports kvm, so every device runs under `go test -fuzz`
// on machines without /dev/kvm. Interrupts leave a device through the IRQ
// interface, which the vmm implements with KVM_IRQ_LINE or an irqfd.
package devices

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Sentinel errors. Bus.Read/Write return them unwrapped so the hot path
// never allocates; Register wraps them with the names involved.
var (
	// ErrBadAccess: the device does not support this access width, alignment
	// or offset, or the access runs past the end of the device's range.
	// A read that fails with it has filled data with all-ones.
	ErrBadAccess = errors.New("unsupported device access")
	// ErrOverlap: Register was given a range that overlaps a registered one.
	ErrOverlap = errors.New("device range overlaps another device")
	// ErrNoDevice: no device is registered at the address. The bus has
	// filled a read's data with all-ones (an open bus reads as 0xff...),
	// so the vCPU loop can hand data back to the guest unchanged and simply
	// drop a write. It is not fatal: guests probe empty ports routinely.
	ErrNoDevice = errors.New("no device at address")
	// ErrInvalidRange: Register was given size 0, a range that wraps past
	// 2^64, a nil device, or an empty name.
	ErrInvalidRange = errors.New("invalid device range")
)

// Device is what the bus dispatches to. offset is relative to the range
// base; len(data) is the access size (the bus guarantees offset+len(data)
// stays inside the registered range and len(data) > 0). Unsupported widths,
// alignments or offsets return ErrBadAccess, and a read then fills data with
// 0xff. Read and Write run on vCPU threads and must be quick and bounded.
type Device interface {
	Read(offset uint64, data []byte) error
	Write(offset uint64, data []byte) error
}

// PortRange is one range a device wants on a bus. Devices that occupy
// several disjoint ranges (the i8042) hand out a []PortRange with a distinct
// Device per range so each sees offsets relative to its own base.
type PortRange struct {
	Base, Size uint64
	Name       string
	Dev        Device
}

// busEntry is one registered range. last is inclusive so a range may end
// exactly at 2^64 without overflowing.
type busEntry struct {
	base, last uint64
	name       string
	dev        Device
}

// Bus routes accesses on one address space (PIO or MMIO) to devices.
//
// Concurrency: Register may be called at any time (normally before vCPUs
// start) and is serialised by mu. Read and Write take no lock: they load the
// current table through an atomic pointer. Register never mutates a
// published table; it builds a new sorted slice and swaps it in, so readers
// see either the old or the new table, each immutable and sorted.
type Bus struct {
	name string
	mu   sync.Mutex // serialises Register; guards nothing Read/Write touch
	// table points at a slice sorted by base with no overlaps. Never nil
	// after NewBus; the slice it points at is never modified.
	table atomic.Pointer[[]busEntry]
}

// NewBus returns an empty bus. name ("pio", "mmio") appears in errors.
func NewBus(name string) *Bus {
	b := &Bus{name: name}
	empty := []busEntry{}
	b.table.Store(&empty)
	return b
}

// Name returns the bus name given to NewBus.
func (b *Bus) Name() string { return b.name }

// Register maps [base, base+size) to d. It rejects size 0, ranges wrapping
// past 2^64, a nil device and overlaps (the error names both devices).
func (b *Bus) Register(base, size uint64, name string, d Device) error {
	if size == 0 || size-1 > ^uint64(0)-base {
		return fmt.Errorf("%s bus: register %q at %#x size %#x: %w", b.name, name, base, size, ErrInvalidRange)
	}
	if d == nil || name == "" {
		return fmt.Errorf("%s bus: register %q at %#x: nil device or empty name: %w", b.name, name, base, ErrInvalidRange)
	}
	e := busEntry{base: base, last: base + (size - 1), name: name, dev: d}

	b.mu.Lock()
	defer b.mu.Unlock()
	old := *b.table.Load()
	i, _ := slices.BinarySearchFunc(old, base, func(x busEntry, t uint64) int {
		switch {
		case x.base < t:
			return -1
		case x.base > t:
			return 1
		}
		return 0
	})
	// Only the neighbours can overlap a range in a sorted, disjoint table.
	for _, j := range [2]int{i - 1, i} {
		if j < 0 || j >= len(old) {
			continue
		}
		o := old[j]
		if e.base <= o.last && o.base <= e.last {
			return fmt.Errorf("%s bus: %q [%#x, %#x] overlaps %q [%#x, %#x]: %w",
				b.name, name, e.base, e.last, o.name, o.base, o.last, ErrOverlap)
		}
	}
	nt := make([]busEntry, 0, len(old)+1)
	nt = append(nt, old[:i]...)
	nt = append(nt, e)
	nt = append(nt, old[i:]...)
	b.table.Store(&nt)
	return nil
}

// RegisterRanges registers each range in order; it stops at the first error
// (ranges registered before it stay registered).
func (b *Bus) RegisterRanges(rs []PortRange) error {
	for _, r := range rs {
		if err := b.Register(r.Base, r.Size, r.Name, r.Dev); err != nil {
			return err
		}
	}
	return nil
}

// find returns the entry covering [addr, addr+n) or an error. It is a plain
// binary search over the immutable table: no locks, no allocations.
func (b *Bus) find(addr uint64, n int) (*busEntry, error) {
	t := *b.table.Load()
	// lo ends as the number of entries with base <= addr.
	lo, hi := 0, len(t)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if t[m].base <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 || addr > t[lo-1].last {
		return nil, ErrNoDevice
	}
	e := &t[lo-1]
	// The access must fit: n-1 bytes after addr, without wrapping.
	if n == 0 || uint64(n-1) > e.last-addr {
		return nil, ErrBadAccess
	}
	return e, nil
}

// Read dispatches a guest read of len(data) bytes at addr. On ErrNoDevice
// or a range-crossing access (ErrBadAccess) data is filled with 0xff.
func (b *Bus) Read(addr uint64, data []byte) error {
	e, err := b.find(addr, len(data))
	if err != nil {
		fillOnes(data)
		return err
	}
	return e.dev.Read(addr-e.base, data)
}

// Write dispatches a guest write at addr. ErrNoDevice means the write was
// dropped, as on an open bus.
func (b *Bus) Write(addr uint64, data []byte) error {
	e, err := b.find(addr, len(data))
	if err != nil {
		return err
	}
	return e.dev.Write(addr-e.base, data)
}

// fillOnes sets every byte to 0xff: what an undriven bus reads as.
func fillOnes(data []byte) {
	for i := range data {
		data[i] = 0xff
	}
}
