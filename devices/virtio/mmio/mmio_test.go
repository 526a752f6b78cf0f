package mmio_test

import (
	"encoding/binary"
	"errors"
	"sync"
	"testing"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/mmio"
	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
	"github.com/govmm/govmm/memory"
)

const (
	q0Base   = 0x1_0000
	q1Base   = 0x2_0000
	indBase  = 0x4_0000
	dataAddr = 0x8_0000
)

const linuxFeatures = 1<<virtio.FeatureVersion1 | 1<<virtio.FeatureEventIdx | 1<<virtio.FeatureIndirectDesc

func TestProbe(t *testing.T) {
	r := newRig(t, newFake())
	for _, tc := range []struct {
		off  uint64
		want uint32
	}{
		{mmio.RegMagicValue, 0x74726976},
		{mmio.RegVersion, 2},
		{mmio.RegDeviceID, fakeDeviceID},
		{mmio.RegVendorID, mmio.VendorID},
		{mmio.RegStatus, 0},
		{mmio.RegInterruptStatus, 0},
		{mmio.RegSHMLenLow, 0xffffffff},
		{mmio.RegSHMLenHigh, 0xffffffff},
		{mmio.RegSHMBaseLow, 0xffffffff},
		{mmio.RegSHMBaseHigh, 0xffffffff},
		{mmio.RegQueueReset, 0},
		{mmio.RegQueueNum, 0}, // write-only: reads 0
	} {
		if got := r.rd(tc.off); got != tc.want {
			t.Errorf("reg %#x = %#x, want %#x", tc.off, got, tc.want)
		}
	}
	if v := binary.LittleEndian.AppendUint32(nil, mmio.VendorID); string(v) != "GVMM" {
		t.Errorf("VendorID %#x is not \"GVMM\"", mmio.VendorID)
	}
	r.wr(mmio.RegQueueSel, 0)
	if got := r.rd(mmio.RegQueueNumMax); got != 8 {
		t.Errorf("QueueNumMax[0] = %d", got)
	}
	r.wr(mmio.RegQueueSel, 1)
	if got := r.rd(mmio.RegQueueNumMax); got != 4 {
		t.Errorf("QueueNumMax[1] = %d", got)
	}
	r.wr(mmio.RegQueueSel, 2)
	if got := r.rd(mmio.RegQueueNumMax); got != 0 {
		t.Errorf("QueueNumMax[2] = %d, want 0 (not available)", got)
	}
}

func TestBadAccess(t *testing.T) {
	r := newRig(t, newFake())
	tests := []struct {
		name string
		off  uint64
		n    int
	}{
		{"byte register read", mmio.RegMagicValue, 1},
		{"half register read", mmio.RegStatus, 2},
		{"qword register read", mmio.RegQueueDescLow, 8},
		{"misaligned word", mmio.RegStatus + 2, 4},
		{"misaligned word 1", 1, 4},
		{"undefined register", 0x0f8, 4},
		{"undefined register 0x18", 0x018, 4},
		{"config misaligned half", mmio.RegConfig + 1, 2},
		{"config misaligned word", mmio.RegConfig + 2, 4},
		{"config qword", mmio.RegConfig, 8},
		{"config 3 bytes", mmio.RegConfig, 3},
		{"config past device config", mmio.RegConfig + 8, 1},
		{"config far", 0xffc, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, tc.n)
			if err := r.tr.Read(tc.off, data); !errors.Is(err, devices.ErrBadAccess) {
				t.Fatalf("Read = %v, want ErrBadAccess", err)
			}
			for i, b := range data {
				if b != 0xff {
					t.Fatalf("data[%d] = %#x, want 0xff", i, b)
				}
			}
			if err := r.tr.Write(tc.off, data); !errors.Is(err, devices.ErrBadAccess) {
				t.Fatalf("Write = %v, want ErrBadAccess", err)
			}
		})
	}
	// A bad-width Status write must not change anything.
	if err := r.tr.Write(mmio.RegStatus, []byte{1}); !errors.Is(err, devices.ErrBadAccess) || r.tr.Status() != 0 {
		t.Fatalf("byte Status write: %v, status %#x", err, r.tr.Status())
	}
}

