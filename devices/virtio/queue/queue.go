// Package queue implements the device side of a split virtqueue (virtio 1.2
// §2.7 "Split Virtqueues"). It is the only code in govmm that walks guest
// descriptors: devices get buffers as validated Desc values from a Chain and
// never parse the descriptor table or the rings themselves.
//
// Everything in the rings is written by a hostile guest. Every index read
// from guest memory is range-checked before use, every buffer is checked to
// lie inside one RAM region, every walk is bounded by the queue size, and a
// violation is returned as an error (and makes the queue refuse further
// work, see Queue.Err) so the device can ask its transport for
// DEVICE_NEEDS_RESET. Nothing here panics or loops on guest input.
//
// Memory ordering (§2.7.13 "Supplying Buffers to The Device", §2.7.14
// "Receiving Used Buffers"): avail->idx is read with an atomic load
// (memory.Word16) before the ring entry and descriptors it publishes;
// used->idx is written with an atomic store (memory.Word32, together with
// used->flags, which the device also owns) after the used element it
// publishes. Both are sync/atomic operations, which Go defines as
// sequentially consistent; that also gives the full (store->load) barrier
// the notification-suppression protocol needs, see EnableNotification and
// NeedsNotify.
//
// Threads: a Queue and its Chain are owned by one goroutine at a time (the
// device's worker). They hold no locks and are not safe for concurrent use.
// New runs on the transport's thread; the device receives the *Queue through
// Activate, whose own synchronisation hands it over.
package queue

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govmm/govmm/memory"
)

// MaxSize is the largest queue size the split ring format allows (§2.7:
// "The maximum Queue Size value is 32768"), so free-running 16-bit indices
// always tell a full ring from an empty one.
const MaxSize = 32768

// Descriptor flags (§2.7.5 struct virtq_desc).
const (
	DescFNext     = 1
	DescFWrite    = 2
	DescFIndirect = 4
)

// Ring flags (§2.7.6 struct virtq_avail, §2.7.8 struct virtq_used).
const (
	AvailFNoInterrupt = 1
	UsedFNoNotify     = 1
)

// Ring geometry (§2.7 alignment/size table).
const (
	DescSize   = 16 // sizeof(struct virtq_desc)
	DescAlign  = 16
	AvailAlign = 2
	UsedAlign  = 4
	usedElem   = 8 // sizeof(struct virtq_used_elem)
)

// MaxChainBytes bounds the total length of a chain's buffers (§2.7.5.2:
// "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes in total").
const MaxChainBytes = 1 << 32

// Configuration errors (New).
var (
	ErrBadSize         = errors.New("virtqueue size is not a non-zero power of two <= 32768")
	ErrMisaligned      = errors.New("virtqueue ring misaligned")
	ErrRingOutsideRAM  = errors.New("virtqueue ring not inside one RAM region")
	ErrQueueBroken     = errors.New("virtqueue stopped after an earlier protocol violation")
	errConfigSentinels = []error{ErrBadSize, ErrMisaligned, ErrRingOutsideRAM}
)

// Guest protocol violations (Pop, Chain.Next). Each is fatal for the queue.
var (
	ErrAvailIdx           = errors.New("avail idx moved more than the queue size")
	ErrHeadIndex          = errors.New("avail ring head index out of range")
	ErrChainTooLong       = errors.New("descriptor chain longer than the queue size (loop?)")
	ErrChainTooLarge      = errors.New("descriptor chain longer than 2^32 bytes")
	ErrNextIndex          = errors.New("descriptor next index out of range")
	ErrIndirectNotAllowed = errors.New("indirect descriptor without VIRTIO_F_INDIRECT_DESC")
	ErrNestedIndirect     = errors.New("indirect descriptor inside an indirect table")
	ErrIndirectNext       = errors.New("indirect descriptor with VIRTQ_DESC_F_NEXT")
	ErrIndirectLen        = errors.New("indirect table length not a non-zero multiple of 16 within the queue size")
	ErrDirection          = errors.New("device-readable descriptor after a device-writable one")
	ErrBufferOutsideRAM   = errors.New("descriptor buffer not inside one RAM region")
	ErrUsedHead           = errors.New("used head index out of range")
	ErrGuestMemory        = errors.New("virtqueue ring access failed")
)

// Config is a queue's geometry and the negotiated features that change how
// it is walked. Addresses are guest-physical.
type Config struct {
	Size                          uint16
	DescAddr, AvailAddr, UsedAddr uint64
	EventIdx                      bool // VIRTIO_F_EVENT_IDX negotiated
	Indirect                      bool // VIRTIO_F_INDIRECT_DESC negotiated
}

