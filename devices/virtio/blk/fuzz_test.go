package blk

import (
	"encoding/binary"
	"testing"

	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
	"github.com/govmm/govmm/memory"
)

// Fuzz guest: a 16-entry queue at 0, indirect tables after it, and a data
// area the fuzzer's buffers point into (and sometimes just past).
const (
	fuzzRAM      = 0x18000 // the data area is exactly what a 16-bit offset reaches
	fuzzQueue    = 16
	fuzzDataBase = 0x8000
	fuzzImage    = 64 << 10 // 128 sectors: random sectors often land inside
)

var fuzzTypes = [...]uint32{TypeIn, TypeOut, TypeFlush, TypeGetID, TypeDiscard, TypeWriteZeroes, TypeGetLifetime, TypeSecureErase}

// FuzzRequest feeds one arbitrary request (header, buffer layout,
// directions, direct or indirect) to a Disk backed by a real temp file. The
// device must never panic or hang, and either completes the chain with a
// status of OK, IOERR or UNSUPP in its last byte, or calls NeedsReset; when
// it completed, it still serves a well-formed request afterwards.
//
// Input: [flags] [type selector] [sector: 8] [nbufs] then per buffer
// [offset: 2] [len: 2] [write], then bytes that fill the data area.
func FuzzRequest(f *testing.F) {
	path := writeImage(f, f.TempDir(), pattern(fuzzImage))
	disk, err := Open(path, Options{Serial: "fuzz-serial"})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { disk.Close() })

	f.Fuzz(func(t *testing.T, in []byte) {
		ram := make([]byte, fuzzRAM)
		mem, err := memory.FromSlices(map[uint64][]byte{0: ram})
		if err != nil {
			t.Fatal(err)
		}
		take := func(n int) []byte {
			if len(in) < n {
				b := make([]byte, n)
				copy(b, in)
				in = nil
				return b
			}
			b := in[:n]
			in = in[n:]
			return b
		}
		flags := take(1)[0]
		indirect, eventIdx := flags&1 != 0, flags&2 != 0
		sel := take(1)[0]
		typ := uint32(sel)
		if int(sel) < 2*len(fuzzTypes) {
			typ = fuzzTypes[int(sel)%len(fuzzTypes)]
		}
		sector := binary.LittleEndian.Uint64(take(8))
		if flags&4 != 0 {
			sector %= fuzzImage / SectorSize * 2
		}
		nbufs := int(take(1)[0])%8 + 1
		bufs := make([]virtiotest.Buf, nbufs)
		for i := range bufs {
			b := take(5)
			off := uint64(binary.LittleEndian.Uint16(b[0:2]))
			n := uint32(binary.LittleEndian.Uint16(b[2:4]))
			if flags&8 != 0 {
				n &^= 0x1ff // mostly sector-sized, to reach the I/O paths
				if n == 0 {
					n = 512
				}
			}
			addr := fuzzDataBase + off%(fuzzRAM-fuzzDataBase)
			if addr+uint64(n) > fuzzRAM {
				n = uint32(fuzzRAM - addr)
			}
			bufs[i] = virtiotest.Buf{Addr: addr, Len: n, Write: b[4]&1 != 0}
		}
		// Device-readable before device-writable is the queue's rule, not
		// ours: keep most chains legal so the fuzzer gets past it.
		if flags&16 == 0 {
			sortReadableFirst(bufs)
		}
		copy(ram[fuzzDataBase:], in)
		if b := bufs[0]; b.Len > 0 {
			var h [headerSize]byte
			binary.LittleEndian.PutUint32(h[0:], typ)
			binary.LittleEndian.PutUint64(h[8:], sector)
			copy(ram[b.Addr:b.Addr+uint64(b.Len)], h[:])
		}

		desc, avail, used, end := virtiotest.Layout(0, fuzzQueue)
		drv, err := virtiotest.New(mem, fuzzQueue, desc, avail, used)
		if err != nil {
			t.Fatal(err)
		}
		drv.IndirectAddr, drv.EventIdx = end, eventIdx
		q, err := queue.New(mem, queue.Config{Size: fuzzQueue, DescAddr: desc, AvailAddr: avail, UsedAddr: used, EventIdx: eventIdx, Indirect: true})
		if err != nil {
			t.Fatal(err)
		}
		var resets int
		disk.Reset()
		if err := disk.Activate(virtio.ActivateContext{
			Mem: mem, Features: disk.Features(), Queues: []*queue.Queue{q},
			Interrupt: func() error { return nil }, NeedsReset: func(error) { resets++ },
		}); err != nil {
			t.Fatal(err)
		}
		head, err := drv.AddChain(bufs, indirect)
		if err != nil {
			t.Fatal(err)
		}
		drv.Kick()
		disk.Notify(0)
		e, ok, err := drv.PopUsed()
		if err != nil {
			t.Fatal(err)
		}
		if resets > 0 {
			if ok {
				t.Fatal("NeedsReset and a completion")
			}
			return
		}
		if !ok {
			t.Fatal("request neither completed nor NeedsReset")
		}
		last := bufs[len(bufs)-1]
		st := ram[last.Addr+uint64(last.Len)-1]
		if e.ID != uint32(head) || e.Len == 0 || st > StatusUnsupp {
			t.Fatalf("completion %+v status %d", e, st)
		}
		// Still healthy: a flush works.
		hb := uint64(0x7000)
		binary.LittleEndian.PutUint32(ram[hb:], TypeFlush)
		ram[hb+16] = 0xff
		if _, err := drv.AddChain([]virtiotest.Buf{{Addr: hb, Len: 16}, {Addr: hb + 16, Len: 1, Write: true}}, false); err != nil {
			t.Fatal(err)
		}
		drv.Kick()
		disk.Notify(0)
		if _, ok, _ := drv.PopUsed(); !ok || ram[hb+16] != StatusOK || resets != 0 {
			t.Fatalf("follow-up flush failed: done %v status %d", ok, ram[hb+16])
		}
	})
}

// sortReadableFirst moves readable buffers before writable ones, keeping
// their order (a stable partition).
func sortReadableFirst(b []virtiotest.Buf) {
	out := make([]virtiotest.Buf, 0, len(b))
	for _, x := range b {
		if !x.Write {
			out = append(out, x)
		}
	}
	for _, x := range b {
		if x.Write {
			out = append(out, x)
		}
	}
	copy(b, out)
}
