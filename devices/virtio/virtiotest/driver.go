// Package virtiotest is a Go "guest driver" for tests of virtio devices and
// transports: it lays out a split virtqueue (virtio 1.2 §2.7) in a
// memory.Guest exactly as a guest driver would (descriptor table, avail ring,
// used ring, indirect tables), publishes chains with the driver's memory
// ordering, reads used elements back, and offers raw writers with which
// hostile-guest tests corrupt every field.
//
// It does not import the queue package, so queue's own tests can use it; a
// test builds queue.Config from the Driver's addresses.
//
// A Driver is not safe for concurrent use; it plays one guest vCPU.
package virtiotest

import (
	"errors"
	"fmt"

	"github.com/govmm/govmm/memory"
)

// Spec constants repeated here (not imported from queue, see package doc).
const (
	descFNext     = 1
	descFWrite    = 2
	descFIndirect = 4
	descSize      = 16
)

// Buf is one buffer of a chain, as the driver means it.
type Buf struct {
	Addr  uint64
	Len   uint32
	Write bool // device-writable
}

// UsedElem is struct virtq_used_elem (§2.7.8).
type UsedElem struct{ ID, Len uint32 }

// ErrNoSpace: not enough free descriptors (or indirect slots) for a chain.
var ErrNoSpace = errors.New("virtiotest: no free descriptors")

// Driver is the guest side of one split virtqueue.
type Driver struct {
	Mem                           *memory.Guest
	Size                          uint16
	DescAddr, AvailAddr, UsedAddr uint64
	// IndirectAddr is where indirect tables go: head h uses
	// [IndirectAddr + h*Size*16, +Size*16). Zero means AddChain cannot
	// build indirect chains.
	IndirectAddr uint64
	// EventIdx makes Kick honour avail_event instead of used->flags.
	EventIdx bool

	availIdx  uint16   // shadow of avail->idx (driver-owned)
	published uint16   // avail->idx at the last Kick
	lastUsed  uint16   // next used element to read
	free      []uint16 // free descriptor stack
	chainLen  []uint16 // per head: descriptors to free, 0 = not in flight
	next      []uint16 // driver's shadow of each descriptor's next
	scratch   []uint16 // AddChain's descriptor indices
}

// Layout returns a contiguous, spec-aligned placement of the three parts of
// a queue of the given size starting at base (which must be 16-aligned), and
// the first address after it (page aligned, usable for IndirectAddr or data).
func Layout(base uint64, size uint16) (desc, avail, used, end uint64) {
	n := uint64(size)
	desc = base
	avail = desc + descSize*n
	used = (avail + 6 + 2*n + 3) &^ 3
	end = (used + 6 + 8*n + 0xfff) &^ 0xfff
	return
}

// New makes a driver for the given rings and zeroes them, as a driver does
// before enabling a queue (§4.2.3.2 step 4: "Allocate and zero the queue
// memory").
func New(mem *memory.Guest, size uint16, desc, avail, used uint64) (*Driver, error) {
	if size == 0 {
		return nil, errors.New("virtiotest: queue size 0")
	}
	d := &Driver{Mem: mem, Size: size, DescAddr: desc, AvailAddr: avail, UsedAddr: used}
	n := uint64(size)
	for _, z := range [][2]uint64{{desc, descSize * n}, {avail, 6 + 2*n}, {used, 6 + 8*n}} {
		if err := mem.Zero(z[0], z[1]); err != nil {
			return nil, fmt.Errorf("virtiotest: zero ring: %w", err)
		}
	}
	d.free = make([]uint16, 0, size)
	for i := int(size) - 1; i >= 0; i-- {
		d.free = append(d.free, uint16(i))
	}
	d.chainLen = make([]uint16, size)
	d.next = make([]uint16, size)
	d.scratch = make([]uint16, size)
	return d, nil
}

// Free returns the number of free descriptors.
func (d *Driver) Free() int { return len(d.free) }

func (d *Driver) alloc() uint16 {
	i := d.free[len(d.free)-1]
	d.free = d.free[:len(d.free)-1]
	return i
}

