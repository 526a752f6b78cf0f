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

// reqParser lays the virtio_blk_req structure (virtio 1.2 §5.2.6) over a
// chain's buffers as the walk returns them: the 16-byte header in the
// first, device-readable, bytes (it may span buffers, but not reach the
// last one), the status in the last byte of the last buffer, which must be
// device-writable, and data in between. It reads only the header from guest
// RAM, once.
//
// Why while walking rather than over the finished chain: the last buffer is
// only known when the walk ends, so a separate pass had to keep the whole
// chain and go over it again; taking each buffer as it comes keeps one pass
// and one array of descriptors, which for a request of 16 pages was a
// tenth of the device's own time. Until finish the parser holds every data
// buffer including the last; finish then takes the status byte off the end.
type reqParser struct {
	mem  *memory.Guest
	data []desc // non-empty buffers after the header, the last one included
	hdr  [headerSize]byte
	got  uint32 // header bytes gathered
	// cut: a device-writable buffer stopped the header. That is a
	// violation if any buffer came after it (afterCut); if it was the last
	// buffer, the header is merely short.
	cut, afterCut bool
	err           error // guest memory failure while reading the header
}

// add takes the chain's next buffer. It is small enough to be inlined into
// the walk's loop, where a request of many buffers spends its time.
func (p *reqParser) add(b desc) {
	if p.got < headerSize {
		b = p.header(b)
	}
	if b.Len != 0 {
		p.data = append(p.data, b)
	}
}

// header gathers header bytes from b and returns what is left of b after
// them (nothing while the header is incomplete). Out of line: it runs for
// the first buffer or two of a request only.
//
//go:noinline
func (p *reqParser) header(b desc) desc {
	switch {
	case p.cut:
		p.afterCut = true
		return desc{}
	case p.err != nil:
		return desc{}
	case b.Write:
		p.cut = true
		return desc{}
	}
	k := min(headerSize-p.got, b.Len)
	if err := p.mem.Read(b.Addr, p.hdr[p.got:p.got+k]); err != nil {
		p.err = fmt.Errorf("%w: header: %w", ErrGuestMemoryGone, err)
		return desc{}
	}
	p.got += k
	if p.got < headerSize {
		return desc{}
	}
	return desc{Addr: b.Addr + uint64(k), Len: b.Len - k, Write: b.Write}
}

// finish checks the chain as a whole and fills in *r, which the caller has
// zeroed; r.data aliases the parser's data slice. last and n are the
// chain's last buffer and its number of buffers. The buffers must have come
// in an order Chain.Next allows: no device-readable buffer after a
// writable one.
func (p *reqParser) finish(r *request, last desc, n int) error {
	switch {
	case n == 0:
		return ErrNoStatus
	case !last.Write || last.Len == 0:
		return fmt.Errorf("%w (len %d, writable %v)", ErrNoStatus, last.Len, last.Write)
	case p.err != nil:
		return p.err
	case p.got < headerSize && (n == 1 || p.afterCut):
		// The only buffer is the writable status, so is the header; or
		// the header ran into a writable buffer before the last.
		return ErrHeaderWritable
	case p.got < headerSize:
		return fmt.Errorf("%w: %d bytes before the status buffer", ErrShortHeader, p.got)
	}
	// The header was complete before the last buffer came (it is writable,
	// so header never takes from it), and the last buffer is not empty: it
	// is the last entry of data. Its last byte is the status.
	// The queue checked [Addr, Addr+Len) is inside RAM, so this cannot wrap.
	r.status = last.Addr + uint64(last.Len) - 1
	i := len(p.data) - 1
	if last.Len == 1 {
		p.data = p.data[:i]
	} else {
		p.data[i].Len--
	}
	// struct virtio_blk_req { le32 type; le32 reserved; le64 sector; ... }
	r.typ = binary.LittleEndian.Uint32(p.hdr[0:4])
	r.sector = binary.LittleEndian.Uint64(p.hdr[8:16])
	r.data = p.data
	for _, b := range p.data {
		r.dataLen += uint64(b.Len) // at most 2^32 in total (queue bound)
	}
	return nil
}

// directions reports whether some data segment is device-readable and
// whether some is device-writable. Readable buffers come before writable
// ones (§2.7.4.2, enforced by Chain.Next), so the ends of data tell both.
func (r *request) directions() (anyRead, anyWrite bool) {
	if k := len(r.data); k > 0 {
		return !r.data[0].Write, r.data[k-1].Write
	}
	return false, false
}

// validate decides the request's verdict from its type, range and buffers,
// before any I/O. Discard/write-zeroes segments are copied into segs.
func (d *Disk) validate(mem *memory.Guest, r *request, segs []dwzSeg) []dwzSeg {
	r.verdict = StatusOK
	anyRead, anyWrite := r.directions()
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
