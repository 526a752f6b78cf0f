// Package virtio holds what the virtio transport (devices/virtio/mmio) and
// the virtio devices (devices/virtio/blk, ...) share: the spec constants
// (virtio 1.2 §2.1 device status, §6 reserved feature bits, §5 device IDs),
// the Interrupt a device raises and the Device (backend) interface a
// transport drives. The split virtqueue itself lives in devices/virtio/queue,
// the only code that walks guest descriptors.
//
// The guest is hostile: everything a transport or device reads from guest
// memory or registers is validated before use, and a guest protocol
// violation ends in DEVICE_NEEDS_RESET (ActivateContext.NeedsReset), never in
// a VMM panic, hang, or access outside guest RAM.
package virtio

import (
	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/memory"
)

// Device status bits (virtio 1.2 §2.1). The driver sets them in the order
// ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK; the device sets NEEDS_RESET.
const (
	StatusAcknowledge = 1
	StatusDriver      = 2
	StatusDriverOK    = 4
	StatusFeaturesOK  = 8
	StatusNeedsReset  = 0x40
	StatusFailed      = 0x80
)

// Device-independent feature bit numbers (virtio 1.2 §6 "Reserved Feature
// Bits"). Use as 1<<FeatureX.
const (
	FeatureIndirectDesc   = 28
	FeatureEventIdx       = 29
	FeatureVersion1       = 32
	FeatureAccessPlatform = 33
	// Features a transport must not pass through unless it implements them
	// (the mmio transport and the queue package implement none of these, so
	// the transport never offers them even if a device lists them).
	FeatureRingPacked       = 34
	FeatureInOrder          = 35
	FeatureNotificationData = 38
	FeatureRingReset        = 40
)

// Device IDs (virtio 1.2 §5).
const (
	DeviceIDNet   = 1
	DeviceIDBlock = 2
)

// Interrupt is how a device signals the driver. Production: an irqfd eventfd
// write; tests: a counter. Trigger must be quick, must not block, and must be
// safe to call from any goroutine.
type Interrupt interface{ Trigger() error }

// Device is a virtio device backend, driven by a transport.
//
// Threads: DeviceID, Features, QueueMaxSizes, ReadConfig, WriteConfig,
// Activate and Reset are called by the transport from vCPU threads, one at a
// time (the transport serialises them). Notify is called from an ioeventfd
// worker (or a vCPU thread on a QueueNotify exit, or a test) and may run
// concurrently with any of them: in particular a Notify may arrive just after
// Reset (the transport cannot make "check activated, then call Notify" atomic
// without holding a lock across the call, which would invert lock order with
// the device's worker). A device must therefore ignore a Notify for a queue
// it does not currently own. Right after a successful Activate the transport
// notifies every enabled queue once (a kick that raced with activation was
// dropped), so a device must also tolerate spurious notifications, as
// §2.7.10 requires anyway. The transport never holds its own locks while
// calling any Device method, so a device may call the ActivateContext
// callbacks from any goroutine, including from inside Activate.
type Device interface {
	DeviceID() uint32
	Features() uint64                             // offered features (device-specific | VERSION_1 | ...), in one place per device
	QueueMaxSizes() []uint16                      // number of queues and each one's max size
	ReadConfig(offset uint64, data []byte) error  // device config space; bounds-checked
	WriteConfig(offset uint64, data []byte) error //
	// Activate is called once at DRIVER_OK with the negotiated features and the ready queues.
	// The device keeps the queues until Reset. ctx gives memory, the used-buffer interrupt
	// and a NeedsReset callback the device calls on a guest protocol violation.
	Activate(ctx ActivateContext) error
	Notify(queue int) // driver kicked `queue` (from an ioeventfd worker or a test)
	Reset()           // drop all queue state; called on Status=0 and before re-activation
}

// ActivateContext is what a device gets at DRIVER_OK.
type ActivateContext struct {
	Mem      *memory.Guest
	Features uint64         // negotiated
	Queues   []*queue.Queue // index = queue number; nil for queues the driver did not enable
	// Interrupt raises the "used buffer" interrupt (sets InterruptStatus
	// bit 0 in the transport, then triggers). After the transport has been
	// reset it does nothing, so a late call from a worker is harmless.
	Interrupt func() error
	// NeedsReset reports that the guest violated the spec: the transport
	// sets DEVICE_NEEDS_RESET, raises a config interrupt and logs once. Like
	// Interrupt it is a no-op after the transport has been reset.
	NeedsReset func(reason error)
}
