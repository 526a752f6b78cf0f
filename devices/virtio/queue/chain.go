package queue

import (
	"encoding/binary"
	"fmt"
)

// Desc is one validated buffer of a descriptor chain: [Addr, Addr+Len) lies
// inside one RAM region (memory.Guest.Contains), and Write says the buffer
// is device-writable (otherwise device-readable, which the device must not
// write, §2.7.5.1).
//
// Zero-length buffers are allowed (the spec does not forbid them and a
// device can simply skip them), but even then Addr must be inside RAM or
// exactly at the end of a region (Contains(Addr, 0)), so a device that
// slices a zero-length Desc never gets an error it did not expect.
//
// Desc is 16 bytes and holds no pointer on purpose. An earlier version
// carried the host slice of the buffer too (40 bytes with a pointer): each
// descriptor is copied three or four times on its way through a device
// (iterator result, the device's list, its parsed request), and those wide
// copies, with their store-forwarding stalls, were a third of the
// virtio-blk request path. A device resolves the buffers it actually moves
// data through with memory.Guest.Slice, after merging adjacent ones.
type Desc struct {
	Addr  uint64
	Len   uint32
	Write bool
}

// Chain iterates the buffers of one descriptor chain (§2.7.5 "The Virtqueue
// Descriptor Table", §2.7.5.3 "Indirect Descriptors"). It is the only code
// that follows guest descriptors. Next enforces, on every step:
//
//   - at most Size buffers are returned in total (direct plus indirect). A
//     well-formed chain fits (§2.7.5.3.1: "A driver MUST NOT create a
//     descriptor chain longer than the Queue Size of the device"), and the
//     bound ends every loop, in the main table or an indirect one: every
//     descriptor read is a buffer except an indirect one, and that ends the
//     walk of the main table (it cannot carry NEXT), so at most Size+1
//     descriptors are ever read;
//   - every next index is < the number of entries of the table it indexes;
//   - VIRTQ_DESC_F_INDIRECT only if VIRTIO_F_INDIRECT_DESC was negotiated,
//     never together with VIRTQ_DESC_F_NEXT, never inside an indirect table;
//     the table's length is a non-zero multiple of 16 and at most Size
//     entries (a longer table could not be walked within the chain bound
//     anyway), and the whole table is inside RAM. The WRITE flag of the
//     descriptor pointing at the table is ignored, as §2.7.5.3.2 requires
//     ("The device MUST ignore the write-only flag");
//   - no device-readable buffer after a device-writable one (§2.7.4.2);
//   - each buffer is inside RAM, and the chain's total length is at most
//     2^32 bytes (§2.7.5.2).
//
// Every violation returns an error, is sticky for the chain, and marks the
// queue broken (Queue.Err). Undefined flag bits are ignored.
type Chain struct {
	q    *Queue
	head uint16

	// table is the descriptor table being walked: the queue's, or an
	// indirect table. Its host bytes were resolved (and so checked to be
	// inside RAM) when the walk entered it; idx < len(table)/DescSize
	// always holds (checked where idx was set).
	table    []byte
	idx      uint32
	indirect bool // walking an indirect table

	bufs      uint32 // buffers returned
	total     uint64 // bytes in buffers returned
	seenWrite bool
	// stop: the walk is over, because the last buffer was returned (err
	// nil) or because of a violation (err set).
	stop bool
	err  error
}

func (c *Chain) reset(head uint16) {
	q := c.q
	*c = Chain{q: q, head: head, table: q.descMem, idx: uint32(head)}
}

// Head returns the index of the chain's first descriptor: the id to give
// PushUsed when the chain is done.
func (c *Chain) Head() uint16 { return c.head }

