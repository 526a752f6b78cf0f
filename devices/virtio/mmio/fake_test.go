package mmio_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/mmio"
	"github.com/govmm/govmm/memory"
)

// fakeDevice is a virtio.Device that completes every chain it is notified
// about with written = total writable bytes, reporting queue errors through
// NeedsReset, as a real device would.
type fakeDevice struct {
	features uint64
	maxSizes []uint16
	actErr   error

	mu        sync.Mutex
	ctx       *virtio.ActivateContext // nil when not activated
	config    [8]byte
	activates int
	resets    int
	notifies  []int // queues notified while activated
	ignored   int   // notifications while not activated
	completed int
}

const fakeDeviceID = 0x2a

func newFake() *fakeDevice {
	return &fakeDevice{
		features: 1<<virtio.FeatureVersion1 | 1<<virtio.FeatureEventIdx | 1<<virtio.FeatureIndirectDesc | 1<<5,
		maxSizes: []uint16{8, 4},
		config:   [8]byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
}

func (f *fakeDevice) DeviceID() uint32        { return fakeDeviceID }
func (f *fakeDevice) Features() uint64        { return f.features }
func (f *fakeDevice) QueueMaxSizes() []uint16 { return f.maxSizes }

func (f *fakeDevice) ReadConfig(off uint64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off > uint64(len(f.config)) || uint64(len(data)) > uint64(len(f.config))-off {
		return errors.New("config out of range")
	}
	copy(data, f.config[off:])
	return nil
}

func (f *fakeDevice) WriteConfig(off uint64, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if off > uint64(len(f.config)) || uint64(len(data)) > uint64(len(f.config))-off {
		return errors.New("config out of range")
	}
	copy(f.config[off:], data)
	return nil
}

func (f *fakeDevice) Activate(ctx virtio.ActivateContext) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.activates++
	if f.actErr != nil {
		return f.actErr
	}
	f.ctx = &ctx
	return nil
}

func (f *fakeDevice) Reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets++
	f.ctx = nil
}

func (f *fakeDevice) Notify(qi int) {
	f.mu.Lock()
	ctx := f.ctx
	if ctx == nil || qi < 0 || qi >= len(ctx.Queues) || ctx.Queues[qi] == nil {
		f.ignored++
		f.mu.Unlock()
		return
	}
	f.notifies = append(f.notifies, qi)
	q := ctx.Queues[qi]
	var qerr error
	done := 0
	for range 2 * int(q.Size()) {
		c, ok, err := q.Pop()
		if err != nil {
			qerr = err
			break
		}
		if !ok {
			break
		}
		var written uint32
		for range int(q.Size()) + 1 {
			d, ok, err := c.Next()
			if err != nil {
				qerr = err
				break
			}
			if !ok {
				break
			}
			if d.Write {
				written += d.Len
			}
		}
		if qerr != nil {
			break
		}
		if err := q.PushUsed(c.Head(), written); err != nil {
			qerr = err
			break
		}
		done++
	}
	f.completed += done
	notify := qerr == nil && done > 0 && q.NeedsNotify()
	f.mu.Unlock()
	// Callbacks without the device lock, as the contract allows either way.
	if qerr != nil {
		ctx.NeedsReset(qerr)
	}
	if notify {
		ctx.Interrupt()
	}
}

func (f *fakeDevice) activeCtx() *virtio.ActivateContext {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ctx
}

// countIRQ counts Trigger calls.
type countIRQ struct{ n atomic.Int64 }

func (c *countIRQ) Trigger() error { c.n.Add(1); return nil }

// countHandler counts log records at Warn and above.
type countHandler struct{ warns atomic.Int64 }

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		h.warns.Add(1)
	}
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// rig is a transport with a fake device on a small guest.
type rig struct {
	t    testing.TB
	mem  *memory.Guest
	dev  *fakeDevice
	irq  *countIRQ
	logs *countHandler
	tr   *mmio.Transport
}

func newRig(t testing.TB, dev *fakeDevice) *rig {
	t.Helper()
	g, err := memory.FromSlices(map[uint64][]byte{
		0:                             make([]byte, 1<<20),
		memory.MMIOHoleStart - 0x1000: make([]byte, 0x1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, mem: g, dev: dev, irq: &countIRQ{}, logs: &countHandler{}}
	r.tr = mmio.New(dev, g, r.irq, slog.New(r.logs))
	return r
}

func (r *rig) rd(off uint64) uint32 {
	r.t.Helper()
	var b [4]byte
	if err := r.tr.Read(off, b[:]); err != nil {
		r.t.Fatalf("read %#x: %v", off, err)
	}
	return binary.LittleEndian.Uint32(b[:])
}

func (r *rig) wr(off uint64, v uint32) {
	r.t.Helper()
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	if err := r.tr.Write(off, b[:]); err != nil {
		r.t.Fatalf("write %#x: %v", off, err)
	}
}

func (r *rig) addStatus(bits uint32) { r.wr(mmio.RegStatus, r.rd(mmio.RegStatus)|bits) }

// features reads the 64 offered feature bits as a Linux driver does.
func (r *rig) features() uint64 {
	r.wr(mmio.RegDeviceFeaturesSel, 1)
	hi := r.rd(mmio.RegDeviceFeatures)
	r.wr(mmio.RegDeviceFeaturesSel, 0)
	lo := r.rd(mmio.RegDeviceFeatures)
	return uint64(hi)<<32 | uint64(lo)
}

func (r *rig) setDriverFeatures(f uint64) {
	r.wr(mmio.RegDriverFeaturesSel, 1)
	r.wr(mmio.RegDriverFeatures, uint32(f>>32))
	r.wr(mmio.RegDriverFeaturesSel, 0)
	r.wr(mmio.RegDriverFeatures, uint32(f))
}

// negotiate does reset, ACK, DRIVER, features, FEATURES_OK and reports
// whether FEATURES_OK stuck.
func (r *rig) negotiate(accept uint64) bool {
	r.wr(mmio.RegStatus, 0)
	r.addStatus(virtio.StatusAcknowledge)
	r.addStatus(virtio.StatusDriver)
	r.setDriverFeatures(accept)
	r.addStatus(virtio.StatusFeaturesOK)
	return r.rd(mmio.RegStatus)&virtio.StatusFeaturesOK != 0
}

// setupQueue programs queue sel like vm_setup_vq and returns QueueReady's
// read-back.
func (r *rig) setupQueue(sel uint32, size uint32, desc, avail, used uint64) bool {
	r.wr(mmio.RegQueueSel, sel)
	if r.rd(mmio.RegQueueReady) != 0 {
		r.t.Fatalf("queue %d already ready", sel)
	}
	if r.rd(mmio.RegQueueNumMax) == 0 {
		r.t.Fatalf("queue %d not available", sel)
	}
	r.wr(mmio.RegQueueNum, size)
	r.wr(mmio.RegQueueDescLow, uint32(desc))
	r.wr(mmio.RegQueueDescHigh, uint32(desc>>32))
	r.wr(mmio.RegQueueDriverLow, uint32(avail))
	r.wr(mmio.RegQueueDriverHigh, uint32(avail>>32))
	r.wr(mmio.RegQueueDeviceLow, uint32(used))
	r.wr(mmio.RegQueueDeviceHigh, uint32(used>>32))
	r.wr(mmio.RegQueueReady, 1)
	return r.rd(mmio.RegQueueReady) == 1
}
