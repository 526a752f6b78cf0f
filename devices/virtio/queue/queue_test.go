package queue_test

import (
	"errors"
	"testing"

	"github.com/govmm/govmm/devices/virtio/queue"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
	"github.com/govmm/govmm/memory"
)

// Test guest: low RAM [0, 1 MiB), a 64 KiB region ending exactly at the MMIO
// hole, and nothing else. Queues live at ringBase, data buffers at dataBase,
// indirect tables at indirectBase.
const (
	lowSize      = 1 << 20
	holeRegion   = memory.MMIOHoleStart - 0x1_0000
	ringBase     = 0x1_0000
	indirectBase = 0x4_0000
	dataBase     = 0x8_0000
)

func newGuest(t testing.TB) *memory.Guest {
	t.Helper()
	g, err := memory.FromSlices(map[uint64][]byte{
		0:          make([]byte, lowSize),
		holeRegion: make([]byte, 0x1_0000),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

type opts struct {
	size               uint16
	eventIdx, indirect bool
}

// setup lays out a queue with the test driver and makes the device side.
func setup(t testing.TB, o opts) (*memory.Guest, *virtiotest.Driver, *queue.Queue) {
	t.Helper()
	g := newGuest(t)
	desc, avail, used, _ := virtiotest.Layout(ringBase, o.size)
	d, err := virtiotest.New(g, o.size, desc, avail, used)
	if err != nil {
		t.Fatal(err)
	}
	d.IndirectAddr = indirectBase
	d.EventIdx = o.eventIdx
	q, err := queue.New(g, queue.Config{Size: o.size, DescAddr: desc, AvailAddr: avail, UsedAddr: used,
		EventIdx: o.eventIdx, Indirect: o.indirect})
	if err != nil {
		t.Fatal(err)
	}
	return g, d, q
}

func TestNewValidation(t *testing.T) {
	g := newGuest(t)
	ok := queue.Config{Size: 256, DescAddr: 0x1000, AvailAddr: 0x2000, UsedAddr: 0x3000}
	with := func(f func(c *queue.Config)) queue.Config { c := ok; f(&c); return c }
	tests := []struct {
		name string
		cfg  queue.Config
		want error
	}{
		{"valid", ok, nil},
		{"valid max size", queue.Config{Size: queue.MaxSize, DescAddr: 0, AvailAddr: 0x8_0000, UsedAddr: 0x9_0000}, nil},
		{"valid size 1", with(func(c *queue.Config) { c.Size = 1 }), nil},
		{"valid avail 2-aligned", with(func(c *queue.Config) { c.AvailAddr = 0x2002 }), nil},
		{"size 0", with(func(c *queue.Config) { c.Size = 0 }), queue.ErrBadSize},
		{"size 3", with(func(c *queue.Config) { c.Size = 3 }), queue.ErrBadSize},
		{"size 96", with(func(c *queue.Config) { c.Size = 96 }), queue.ErrBadSize},
		{"size 65535", with(func(c *queue.Config) { c.Size = 65535 }), queue.ErrBadSize},
		{"desc 8-aligned", with(func(c *queue.Config) { c.DescAddr = 0x1008 }), queue.ErrMisaligned},
		{"avail odd", with(func(c *queue.Config) { c.AvailAddr = 0x2001 }), queue.ErrMisaligned},
		{"used 2-aligned", with(func(c *queue.Config) { c.UsedAddr = 0x3002 }), queue.ErrMisaligned},
		{"desc past RAM end", with(func(c *queue.Config) { c.DescAddr = lowSize - 0x800 }), queue.ErrRingOutsideRAM},
		{"avail past RAM end", with(func(c *queue.Config) { c.AvailAddr = lowSize - 0x100 }), queue.ErrRingOutsideRAM},
		{"used past RAM end", with(func(c *queue.Config) { c.UsedAddr = lowSize - 0x100 }), queue.ErrRingOutsideRAM},
		{"desc over MMIO hole", with(func(c *queue.Config) { c.DescAddr = memory.MMIOHoleStart - 0x800 }), queue.ErrRingOutsideRAM},
		{"used over MMIO hole", with(func(c *queue.Config) { c.UsedAddr = memory.MMIOHoleStart - 0x100 }), queue.ErrRingOutsideRAM},
		{"desc in MMIO hole", with(func(c *queue.Config) { c.DescAddr = memory.VirtioMMIOBase }), queue.ErrRingOutsideRAM},
		{"desc wraps 2^64", with(func(c *queue.Config) { c.DescAddr = 0xFFFF_FFFF_FFFF_F000 }), queue.ErrRingOutsideRAM},
		{"used wraps 2^64", with(func(c *queue.Config) { c.UsedAddr = 0xFFFF_FFFF_FFFF_FFFC }), queue.ErrRingOutsideRAM},
		{"avail just inside hole region", with(func(c *queue.Config) { c.AvailAddr = memory.MMIOHoleStart - 6 - 2*256 }), nil},
		// The event fields are part of the ring's extent (§2.7 size table)
		// even without EVENT_IDX.
		{"avail missing used_event", with(func(c *queue.Config) { c.AvailAddr = memory.MMIOHoleStart - 4 - 2*256 }), queue.ErrRingOutsideRAM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q, err := queue.New(g, tc.cfg)
			if tc.want == nil {
				if err != nil || q == nil {
					t.Fatalf("New(%+v) = %v, want success", tc.cfg, err)
				}
				if q.Size() != tc.cfg.Size || q.Config() != tc.cfg {
					t.Fatalf("Config() = %+v, want %+v", q.Config(), tc.cfg)
				}
				return
			}
			if !errors.Is(err, tc.want) || q != nil {
				t.Fatalf("New(%+v) = %v, want %v", tc.cfg, err, tc.want)
			}
			if !queue.IsConfigError(err) {
				t.Fatalf("IsConfigError(%v) = false", err)
			}
		})
	}
	// A used ring flush with the end of a region whose size is 2 mod 4
	// (possible only with FromSlices; real regions are page aligned): the
	// 4-byte word around avail_event leaves RAM, so EVENT_IDX is refused up
	// front instead of failing on the data path.
	small, err := memory.FromSlices(map[uint64][]byte{0: make([]byte, 0x1000+6+8*4)})
	must(t, err)
	flush := queue.Config{Size: 4, DescAddr: 0x100, AvailAddr: 0x200, UsedAddr: 0x1000}
	if _, err := queue.New(small, flush); err != nil {
		t.Fatalf("flush used ring without EVENT_IDX: %v", err)
	}
	flush.EventIdx = true
	if _, err := queue.New(small, flush); !errors.Is(err, queue.ErrRingOutsideRAM) {
		t.Fatalf("flush used ring with EVENT_IDX: %v, want ErrRingOutsideRAM", err)
	}
	if _, err := queue.New(nil, ok); !errors.Is(err, queue.ErrRingOutsideRAM) {
		t.Fatalf("New(nil mem) = %v", err)
	}
}

// walk collects every buffer of c.
func walk(t testing.TB, c *queue.Chain) ([]queue.Desc, error) {
	t.Helper()
	var out []queue.Desc
	for range queue.MaxSize + 2 {
		d, ok, err := c.Next()
		if err != nil || !ok {
			return out, err
		}
		out = append(out, d)
	}
	t.Fatal("chain walk did not terminate")
	return nil, nil
}

func TestChains(t *testing.T) {
	r := func(addr uint64, n uint32) virtiotest.Buf { return virtiotest.Buf{Addr: addr, Len: n} }
	w := func(addr uint64, n uint32) virtiotest.Buf { return virtiotest.Buf{Addr: addr, Len: n, Write: true} }
	tests := []struct {
		name     string
		bufs     []virtiotest.Buf
		indirect bool
	}{
		{"one readable", []virtiotest.Buf{r(dataBase, 16)}, false},
		{"one writable", []virtiotest.Buf{w(dataBase, 512)}, false},
		{"blk-like", []virtiotest.Buf{r(dataBase, 16), w(dataBase+0x1000, 4096), w(dataBase+0x3000, 1)}, false},
		{"full queue length", []virtiotest.Buf{r(dataBase, 1), r(dataBase, 1), r(dataBase, 1), r(dataBase, 1),
			r(dataBase, 1), r(dataBase, 1), w(dataBase, 1), w(dataBase, 1)}, false},
		{"zero-length buffer", []virtiotest.Buf{r(dataBase, 0), w(dataBase, 8)}, false},
		{"zero-length at end of RAM", []virtiotest.Buf{r(lowSize, 0)}, false},
		{"buffer ending at end of RAM", []virtiotest.Buf{w(lowSize-0x100, 0x100)}, false},
		{"buffer in second region", []virtiotest.Buf{w(holeRegion, 0x1_0000)}, false},
		{"indirect single", []virtiotest.Buf{r(dataBase, 16)}, true},
		{"indirect blk-like", []virtiotest.Buf{r(dataBase, 16), w(dataBase+0x1000, 4096), w(dataBase+0x3000, 1)}, true},
		{"indirect full size", []virtiotest.Buf{r(dataBase, 1), r(dataBase, 2), r(dataBase, 3), r(dataBase, 4),
			w(dataBase, 5), w(dataBase, 6), w(dataBase, 7), w(dataBase, 8)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, d, q := setup(t, opts{size: 8, indirect: true})
			head, err := d.AddChain(tc.bufs, tc.indirect)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := d.Kick(); err != nil {
				t.Fatal(err)
			}
			c, ok, err := q.Pop()
			if err != nil || !ok {
				t.Fatalf("Pop = %v, %v", ok, err)
			}
			if c.Head() != head {
				t.Fatalf("Head = %d, want %d", c.Head(), head)
			}
			got, err := walk(t, c)
			if err != nil {
				t.Fatalf("walk: %v", err)
			}
			if len(got) != len(tc.bufs) {
				t.Fatalf("got %d buffers, want %d", len(got), len(tc.bufs))
			}
			for i, b := range tc.bufs {
				if want := (queue.Desc{Addr: b.Addr, Len: b.Len, Write: b.Write}); !sameDesc(got[i], want) {
					t.Fatalf("buffer %d = %+v, want %+v", i, got[i], want)
				}
			}
			// Next after the end keeps saying "done".
			if _, ok, err := c.Next(); ok || err != nil {
				t.Fatalf("Next after end = %v, %v", ok, err)
			}
			if err := q.PushUsed(c.Head(), 42); err != nil {
				t.Fatal(err)
			}
			used, err := d.ReadUsed()
			if err != nil || len(used) != 1 || used[0] != (virtiotest.UsedElem{ID: uint32(head), Len: 42}) {
				t.Fatalf("used = %+v, %v", used, err)
			}
			if _, ok, err := q.Pop(); ok || err != nil {
				t.Fatalf("second Pop = %v, %v", ok, err)
			}
		})
	}
}

// TestDirectThenIndirect: §2.7.5.3.2 "The device MUST handle the case of
// zero or more normal chained descriptors followed by a single descriptor
// with flags&VIRTQ_DESC_F_INDIRECT".
func TestDirectThenIndirect(t *testing.T) {
	_, d, q := setup(t, opts{size: 8, indirect: true})
	table := uint64(indirectBase)
	must(t, d.WriteDescAt(table, dataBase+0x100, 32, 0, 0))
	must(t, d.WriteDescAt(table+16, dataBase+0x200, 64, 2, 0)) // writable, last
	must(t, d.WriteDescAt(table, dataBase+0x100, 32, 1, 1))    // readable, next=1
	must(t, d.WriteDesc(5, dataBase, 16, 1, 6))                // readable, next=6
	// WRITE on the pointer descriptor must be ignored (§2.7.5.3.2).
	must(t, d.WriteDesc(6, table, 32, 4|2, 0))
	must(t, d.PushHead(5))
	c, ok, err := q.Pop()
	if err != nil || !ok {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	got, err := walk(t, c)
	want := []queue.Desc{{Addr: dataBase, Len: 16}, {Addr: dataBase + 0x100, Len: 32}, {Addr: dataBase + 0x200, Len: 64, Write: true}}
	if err != nil || len(got) != len(want) {
		t.Fatalf("walk = %+v, %v", got, err)
	}
	for i := range want {
		if !sameDesc(got[i], want[i]) {
			t.Fatalf("buffer %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestViolations: every guest protocol violation ends in an error, never a
// panic, a hang or a buffer outside RAM, and leaves the queue broken.
func TestViolations(t *testing.T) {
	const n = 8
	tbl := uint64(indirectBase)
	tests := []struct {
		name     string
		indirect bool // VIRTIO_F_INDIRECT_DESC negotiated
		setup    func(t *testing.T, d *virtiotest.Driver)
		want     error
	}{
		{"loop of 1", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.Loop(3, 1, virtiotest.Buf{Addr: dataBase, Len: 1}))
		}, queue.ErrChainTooLong},
		{"loop of queue size", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.Loop(0, n, virtiotest.Buf{Addr: dataBase, Len: 1}))
		}, queue.ErrChainTooLong},
		{"loop of writable descriptors", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.Loop(2, 3, virtiotest.Buf{Addr: dataBase, Len: 1, Write: true}))
		}, queue.ErrChainTooLong},
		{"loop inside indirect table", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDescAt(tbl, dataBase, 1, 1, 1))
			must(t, d.WriteDescAt(tbl+16, dataBase, 1, 1, 0))
			must(t, d.WriteDesc(0, tbl, 32, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrChainTooLong},
		{"direct plus indirect longer than queue", true, func(t *testing.T, d *virtiotest.Driver) {
			for i := uint16(0); i < n; i++ {
				must(t, d.WriteDescAt(tbl+16*uint64(i), dataBase, 1, 1, i+1))
			}
			must(t, d.WriteDescAt(tbl+16*(n-1), dataBase, 1, 0, 0))
			must(t, d.WriteDesc(0, dataBase, 1, 1, 1))
			must(t, d.WriteDesc(1, tbl, 16*n, 4, 0)) // 1 + 8 buffers > 8
			must(t, d.PushHead(0))
		}, queue.ErrChainTooLong},
		{"next out of range", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, dataBase, 1, 1, n))
			must(t, d.PushHead(0))
		}, queue.ErrNextIndex},
		{"next 0xffff", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, dataBase, 1, 1, 0xffff))
			must(t, d.PushHead(0))
		}, queue.ErrNextIndex},
		{"indirect next out of table", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDescAt(tbl, dataBase, 1, 1, 2)) // table has 2 entries
			must(t, d.WriteDesc(0, tbl, 32, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrNextIndex},
		{"head out of range", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.PushHead(n))
		}, queue.ErrHeadIndex},
		{"avail idx jumps past size", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.SetAvailIdx(n+1))
		}, queue.ErrAvailIdx},
		{"avail idx goes backwards", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.SetAvailIdx(0xffff))
		}, queue.ErrAvailIdx},
		{"indirect in indirect", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDescAt(tbl, tbl+0x100, 16, 4, 0))
			must(t, d.WriteDesc(0, tbl, 16, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrNestedIndirect},
		{"indirect without feature", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDescAt(tbl, dataBase, 1, 0, 0))
			must(t, d.WriteDesc(0, tbl, 16, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrIndirectNotAllowed},
		{"indirect with next", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDescAt(tbl, dataBase, 1, 0, 0))
			must(t, d.WriteDesc(0, tbl, 16, 4|1, 1))
			must(t, d.PushHead(0))
		}, queue.ErrIndirectNext},
		{"indirect len 0", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, tbl, 0, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrIndirectLen},
		{"indirect len 17", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, tbl, 17, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrIndirectLen},
		{"indirect more entries than queue size", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, tbl, 16*(n+1), 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrIndirectLen},
		{"indirect len 0xfffffff0", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, tbl, 0xfffffff0, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrIndirectLen},
		{"indirect table outside RAM", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, lowSize-16, 32, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"indirect table wraps 2^64", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, 0xFFFF_FFFF_FFFF_FFF0, 32, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"writable then readable", false, func(t *testing.T, d *virtiotest.Driver) {
			_, err := d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 4, Write: true}, {Addr: dataBase, Len: 4}}, false)
			must(t, err)
			_, err = d.Kick()
			must(t, err)
		}, queue.ErrDirection},
		{"writable then readable inside indirect", true, func(t *testing.T, d *virtiotest.Driver) {
			_, err := d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 4}, {Addr: dataBase, Len: 4, Write: true},
				{Addr: dataBase, Len: 4}}, true)
			must(t, err)
			_, err = d.Kick()
			must(t, err)
		}, queue.ErrDirection},
		{"writable direct then readable indirect", true, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDescAt(tbl, dataBase, 4, 0, 0))
			must(t, d.WriteDesc(0, dataBase, 4, 2|1, 1))
			must(t, d.WriteDesc(1, tbl, 16, 4, 0))
			must(t, d.PushHead(0))
		}, queue.ErrDirection},
		{"buffer past end of RAM", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, lowSize-8, 9, 2, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"buffer far outside RAM", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, 0x10_0000_0000, 1, 0, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"zero-length buffer outside RAM", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, lowSize+1, 0, 0, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"buffer over MMIO hole", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, memory.MMIOHoleStart-0x10, 0x20, 2, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"buffer in MMIO hole", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, memory.VirtioMMIOBase, 4, 2, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"gpa+len wraps 2^64", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, 0xFFFF_FFFF_FFFF_FF00, 0x200, 0, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"gpa+len wraps to RAM", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, 0xFFFF_FFFF_FFFF_F000, 0x2000, 0, 0)) // end = 0x1000, inside low RAM
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
		{"second buffer outside RAM", false, func(t *testing.T, d *virtiotest.Driver) {
			must(t, d.WriteDesc(0, dataBase, 16, 1, 1))
			must(t, d.WriteDesc(1, 0xFFFF_FFFF_0000_0000, 16, 2, 0))
			must(t, d.PushHead(0))
		}, queue.ErrBufferOutsideRAM},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, d, q := setup(t, opts{size: n, indirect: tc.indirect})
			tc.setup(t, d)
			var err error
			steps := 0
			for err == nil && steps < 2*queue.MaxSize {
				var c *queue.Chain
				var ok bool
				c, ok, err = q.Pop()
				if err != nil || !ok {
					break
				}
				for err == nil && steps < 2*queue.MaxSize {
					steps++
					var b queue.Desc
					b, ok, err = c.Next()
					if ok && !g.Contains(b.Addr, uint64(b.Len)) {
						t.Fatalf("buffer outside RAM returned: %+v", b)
					}
					if !ok {
						break
					}
				}
				if err == nil {
					t.Fatalf("chain walked without error")
				}
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if steps > n+1 {
				t.Fatalf("walk took %d steps, bound is %d", steps, n+1)
			}
			if !errors.Is(q.Err(), tc.want) {
				t.Fatalf("Queue.Err = %v", q.Err())
			}
			// The queue stays broken: nothing more is consumed or produced.
			if _, _, err := q.Pop(); !errors.Is(err, queue.ErrQueueBroken) {
				t.Fatalf("Pop after violation = %v", err)
			}
			if err := q.PushUsed(0, 0); !errors.Is(err, queue.ErrQueueBroken) {
				t.Fatalf("PushUsed after violation = %v", err)
			}
			if _, err := q.EnableNotification(); !errors.Is(err, queue.ErrQueueBroken) {
				t.Fatalf("EnableNotification after violation = %v", err)
			}
		})
	}
}

