// Package mmio is the virtio-mmio transport, version 2 (virtio 1.2 §4.2
// "Virtio Over MMIO"): a devices.Device that a vmm registers on the MMIO bus
// at a 4 KiB window (memory.VirtioMMIOBase + n*memory.VirtioMMIOSize) and
// that drives one virtio.Device backend.
//
// Every register access comes from a hostile guest. The transport checks
// access width and alignment (§4.2.2.2: control registers are 32-bit
// aligned accesses only), enforces the device-status state machine (§2.1,
// §3.1.1), refuses features it did not offer, validates every queue at
// QueueReady through queue.New, and turns guest protocol violations into
// DEVICE_NEEDS_RESET plus a configuration-change interrupt (§2.1.2), logged
// once per reset cycle and rate-limited.
//
// # Threads and locks
//
// Read and Write run on vCPU threads (several at once on an SMP guest).
// Notify runs on the ioeventfd worker. Notifications that arise from a
// register write on a vCPU thread (a QueueNotify the ioeventfd did not
// match, the kick of every queue at DRIVER_OK) go through the kicker set
// with SetKicker, which hands them to the worker, so that device I/O never
// runs on a vCPU thread (whose seccomp filter does not allow it, and which
// must never block on a disk); without a kicker, as in tests and fuzzing,
// they call Notify directly. The Interrupt and NeedsReset callbacks handed to
// the device at Activate run on the device's worker goroutines.
//
//   - ctl serialises the control plane: Status writes, QueueReady, and the
//     config-space accesses, i.e. everything that calls Device.Activate,
//     Reset, ReadConfig or WriteConfig. Only vCPU-thread register accesses
//     take it; device workers and Notify never do, so a Device.Reset that
//     waits for its worker cannot deadlock against a worker that is calling
//     back into the transport.
//   - mu guards the register state. It is a leaf lock: the transport never
//     calls the device, the Interrupt or the logger while holding it, so a
//     device may call Interrupt/NeedsReset while holding its own locks, and
//     dev.Notify can never run under mu. (If Notify ran under mu while the
//     device's worker, holding the device lock, called Interrupt, which takes
//     mu, the two would deadlock: a lock-order inversion.)
//
// Lock order: ctl, then device locks, then mu.
package mmio

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/memory"
)

// Register offsets (§4.2.2 table "MMIO Device Register Layout").
const (
	RegMagicValue        = 0x000
	RegVersion           = 0x004
	RegDeviceID          = 0x008
	RegVendorID          = 0x00c
	RegDeviceFeatures    = 0x010
	RegDeviceFeaturesSel = 0x014
	RegDriverFeatures    = 0x020
	RegDriverFeaturesSel = 0x024
	RegQueueSel          = 0x030
	RegQueueNumMax       = 0x034
	RegQueueNum          = 0x038
	RegQueueReady        = 0x044
	RegQueueNotify       = 0x050
	RegInterruptStatus   = 0x060
	RegInterruptACK      = 0x064
	RegStatus            = 0x070
	RegQueueDescLow      = 0x080
	RegQueueDescHigh     = 0x084
	RegQueueDriverLow    = 0x090
	RegQueueDriverHigh   = 0x094
	RegQueueDeviceLow    = 0x0a0
	RegQueueDeviceHigh   = 0x0a4
	RegSHMSel            = 0x0ac
	RegSHMLenLow         = 0x0b0
	RegSHMLenHigh        = 0x0b4
	RegSHMBaseLow        = 0x0b8
	RegSHMBaseHigh       = 0x0bc
	RegQueueReset        = 0x0c0
	RegConfigGeneration  = 0x0fc
	RegConfig            = 0x100 // device-specific configuration space starts here
)

const (
	// MagicValue is "virt" in little endian (§4.2.2).
	MagicValue = 0x74726976
	// Version is the non-legacy virtio-mmio version (§4.2.2).
	Version = 2
	// VendorID is "GVMM" read as a little-endian u32 ('G' in the low byte),
	// the same convention as MagicValue. The spec leaves the value to the
	// implementation; Linux only prints it.
	VendorID = 0x4d4d5647
	// WindowSize is the size of one transport's MMIO window (the
	// virtio_mmio.device=4K@... size on the guest command line).
	WindowSize = memory.VirtioMMIOSize
)

