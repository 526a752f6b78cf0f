package blk

import (
	"errors"
	"fmt"
	"io"
	"math/bits"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/internal/ratelimit"
)

// bounceSize is the O_DIRECT bounce buffer: large requests go through it in
// chunks of this size. 1 MiB covers Linux's default max_sectors_kb (1280 KiB
// rounds to two chunks) while costing little per device.
const bounceSize = 1 << 20

// maxDirectAlign bounds the O_DIRECT alignment we accept: blk_size is
// advertised from it, and the bounce buffer (page aligned) must satisfy its
// memory alignment.
const maxDirectAlign = 4096

// Open opens the image at path and prepares the device. The file must be a
// regular file or block device whose size is a multiple of 512. It takes an
// advisory lock (flock) for the life of the Disk: exclusive when writable,
// shared when read-only, so two VMs cannot open one image writable, and no
// VM can write an image another VM reads.
func Open(path string, opts Options) (_ *Disk, err error) {
	if len(opts.Serial) > IDBytes {
		return nil, fmt.Errorf("disk %s: serial %q is %d bytes: %w", path, opts.Serial, len(opts.Serial), ErrSerialTooLong)
	}
	flags := unix.O_CLOEXEC | unix.O_RDWR
	if opts.ReadOnly {
		flags = unix.O_CLOEXEC | unix.O_RDONLY
	}
	if opts.Direct {
		flags |= unix.O_DIRECT
	}
	fd, err := openRetry(path, flags)
	if err != nil {
		if opts.Direct && errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("disk %s: open with O_DIRECT: %w (the file system may not support direct I/O)", path, err)
		}
		return nil, fmt.Errorf("disk %s: open: %w", path, err)
	}
	defer func() {
		if err != nil {
			unix.Close(fd)
		}
	}()

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("disk %s: fstat: %w", path, err)
	}
	if m := st.Mode & unix.S_IFMT; m != unix.S_IFREG && m != unix.S_IFBLK {
		return nil, fmt.Errorf("disk %s: %w", path, ErrNotDisk)
	}
	// lseek(SEEK_END) gives the size of block devices too (st_size is 0).
	end, err := unix.Seek(fd, 0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("disk %s: lseek: %w", path, err)
	}
	size := uint64(end)
	if size%SectorSize != 0 {
		return nil, fmt.Errorf("disk %s: size %d is not a multiple of 512: %w", path, size, ErrBadSize)
	}

	how := unix.LOCK_EX | unix.LOCK_NB
	if opts.ReadOnly {
		how = unix.LOCK_SH | unix.LOCK_NB
	}
	if err := flockRetry(fd, how); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("disk %s is in use by another VM (flock: %w): %w", path, err, ErrInUse)
		}
		return nil, fmt.Errorf("disk %s: flock: %w", path, err)
	}

	d := &Disk{
		path:     path,
		fd:       fd,
		readOnly: opts.ReadOnly,
		direct:   opts.Direct,
		size:     size,
		sectors:  size / SectorSize,
		blkSize:  SectorSize,
		ioAlign:  SectorSize,
		descs:    make([]desc, 0, QueueSize),
		bufs:     make([][]byte, 0, QueueSize),
		iov:      make([]iovec, 0, QueueSize),
		dwz:      make([]dwzSeg, 0, max(MaxDiscardSeg, MaxWriteZeroesSeg)),
	}
	copy(d.serial[:], opts.Serial)

	if opts.Direct {
		align, err := directAlign(fd)
		if err != nil {
			return nil, fmt.Errorf("disk %s: %w", path, err)
		}
		d.blkSize, d.ioAlign = align, uint64(align)
		// Anonymous mmap: page aligned, which covers any dio_mem_align we
		// accept, and outside the Go heap so the GC never scans or moves it.
		d.bounce, err = unix.Mmap(-1, 0, bounceSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return nil, fmt.Errorf("disk %s: mmap bounce buffer: %w", path, err)
		}
	}
	if !opts.ReadOnly {
		d.discard, d.zeroRng = probeFallocate(fd, size)
	}
	if cfg := (ratelimit.Config{BPS: opts.BPS, BPSBurst: opts.BPSBurst, IOPS: opts.IOPS, IOPSBurst: opts.IOPSBurst}); cfg.Enabled() {
		d.limiter = ratelimit.New(cfg, opts.Clock)
	}
	d.clock = opts.Clock
	d.buildConfig()
	return d, nil
}

// Close releases the file (and with it the lock) and the bounce buffer. The
// transport must no longer call the Disk; a late Notify finds it closed and
// does nothing.
func (d *Disk) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	d.dropQueue()
	var errs []error
	if d.bounce != nil {
		if err := unix.Munmap(d.bounce); err != nil {
			errs = append(errs, fmt.Errorf("disk %s: munmap bounce buffer: %w", d.path, err))
		}
		d.bounce = nil
	}
	if err := unix.Close(d.fd); err != nil {
		errs = append(errs, fmt.Errorf("disk %s: close: %w", d.path, err))
	}
	d.fd = -1
	return errors.Join(errs...)
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}

// directAlign returns the offset/length alignment O_DIRECT needs on fd
// (statx STATX_DIOALIGN, Linux 6.1+), or 512 when the kernel does not say.
func directAlign(fd int) (uint32, error) {
	var stx unix.Statx_t
	if err := unix.Statx(fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx); err != nil || stx.Mask&unix.STATX_DIOALIGN == 0 {
		// Older kernel or file system: 512 is the historical minimum; a
		// stricter device answers misaligned I/O with EINVAL -> IOERR.
		return SectorSize, nil
	}
	off, mem := stx.Dio_offset_align, stx.Dio_mem_align
	if off == 0 {
		return 0, fmt.Errorf("%w: the file system does not support O_DIRECT on this file", ErrDirectAlign)
	}
	if off < SectorSize {
		off = SectorSize
	}
	if bits.OnesCount32(off) != 1 || off > maxDirectAlign || mem > uint32(unix.Getpagesize()) {
		return 0, fmt.Errorf("%w: offset alignment %d, memory alignment %d", ErrDirectAlign, off, mem)
	}
	return off, nil
}

// probeFallocate finds out whether DISCARD and WRITE_ZEROES can be offered.
// It probes the range just past the end of the file with KEEP_SIZE, so the
// image's data and size are never touched: punching a hole there is a no-op
// where supported; ZERO_RANGE there would allocate blocks past EOF, so it is
// tried only when punching works and the probe range is punched again
// afterwards to give them back.
func probeFallocate(fd int, size uint64) (punch, zero bool) {
	const probeLen = 4096
	off := int64(size)
	if off < 0 || off > (1<<62) {
		return false, false
	}
	if fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, probeLen) != nil {
		return false, false
	}
	if fallocate(fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, probeLen) == nil {
		zero = true
		_ = fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, probeLen)
	}
	return true, zero
}

func fallocate(fd int, mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(fd, mode, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

func fdatasync(fd int) error {
	for {
		err := unix.Fdatasync(fd)
		if err != unix.EINTR {
			return err
		}
	}
}
