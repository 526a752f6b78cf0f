package blk

import (
	"errors"
	"sync"
	"time"

	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/internal/ratelimit"
)

// Open's sentinel errors (wrapped with the path and details).
var (
	ErrInUse          = errors.New("disk in use by another VM")
	ErrBadSize        = errors.New("disk size is not a multiple of 512")
	ErrSerialTooLong  = errors.New("serial longer than 20 bytes")
	ErrNotDisk        = errors.New("not a regular file or block device")
	ErrDirectAlign    = errors.New("unsupported O_DIRECT alignment")
	ErrClosed         = errors.New("disk closed")
	ErrBadConfigRange = errors.New("virtio-blk config access out of range")
)

// Options configure Open.
type Options struct {
	// ReadOnly opens the file O_RDONLY under a shared lock, offers
	// VIRTIO_BLK_F_RO and answers every write with IOERR.
	ReadOnly bool
	// Direct opens the file O_DIRECT, bypassing the host page cache. Data
	// then goes through one aligned bounce buffer per device (a copy per
	// byte), because guest buffers are not guaranteed to meet O_DIRECT's
	// alignment; blk_size becomes the file's O_DIRECT offset alignment.
	Direct bool
	// Serial is the GET_ID answer: at most IDBytes bytes.
	Serial string
	// BPS and IOPS limit bytes and requests per second (0 = unlimited);
	// BPSBurst and IOPSBurst are the bucket sizes (0 = one second's worth).
	BPS, BPSBurst   uint64
	IOPS, IOPSBurst uint64
	// Clock drives the rate limiter; nil means time.Now. For tests.
	Clock ratelimit.Clock
}

// Disk is a virtio-blk device backed by a raw image file. It implements
// virtio.Device. Create it with Open; Close it after the transport is gone.
//
// Locking: mu serialises the request path (Notify) with Activate and Reset,
// so a Reset waits for a request in flight (at most one fdatasync or one
// bounded fallocate) and never pulls the queue from under it. Config space
// is immutable after Open and read without the lock; counters are atomics.
type Disk struct {
	path     string
	fd       int
	readOnly bool
	direct   bool
	size     uint64 // bytes
	sectors  uint64 // capacity in 512-byte sectors
	blkSize  uint32 // 512, or the O_DIRECT alignment
	ioAlign  uint64 // offsets and lengths of reads and writes must be multiples of this
	serial   [IDBytes]byte
	discard  bool // fallocate(PUNCH_HOLE|KEEP_SIZE) works on this file
	zeroRng  bool // fallocate(ZERO_RANGE|KEEP_SIZE) works on this file
	config   [configSize]byte
	limiter  *ratelimit.Limiter // nil when unlimited
	clock    ratelimit.Clock    // the limiter's clock; nil = time.Now

	mu       sync.Mutex
	closed   bool
	bounce   []byte // O_DIRECT only: page-aligned mmap, bounceSize bytes
	active   bool
	broken   bool // protocol violation seen: ignore the queue until Reset
	ctx      virtio.ActivateContext
	q        *queue.Queue
	features uint64 // negotiated

	// Per-request scratch, reused so the steady state allocates nothing.
	descs   []desc    // backing array of the request parser's data buffers (req.data)
	bufs    [][]byte  // guest data segments as host slices, for the I/O loop
	iov     []iovec   // syscall iovecs built from bufs
	dwz     []dwzSeg  // validated discard / write-zeroes segments
	req     request   // the parsed request being handled
	pending bool      // req was throttled and is waiting for a retry
	retry   time.Time // earliest retry of a pending request (limiter clock)

	stats counters
}

// Path returns the image path given to Open.
func (d *Disk) Path() string { return d.path }

// Capacity returns the disk size in 512-byte sectors.
func (d *Disk) Capacity() uint64 { return d.sectors }

// ReadOnly reports whether the disk was opened read-only.
func (d *Disk) ReadOnly() bool { return d.readOnly }