// InterruptStatus bits (§4.2.2 InterruptStatus).
const (
	InterruptUsedBuffer   = 1
	InterruptConfigChange = 2
)

// unsupportedFeatures are feature bits this transport never offers, even if
// a device lists them, because neither the transport nor package queue
// implements them: packed rings, in-order, notification data (changes the
// QueueNotify format) and per-queue reset (the Device interface has no way
// to take one queue away from a running device).
const unsupportedFeatures = 1<<virtio.FeatureRingPacked | 1<<virtio.FeatureInOrder |
	1<<virtio.FeatureNotificationData | 1<<virtio.FeatureRingReset

// Sentinel reasons for NeedsReset raised by the transport itself.
var (
	ErrQueueSetup   = errors.New("virtio-mmio: invalid queue set-up")
	ErrActivate     = errors.New("virtio-mmio: device activation failed")
	ErrNotAvailable = errors.New("virtio-mmio: queue not available")
)

// queueState is the driver-written configuration of one queue (§4.2.2
// QueueNum/QueueReady/QueueDesc*/QueueDriver*/QueueDevice*).
type queueState struct {
	max                  uint16 // QueueNumMax (from the device, fixed)
	num                  uint32 // QueueNum as written (validated at QueueReady)
	desc, driver, device uint64
	ready                bool
	q                    *queue.Queue // non-nil iff ready
}

// Transport is one virtio-mmio v2 device window. Create it with New.
type Transport struct {
	dev     virtio.Device
	mem     *memory.Guest
	irq     virtio.Interrupt
	log     *slog.Logger
	offered uint64 // dev.Features() minus unsupportedFeatures, fixed at New
	devID   uint32

	ctl sync.Mutex // control plane, see package doc

	mu            sync.Mutex // leaf lock: everything below
	status        uint32
	devFeatSel    uint32
	drvFeatSel    uint32
	drvFeatures   uint64
	drvFeatHigh   bool // driver wrote non-zero bits to a feature word >= 2 (never offered)
	queueSel      uint32
	queues        []queueState
	isr           uint32
	configGen     uint32
	activated     bool   // dev.Activate succeeded in this reset cycle
	epoch         uint64 // bumped on every reset; stale callbacks compare it
	resetReported bool   // NEEDS_RESET already raised (and logged) this cycle

	lim limiter

	// kick, if set, carries a vCPU-thread notification to the device's
	// worker. Set once by SetKicker before the guest runs; read-only after.
	kick func(q int)
}

// SetKicker routes notifications that arise on vCPU threads through kick
// (in production: a write to queue q's ioeventfd, which wakes the device
// worker). It must be called before the guest runs.
func (t *Transport) SetKicker(kick func(q int)) { t.kick = kick }

// notifyFromVCPU is a notification raised by a register write.
func (t *Transport) notifyFromVCPU(q int) {
	if t.kick == nil {
		t.Notify(q)
		return
	}
	// len(t.queues) is fixed by New, so the range check needs no lock.
	if q >= 0 && q < len(t.queues) {
		t.kick(q) // the worker's Notify re-checks that the queue is live
	} else {
		t.debug("notification dropped", "queue", q)
	}
}

// New makes a transport for dev. irq is the transport's interrupt line;
// log receives guest-misbehaviour reports (nil: discard).
func New(dev virtio.Device, mem *memory.Guest, irq virtio.Interrupt, log *slog.Logger) *Transport {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if irq == nil {
		irq = noIRQ{}
	}
	t := &Transport{
		dev:     dev,
		mem:     mem,
		irq:     irq,
		log:     log,
		offered: dev.Features() &^ unsupportedFeatures,
		devID:   dev.DeviceID(),
	}
	for _, m := range dev.QueueMaxSizes() {
		if m > queue.MaxSize {
			m = queue.MaxSize // a device bug, but never advertise more than the ring format allows
		}
		t.queues = append(t.queues, queueState{max: m, num: uint32(m)})
	}
	return t
}

var _ devices.Device = (*Transport)(nil)

type noIRQ struct{}

func (noIRQ) Trigger() error { return nil }

// Status returns the device status register.
func (t *Transport) Status() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status
}

