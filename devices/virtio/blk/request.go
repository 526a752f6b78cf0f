package blk

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/memory"
)

// Protocol violations in a request chain (virtio 1.2 §5.2.6.1, driver
// requirements). Each puts the device in NEEDS_RESET.
var (
	ErrHeaderWritable  = errors.New("virtio-blk: request header in a device-writable descriptor")
	ErrShortHeader     = errors.New("virtio-blk: request header shorter than 16 bytes")
	ErrNoStatus        = errors.New("virtio-blk: last descriptor is not a device-writable status byte")
	ErrGuestMemoryGone = errors.New("virtio-blk: guest buffer not accessible")
)

type desc = queue.Desc

// dwzSeg is one validated struct virtio_blk_discard_write_zeroes.
type dwzSeg struct {
	sector, sectors uint64
	unmap           bool
}

// request is a parsed, validated request. Everything taken from the guest's
// header and segment descriptors is copied in here before it is checked,
// so the guest changing its buffers afterwards cannot change what was
// validated (no double fetch). The data buffers themselves stay in guest
// RAM: they are the guest's to change.
type request struct {
	head    uint16
	typ     uint32
	sector  uint64
	status  uint64 // gpa of the status byte
	data    []desc // data segments, sub-ranges of the chain's buffers (Disk.descs backing)
	dataLen uint64
	// anyRead, anyWrite: some data segment is device-readable / -writable.
	anyRead, anyWrite bool
	// verdict is the status decided during validation: StatusOK means
	// "validated, perform it"; anything else is answered without I/O.
	verdict  uint8
	hostFail bool // set by execution: IOERR came from the host
}

// cost is what the rate limiter charges: a request always costs one
// operation, and a valid read or write its bytes too.
func (r *request) cost() uint64 {
	if r.verdict == StatusOK && (r.typ == TypeIn || r.typ == TypeOut) {
		return r.dataLen
	}
	return 0
}

// splitChain lays the virtio_blk_req structure over the chain's buffers
// (virtio 1.2 §5.2.6): the 16-byte header in the first, device-readable,
// bytes (it may span descriptors), the status in the last byte of the last
// buffer, which must be device-writable, and data in between. It reads only
// the header from guest RAM and fills in *r, which the caller has zeroed.
//
// The data segments are compacted in place into descs (the device's own
// copy of the chain) and r.data is a sub-slice of it: a segment never moves
// to a higher index, so nothing is overwritten before it is read. Working in
// place keeps the request path to one array of descriptors, which matters
// more than it looks: the path runs right after a large copy in the host
// kernel has evicted the L1 cache, and every extra array is extra misses.
func splitChain(mem *memory.Guest, descs []desc, r *request) error {
	n := len(descs)
	if n == 0 {
		return ErrNoStatus
	}
	last := descs[n-1]
	if !last.Write || last.Len == 0 {
		return fmt.Errorf("%w (len %d, writable %v)", ErrNoStatus, last.Len, last.Write)
	}
	// The queue checked [Addr, Addr+Len) is inside RAM, so this cannot wrap.
	r.status = last.Addr + uint64(last.Len) - 1

	var hdr [headerSize]byte
	got := uint32(0)
	i := 0
	var rest desc // the part of the last header buffer after the header
	for ; i < n-1 && got < headerSize; i++ {
		b := descs[i]
		if b.Write {
			return ErrHeaderWritable
		}
		k := min(headerSize-got, b.Len)
		if err := mem.Read(b.Addr, hdr[got:got+k]); err != nil {
			return fmt.Errorf("%w: header: %w", ErrGuestMemoryGone, err)
		}
		got += k
		if k < b.Len {
			rest = desc{Addr: b.Addr + uint64(k), Len: b.Len - k, Write: b.Write}
		}
	}
	if got < headerSize {
		if n == 1 { // the only buffer is the writable status: so is the header
			return ErrHeaderWritable
		}
		return fmt.Errorf("%w: %d bytes before the status buffer", ErrShortHeader, got)
	}
	// struct virtio_blk_req { le32 type; le32 reserved; le64 sector; ... }
	r.typ = binary.LittleEndian.Uint32(hdr[0:4])
	r.sector = binary.LittleEndian.Uint64(hdr[8:16])

	// Compact the data segments, dropping empty ones: the header's tail
	// (in the slot of the buffer it came from, i-1), the buffers between
	// header and status, and the status buffer less its last byte.
	start := i
	if rest.Len != 0 {
		start = i - 1
	}
	w := start
	add := func(b desc) {
		if b.Len == 0 {
			return
		}
		descs[w] = b
		w++
		r.dataLen += uint64(b.Len) // at most 2^32 in total (queue bound)
		if b.Write {
			r.anyWrite = true
		} else {
			r.anyRead = true
		}
	}
	add(rest)
	for ; i < n-1; i++ {
		add(descs[i])
	}
	add(desc{Addr: last.Addr, Len: last.Len - 1, Write: true})
	r.data = descs[start:w]
	return nil
}