func TestConfigSpace(t *testing.T) {
	r := newRig(t, newFake())
	for _, tc := range []struct {
		off  uint64
		n    int
		want uint32
	}{
		{0, 1, 1}, {3, 1, 4}, {0, 2, 0x0201}, {6, 2, 0x0807}, {0, 4, 0x04030201}, {4, 4, 0x08070605},
	} {
		data := make([]byte, tc.n)
		if err := r.tr.Read(mmio.RegConfig+tc.off, data); err != nil {
			t.Fatalf("config read %d/%d: %v", tc.off, tc.n, err)
		}
		var got uint32
		for i := range data {
			got |= uint32(data[i]) << (8 * i)
		}
		if got != tc.want {
			t.Errorf("config %d/%d = %#x, want %#x", tc.off, tc.n, got, tc.want)
		}
	}
	if err := r.tr.Write(mmio.RegConfig+2, []byte{0xaa, 0xbb}); err != nil {
		t.Fatal(err)
	}
	if r.dev.config[2] != 0xaa || r.dev.config[3] != 0xbb {
		t.Fatalf("config write not forwarded: %v", r.dev.config)
	}
}

func TestFeatureNegotiation(t *testing.T) {
	dev := newFake()
	dev.features |= 1<<virtio.FeatureRingReset | 1<<virtio.FeatureRingPacked | 1<<virtio.FeatureNotificationData | 1<<virtio.FeatureInOrder
	r := newRig(t, dev)
	r.addStatus(virtio.StatusAcknowledge)
	r.addStatus(virtio.StatusDriver)
	offered := r.features()
	want := uint64(1<<virtio.FeatureVersion1 | 1<<virtio.FeatureEventIdx | 1<<virtio.FeatureIndirectDesc | 1<<5)
	if offered != want {
		t.Fatalf("offered %#x, want %#x (transport-unsupported bits stripped)", offered, want)
	}
	r.wr(mmio.RegDeviceFeaturesSel, 2)
	if r.rd(mmio.RegDeviceFeatures) != 0 {
		t.Fatal("feature word 2 not zero")
	}
	tests := []struct {
		name   string
		accept uint64
		high   uint32 // written to feature word 2
		ok     bool
	}{
		{"all offered", want, 0, true},
		{"subset with VERSION_1", 1 << virtio.FeatureVersion1, 0, true},
		{"no VERSION_1", 1 << virtio.FeatureEventIdx, 0, false},
		{"nothing", 0, 0, false},
		{"unoffered low bit", 1<<virtio.FeatureVersion1 | 1<<6, 0, false},
		{"unoffered high bit", 1<<virtio.FeatureVersion1 | 1<<virtio.FeatureAccessPlatform, 0, false},
		{"stripped RING_RESET", 1<<virtio.FeatureVersion1 | 1<<virtio.FeatureRingReset, 0, false},
		{"feature word 2", 1 << virtio.FeatureVersion1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r.wr(mmio.RegStatus, 0)
			r.addStatus(virtio.StatusAcknowledge)
			r.addStatus(virtio.StatusDriver)
			r.setDriverFeatures(tc.accept)
			if tc.high != 0 {
				r.wr(mmio.RegDriverFeaturesSel, 2)
				r.wr(mmio.RegDriverFeatures, tc.high)
			}
			r.addStatus(virtio.StatusFeaturesOK)
			st := r.rd(mmio.RegStatus)
			if got := st&virtio.StatusFeaturesOK != 0; got != tc.ok {
				t.Fatalf("FEATURES_OK = %v, want %v (status %#x)", got, tc.ok, st)
			}
			if st&(virtio.StatusAcknowledge|virtio.StatusDriver) != virtio.StatusAcknowledge|virtio.StatusDriver {
				t.Fatalf("earlier bits lost: %#x", st)
			}
			if tc.ok && r.tr.Features() != tc.accept {
				t.Fatalf("Features() = %#x, want %#x", r.tr.Features(), tc.accept)
			}
			if !tc.ok && r.tr.Features() != 0 {
				t.Fatalf("Features() = %#x without FEATURES_OK", r.tr.Features())
			}
			// Features are frozen after FEATURES_OK.
			if tc.ok {
				r.setDriverFeatures(^uint64(0))
				if r.tr.Features() != tc.accept {
					t.Fatal("driver features changed after FEATURES_OK")
				}
			}
		})
	}
}