// Features returns the negotiated features: the driver's accepted set once
// FEATURES_OK has been accepted, else 0.
func (t *Transport) Features() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.status&virtio.StatusFeaturesOK == 0 {
		return 0
	}
	return t.drvFeatures
}

// InterruptStatus returns the InterruptStatus register (for tests and the
// vmm's diagnostics).
func (t *Transport) InterruptStatus() uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.isr
}

// Read handles a guest read at offset in the window. Control registers need
// 4-byte aligned 4-byte accesses; the config space at RegConfig accepts
// naturally aligned 1, 2 and 4 byte accesses (§4.2.2.2). Anything else is
// ErrBadAccess with data filled with 0xff.
func (t *Transport) Read(offset uint64, data []byte) error {
	if offset >= RegConfig {
		if !configAccessOK(offset, len(data)) {
			fill(data)
			return devices.ErrBadAccess
		}
		t.ctl.Lock()
		err := t.dev.ReadConfig(offset-RegConfig, data)
		t.ctl.Unlock()
		if err != nil {
			fill(data)
			return devices.ErrBadAccess
		}
		return nil
	}
	if len(data) != 4 || offset%4 != 0 {
		fill(data)
		return devices.ErrBadAccess
	}
	v, ok := t.readReg(offset)
	if !ok {
		fill(data)
		return devices.ErrBadAccess
	}
	binary.LittleEndian.PutUint32(data, v)
	return nil
}

func configAccessOK(offset uint64, n int) bool {
	switch n {
	case 1:
		return true
	case 2, 4:
		return offset%uint64(n) == 0
	}
	return false
}

func fill(data []byte) {
	for i := range data {
		data[i] = 0xff
	}
}

func (t *Transport) readReg(offset uint64) (uint32, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch offset {
	case RegMagicValue:
		return MagicValue, true
	case RegVersion:
		return Version, true
	case RegDeviceID:
		return t.devID, true
	case RegVendorID:
		return VendorID, true
	case RegDeviceFeatures:
		switch t.devFeatSel {
		case 0:
			return uint32(t.offered), true
		case 1:
			return uint32(t.offered >> 32), true
		}
		return 0, true // no feature bits beyond 63
	case RegQueueNumMax:
		if qs := t.selected(); qs != nil {
			return uint32(qs.max), true
		}
		return 0, true // "zero (0x0) if the queue is not available"
	case RegQueueReady:
		if qs := t.selected(); qs != nil && qs.ready {
			return 1, true
		}
		return 0, true
	case RegInterruptStatus:
		return t.isr, true
	case RegStatus:
		return t.status, true
	case RegSHMLenLow, RegSHMLenHigh, RegSHMBaseLow, RegSHMBaseHigh:
		// No shared memory regions: length -1 and base all ones (§4.2.2).
		return 0xffff_ffff, true
	case RegQueueReset:
		return 0, true // VIRTIO_F_RING_RESET is never offered
	case RegConfigGeneration:
		return t.configGen, true
	case RegDeviceFeaturesSel, RegDriverFeatures, RegDriverFeaturesSel, RegQueueSel, RegQueueNum,
		RegQueueNotify, RegInterruptACK, RegQueueDescLow, RegQueueDescHigh, RegQueueDriverLow,
		RegQueueDriverHigh, RegQueueDeviceLow, RegQueueDeviceHigh, RegSHMSel:
		// Write-only registers: the driver MUST NOT read them (§4.2.2.2);
		// answer 0 rather than leak state.
		return 0, true
	}
	return 0, false
}

// selected returns the queue QueueSel points at, or nil. Caller holds mu.
func (t *Transport) selected() *queueState {
	if t.queueSel >= uint32(len(t.queues)) || t.queues[t.queueSel].max == 0 {
		return nil
	}
	return &t.queues[t.queueSel]
}