// Queue is the device side of one split virtqueue.
type Queue struct {
	mem  *memory.Guest
	cfg  Config
	mask uint16

	// The ring fields the device touches on every request, checked and
	// resolved once in New: handles for the atomically accessed indices
	// (memory.Word16/Word32: no region look-up per access).
	availFlags, availIdx memory.Word16 // driver area
	usedEvent            memory.Word16 // only with EventIdx
	usedHeader           memory.Word32 // used->flags | used->idx<<16, device-owned
	availEvent           memory.Word16 // only with EventIdx
	// Host bytes of the descriptor table and of the two rings' entry
	// arrays (avail ring[Size] of le16, used ring[Size] of virtq_used_elem),
	// resolved once in New like the handles above. Like any slice of guest
	// RAM they are valid until Guest.Close, which comes after every device
	// has stopped.
	descMem, availRing, usedRing []byte

	lastAvail uint16 // next avail ring slot to consume (free-running)
	nextUsed  uint16 // used->idx the device will publish next (free-running)
	usedFlags uint16 // used->flags as last published (0 or UsedFNoNotify)

	// signalled is used->idx at the last NeedsNotify, for vring_need_event.
	signalled      uint16
	signalledValid bool

	err   error // sticky: first protocol violation
	chain Chain // reused by Pop: zero allocations per chain
}

// New validates cfg against guest memory and returns a queue whose indices
// start at 0 (a freshly enabled queue, §2.7.6/§2.7.8). Checks: Size is a
// non-zero power of two <= MaxSize (the transport checks its own, smaller,
// maximum), the §2.7 alignments (descriptor table 16, avail ring 2, used ring
// 4), and that each part's full extent (16*Size, 6+2*Size, 6+8*Size bytes,
// including the event-index fields whether or not they are used) lies inside
// one RAM region, which also rules out the MMIO hole and gpa+len wrapping.
// Errors wrap ErrBadSize, ErrMisaligned or ErrRingOutsideRAM.
func New(mem *memory.Guest, cfg Config) (*Queue, error) {
	n := uint64(cfg.Size)
	if n == 0 || n > MaxSize || n&(n-1) != 0 {
		return nil, fmt.Errorf("%w: %d", ErrBadSize, cfg.Size)
	}
	if cfg.DescAddr%DescAlign != 0 || cfg.AvailAddr%AvailAlign != 0 || cfg.UsedAddr%UsedAlign != 0 {
		return nil, fmt.Errorf("%w: desc %#x avail %#x used %#x", ErrMisaligned, cfg.DescAddr, cfg.AvailAddr, cfg.UsedAddr)
	}
	// n <= 2^15, so these lengths cannot overflow; Slice does the
	// overflow-safe gpa+len check.
	parts := [...]struct {
		name     string
		gpa, len uint64
	}{
		{"descriptor table", cfg.DescAddr, DescSize * n},
		{"avail ring", cfg.AvailAddr, 6 + 2*n},
		{"used ring", cfg.UsedAddr, 6 + usedElem*n},
	}
	var host [len(parts)][]byte
	for i, p := range parts {
		var err error
		if mem != nil {
			host[i], err = mem.Slice(p.gpa, p.len)
		}
		if mem == nil || err != nil {
			return nil, fmt.Errorf("%w: %s [%#x, +%#x)", ErrRingOutsideRAM, p.name, p.gpa, p.len)
		}
	}
	q := &Queue{
		mem:       mem,
		cfg:       cfg,
		mask:      cfg.Size - 1,
		descMem:   host[0],
		availRing: host[1][4 : 4+2*n],        // after flags and idx
		usedRing:  host[2][4 : 4+usedElem*n], // after flags and idx
	}
	// The index atomics operate on the naturally aligned host word around
	// each u16 (memory.Word16), which for the trailing event fields can
	// reach 2 bytes past the ring. Resolving every handle now also refuses
	// a ring placed flush against the end of a region here rather than on
	// the data path. The used ring's flags and idx form one aligned word
	// (UsedAlign is 4) that only the device writes.
	type word struct {
		w   *memory.Word16
		gpa uint64
	}
	words := []word{{&q.availFlags, cfg.AvailAddr}, {&q.availIdx, cfg.AvailAddr + 2}}
	if cfg.EventIdx {
		words = append(words, word{&q.usedEvent, cfg.AvailAddr + 4 + 2*n}, word{&q.availEvent, cfg.UsedAddr + 4 + usedElem*n})
	}
	for _, w := range words {
		var err error
		if *w.w, err = mem.Word16(w.gpa); err != nil {
			return nil, fmt.Errorf("%w: ring index at %#x: %v", ErrRingOutsideRAM, w.gpa, err)
		}
	}
	var err error
	if q.usedHeader, err = mem.Word32(cfg.UsedAddr); err != nil {
		return nil, fmt.Errorf("%w: used ring header at %#x: %v", ErrRingOutsideRAM, cfg.UsedAddr, err)
	}
	q.chain.q = q
	return q, nil
}