func TestStatusStateMachine(t *testing.T) {
	const A, D, F, O = virtio.StatusAcknowledge, virtio.StatusDriver, virtio.StatusFeaturesOK, virtio.StatusDriverOK
	tests := []struct {
		name   string
		writes []uint32
		want   uint32
	}{
		{"in order", []uint32{A, A | D}, A | D},
		{"DRIVER before ACK", []uint32{D}, 0},
		{"FEATURES_OK before DRIVER", []uint32{A, A | F}, A},
		{"DRIVER_OK before FEATURES_OK", []uint32{A, A | D, A | D | O}, A | D},
		{"clearing a bit", []uint32{A, A | D, A}, A | D},
		{"several bits at once in order", []uint32{A | D}, A | D},
		{"NEEDS_RESET cannot be set by driver", []uint32{A | virtio.StatusNeedsReset}, A},
		{"FAILED", []uint32{A, A | virtio.StatusFailed}, A | virtio.StatusFailed},
		{"nothing after FAILED", []uint32{A, A | virtio.StatusFailed, A | D | virtio.StatusFailed}, A | virtio.StatusFailed},
		{"reset clears", []uint32{A, A | D, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, newFake())
			for _, w := range tc.writes {
				r.wr(mmio.RegStatus, w)
			}
			if got := r.tr.Status(); got != tc.want {
				t.Fatalf("status %#x, want %#x", got, tc.want)
			}
			if r.dev.activates != 0 {
				t.Fatal("device activated")
			}
		})
	}
}

// linuxBringUp initialises the device like drivers/virtio/virtio_mmio.c and
// returns the guest-side driver of queue 0.
func linuxBringUp(t *testing.T, r *rig, accept uint64) *virtiotest.Driver {
	t.Helper()
	if r.rd(mmio.RegMagicValue) != mmio.MagicValue || r.rd(mmio.RegVersion) != 2 || r.rd(mmio.RegDeviceID) == 0 {
		t.Fatal("probe failed")
	}
	if !r.negotiate(accept) {
		t.Fatalf("FEATURES_OK refused (status %#x)", r.tr.Status())
	}
	desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
	d, err := virtiotest.New(r.mem, 8, desc, avail, used)
	if err != nil {
		t.Fatal(err)
	}
	d.IndirectAddr = indBase
	d.EventIdx = accept&(1<<virtio.FeatureEventIdx) != 0
	if !r.setupQueue(0, 8, desc, avail, used) {
		t.Fatalf("queue 0 not ready (status %#x)", r.tr.Status())
	}
	r.addStatus(virtio.StatusDriverOK)
	if st := r.tr.Status(); st != virtio.StatusAcknowledge|virtio.StatusDriver|virtio.StatusFeaturesOK|virtio.StatusDriverOK {
		t.Fatalf("status %#x after DRIVER_OK", st)
	}
	return d
}

