package blk

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
	"github.com/govmm/govmm/memory"
)

// Guest layout of the test rig: rings at 0, indirect tables after them, and
// a bump-allocated data area from dataBase.
const (
	rigRAM   = 4 << 20
	dataBase = 2 << 20
)

// rig is a Disk driven by a virtiotest guest driver over a FromSlices guest.
type rig struct {
	t      testing.TB
	disk   *Disk
	mem    *memory.Guest
	ram    []byte
	drv    *virtiotest.Driver
	q      *queue.Queue
	irqs   int
	resets []error
	next   uint64 // bump allocator in the data area
}

type rigOpts struct {
	eventIdx, indirect bool
	features           uint64 // negotiated; 0 = everything offered
}

// writeImage makes a disk image file with the given content.
func writeImage(t testing.TB, dir string, content []byte) string {
	t.Helper()
	p := filepath.Join(dir, "disk.img")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// pattern is a recognisable image: every 8-byte word holds its offset.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i)^0xa5a5_0000_0000_0000)
	}
	return b
}

func newRig(t testing.TB, path string, opts Options, ro rigOpts) *rig {
	t.Helper()
	d, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return newRigDisk(t, d, ro)
}

func newRigDisk(t testing.TB, d *Disk, ro rigOpts) *rig {
	t.Helper()
	r := &rig{t: t, disk: d, ram: make([]byte, rigRAM)}
	var err error
	r.mem, err = memory.FromSlices(map[uint64][]byte{0: r.ram})
	if err != nil {
		t.Fatal(err)
	}
	r.activate(ro)
	return r
}

// activate (re)does what the transport does at DRIVER_OK.
func (r *rig) activate(ro rigOpts) {
	t := r.t
	t.Helper()
	desc, avail, used, end := virtiotest.Layout(0, QueueSize)
	drv, err := virtiotest.New(r.mem, QueueSize, desc, avail, used)
	if err != nil {
		t.Fatal(err)
	}
	drv.IndirectAddr = end
	drv.EventIdx = ro.eventIdx
	q, err := queue.New(r.mem, queue.Config{Size: QueueSize, DescAddr: desc, AvailAddr: avail, UsedAddr: used,
		EventIdx: ro.eventIdx, Indirect: ro.indirect})
	if err != nil {
		t.Fatal(err)
	}
	feat := ro.features
	if feat == 0 {
		feat = r.disk.Features()
	}
	r.drv, r.q = drv, q
	err = r.disk.Activate(virtio.ActivateContext{
		Mem: r.mem, Features: feat, Queues: []*queue.Queue{q},
		Interrupt:  func() error { r.irqs++; return nil },
		NeedsReset: func(err error) { r.resets = append(r.resets, err) },
	})
	if err != nil {
		t.Fatal(err)
	}
}

// alloc reserves n bytes of guest data area (16-aligned).
func (r *rig) alloc(n uint64) uint64 { return r.allocAligned(n, 16) }

// allocAligned reserves n bytes aligned to align (a power of two), wrapping
// around when the data area is used up.
func (r *rig) allocAligned(n, align uint64) uint64 {
	off := (r.next + align - 1) &^ (align - 1)
	if dataBase+off+n > rigRAM {
		off = 0
	}
	r.next = off + n
	return dataBase + off
}

// header writes a struct virtio_blk_req header and returns its buffer.
func (r *rig) header(typ uint32, sector uint64) virtiotest.Buf {
	a := r.alloc(headerSize)
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:], typ)
	binary.LittleEndian.PutUint64(h[8:], sector)
	if err := r.mem.Write(a, h[:]); err != nil {
		r.t.Fatal(err)
	}
	return virtiotest.Buf{Addr: a, Len: headerSize}
}

// status allocates a 1-byte writable status buffer preset to 0xff.
func (r *rig) status() virtiotest.Buf {
	a := r.alloc(1)
	r.ram[a] = 0xff
	return virtiotest.Buf{Addr: a, Len: 1, Write: true}
}

// buf allocates a data buffer. Buffers of a page or more are page aligned,
// as a Linux guest's bio pages are (a 16-byte-misaligned destination makes
// the kernel's copy markedly slower, which would distort the benchmarks).
func (r *rig) buf(n uint32, write bool) virtiotest.Buf {
	align := uint64(16)
	if n >= 4096 {
		align = 4096
	}
	return virtiotest.Buf{Addr: r.allocAligned(uint64(n), align), Len: n, Write: write}
}

func (r *rig) bytes(b virtiotest.Buf) []byte { return r.ram[b.Addr : b.Addr+uint64(b.Len)] }

// submit adds one chain and kicks.
func (r *rig) submit(bufs []virtiotest.Buf, indirect bool) uint16 {
	r.t.Helper()
	head, err := r.drv.AddChain(bufs, indirect)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.drv.Kick(); err != nil {
		r.t.Fatal(err)
	}
	return head
}

// run submits one chain, notifies, and returns the status byte (the last
// byte of the last buffer) and the used length. ok is false if the device
// did not complete the chain.
func (r *rig) run(bufs []virtiotest.Buf, indirect bool) (status byte, usedLen uint32, ok bool) {
	r.t.Helper()
	head := r.submit(bufs, indirect)
	r.disk.Notify(0)
	e, ok, err := r.drv.PopUsed()
	if err != nil {
		r.t.Fatal(err)
	}
	if !ok {
		return 0, 0, false
	}
	if e.ID != uint32(head) {
		r.t.Fatalf("used id %d, want head %d", e.ID, head)
	}
	last := bufs[len(bufs)-1]
	return r.ram[last.Addr+uint64(last.Len)-1], e.Len, true
}

// mustRun is run for a chain the device must complete.
func (r *rig) mustRun(bufs []virtiotest.Buf, indirect bool) (byte, uint32) {
	r.t.Helper()
	s, n, ok := r.run(bufs, indirect)
	if !ok {
		r.t.Fatalf("request not completed (resets: %v)", r.resets)
	}
	return s, n
}