// TestChainTooLarge needs buffers whose lengths add up past 2^32 inside RAM:
// it reserves (but never touches) 3 GiB of address space.
func TestChainTooLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("maps 3 GiB of address space")
	}
	g, err := memory.New(memory.Options{Size: memory.MMIOHoleStart})
	if err != nil {
		t.Skipf("cannot map 3 GiB: %v", err)
	}
	defer g.Close()
	desc, avail, used, _ := virtiotest.Layout(ringBase, 4)
	d, err := virtiotest.New(g, 4, desc, avail, used)
	must(t, err)
	q, err := queue.New(g, queue.Config{Size: 4, DescAddr: desc, AvailAddr: avail, UsedAddr: used})
	must(t, err)
	_, err = d.AddChain([]virtiotest.Buf{{Addr: 0, Len: 1 << 31}, {Addr: 0, Len: 1 << 31}, {Addr: 0, Len: 1}}, false)
	must(t, err)
	_, err = d.Kick()
	must(t, err)
	c, ok, err := q.Pop()
	if !ok || err != nil {
		t.Fatalf("Pop = %v, %v", ok, err)
	}
	for i := 0; i < 2; i++ {
		if _, ok, err := c.Next(); !ok || err != nil {
			t.Fatalf("buffer %d: %v, %v", i, ok, err)
		}
	}
	if _, _, err := c.Next(); !errors.Is(err, queue.ErrChainTooLarge) {
		t.Fatalf("third buffer: %v, want ErrChainTooLarge", err)
	}
}