// AddChain writes bufs as one chain (§2.7.13.1) and puts its head into the
// next avail ring slot, without publishing it (Kick publishes). With
// indirect, the main table gets one INDIRECT descriptor pointing at an
// indirect table holding bufs. It returns the head index.
func (d *Driver) AddChain(bufs []Buf, indirect bool) (uint16, error) {
	if len(bufs) == 0 {
		return 0, errors.New("virtiotest: empty chain")
	}
	var head uint16
	if indirect {
		if d.IndirectAddr == 0 || len(d.free) < 1 || len(bufs) > int(d.Size) {
			return 0, ErrNoSpace
		}
		head = d.alloc()
		table := d.IndirectAddr + uint64(head)*uint64(d.Size)*descSize
		for i, b := range bufs {
			flags, next := bufFlags(b), uint16(0)
			if i+1 < len(bufs) {
				flags |= descFNext
				next = uint16(i + 1)
			}
			if err := d.WriteDescAt(table+uint64(i)*descSize, b.Addr, b.Len, flags, next); err != nil {
				return 0, err
			}
		}
		if err := d.WriteDesc(head, table, uint32(len(bufs))*descSize, descFIndirect, 0); err != nil {
			return 0, err
		}
		d.chainLen[head] = 1
	} else {
		if len(bufs) > len(d.free) {
			return 0, ErrNoSpace
		}
		idx := d.scratch[:len(bufs)] // preallocated: the driver itself does not allocate per chain
		for i := range bufs {
			idx[i] = d.alloc()
		}
		head = idx[0]
		for i, b := range bufs {
			flags, next := bufFlags(b), uint16(0)
			if i+1 < len(bufs) {
				flags |= descFNext
				next = idx[i+1]
			}
			if err := d.WriteDesc(idx[i], b.Addr, b.Len, flags, next); err != nil {
				return 0, err
			}
		}
		d.chainLen[head] = uint16(len(bufs))
	}
	if err := d.WriteAvailRing(d.availIdx, head); err != nil {
		return 0, err
	}
	d.availIdx++
	return head, nil
}

func bufFlags(b Buf) uint16 {
	if b.Write {
		return descFWrite
	}
	return 0
}

// Kick publishes every chain added since the last Kick by storing avail->idx
// with release semantics (§2.7.13.3), then, after that full barrier, reads
// the device's suppression state (§2.7.13.4) and reports whether a real
// driver would notify the device now.
func (d *Driver) Kick() (bool, error) {
	old := d.published
	if err := d.Mem.StoreU16Release(d.AvailAddr+2, d.availIdx); err != nil {
		return false, err
	}
	d.published = d.availIdx
	if d.EventIdx {
		ev, err := d.Mem.LoadU16Acquire(d.UsedAddr + 4 + 8*uint64(d.Size))
		if err != nil {
			return false, err
		}
		return d.availIdx-ev-1 < d.availIdx-old, nil // vring_need_event
	}
	flags, err := d.Mem.LoadU16Acquire(d.UsedAddr)
	if err != nil {
		return false, err
	}
	return flags&1 == 0, nil
}

// PopUsed returns the next used element the device published, freeing the
// chain's descriptors if the id is one the driver has in flight (a bogus id
// is returned unchanged so tests can detect it).
func (d *Driver) PopUsed() (UsedElem, bool, error) {
	idx, err := d.Mem.LoadU16Acquire(d.UsedAddr + 2)
	if err != nil {
		return UsedElem{}, false, err
	}
	if idx == d.lastUsed {
		return UsedElem{}, false, nil
	}
	at := d.UsedAddr + 4 + 8*uint64(d.lastUsed%d.Size)
	id, err := d.Mem.ReadU32(at)
	if err != nil {
		return UsedElem{}, false, err
	}
	n, err := d.Mem.ReadU32(at + 4)
	if err != nil {
		return UsedElem{}, false, err
	}
	d.lastUsed++
	if id < uint32(d.Size) {
		d.release(uint16(id))
	}
	return UsedElem{ID: id, Len: n}, true, nil
}

// ReadUsed drains every used element published so far.
func (d *Driver) ReadUsed() ([]UsedElem, error) {
	var out []UsedElem
	for range 1 << 16 {
		e, ok, err := d.PopUsed()
		if err != nil || !ok {
			return out, err
		}
		out = append(out, e)
	}
	return out, errors.New("virtiotest: used ring never drained")
}