func TestLinuxBringUpAndIO(t *testing.T) {
	for _, accept := range []uint64{1 << virtio.FeatureVersion1, linuxFeatures} {
		r := newRig(t, newFake())
		d := linuxBringUp(t, r, accept)
		ctx := r.dev.activeCtx()
		if r.dev.activates != 1 || ctx == nil {
			t.Fatal("Activate not called")
		}
		if ctx.Features != accept || ctx.Mem != r.mem || len(ctx.Queues) != 2 || ctx.Queues[0] == nil || ctx.Queues[1] != nil {
			t.Fatalf("ActivateContext = %+v", *ctx)
		}
		qc := ctx.Queues[0].Config()
		if qc.Size != 8 || qc.DescAddr != d.DescAddr || qc.AvailAddr != d.AvailAddr || qc.UsedAddr != d.UsedAddr ||
			qc.EventIdx != (accept&(1<<virtio.FeatureEventIdx) != 0) || qc.Indirect != (accept&(1<<virtio.FeatureIndirectDesc) != 0) {
			t.Fatalf("queue config %+v", qc)
		}
		if len(r.dev.notifies) != 1 || r.dev.notifies[0] != 0 {
			t.Fatalf("activation kick: notifies %v", r.dev.notifies)
		}
		// One request through QueueNotify.
		_, err := d.AddChain([]virtiotest.Buf{{Addr: dataAddr, Len: 16}, {Addr: dataAddr + 0x100, Len: 512, Write: true}}, accept&(1<<virtio.FeatureIndirectDesc) != 0)
		if err != nil {
			t.Fatal(err)
		}
		kick, err := d.Kick()
		if err != nil || !kick {
			t.Fatalf("Kick = %v, %v", kick, err)
		}
		irqs := r.irq.n.Load()
		r.wr(mmio.RegQueueNotify, 0)
		used, err := d.ReadUsed()
		if err != nil || len(used) != 1 || used[0].Len != 512 {
			t.Fatalf("used %+v, %v", used, err)
		}
		if r.irq.n.Load() != irqs+1 {
			t.Fatalf("interrupt not triggered")
		}
		if isr := r.rd(mmio.RegInterruptStatus); isr != mmio.InterruptUsedBuffer {
			t.Fatalf("InterruptStatus %#x", isr)
		}
		r.wr(mmio.RegInterruptACK, mmio.InterruptUsedBuffer)
		if isr := r.rd(mmio.RegInterruptStatus); isr != 0 {
			t.Fatalf("InterruptStatus %#x after ACK", isr)
		}
		// Notify for a queue that is not enabled, or out of range, is dropped.
		n := len(r.dev.notifies)
		r.wr(mmio.RegQueueNotify, 1)
		r.wr(mmio.RegQueueNotify, 7)
		r.tr.Notify(-1)
		if len(r.dev.notifies) != n {
			t.Fatal("notification for a disabled queue forwarded")
		}
		r.tr.Notify(0) // the ioeventfd path
		if len(r.dev.notifies) != n+1 {
			t.Fatal("Transport.Notify not forwarded")
		}
	}
}

func TestQueueRegistersFrozen(t *testing.T) {
	r := newRig(t, newFake())
	d := linuxBringUp(t, r, linuxFeatures)
	// After DRIVER_OK nothing about queue 0 may change, and queue 1 cannot
	// be enabled.
	r.wr(mmio.RegQueueSel, 0)
	r.wr(mmio.RegQueueDescLow, 0x5000)
	r.wr(mmio.RegQueueNum, 2)
	r.wr(mmio.RegQueueReady, 0)
	if r.rd(mmio.RegQueueReady) != 1 {
		t.Fatal("queue 0 disabled on a live device")
	}
	if c := r.dev.activeCtx().Queues[0].Config(); c.DescAddr != d.DescAddr || c.Size != 8 {
		t.Fatalf("live queue changed: %+v", c)
	}
	desc, avail, used, _ := virtiotest.Layout(q1Base, 4)
	r.wr(mmio.RegQueueSel, 1)
	r.wr(mmio.RegQueueNum, 4)
	r.wr(mmio.RegQueueDescLow, uint32(desc))
	r.wr(mmio.RegQueueDriverLow, uint32(avail))
	r.wr(mmio.RegQueueDeviceLow, uint32(used))
	r.wr(mmio.RegQueueReady, 1)
	if r.rd(mmio.RegQueueReady) != 0 {
		t.Fatal("queue 1 enabled after DRIVER_OK")
	}
	if r.tr.Status()&virtio.StatusNeedsReset == 0 {
		t.Fatal("late queue enable did not set NEEDS_RESET")
	}
}