// TestIndexWrap runs more than 2^16 chains through a small queue so both
// free-running indices wrap 65535 -> 0.
func TestIndexWrap(t *testing.T) {
	_, d, q := setup(t, opts{size: 4})
	const rounds = 70000
	for i := 0; i < rounds; i++ {
		head, err := d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: uint32(i % 100)}, {Addr: dataBase, Len: 4, Write: true}}, false)
		must(t, err)
		_, err = d.Kick()
		must(t, err)
		c, ok, err := q.Pop()
		if err != nil || !ok || c.Head() != head {
			t.Fatalf("round %d: Pop = %v, %v, head %d want %d", i, ok, err, c.Head(), head)
		}
		b, ok, err := c.Next()
		if err != nil || !ok || b.Len != uint32(i%100) {
			t.Fatalf("round %d: Next = %+v %v %v", i, b, ok, err)
		}
		must(t, q.PushUsed(head, uint32(i)))
		e, ok, err := d.PopUsed()
		if err != nil || !ok || e.ID != uint32(head) || e.Len != uint32(i) {
			t.Fatalf("round %d: used %+v %v %v", i, e, ok, err)
		}
	}
	if idx, _ := d.UsedIdx(); idx != rounds%65536 {
		t.Fatalf("used idx %d, want %d", idx, rounds%65536)
	}
}

