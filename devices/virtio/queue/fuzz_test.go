package queue_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
	"github.com/govmm/govmm/memory"
)

// Fuzz guest: RAM [0, 64 KiB) and [0x2_0000, +4 KiB), a gap between them.
// The rings sit at fixed addresses at the bottom of RAM; the fuzz input is
// copied over RAM from address 0, so it controls the descriptor table, both
// rings, indirect tables and data alike.
const (
	fuzzLow     = 0x1_0000
	fuzzHigh    = 0x2_0000
	fuzzHighLen = 0x1000
	fuzzDesc    = 0x000
	fuzzAvail   = 0x200
	fuzzUsed    = 0x400
	fuzzIndir   = 0x800
	fuzzData    = 0x1000
)

func fuzzGuest(data []byte) (*memory.Guest, error) {
	low := make([]byte, fuzzLow)
	copy(low, data)
	return memory.FromSlices(map[uint64][]byte{0: low, fuzzHigh: make([]byte, fuzzHighLen)})
}

// FuzzChain: the input is [size exponent, feature bits, RAM image...].
// Whatever the guest wrote, walking must terminate within the queue-size
// bound and never yield a buffer outside RAM.
func FuzzChain(f *testing.F) {
	f.Add([]byte{3, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		size := uint16(1) << (in[0] % 5) // 1..16: rings fit below fuzzIndir
		cfg := queue.Config{Size: size, DescAddr: fuzzDesc, AvailAddr: fuzzAvail, UsedAddr: fuzzUsed,
			EventIdx: in[1]&1 != 0, Indirect: in[1]&2 != 0}
		g, err := fuzzGuest(in[2:])
		if err != nil {
			t.Fatal(err)
		}
		q, err := queue.New(g, cfg)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		q.DisableNotification()
		for pops := 0; pops <= 2*int(size); pops++ {
			c, ok, err := q.Pop()
			if err != nil || !ok {
				break
			}
			if c.Head() >= size {
				t.Fatalf("head %d >= size %d", c.Head(), size)
			}
			var total uint64
			n := 0
			for ; n <= int(size)+1; n++ {
				d, ok, err := c.Next()
				if err != nil || !ok {
					break
				}
				if !g.Contains(d.Addr, uint64(d.Len)) {
					t.Fatalf("buffer outside RAM: %+v", d)
				}
				total += uint64(d.Len)
			}
			if n > int(size) {
				t.Fatalf("chain yielded %d buffers, queue size %d", n, size)
			}
			if q.Err() != nil {
				break
			}
			if err := q.PushUsed(c.Head(), uint32(total)); err != nil {
				t.Fatalf("PushUsed: %v", err)
			}
		}
		q.NeedsNotify()
		q.EnableNotification()
	})
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzChain when
// GOVMM_WRITE_SEEDS=1; otherwise it only checks the seeds build.
func TestWriteFuzzSeeds(t *testing.T) {
	seeds := chainSeeds(t)
	if os.Getenv("GOVMM_WRITE_SEEDS") != "1" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzChain")
	must(t, os.MkdirAll(dir, 0o755))
	for name, b := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(b)))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
}

// chainSeeds builds RAM images with the test driver, as a guest would.
func chainSeeds(t *testing.T) map[string][]byte {
	out := map[string][]byte{}
	build := func(name string, sizeExp, feat byte, f func(d *virtiotest.Driver)) {
		low := make([]byte, fuzzLow)
		g, err := memory.FromSlices(map[uint64][]byte{0: low})
		must(t, err)
		size := uint16(1) << sizeExp
		d, err := virtiotest.New(g, size, fuzzDesc, fuzzAvail, fuzzUsed)
		must(t, err)
		d.IndirectAddr = fuzzIndir
		f(d)
		// Trim to the interesting prefix (rings + indirect tables).
		out[name] = append([]byte{sizeExp, feat}, low[:fuzzData]...)
	}
	buf := func(off uint64, n uint32, w bool) virtiotest.Buf {
		return virtiotest.Buf{Addr: fuzzData + off, Len: n, Write: w}
	}
	add := func(d *virtiotest.Driver, ind bool, bs ...virtiotest.Buf) {
		_, err := d.AddChain(bs, ind)
		must(t, err)
		_, err = d.Kick()
		must(t, err)
	}
	build("blk_direct", 3, 0, func(d *virtiotest.Driver) {
		add(d, false, buf(0, 16, false), buf(0x100, 512, true), buf(0x400, 1, true))
		add(d, false, buf(0, 16, false), buf(0x400, 1, true))
	})
	build("blk_indirect", 3, 3, func(d *virtiotest.Driver) {
		add(d, true, buf(0, 16, false), buf(0x100, 512, true), buf(0x400, 1, true))
	})
	build("high_region", 2, 0, func(d *virtiotest.Driver) {
		add(d, false, virtiotest.Buf{Addr: fuzzHigh, Len: fuzzHighLen, Write: true})
	})
	build("loop", 2, 0, func(d *virtiotest.Driver) {
		must(t, d.Loop(1, 3, buf(0, 8, false)))
	})
	build("nested_indirect", 2, 2, func(d *virtiotest.Driver) {
		must(t, d.WriteDescAt(fuzzIndir, fuzzIndir+0x40, 16, 4, 0))
		must(t, d.WriteDesc(0, fuzzIndir, 16, 4, 0))
		must(t, d.PushHead(0))
	})
	build("bogus_avail_idx", 4, 1, func(d *virtiotest.Driver) {
		add(d, false, buf(0, 4, false))
		must(t, d.SetAvailIdx(0x8000))
	})
	build("gap_buffer", 1, 0, func(d *virtiotest.Driver) {
		add(d, false, virtiotest.Buf{Addr: fuzzLow - 4, Len: 8})
	})
	return out
}