// Write handles a guest write at offset in the window. Writes to read-only
// registers and writes the state machine does not allow at this point are
// ignored (rate-limited debug log), as hardware would; bad widths,
// misaligned accesses and undefined offsets are ErrBadAccess.
func (t *Transport) Write(offset uint64, data []byte) error {
	if offset >= RegConfig {
		if !configAccessOK(offset, len(data)) {
			return devices.ErrBadAccess
		}
		t.ctl.Lock()
		err := t.dev.WriteConfig(offset-RegConfig, data)
		t.ctl.Unlock()
		if err != nil {
			return devices.ErrBadAccess
		}
		return nil
	}
	if len(data) != 4 || offset%4 != 0 {
		return devices.ErrBadAccess
	}
	v := binary.LittleEndian.Uint32(data)
	switch offset {
	case RegStatus:
		t.ctl.Lock()
		kick := t.writeStatus(v)
		t.ctl.Unlock()
		// A notification that raced with activation was dropped (the device
		// was not live yet), so kick every enabled queue once now; devices
		// must handle spurious notifications anyway (§2.7.10). Done after
		// ctl is released: no transport lock is held across dev.Notify.
		for _, q := range kick {
			t.notifyFromVCPU(q)
		}
		return nil
	case RegQueueReady:
		t.ctl.Lock()
		defer t.ctl.Unlock()
		t.writeQueueReady(v)
		return nil
	case RegQueueNotify:
		// Without VIRTIO_F_NOTIFICATION_DATA the value is the queue index.
		t.notifyFromVCPU(int(v & 0xffff))
		if v > 0xffff {
			t.debug("QueueNotify with data bits but VIRTIO_F_NOTIFICATION_DATA not offered", "value", v)
		}
		return nil
	}
	t.mu.Lock()
	ignored := t.writeReg(offset, v)
	t.mu.Unlock()
	if ignored == whyUndefined {
		return devices.ErrBadAccess
	}
	if ignored != "" {
		t.debug("ignored register write", "offset", offset, "value", v, "why", ignored)
	}
	return nil
}

// writeReg handles the simple registers. Caller holds mu. It returns why
// the write was ignored, or "".
func (t *Transport) writeReg(offset uint64, v uint32) string {
	switch offset {
	case RegDeviceFeaturesSel:
		t.devFeatSel = v
	case RegDriverFeaturesSel:
		t.drvFeatSel = v
	case RegDriverFeatures:
		// §3.1.1: features are written after DRIVER and before FEATURES_OK.
		if t.status&virtio.StatusDriver == 0 || t.status&(virtio.StatusFeaturesOK|virtio.StatusFailed) != 0 {
			return "DriverFeatures outside feature negotiation"
		}
		switch t.drvFeatSel {
		case 0:
			t.drvFeatures = t.drvFeatures&^0xffff_ffff | uint64(v)
		case 1:
			t.drvFeatures = t.drvFeatures&0xffff_ffff | uint64(v)<<32
		default:
			if v != 0 {
				t.drvFeatHigh = true // accepting bits that were never offered
			}
		}
	case RegQueueSel:
		t.queueSel = v
	case RegInterruptACK:
		t.isr &^= v & (InterruptUsedBuffer | InterruptConfigChange)
	case RegQueueNum, RegQueueDescLow, RegQueueDescHigh, RegQueueDriverLow,
		RegQueueDriverHigh, RegQueueDeviceLow, RegQueueDeviceHigh:
		qs := t.selected()
		if qs == nil {
			return "queue register write for an unavailable queue"
		}
		// §4.2.2.2: not while QueueReady; and we take no queue changes once
		// the device runs (DRIVER_OK), since Activate already has the set.
		if qs.ready || t.status&virtio.StatusDriverOK != 0 {
			return "queue register write while the queue is ready or the device is live"
		}
		switch offset {
		case RegQueueNum:
			qs.num = v
		case RegQueueDescLow:
			qs.desc = setLow(qs.desc, v)
		case RegQueueDescHigh:
			qs.desc = setHigh(qs.desc, v)
		case RegQueueDriverLow:
			qs.driver = setLow(qs.driver, v)
		case RegQueueDriverHigh:
			qs.driver = setHigh(qs.driver, v)
		case RegQueueDeviceLow:
			qs.device = setLow(qs.device, v)
		case RegQueueDeviceHigh:
			qs.device = setHigh(qs.device, v)
		}
	case RegSHMSel:
		// No shared memory regions; every id reads back as absent.
	case RegQueueReset:
		return "QueueReset without VIRTIO_F_RING_RESET"
	case RegMagicValue, RegVersion, RegDeviceID, RegVendorID, RegDeviceFeatures, RegQueueNumMax,
		RegInterruptStatus, RegSHMLenLow, RegSHMLenHigh, RegSHMBaseLow, RegSHMBaseHigh, RegConfigGeneration:
		return "write to a read-only register"
	default:
		return whyUndefined
	}
	return ""
}