// TestBatchAcrossWrap publishes a full ring whose indices straddle 65535->0.
func TestBatchAcrossWrap(t *testing.T) {
	_, d, q := setup(t, opts{size: 8})
	for i := 0; i < 65533; i++ { // advance both sides to 65533
		_, err := d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 1}}, false)
		must(t, err)
		_, err = d.Kick()
		must(t, err)
		c, _, err := q.Pop()
		must(t, err)
		must(t, q.PushUsed(c.Head(), 0))
		_, _, err = d.PopUsed()
		must(t, err)
	}
	for i := 0; i < 8; i++ {
		_, err := d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: uint32(i)}}, false)
		must(t, err)
	}
	_, err := d.Kick()
	must(t, err)
	if d.AvailIdx() != 5 { // 65533 + 8 wrapped
		t.Fatalf("avail idx %d", d.AvailIdx())
	}
	for i := 0; i < 8; i++ {
		c, ok, err := q.Pop()
		if err != nil || !ok {
			t.Fatalf("pop %d: %v %v", i, ok, err)
		}
		b, _, err := c.Next()
		if err != nil || b.Len != uint32(i) {
			t.Fatalf("pop %d: %+v %v", i, b, err)
		}
		must(t, q.PushUsed(c.Head(), 0))
	}
	if _, ok, err := q.Pop(); ok || err != nil {
		t.Fatalf("extra Pop: %v %v", ok, err)
	}
	used, err := d.ReadUsed()
	if err != nil || len(used) != 8 {
		t.Fatalf("used %d, %v", len(used), err)
	}
}