// validate decides the request's verdict from its type, range and buffers,
// before any I/O. Discard/write-zeroes segments are copied into segs.
func (d *Disk) validate(mem *memory.Guest, r *request, segs []dwzSeg) []dwzSeg {
	r.verdict = StatusOK
	anyRead, anyWrite := r.anyRead, r.anyWrite
	switch r.typ {
	case TypeIn, TypeOut:
		switch {
		case r.typ == TypeIn && anyRead, // the device must not write readable buffers (§2.7.4)
			r.typ == TypeOut && anyWrite,
			r.typ == TypeOut && d.readOnly,
			r.dataLen%SectorSize != 0,
			!d.inRange(r.sector, r.dataLen>>sectorShift),
			(r.sector<<sectorShift)%d.ioAlign != 0 || r.dataLen%d.ioAlign != 0: // O_DIRECT granularity
			r.verdict = StatusIOErr
		}
	case TypeFlush:
		// No data, sector ignored (§5.2.6: the driver sets it to 0, the
		// device need not check).
	case TypeGetID:
		if anyRead || r.dataLen == 0 {
			r.verdict = StatusIOErr
		}
	case TypeDiscard, TypeWriteZeroes:
		feature := uint64(1) << FeatureDiscard
		if r.typ == TypeWriteZeroes {
			feature = 1 << FeatureWriteZeroes
		}
		if d.features&feature == 0 || !d.discard {
			r.verdict = StatusUnsupp
			return segs
		}
		return d.validateDWZ(mem, r, segs, anyWrite)
	default:
		r.verdict = StatusUnsupp
	}
	return segs
}

// inRange reports whether [sector, sector+n) lies inside the disk, without
// overflow however large the guest's sector number is.
func (d *Disk) inRange(sector, n uint64) bool {
	return sector <= d.sectors && n <= d.sectors-sector
}

// validateDWZ reads and checks every struct virtio_blk_discard_write_zeroes
// segment (§5.2.6) before any of them is performed, so a bad segment
// anywhere fails the whole request with nothing done.
func (d *Disk) validateDWZ(mem *memory.Guest, r *request, segs []dwzSeg, anyWrite bool) []dwzSeg {
	maxSeg, maxSectors := uint64(MaxDiscardSeg), uint64(MaxDiscardSectors)
	if r.typ == TypeWriteZeroes {
		maxSeg, maxSectors = MaxWriteZeroesSeg, MaxWriteZeroesSectors
	}
	if d.readOnly || anyWrite || r.dataLen == 0 || r.dataLen%dwzSegSize != 0 || r.dataLen/dwzSegSize > maxSeg {
		r.verdict = StatusIOErr
		return segs
	}
	// Gather the segments; they may straddle descriptors.
	var raw [MaxDiscardSeg * dwzSegSize]byte
	buf := raw[:r.dataLen]
	off := 0
	for _, b := range r.data {
		if err := mem.Read(b.Addr, buf[off:off+int(b.Len)]); err != nil {
			r.verdict = StatusIOErr
			return segs
		}
		off += int(b.Len)
	}
	for i := 0; i < len(buf); i += dwzSegSize {
		s := buf[i : i+dwzSegSize]
		sector := binary.LittleEndian.Uint64(s[0:8])
		sectors := uint64(binary.LittleEndian.Uint32(s[8:12]))
		flags := binary.LittleEndian.Uint32(s[12:16])
		unmap := flags&dwzFlagUnmap != 0
		switch {
		// §5.2.6.2: UNSUPP for unknown flags, and for discard with unmap.
		case flags&^dwzFlagUnmap != 0, r.typ == TypeDiscard && unmap:
			r.verdict = StatusUnsupp
			return segs
		case sectors > maxSectors, !d.inRange(sector, sectors):
			r.verdict = StatusIOErr
			return segs
		}
		segs = append(segs, dwzSeg{sector: sector, sectors: sectors, unmap: unmap})
	}
	return segs
}