func TestQueueDisableBeforeDriverOK(t *testing.T) {
	r := newRig(t, newFake())
	if !r.negotiate(linuxFeatures) {
		t.Fatal("negotiate")
	}
	desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
	if !r.setupQueue(0, 8, desc, avail, used) {
		t.Fatal("setup")
	}
	r.wr(mmio.RegQueueDescLow, 0x3000) // ignored while ready
	r.wr(mmio.RegQueueReady, 0)
	if r.rd(mmio.RegQueueReady) != 0 {
		t.Fatal("QueueReady=0 not taken")
	}
	r.addStatus(virtio.StatusDriverOK)
	if ctx := r.dev.activeCtx(); ctx == nil || ctx.Queues[0] != nil {
		t.Fatal("disabled queue handed to the device")
	}
}

// TestBadQueueSetup: each invalid set-up leaves the queue not ready, puts
// the device in NEEDS_RESET with a config interrupt and a changed
// ConfigGeneration, and logs once.
func TestBadQueueSetup(t *testing.T) {
	desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
	hole := uint64(memory.MMIOHoleStart)
	tests := []struct {
		name              string
		size              uint32
		desc, avail, used uint64
		noFeatures        bool
	}{
		{"non power of two", 6, desc, avail, used, false},
		{"zero size", 0, desc, avail, used, false},
		{"bigger than max", 16, desc, avail, used, false},
		{"huge size", 0x1_0008, desc, avail, used, false},
		{"desc misaligned", 8, desc + 8, avail, used, false},
		{"avail misaligned", 8, desc, avail + 1, used, false},
		{"used misaligned", 8, desc, avail, used + 2, false},
		{"desc over MMIO hole", 8, hole - 0x40, avail, used, false},
		{"used in MMIO hole", 8, desc, avail, memory.VirtioMMIOBase, false},
		{"avail wraps 2^64", 8, desc, 0xFFFF_FFFF_FFFF_FFF0, used, false},
		{"desc above RAM", 8, 0x10_0000_0000, avail, used, false},
		{"before FEATURES_OK", 8, desc, avail, used, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, newFake())
			if tc.noFeatures {
				r.addStatus(virtio.StatusAcknowledge)
				r.addStatus(virtio.StatusDriver)
			} else if !r.negotiate(linuxFeatures) {
				t.Fatal("negotiate")
			}
			gen := r.rd(mmio.RegConfigGeneration)
			irqs := r.irq.n.Load()
			if r.setupQueue(0, tc.size, tc.desc, tc.avail, tc.used) {
				t.Fatal("invalid queue became ready")
			}
			if r.tr.Status()&virtio.StatusNeedsReset == 0 {
				t.Fatalf("status %#x: no NEEDS_RESET", r.tr.Status())
			}
			if r.rd(mmio.RegConfigGeneration) == gen {
				t.Fatal("ConfigGeneration unchanged")
			}
			if r.rd(mmio.RegInterruptStatus)&mmio.InterruptConfigChange == 0 || r.irq.n.Load() != irqs+1 {
				t.Fatal("no config-change interrupt")
			}
			if r.logs.warns.Load() != 1 {
				t.Fatalf("%d warnings, want 1", r.logs.warns.Load())
			}
			// A second violation in the same cycle is not reported again.
			gen = r.rd(mmio.RegConfigGeneration)
			r.wr(mmio.RegQueueReady, 1)
			if r.logs.warns.Load() != 1 || r.rd(mmio.RegConfigGeneration) != gen || r.irq.n.Load() != irqs+1 {
				t.Fatal("second violation reported again")
			}
			// DRIVER_OK does not activate a device that needs a reset.
			r.addStatus(virtio.StatusDriverOK)
			if r.dev.activates != 0 {
				t.Fatal("device activated in NEEDS_RESET")
			}
			// A reset recovers.
			r.wr(mmio.RegStatus, 0)
			if r.tr.Status() != 0 || r.rd(mmio.RegInterruptStatus) != 0 {
				t.Fatal("reset did not clear NEEDS_RESET/InterruptStatus")
			}
			linuxBringUp(t, r, linuxFeatures)
			if r.dev.activates != 1 {
				t.Fatal("not activated after reset")
			}
		})
	}
}