func TestNeedEvent(t *testing.T) {
	tests := []struct {
		event, new, old uint16
		want            bool
	}{
		{0, 1, 0, true},           // first buffer, used_event 0 (spec note)
		{0, 2, 1, false},          // already past the event
		{5, 5, 4, false},          // event not reached yet: idx 5 means entries 0..4 written
		{4, 5, 4, true},           // wrote entry 4 == used_event
		{4, 9, 0, true},           // batch crossing the event
		{10, 9, 0, false},         // batch before the event
		{0xffff, 0, 0xffff, true}, // wrap
		{0xffff, 3, 0xfffe, true}, // batch across wrap containing the event
		{1, 3, 0xfffe, true},
		{3, 3, 0xfffe, false},
		{7, 7, 7, false}, // empty batch never notifies
	}
	for _, tc := range tests {
		if got := queue.NeedEvent(tc.event, tc.new, tc.old); got != tc.want {
			t.Errorf("NeedEvent(%d, %d, %d) = %v, want %v", tc.event, tc.new, tc.old, got, tc.want)
		}
	}
}

// push adds and completes one chain, returning NeedsNotify's answer.
func push(t *testing.T, d *virtiotest.Driver, q *queue.Queue, k int) bool {
	t.Helper()
	for i := 0; i < k; i++ {
		_, err := d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 1}}, false)
		must(t, err)
	}
	_, err := d.Kick()
	must(t, err)
	for i := 0; i < k; i++ {
		c, ok, err := q.Pop()
		if err != nil || !ok {
			t.Fatalf("Pop: %v %v", ok, err)
		}
		must(t, q.PushUsed(c.Head(), 0))
	}
	_, err = d.ReadUsed()
	must(t, err)
	return q.NeedsNotify()
}

