package blk

import (
	"testing"

	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/memory"
)

// TestGuestBufsMerge: segments adjacent in guest-physical memory become one
// host slice, but only where they are one host range; a run across two RAM
// regions (adjacent guest addresses, separate host memory) stays split, and
// a segment outside RAM is still refused.
func TestGuestBufsMerge(t *testing.T) {
	lo, hi := make([]byte, 0x10000), make([]byte, 0x10000)
	mem, err := memory.FromSlices(map[uint64][]byte{0: lo, 0x10000: hi})
	if err != nil {
		t.Fatal(err)
	}
	d := &Disk{}
	d.ctx = virtio.ActivateContext{Mem: mem}
	seg := func(addr uint64, n uint32) desc { return desc{Addr: addr, Len: n} }
	cases := []struct {
		name    string
		data    []desc
		lens    []int
		wantErr bool
	}{
		{"one", []desc{seg(0x1000, 512)}, []int{512}, false},
		{"adjacent pages merge", []desc{seg(0x1000, 0x1000), seg(0x2000, 0x1000), seg(0x3000, 0x1000)}, []int{0x3000}, false},
		{"gap splits", []desc{seg(0x1000, 0x1000), seg(0x3000, 0x1000)}, []int{0x1000, 0x1000}, false},
		{"merge then split", []desc{seg(0x1000, 0x200), seg(0x1200, 0x200), seg(0x4000, 0x200)}, []int{0x400, 0x200}, false},
		{"across regions stays split", []desc{seg(0xf000, 0x1000), seg(0x10000, 0x1000)}, []int{0x1000, 0x1000}, false},
		{"outside RAM", []desc{seg(0x1f000, 0x1000), seg(0x20000, 0x1000)}, nil, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := d.guestBufs(&request{data: c.data})
			if c.wantErr {
				if err == nil {
					t.Fatal("a segment outside RAM was accepted")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []int
			for _, b := range d.bufs {
				got = append(got, len(b))
			}
			if len(got) != len(c.lens) {
				t.Fatalf("host slices %v, want %v", got, c.lens)
			}
			for i := range got {
				if got[i] != c.lens[i] {
					t.Fatalf("host slices %v, want %v", got, c.lens)
				}
			}
			// The slices are the guest's memory, not copies.
			d.bufs[0][0] = 0xab
			if v, _ := mem.ReadU8(c.data[0].Addr); v != 0xab {
				t.Fatalf("host slice does not alias guest RAM at %#x", c.data[0].Addr)
			}
		})
	}
}