func TestResetDropsState(t *testing.T) {
	r := newRig(t, newFake())
	d := linuxBringUp(t, r, linuxFeatures)
	old := r.dev.activeCtx()
	_, err := d.AddChain([]virtiotest.Buf{{Addr: dataAddr, Len: 4, Write: true}}, false)
	if err != nil {
		t.Fatal(err)
	}
	d.Kick()
	r.wr(mmio.RegQueueNotify, 0)
	if r.rd(mmio.RegInterruptStatus) == 0 {
		t.Fatal("no interrupt before reset")
	}
	resets := r.dev.resets
	r.wr(mmio.RegStatus, 0)
	if r.dev.resets != resets+1 || r.dev.activeCtx() != nil {
		t.Fatal("dev.Reset not called")
	}
	if r.tr.Status() != 0 || r.tr.Features() != 0 || r.rd(mmio.RegInterruptStatus) != 0 {
		t.Fatal("registers not reset")
	}
	for sel := uint32(0); sel < 2; sel++ {
		r.wr(mmio.RegQueueSel, sel)
		if r.rd(mmio.RegQueueReady) != 0 {
			t.Fatalf("queue %d still ready", sel)
		}
	}
	// Stale callbacks from the old activation do nothing.
	irqs := r.irq.n.Load()
	old.Interrupt()
	old.NeedsReset(errors.New("late"))
	if r.rd(mmio.RegInterruptStatus) != 0 || r.tr.Status() != 0 || r.irq.n.Load() != irqs {
		t.Fatal("stale callback changed state")
	}
	// Notifications are not forwarded until re-activation.
	n := len(r.dev.notifies)
	r.tr.Notify(0)
	if len(r.dev.notifies) != n {
		t.Fatal("Notify forwarded after reset")
	}
	// Re-initialise and do I/O again: used idx restarts at 0 on fresh rings.
	d = linuxBringUp(t, r, linuxFeatures)
	_, err = d.AddChain([]virtiotest.Buf{{Addr: dataAddr, Len: 4, Write: true}}, false)
	if err != nil {
		t.Fatal(err)
	}
	d.Kick()
	r.wr(mmio.RegQueueNotify, 0)
	if used, err := d.ReadUsed(); err != nil || len(used) != 1 {
		t.Fatalf("used after re-init %+v %v", used, err)
	}
}

// TestDeviceNeedsReset: a guest protocol violation found by the device
// (here a descriptor loop) ends in NEEDS_RESET and a config interrupt.
func TestDeviceNeedsReset(t *testing.T) {
	r := newRig(t, newFake())
	d := linuxBringUp(t, r, linuxFeatures)
	gen := r.rd(mmio.RegConfigGeneration)
	if err := d.Loop(0, 3, virtiotest.Buf{Addr: dataAddr, Len: 4}); err != nil {
		t.Fatal(err)
	}
	r.wr(mmio.RegQueueNotify, 0)
	if r.tr.Status()&virtio.StatusNeedsReset == 0 {
		t.Fatal("no NEEDS_RESET")
	}
	if r.rd(mmio.RegConfigGeneration) == gen {
		t.Fatal("ConfigGeneration unchanged")
	}
	if r.rd(mmio.RegInterruptStatus)&mmio.InterruptConfigChange == 0 {
		t.Fatal("no config interrupt")
	}
	if !errors.Is(r.dev.activeCtx().Queues[0].Err(), queue.ErrChainTooLong) {
		t.Fatalf("queue err %v", r.dev.activeCtx().Queues[0].Err())
	}
	// The driver reads status and sees DRIVER_OK|NEEDS_RESET; it may write
	// the value back; notifications stay off until a reset.
	r.wr(mmio.RegStatus, r.rd(mmio.RegStatus))
	n := len(r.dev.notifies)
	r.wr(mmio.RegQueueNotify, 0)
	if len(r.dev.notifies) != n {
		t.Fatal("notification forwarded in NEEDS_RESET")
	}
	if r.logs.warns.Load() != 1 {
		t.Fatalf("%d warnings", r.logs.warns.Load())
	}
}