const whyUndefined = "write to an undefined register"

func setLow(x uint64, v uint32) uint64  { return x&^0xffff_ffff | uint64(v) }
func setHigh(x uint64, v uint32) uint64 { return x&0xffff_ffff | uint64(v)<<32 }

// writeQueueReady enables or disables the selected queue. Caller holds ctl.
//
// Enabling (§4.2.3.2) is only possible after FEATURES_OK (the ring walk
// depends on the negotiated EVENT_IDX/INDIRECT_DESC) and before DRIVER_OK
// (the device receives its queues at Activate). The size must be a power of
// two <= QueueNumMax and the rings aligned and inside RAM (queue.New). An
// invalid set-up leaves the queue not ready (so the driver's read-back sees
// 0) and puts the device in NEEDS_RESET: a driver that got this wrong
// cannot recover without a reset anyway, and the config interrupt tells it.
//
// Disabling works before DRIVER_OK. While the device is live the write is
// ignored and the queue keeps reading 1: the Device interface cannot take a
// single queue away from a running device (that is VIRTIO_F_RING_RESET,
// which we do not offer), and the spec's read-back rule lets the driver see
// that it did not stop.
func (t *Transport) writeQueueReady(v uint32) {
	t.mu.Lock()
	qs := t.selected()
	status := t.status
	switch {
	case qs == nil:
		sel := t.queueSel
		t.mu.Unlock()
		if v != 0 {
			t.NeedsReset(fmt.Errorf("%w: QueueReady for queue %d", ErrNotAvailable, sel))
		}
		return
	case v == 0:
		if status&virtio.StatusDriverOK == 0 {
			qs.ready, qs.q = false, nil
		}
		t.mu.Unlock()
		if status&virtio.StatusDriverOK != 0 {
			t.debug("QueueReady=0 on a live device ignored")
		}
		return
	case qs.ready:
		t.mu.Unlock()
		return // already enabled: nothing changes
	}
	sel := t.queueSel
	var err error
	switch {
	case v != 1:
		err = fmt.Errorf("%w: queue %d: QueueReady value %#x", ErrQueueSetup, sel, v)
	case status&virtio.StatusFeaturesOK == 0 || status&(virtio.StatusDriverOK|virtio.StatusFailed) != 0:
		err = fmt.Errorf("%w: queue %d enabled in device status %#x", ErrQueueSetup, sel, status)
	case qs.num == 0 || qs.num > uint32(qs.max):
		err = fmt.Errorf("%w: queue %d size %d, max %d", ErrQueueSetup, sel, qs.num, qs.max)
	default:
		var q *queue.Queue
		q, err = queue.New(t.mem, queue.Config{
			Size:      uint16(qs.num),
			DescAddr:  qs.desc,
			AvailAddr: qs.driver,
			UsedAddr:  qs.device,
			EventIdx:  t.drvFeatures&(1<<virtio.FeatureEventIdx) != 0,
			Indirect:  t.drvFeatures&(1<<virtio.FeatureIndirectDesc) != 0,
		})
		if err == nil {
			qs.ready, qs.q = true, q
		} else {
			err = fmt.Errorf("%w: queue %d: %w", ErrQueueSetup, sel, err)
		}
	}
	t.mu.Unlock()
	if err != nil {
		t.NeedsReset(err)
	}
}

// Status bits the driver owns; NEEDS_RESET is the device's.
const driverBits = virtio.StatusAcknowledge | virtio.StatusDriver | virtio.StatusFeaturesOK |
	virtio.StatusDriverOK | virtio.StatusFailed