// Next returns the chain's next buffer. ok is false after the last one.
func (c *Chain) Next() (d Desc, ok bool, err error) {
	if c.stop {
		return Desc{}, false, c.err
	}
	q := c.q
	if q.err != nil { // another chain of this queue already failed
		return Desc{}, false, c.setErr(q.broken())
	}
	for {
		raw := c.table[DescSize*uint64(c.idx):][:DescSize]
		// struct virtq_desc { le64 addr; le32 len; le16 flags; le16 next; }
		addr := binary.LittleEndian.Uint64(raw[0:8])
		length := binary.LittleEndian.Uint32(raw[8:12])
		flags := binary.LittleEndian.Uint16(raw[12:14])
		next := binary.LittleEndian.Uint16(raw[14:16])

		if flags&DescFIndirect != 0 {
			if err := c.enterIndirect(addr, length, flags); err != nil {
				return Desc{}, false, err
			}
			continue
		}

		c.bufs++
		write := flags&DescFWrite != 0
		c.total += uint64(length) // <= 2^15 * (2^32-1): no overflow
		switch {
		case c.bufs > uint32(q.cfg.Size):
			return Desc{}, false, c.failf(ErrChainTooLong, ", more than %d buffers", uint64(q.cfg.Size))
		case !write && c.seenWrite:
			return Desc{}, false, c.failf(ErrDirection, "")
		case c.total > MaxChainBytes:
			return Desc{}, false, c.failf(ErrChainTooLarge, "")
		case !q.mem.Contains(addr, uint64(length)):
			return Desc{}, false, c.failf(ErrBufferOutsideRAM, ", buffer %#x len %#x", addr, uint64(length))
		}
		if flags&DescFNext != 0 {
			if entries := uint32(len(c.table) / DescSize); uint32(next) >= entries {
				return Desc{}, false, c.failf(ErrNextIndex, ", next %d, table entries %d", uint64(next), uint64(entries))
			}
			c.idx = uint32(next)
		} else {
			c.stop = true
		}
		c.seenWrite = c.seenWrite || write
		return Desc{Addr: addr, Len: length, Write: write}, true, nil
	}
}

// enterIndirect checks an indirect descriptor and moves the walk into its
// table. It is out of line: most chains have no indirect descriptor, and
// the few that do cross one at most once.
//
//go:noinline
func (c *Chain) enterIndirect(addr uint64, length uint32, flags uint16) error {
	q := c.q
	size := uint32(q.cfg.Size)
	switch {
	case c.indirect:
		return c.failf(ErrNestedIndirect, "")
	case !q.cfg.Indirect:
		return c.failf(ErrIndirectNotAllowed, "")
	case flags&DescFNext != 0:
		return c.failf(ErrIndirectNext, "")
	case length == 0 || length%DescSize != 0 || length/DescSize > size:
		return c.failf(ErrIndirectLen, ", len %d, size %d", uint64(length), uint64(size))
	}
	t, err := q.mem.Slice(addr, uint64(length))
	if err != nil {
		return c.failf(ErrBufferOutsideRAM, ", indirect table %#x len %#x", addr, uint64(length))
	}
	c.indirect = true
	c.table = t
	c.idx = 0
	return nil
}

// failf builds the error for a guest violation in this chain, "<sentinel>:
// head N<detail>", and records it. It takes plain integers and is kept out
// of line so that each check in Next compiles to a compare and a call:
// inlined, the formatting and its interface conversions made Next several
// kilobytes, most of it error paths sharing the instruction cache with the
// few hundred bytes that run for every descriptor.
//
//go:noinline
func (c *Chain) failf(sentinel error, detail string, args ...uint64) error {
	a := make([]any, 0, 2+len(args))
	a = append(a, sentinel, c.head)
	for _, v := range args {
		a = append(a, v)
	}
	return c.fail(fmt.Errorf("%w: head %d"+detail, a...))
}

// fail records a guest violation on the chain and the queue.
func (c *Chain) fail(err error) error {
	c.q.fail(err)
	return c.setErr(err)
}

func (c *Chain) setErr(err error) error {
	c.err, c.stop = err, true
	return err
}