// release returns a chain's descriptors to the free list, following the
// driver's own shadow of the links (never the guest-visible table, which a
// test may have corrupted).
func (d *Driver) release(head uint16) {
	n := d.chainLen[head]
	d.chainLen[head] = 0
	i := head
	for k := uint16(0); k < n; k++ {
		d.free = append(d.free, i)
		i = d.next[i]
	}
}

// --- Raw access for hostile tests -----------------------------------------

// WriteDesc writes descriptor i of the main table verbatim (i is taken
// modulo nothing: an out-of-range i writes past the table, which a test may
// want). It also updates the driver's link shadow for in-range i.
func (d *Driver) WriteDesc(i uint16, addr uint64, length uint32, flags, next uint16) error {
	if i < d.Size {
		d.next[i] = next
	}
	return d.WriteDescAt(d.DescAddr+uint64(i)*descSize, addr, length, flags, next)
}

// WriteDescAt writes a struct virtq_desc at gpa (main or indirect table).
func (d *Driver) WriteDescAt(gpa, addr uint64, length uint32, flags, next uint16) error {
	var b [descSize]byte
	putLE(b[0:8], addr)
	putLE(b[8:12], uint64(length))
	putLE(b[12:14], uint64(flags))
	putLE(b[14:16], uint64(next))
	return d.Mem.Write(gpa, b[:])
}

func putLE(b []byte, v uint64) {
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

// WriteAvailRing writes head into avail ring slot (slot mod Size).
func (d *Driver) WriteAvailRing(slot, head uint16) error {
	return d.Mem.WriteU16(d.AvailAddr+4+2*uint64(slot%d.Size), head)
}

// PushHead puts an arbitrary head into the next avail slot and publishes it.
func (d *Driver) PushHead(head uint16) error {
	if err := d.WriteAvailRing(d.availIdx, head); err != nil {
		return err
	}
	d.availIdx++
	_, err := d.Kick()
	return err
}

// SetAvailIdx publishes an arbitrary avail->idx (and makes it the driver's
// shadow), e.g. one that jumps more than Size ahead.
func (d *Driver) SetAvailIdx(v uint16) error {
	d.availIdx, d.published = v, v
	return d.Mem.StoreU16Release(d.AvailAddr+2, v)
}

// AvailIdx returns the driver's shadow of avail->idx.
func (d *Driver) AvailIdx() uint16 { return d.availIdx }

// SetAvailFlags writes avail->flags (VIRTQ_AVAIL_F_NO_INTERRUPT = 1).
func (d *Driver) SetAvailFlags(v uint16) error { return d.Mem.StoreU16Release(d.AvailAddr, v) }

// SetUsedEvent writes used_event (EVENT_IDX): "interrupt me once used->idx
// passes v".
func (d *Driver) SetUsedEvent(v uint16) error {
	return d.Mem.StoreU16Release(d.AvailAddr+4+2*uint64(d.Size), v)
}

// AvailEvent reads avail_event, written by the device (EVENT_IDX).
func (d *Driver) AvailEvent() (uint16, error) {
	return d.Mem.LoadU16Acquire(d.UsedAddr + 4 + 8*uint64(d.Size))
}

// UsedFlags reads used->flags, written by the device.
func (d *Driver) UsedFlags() (uint16, error) { return d.Mem.LoadU16Acquire(d.UsedAddr) }

// UsedIdx reads used->idx, written by the device.
func (d *Driver) UsedIdx() (uint16, error) { return d.Mem.LoadU16Acquire(d.UsedAddr + 2) }

// Loop writes a chain of n descriptors starting at descriptor first whose
// last links back to first, and publishes it: a descriptor loop.
func (d *Driver) Loop(first, n uint16, buf Buf) error {
	for k := uint16(0); k < n; k++ {
		i := (first + k) % d.Size
		next := (first + (k+1)%n) % d.Size
		if err := d.WriteDesc(i, buf.Addr, buf.Len, bufFlags(buf)|descFNext, next); err != nil {
			return err
		}
	}
	return d.PushHead(first)
}