// writeStatus runs the device-status state machine (§2.1, §3.1.1). Caller
// holds ctl.
//
//   - 0 resets the device (§4.2.3.1 / §2.4): dev.Reset, then every register
//     back to its initial value, all queues dropped.
//   - Otherwise the driver may only add bits (§2.1.2: "The driver MUST NOT
//     clear a device status bit"), and only in the order ACKNOWLEDGE,
//     DRIVER, FEATURES_OK, DRIVER_OK; a write that breaks this, or any write
//     after FAILED, is ignored. NEEDS_RESET in the written value is ignored
//     (drivers write back what they read).
//   - FEATURES_OK is accepted only if the driver accepted a subset of the
//     offered features including VERSION_1; otherwise it reads back clear
//     (§3.1.1 step 6, §6.1: a non-legacy device requires VERSION_1).
//   - DRIVER_OK calls dev.Activate with the ready queues. If Activate fails
//     the device goes NEEDS_RESET.
//   - FAILED is recorded; the driver must reset the device.
func (t *Transport) writeStatus(v uint32) (kick []int) {
	if v == 0 {
		t.reset()
		return nil
	}
	t.mu.Lock()
	old := t.status
	want := v & driverBits
	have := old & driverBits
	var why string
	switch {
	case have&virtio.StatusFailed != 0 && want != have:
		why = "status write after FAILED"
	case want&have != have:
		why = "status write clears bits"
	case want&virtio.StatusDriver != 0 && want&virtio.StatusAcknowledge == 0,
		want&virtio.StatusFeaturesOK != 0 && want&virtio.StatusDriver == 0,
		want&virtio.StatusDriverOK != 0 && want&virtio.StatusFeaturesOK == 0:
		why = "status bits out of order"
	}
	if why != "" {
		t.mu.Unlock()
		t.debug("ignored status write", "old", old, "value", v, "why", why)
		return nil
	}
	added := want &^ have
	if added&virtio.StatusFeaturesOK != 0 {
		f := t.drvFeatures
		if f&^t.offered != 0 || t.drvFeatHigh || f&(1<<virtio.FeatureVersion1) == 0 {
			// Refuse: FEATURES_OK stays clear; the driver re-reads status
			// and gives up. DRIVER_OK in the same write cannot stand either.
			added &^= virtio.StatusFeaturesOK | virtio.StatusDriverOK
			t.status |= added
			t.mu.Unlock()
			t.debug("FEATURES_OK refused", "accepted", f, "offered", t.offered)
			return nil
		}
	}
	if added&virtio.StatusDriverOK == 0 || added&virtio.StatusFailed != 0 {
		t.status |= added &^ virtio.StatusDriverOK // never go live together with FAILED
		t.mu.Unlock()
		return nil
	}
	if old&virtio.StatusNeedsReset != 0 {
		t.status |= added
		t.mu.Unlock()
		t.debug("DRIVER_OK while NEEDS_RESET: device not activated")
		return nil
	}
	// DRIVER_OK: hand the ready queues to the device. Activate runs
	// without mu (the device may call NeedsReset/Interrupt from it);
	// ctl keeps other control-plane writes out meanwhile.
	qs := make([]*queue.Queue, len(t.queues))
	for i := range t.queues {
		qs[i] = t.queues[i].q
		if qs[i] != nil {
			kick = append(kick, i)
		}
	}
	epoch := t.epoch
	ctx := virtio.ActivateContext{
		Mem:        t.mem,
		Features:   t.drvFeatures,
		Queues:     qs,
		Interrupt:  func() error { return t.raise(epoch, InterruptUsedBuffer) },
		NeedsReset: func(reason error) { t.needsReset(epoch, reason) },
	}
	t.status |= added &^ virtio.StatusDriverOK
	t.mu.Unlock()

	err := t.dev.Activate(ctx)

	t.mu.Lock()
	t.status |= virtio.StatusDriverOK
	t.activated = err == nil
	t.mu.Unlock()
	if err != nil {
		t.NeedsReset(fmt.Errorf("%w: %w", ErrActivate, err))
		return nil
	}
	return kick
}

// reset implements Status=0. Caller holds ctl. The epoch is bumped first, so
// that callbacks from the device's workers racing with the reset (a late
// Interrupt or NeedsReset from the old activation) are dropped, and Notify
// stops forwarding; then the device drops its queues; then the registers
// return to their reset values (§4.2.2.1: InterruptStatus and QueueReady
// cleared). ConfigGeneration is not reset: it only ever moves forward, so a
// driver comparing two reads across a reset sees the change.
func (t *Transport) reset() {
	t.mu.Lock()
	t.epoch++
	t.activated = false
	t.mu.Unlock()

	t.dev.Reset()

	t.mu.Lock()
	t.status = 0
	t.devFeatSel, t.drvFeatSel = 0, 0
	t.drvFeatures, t.drvFeatHigh = 0, false
	t.queueSel = 0
	for i := range t.queues {
		t.queues[i] = queueState{max: t.queues[i].max, num: uint32(t.queues[i].max)}
	}
	t.isr = 0
	t.resetReported = false
	t.mu.Unlock()
}