func TestNotifySuppression(t *testing.T) {
	t.Run("no event idx honours NO_INTERRUPT", func(t *testing.T) {
		_, d, q := setup(t, opts{size: 8})
		if !push(t, d, q, 1) {
			t.Fatal("flags 0: want notify")
		}
		must(t, d.SetAvailFlags(queue.AvailFNoInterrupt))
		if push(t, d, q, 1) {
			t.Fatal("NO_INTERRUPT: want no notify")
		}
		must(t, d.SetAvailFlags(0))
		if !push(t, d, q, 2) {
			t.Fatal("flags back to 0: want notify")
		}
	})
	t.Run("event idx", func(t *testing.T) {
		_, d, q := setup(t, opts{size: 8, eventIdx: true})
		must(t, d.SetAvailFlags(queue.AvailFNoInterrupt)) // must be ignored under EVENT_IDX
		must(t, d.SetUsedEvent(0))
		if !push(t, d, q, 1) { // used idx 0 -> 1 crosses event 0
			t.Fatal("first buffer: want notify")
		}
		if push(t, d, q, 1) { // 1 -> 2, event 0 already passed
			t.Fatal("event passed: want no notify")
		}
		must(t, d.SetUsedEvent(4))
		if push(t, d, q, 2) { // 2 -> 4: entries 2,3
			t.Fatal("before event: want no notify")
		}
		if !push(t, d, q, 3) { // 4 -> 7 writes entry 4
			t.Fatal("batch crossing event: want notify")
		}
		if q.NeedsNotify() { // nothing new since
			t.Fatal("empty batch: want no notify")
		}
	})
	t.Run("disable/enable without event idx", func(t *testing.T) {
		_, d, q := setup(t, opts{size: 8})
		must(t, q.DisableNotification())
		if f, _ := d.UsedFlags(); f != queue.UsedFNoNotify {
			t.Fatalf("used flags %d after Disable", f)
		}
		if kick, _ := d.Kick(); kick {
			t.Fatal("driver would kick with NO_NOTIFY")
		}
		pending, err := q.EnableNotification()
		if err != nil || pending {
			t.Fatalf("Enable = %v, %v", pending, err)
		}
		if f, _ := d.UsedFlags(); f != 0 {
			t.Fatalf("used flags %d after Enable", f)
		}
		// A chain published while notifications were off is reported.
		must(t, q.DisableNotification())
		_, err = d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 1}}, false)
		must(t, err)
		if kick, _ := d.Kick(); kick {
			t.Fatal("driver would kick with NO_NOTIFY")
		}
		if pending, err := q.EnableNotification(); err != nil || !pending {
			t.Fatalf("Enable with pending chain = %v, %v", pending, err)
		}
	})
	t.Run("enable with event idx writes avail_event", func(t *testing.T) {
		_, d, q := setup(t, opts{size: 8, eventIdx: true})
		push(t, d, q, 3)
		must(t, q.DisableNotification()) // no-op under EVENT_IDX
		if f, _ := d.UsedFlags(); f != 0 {
			t.Fatalf("used flags %d under EVENT_IDX", f)
		}
		pending, err := q.EnableNotification()
		if err != nil || pending {
			t.Fatalf("Enable = %v, %v", pending, err)
		}
		if ev, _ := d.AvailEvent(); ev != 3 {
			t.Fatalf("avail_event %d, want 3", ev)
		}
		_, err = d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 1}}, false)
		must(t, err)
		if kick, _ := d.Kick(); !kick { // avail idx 3 -> 4 writes entry 3 == avail_event
			t.Fatal("driver should kick for entry 3")
		}
		_, err = d.AddChain([]virtiotest.Buf{{Addr: dataBase, Len: 1}}, false)
		must(t, err)
		if kick, _ := d.Kick(); kick { // device has not re-enabled: suppressed
			t.Fatal("driver should not kick again")
		}
		if pending, err := q.EnableNotification(); err != nil || !pending {
			t.Fatalf("Enable with pending = %v, %v", pending, err)
		}
	})
}

