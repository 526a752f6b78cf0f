package blk

import (
	"io"

	"golang.org/x/sys/unix"
)

// iovMax is the kernel's IOV_MAX: one preadv/pwritev takes at most this
// many segments. A chain has at most QueueSize (256), so one call usually
// does, but the loop does not rely on it.
const iovMax = 1024

// execute performs a validated request and returns its status and the
// number of bytes written into guest buffers (not counting the status).
func (d *Disk) execute(r *request) (status uint8, written uint32) {
	switch r.typ {
	case TypeIn, TypeOut:
		if err := d.guestBufs(r); err != nil {
			r.hostFail = false
			return StatusIOErr, 0
		}
		off := int64(r.sector << sectorShift) // < size <= 2^63: validated
		var n uint64
		var err error
		switch {
		case r.typ == TypeIn && d.bounce != nil:
			n, err = d.readBounce(off)
		case r.typ == TypeIn:
			n, err = d.rw(false, off)
		case d.bounce != nil:
			n, err = d.writeBounce(off)
		default:
			n, err = d.rw(true, off)
		}
		if r.typ == TypeIn {
			written = uint32(n) // n <= dataLen <= 2^32 - 1 (the status byte is in the chain too)
		}
		if err != nil {
			r.hostFail = true
			return StatusIOErr, written
		}
		if r.typ == TypeIn {
			d.stats.bytesRead.Add(n)
		} else {
			d.stats.bytesWritten.Add(n)
		}
		return StatusOK, written
	case TypeFlush:
		if d.readOnly {
			return StatusOK, 0 // nothing of ours to make durable
		}
		if err := fdatasync(d.fd); err != nil {
			r.hostFail = true
			return StatusIOErr, 0
		}
		return StatusOK, 0
	case TypeGetID:
		return d.getID(r)
	case TypeDiscard, TypeWriteZeroes:
		for _, s := range d.dwz {
			if s.sectors == 0 {
				continue
			}
			off, n := int64(s.sector<<sectorShift), int64(s.sectors<<sectorShift)
			var err error
			if r.typ == TypeDiscard || s.unmap {
				// A hole reads as zeroes, so it is also a valid write
				// zeroes with unmap.
				err = fallocate(d.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
			} else {
				err = d.zeroRange(off, n)
			}
			if err != nil {
				r.hostFail = true
				return StatusIOErr, 0
			}
		}
		return StatusOK, 0
	}
	return StatusUnsupp, 0 // not reached: validate filtered the types
}

// zeroRange zeroes [off, off+n) keeping it allocated, as write zeroes
// without unmap asks: ZERO_RANGE where the file system has it; otherwise
// (tmpfs) a punched hole re-allocated with a plain fallocate.
func (d *Disk) zeroRange(off, n int64) error {
	if d.zeroRng {
		return fallocate(d.fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	}
	if err := fallocate(d.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n); err != nil {
		return err
	}
	return fallocate(d.fd, unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// getID writes the serial (IDBytes, zero padded) into the writable data
// buffers, truncated to their length.
func (d *Disk) getID(r *request) (uint8, uint32) {
	src := d.serial[:]
	var n uint32
	for _, b := range r.data {
		if len(src) == 0 {
			break
		}
		k := min(uint32(len(src)), b.Len)
		if err := d.ctx.Mem.Write(b.Addr, src[:k]); err != nil {
			return StatusIOErr, n
		}
		src = src[k:]
		n += k
	}
	return StatusOK, n
}

// guestBufs resolves the data segments to host slices of guest RAM,
// merging segments that are adjacent in guest-physical memory into one
// slice: a guest that hands a 64 KiB request as 16 consecutive pages then
// costs one iovec (or a plain pread) instead of 16, and the host kernel's
// per-segment work goes with them. A merged run is resolved by one
// bounds-checked Mem.Slice over the whole run, so a run that crosses the
// end of a RAM region is refused by memory exactly as its parts would be;
// then the parts are resolved one by one.
//
// The iovec for each slice is built here too, in the same pass, for rw's
// first system call.
func (d *Disk) guestBufs(r *request) error {
	d.bufs, d.iov = d.bufs[:0], d.iov[:0]
	data := r.data
	for i := 0; i < len(data); {
		start, n := data[i].Addr, uint64(data[i].Len)
		j := i + 1
		for j < len(data) && start+n == data[j].Addr && n+uint64(data[j].Len) > n {
			n += uint64(data[j].Len)
			j++
		}
		if j > i+1 {
			if s, err := d.ctx.Mem.Slice(start, n); err == nil {
				d.addBuf(s)
				i = j
				continue
			}
		}
		// One segment, or a run that is not one host range (it crosses
		// from one RAM region into the next): each part on its own.
		for ; i < j; i++ {
			s, err := d.ctx.Mem.Slice(data[i].Addr, uint64(data[i].Len))
			if err != nil {
				return err
			}
			d.addBuf(s)
		}
	}
	return nil
}

// addBuf appends a guest segment to d.bufs and its iovec to d.iov.
func (d *Disk) addBuf(s []byte) {
	d.bufs = append(d.bufs, s)
	d.iov = append(d.iov, iovOf(s))
}

// iovOf is the iovec for b, which must not be empty (the request parser
// drops empty segments).
func iovOf(b []byte) iovec {
	var v iovec
	v.Base = &b[0]
	v.SetLen(len(b))
	return v
}

// rw moves the bytes of d.bufs between guest RAM and the file at off with
// preadv/pwritev, straight from and into guest memory: no copy in the VMM.
// Short transfers continue where they stopped; a read that hits end of
// file (the image shrank under us) or a write that makes no progress is an
// error. It returns the bytes moved.
func (d *Disk) rw(write bool, off int64) (uint64, error) {
	bufs := d.bufs
	iov := d.iov // guestBufs built it for bufs; rebuilt after a partial transfer
	var total uint64
	for len(bufs) > 0 {
		if len(iov) == 0 {
			iov = d.iov[:0]
			for _, b := range bufs[:min(len(bufs), iovMax)] {
				iov = append(iov, iovOf(b))
			}
		}
		iov = iov[:min(len(iov), iovMax)]
		var n int
		var err error
		switch {
		case len(bufs) == 1 && write:
			// One segment: pread/pwrite skip the kernel's iovec import.
			n, err = unix.Pwrite(d.fd, bufs[0], off)
		case len(bufs) == 1:
			n, err = unix.Pread(d.fd, bufs[0], off)
		case write:
			n, err = pwritev(d.fd, iov, off)
		default:
			n, err = preadv(d.fd, iov, off)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, err
		}
		if n == 0 {
			if write {
				return total, io.ErrShortWrite
			}
			return total, io.ErrUnexpectedEOF
		}
		off += int64(n)
		total += uint64(n)
		for n > 0 {
			if n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][n:]
				n = 0
			}
		}
		iov = iov[:0] // what is left, if anything, starts somewhere else
	}
	return total, nil
}

// readBounce is the O_DIRECT read: the file is read into the aligned bounce
// buffer a chunk at a time and copied out to the guest segments. The copy
// is the price of O_DIRECT with guest buffers of arbitrary alignment (about
// a memcpy per byte, small next to the device's latency).
func (d *Disk) readBounce(off int64) (uint64, error) {
	bufs := d.bufs
	var total uint64
	for len(bufs) > 0 {
		chunk := 0
		for _, b := range bufs {
			chunk += len(b)
			if chunk >= len(d.bounce) {
				chunk = len(d.bounce)
				break
			}
		}
		if err := preadFull(d.fd, d.bounce[:chunk], off); err != nil {
			return total, err
		}
		src := d.bounce[:chunk]
		for len(src) > 0 {
			k := copy(bufs[0], src)
			src = src[k:]
			if k == len(bufs[0]) {
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][k:]
			}
		}
		off += int64(chunk)
		total += uint64(chunk)
	}
	return total, nil
}

// writeBounce is the O_DIRECT write: gather into the bounce buffer, then
// pwrite it.
func (d *Disk) writeBounce(off int64) (uint64, error) {
	bufs := d.bufs
	var total uint64
	for len(bufs) > 0 {
		dst := d.bounce
		chunk := 0
		for len(bufs) > 0 && chunk < len(dst) {
			k := copy(dst[chunk:], bufs[0])
			chunk += k
			if k == len(bufs[0]) {
				bufs = bufs[1:]
			} else {
				bufs[0] = bufs[0][k:]
			}
		}
		if err := pwriteFull(d.fd, dst[:chunk], off); err != nil {
			return total, err
		}
		off += int64(chunk)
		total += uint64(chunk)
	}
	return total, nil
}

func preadFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pread(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