// Notify forwards a driver notification for queue q to the device if the
// device is live and q is an enabled queue; otherwise it is dropped. The
// vmm calls it from the queue's ioeventfd worker; QueueNotify writes that
// reach userspace call it on the vCPU thread. It takes mu only to check,
// and calls dev.Notify with no transport lock held (see package doc), so a
// Notify can reach the device just after a concurrent reset; the Device
// contract says to ignore it.
func (t *Transport) Notify(q int) {
	t.mu.Lock()
	ok := t.activated && t.status&virtio.StatusNeedsReset == 0 &&
		q >= 0 && q < len(t.queues) && t.queues[q].ready
	t.mu.Unlock()
	if ok {
		t.dev.Notify(q)
	} else {
		t.debug("notification dropped", "queue", q)
	}
}

// raise sets InterruptStatus bits and triggers the interrupt line, unless
// the transport was reset since the callback was made.
func (t *Transport) raise(epoch uint64, bits uint32) error {
	t.mu.Lock()
	if epoch != t.epoch {
		t.mu.Unlock()
		return nil
	}
	t.isr |= bits
	t.mu.Unlock()
	// Outside mu: Trigger is an eventfd write in production and must not
	// extend the critical section. The bit is set before the trigger, so
	// the driver's handler always finds it.
	return t.irq.Trigger()
}

// NeedsReset puts the device in DEVICE_NEEDS_RESET (§2.1.2: the device sets
// it when it "has experienced an error from which it can't recover"), bumps
// ConfigGeneration, sets the config-change interrupt bit and triggers the
// interrupt. It reports and logs only the first reason per reset cycle;
// later calls do nothing until the driver resets the device.
func (t *Transport) NeedsReset(reason error) {
	t.mu.Lock()
	epoch := t.epoch
	t.mu.Unlock()
	t.needsReset(epoch, reason)
}

func (t *Transport) needsReset(epoch uint64, reason error) {
	t.mu.Lock()
	if epoch != t.epoch || t.resetReported {
		t.mu.Unlock()
		return
	}
	t.resetReported = true
	t.status |= virtio.StatusNeedsReset
	t.configGen++
	t.isr |= InterruptConfigChange
	t.mu.Unlock()
	if ok, dropped := t.lim.allow(time.Now()); ok {
		t.log.Warn("virtio device needs reset: guest protocol violation",
			"device_id", t.devID, "reason", reason, "suppressed", dropped)
	}
	if err := t.irq.Trigger(); err != nil {
		t.debug("config interrupt failed", "err", err)
	}
}

// debug logs guest misbehaviour that is ignored, rate-limited like Warn so a
// guest cannot flood the host log.
func (t *Transport) debug(msg string, args ...any) {
	if !t.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	if ok, dropped := t.lim.allow(time.Now()); ok {
		t.log.Debug("virtio-mmio: "+msg, append(args, "device_id", t.devID, "suppressed", dropped)...)
	}
}

// limiter is a token bucket for log lines: burst logBurst, then one per
// logEvery. Its own mutex keeps it independent of mu (logging happens
// outside mu).
type limiter struct {
	mu      sync.Mutex
	tokens  int
	last    time.Time
	dropped uint64
}

const (
	logBurst = 10
	logEvery = time.Second
)

func (l *limiter) allow(now time.Time) (bool, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last.IsZero() {
		l.tokens, l.last = logBurst, now
	}
	if el := now.Sub(l.last); el >= logEvery {
		n := int(min(el/logEvery, logBurst))
		l.tokens = min(logBurst, l.tokens+n)
		l.last = now
	}
	if l.tokens == 0 {
		l.dropped++
		return false, 0
	}
	l.tokens--
	d := l.dropped
	l.dropped = 0
	return true, d
}