// IsConfigError reports whether err came from New's validation.
func IsConfigError(err error) bool {
	for _, s := range errConfigSentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

// Size returns the queue size.
func (q *Queue) Size() uint16 { return q.cfg.Size }

// Config returns the configuration the queue was created with.
func (q *Queue) Config() Config { return q.cfg }

// Err returns the first protocol violation seen on this queue, or nil. Once
// set, Pop, Chain.Next and PushUsed fail with an error wrapping
// ErrQueueBroken: a queue the guest has corrupted is not used again until
// the transport is reset and a new Queue is made.
func (q *Queue) Err() error { return q.err }

// fail records the first violation and returns it.
func (q *Queue) fail(err error) error {
	if q.err == nil {
		q.err = err
	}
	return err
}

// failf is fail with the error built out of line, for the same reason as
// Chain.failf: "<sentinel>: <detail>".
//
//go:noinline
func (q *Queue) failf(sentinel error, detail string, args ...uint64) error {
	a := make([]any, 0, 1+len(args))
	a = append(a, sentinel)
	for _, v := range args {
		a = append(a, v)
	}
	return q.fail(fmt.Errorf("%w: "+detail, a...))
}

func (q *Queue) broken() error { return fmt.Errorf("%w: %w", ErrQueueBroken, q.err) }

// Pop returns the next available descriptor chain. ok is false when the
// driver has published nothing new. The returned *Chain is owned by the
// Queue and reused: it stays valid until the next Pop, so a device copies
// what it needs (Head, the Descs) before popping again.
//
// Checks: avail->idx may be at most Size ahead of the last consumed entry
// (a driver cannot have more than Size chains outstanding, §2.7.13), and the
// head index must be < Size.
func (q *Queue) Pop() (*Chain, bool, error) {
	if q.err != nil {
		return nil, false, q.broken()
	}
	// Acquire: the ring entry and descriptors written before idx are visible
	// after this load (§2.7.13.3.1: the driver's barrier before the idx update).
	idx := q.availIdx.Load()
	pending := idx - q.lastAvail // free-running, wraps at 2^16
	if pending == 0 {
		return nil, false, nil
	}
	if pending > q.cfg.Size {
		return nil, false, q.failf(ErrAvailIdx, "avail idx %d, last seen %d, size %d", uint64(idx), uint64(q.lastAvail), uint64(q.cfg.Size))
	}
	// Read once: the guest may change it behind us.
	head := binary.LittleEndian.Uint16(q.availRing[2*uint32(q.lastAvail&q.mask):])
	if head >= q.cfg.Size {
		return nil, false, q.failf(ErrHeadIndex, "head %d, size %d", uint64(head), uint64(q.cfg.Size))
	}
	q.lastAvail++
	q.chain.reset(head)
	return &q.chain, true, nil
}

// PushUsed returns the chain with head index head to the driver, with
// written bytes written into its device-writable buffers (§2.7.8). The used
// element is written first, then used->idx with release semantics, so the
// driver never sees the index before the element (§2.7.8.2: "The device MUST
// set len prior to updating the used idx"). The index wraps at 2^16 as the
// spec requires. head must be a head the device popped; an out-of-range head
// is a device bug and is refused.
func (q *Queue) PushUsed(head uint16, written uint32) error {
	if q.err != nil {
		return q.broken()
	}
	if head >= q.cfg.Size {
		return fmt.Errorf("%w: %d, size %d", ErrUsedHead, head, q.cfg.Size)
	}
	// One 8-byte write of struct virtq_used_elem {le32 id; le32 len}.
	binary.LittleEndian.PutUint64(q.usedRing[usedElem*uint32(q.nextUsed&q.mask):], uint64(head)|uint64(written)<<32)
	q.nextUsed++
	q.publishUsedHeader()
	return nil
}

// publishUsedHeader stores used->flags and used->idx as one atomic word:
// the device owns both, so there is nothing of the guest's to preserve and
// no compare-and-swap is needed.
func (q *Queue) publishUsedHeader() {
	q.usedHeader.Store(uint32(q.usedFlags) | uint32(q.nextUsed)<<16)
}

// NeedsNotify reports whether the driver wants a used-buffer notification
// for the buffers pushed since the previous call (§2.7.7 "Used Buffer
// Notification Suppression"). Call it after a batch of PushUsed and raise
// the interrupt if it returns true.
//
// Without VIRTIO_F_EVENT_IDX the answer is avail->flags&NO_INTERRUPT == 0.
// With it, the device must notify when used->idx passed used_event, which
// is vring_need_event(used_event, new, old) over the batch [old, new).
//
// Barrier: the driver publishes used_event/flags and then re-reads
// used->idx; we publish used->idx (a sequentially consistent atomic store)
// and then read used_event/flags (a sequentially consistent load). Go
// orders sequentially consistent atomics in one total order consistent
// with program order, so our load cannot be satisfied before our store is
// visible (on amd64 the store is an XCHG, a full fence): either we see the
// driver's new used_event or the driver sees our new used->idx. A missed interrupt is impossible; a spurious one is
// allowed (§2.7.7.1 "The driver MUST handle spurious notifications").
func (q *Queue) NeedsNotify() bool {
	if !q.cfg.EventIdx {
		return q.availFlags.Load()&AvailFNoInterrupt == 0
	}
	old, valid := q.signalled, q.signalledValid
	q.signalled, q.signalledValid = q.nextUsed, true
	if !valid {
		return true // first batch ever: no reference point, notify
	}
	return NeedEvent(q.usedEvent.Load(), q.nextUsed, old)
}

// NeedEvent is vring_need_event from the virtio spec (§2.7.10 and the
// virtio_ring.h appendix): with free-running 16-bit indices, it is true iff
// event lies in [old, new), i.e. the index the other side asked to be told
// about was crossed by the move from old to new.
func NeedEvent(event, new, old uint16) bool {
	return new-event-1 < new-old
}

// DisableNotification asks the driver not to kick this queue while the
// device is busy draining it. Without EVENT_IDX it sets
// VIRTQ_USED_F_NO_NOTIFY in used->flags. With EVENT_IDX it does nothing:
// avail_event keeps its old value, which the driver's idx has already
// passed, so vring_need_event stays false until EnableNotification moves it
// (§2.7.10: the device "MUST set flags to 0" under EVENT_IDX).
func (q *Queue) DisableNotification() error {
	if q.err != nil {
		return q.broken()
	}
	if q.cfg.EventIdx {
		return nil
	}
	q.usedFlags = UsedFNoNotify
	q.publishUsedHeader()
	return nil
}

// EnableNotification asks the driver to kick the queue again and reports
// whether chains are already pending, closing the race with a driver that
// published a chain while notifications were off. Without EVENT_IDX it
// clears used->flags; with EVENT_IDX it writes avail_event = the next avail
// index the device will consume ("kick me when you publish entry
// lastAvail").
//
// The sequence is: store flags/avail_event (a sequentially consistent
// store or CAS), then load avail->idx (sequentially consistent load). The
// driver does the mirror image: store avail->idx, full barrier, load
// flags/avail_event (§2.7.13.4.1). With both sides store-then-load across a
// full barrier one of them must see the other's store: either the driver kicks, or pending
// is true here and the device keeps draining. A worker loop is:
//
//	for {
//		q.DisableNotification()
//		for { c, ok, err := q.Pop(); ...; if !ok { break }; ...; q.PushUsed(...) }
//		if q.NeedsNotify() { interrupt() }
//		if pending, err := q.EnableNotification(); err != nil || !pending { break }
//	}
func (q *Queue) EnableNotification() (pending bool, err error) {
	if q.err != nil {
		return false, q.broken()
	}
	if q.cfg.EventIdx {
		// The other half of avail_event's word is past the used ring: the
		// guest's, so Store preserves it.
		if err := q.availEvent.Store(q.lastAvail); err != nil {
			return false, q.fail(fmt.Errorf("%w: avail event: %w", ErrGuestMemory, err))
		}
	} else {
		q.usedFlags = 0
		q.publishUsedHeader()
	}
	return q.availIdx.Load() != q.lastAvail, nil
}