func TestActivateError(t *testing.T) {
	dev := newFake()
	dev.actErr = errors.New("backend gone")
	r := newRig(t, dev)
	if !r.negotiate(linuxFeatures) {
		t.Fatal("negotiate")
	}
	r.addStatus(virtio.StatusDriverOK)
	if st := r.tr.Status(); st&virtio.StatusNeedsReset == 0 || st&virtio.StatusDriverOK == 0 {
		t.Fatalf("status %#x", st)
	}
	r.tr.Notify(0)
	if len(dev.notifies) != 0 || dev.ignored != 0 {
		t.Fatal("notification forwarded to a device that failed to activate")
	}
}

// TestConcurrent exercises the locking under -race: vCPUs hammer registers
// and reset while a "worker" raises interrupts and notifications arrive.
func TestConcurrent(t *testing.T) {
	r := newRig(t, newFake())
	linuxBringUp(t, r, linuxFeatures)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(3)
	go func() { // device worker / ioeventfd
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.tr.Notify(0)
			if ctx := r.dev.activeCtx(); ctx != nil {
				ctx.Interrupt()
			}
		}
	}()
	go func() { // vCPU 1: reads
		defer wg.Done()
		var b [4]byte
		for {
			select {
			case <-stop:
				return
			default:
			}
			r.tr.Read(mmio.RegInterruptStatus, b[:])
			r.tr.Read(mmio.RegStatus, b[:])
			binary.LittleEndian.PutUint32(b[:], 1)
			r.tr.Write(mmio.RegInterruptACK, b[:])
		}
	}()
	go func() { // vCPU 0: re-initialises repeatedly
		defer wg.Done()
		for i := 0; i < 200; i++ {
			r.negotiate(linuxFeatures)
			desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
			r.setupQueue(0, 8, desc, avail, used)
			r.addStatus(virtio.StatusDriverOK)
		}
		close(stop)
	}()
	wg.Wait()
}

// TestKicker: with a kicker set (production), notifications raised by
// register writes on a vCPU thread go to the kicker, never straight to the
// device, so device I/O cannot run on a vCPU thread; Notify (the worker's
// path) still reaches the device.
func TestKicker(t *testing.T) {
	r := newRig(t, newFake())
	var kicked []int
	r.tr.SetKicker(func(q int) { kicked = append(kicked, q) })
	linuxBringUp(t, r, linuxFeatures)
	if len(r.dev.notifies) != 0 || len(kicked) != 1 || kicked[0] != 0 {
		t.Fatalf("DRIVER_OK kick: device notified %v, kicker %v; want only the kicker, queue 0", r.dev.notifies, kicked)
	}
	r.wr(mmio.RegQueueNotify, 0)
	r.wr(mmio.RegQueueNotify, 0x10000) // data bits: queue 0 again, not matched by a datamatch ioeventfd
	r.wr(mmio.RegQueueNotify, 9)       // no such queue: dropped
	if len(r.dev.notifies) != 0 || len(kicked) != 3 {
		t.Fatalf("QueueNotify: device notified %v, kicker %v", r.dev.notifies, kicked)
	}
	r.tr.Notify(0)
	if len(r.dev.notifies) != 1 {
		t.Fatal("Transport.Notify (the worker path) did not reach the device")
	}
}