func TestPushUsedBadHead(t *testing.T) {
	_, _, q := setup(t, opts{size: 8})
	if err := q.PushUsed(8, 0); !errors.Is(err, queue.ErrUsedHead) {
		t.Fatalf("PushUsed(8) = %v", err)
	}
	if q.Err() != nil {
		t.Fatal("a device bug must not be recorded as a guest violation")
	}
}

// TestSteadyStateAllocs: Pop, Next and PushUsed do not allocate.
func TestSteadyStateAllocs(t *testing.T) {
	for _, indirect := range []bool{false, true} {
		_, d, q := setup(t, opts{size: 256, indirect: true, eventIdx: true})
		bufs := []virtiotest.Buf{{Addr: dataBase, Len: 16}, {Addr: dataBase + 0x1000, Len: 4096, Write: true}, {Addr: dataBase + 0x3000, Len: 1, Write: true}}
		var failed error
		allocs := testing.AllocsPerRun(1000, func() {
			if _, err := d.AddChain(bufs, indirect); err != nil {
				failed = err
				return
			}
			d.Kick()
			c, ok, err := q.Pop()
			if err != nil || !ok {
				failed = errors.Join(err, errors.New("no chain"))
				return
			}
			for {
				_, ok, err := c.Next()
				if err != nil {
					failed = err
				}
				if !ok {
					break
				}
			}
			q.PushUsed(c.Head(), 4097)
			q.NeedsNotify()
			q.EnableNotification()
			d.PopUsed()
		})
		if failed != nil {
			t.Fatal(failed)
		}
		if allocs != 0 {
			t.Fatalf("indirect=%v: %v allocations per request, want 0", indirect, allocs)
		}
	}
}

func BenchmarkQueue(b *testing.B) {
	for _, tc := range []struct {
		name     string
		indirect bool
	}{{"direct", false}, {"indirect", true}} {
		b.Run(tc.name, func(b *testing.B) {
			_, d, q := setup(b, opts{size: 256, indirect: true, eventIdx: true})
			bufs := []virtiotest.Buf{{Addr: dataBase, Len: 16}, {Addr: dataBase + 0x1000, Len: 4096, Write: true}, {Addr: dataBase + 0x3000, Len: 1, Write: true}}
			b.ReportAllocs()
			for b.Loop() {
				d.AddChain(bufs, tc.indirect)
				d.Kick()
				c, _, _ := q.Pop()
				for {
					_, ok, _ := c.Next()
					if !ok {
						break
					}
				}
				q.PushUsed(c.Head(), 4097)
				q.NeedsNotify()
				d.PopUsed()
			}
		})
	}
}

// sameDesc compares what the guest described.
func sameDesc(a, b queue.Desc) bool { return a == b }
