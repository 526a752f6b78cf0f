package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/govmm/govmm/memory"
)

// guest returns a FromSlices guest with low RAM [0, size) pre-filled with
// 0xCC, so that zeroing and NUL termination are observable.
func guest(t *testing.T, size int) (*memory.Guest, []byte) {
	t.Helper()
	ram := bytes.Repeat([]byte{0xCC}, size)
	g, err := memory.FromSlices(map[uint64][]byte{0: ram})
	if err != nil {
		t.Fatal(err)
	}
	return g, ram
}

func TestLoadPVH(t *testing.T) {
	tests := []struct {
		name string
		opts synthOpts
	}{
		{"elf64", goodOpts(true, 4)},
		{"elf32", goodOpts(false, 4)},
		{"elf64 8-byte desc", goodOpts(true, 8)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			image, _ := synth(tc.opts)
			img, err := ParsePVH(image)
			if err != nil {
				t.Fatal(err)
			}
			mem, ram := guest(t, 4<<20)
			const cmdline = "console=ttyS0 earlyprintk=ttyS0 noxsave"
			boot, err := LoadPVH(mem, img, image, cmdline)
			if err != nil {
				t.Fatal(err)
			}
			if boot.Entry != goodEntry || boot.StartInfo != memory.StartInfoAddr {
				t.Fatalf("boot = %+v", boot)
			}

			// Segments: file bytes copied, the rest up to memsz zeroed, and
			// nothing written past memsz.
			for _, s := range tc.opts.segs {
				got := ram[s.paddr : s.paddr+s.memsz]
				if !bytes.Equal(got[:len(s.data)], s.data) {
					t.Errorf("segment at %#x: file bytes not copied", s.paddr)
				}
				if !bytes.Equal(got[len(s.data):], make([]byte, s.memsz-uint64(len(s.data)))) {
					t.Errorf("segment at %#x: bss not zeroed", s.paddr)
				}
				if ram[s.paddr+s.memsz] != 0xCC || ram[s.paddr-1] != 0xCC {
					t.Errorf("segment at %#x: bytes outside [paddr, paddr+memsz) touched", s.paddr)
				}
			}

			// struct hvm_start_info, field by field at the documented offsets.
			si := ram[memory.StartInfoAddr:]
			u32 := func(off int) uint32 { return binary.LittleEndian.Uint32(si[off:]) }
			u64 := func(off int) uint64 { return binary.LittleEndian.Uint64(si[off:]) }
			mm := MemoryMap(mem)
			fields := []struct {
				name      string
				got, want uint64
			}{
				{"magic@0", uint64(u32(0)), 0x336ec578},
				{"version@4", uint64(u32(4)), 1},
				{"flags@8", uint64(u32(8)), 0},
				{"nr_modules@12", uint64(u32(12)), 0},
				{"modlist_paddr@16", u64(16), 0},
				{"cmdline_paddr@24", u64(24), memory.CmdlineAddr},
				{"rsdp_paddr@32", u64(32), 0},
				{"memmap_paddr@40", u64(40), memory.MemmapAddr},
				{"memmap_entries@48", uint64(u32(48)), uint64(len(mm))},
				{"reserved@52", uint64(u32(52)), 0},
			}
			for _, f := range fields {
				if f.got != f.want {
					t.Errorf("start_info %s = %#x, want %#x", f.name, f.got, f.want)
				}
			}
			if ram[memory.StartInfoAddr+56] != 0xCC {
				t.Errorf("start_info writer went past its 56 bytes")
			}

			// memmap entries as the guest sees them.
			if len(mm) != 3 {
				t.Fatalf("memmap %+v, want 3 entries for 4 MiB of low RAM", mm)
			}
			for i, e := range mm {
				b := ram[memory.MemmapAddr+i*24:]
				if a, s, ty, r := binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:]),
					binary.LittleEndian.Uint32(b[16:]), binary.LittleEndian.Uint32(b[20:]); a != e.Addr || s != e.Size || ty != e.Type || r != 0 {
					t.Errorf("memmap[%d] in guest = {%#x %#x %d %d}, want %+v", i, a, s, ty, r, e)
				}
			}

			// cmdline, NUL-terminated.
			cl := ram[memory.CmdlineAddr:]
			if string(cl[:len(cmdline)]) != cmdline || cl[len(cmdline)] != 0 {
				t.Errorf("cmdline in guest %q", cl[:len(cmdline)+1])
			}

			// GDT.
			for i, e := range GDTEntries() {
				if got := binary.LittleEndian.Uint64(ram[memory.GDTAddr+8*i:]); got != e {
					t.Errorf("GDT[%d] = %#x, want %#x", i, got, e)
				}
			}
		})
	}
}

func TestLoadPVHRealGuest(t *testing.T) {
	mem, err := memory.New(memory.Options{Size: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	image, _ := goodImage(true)
	img, err := ParsePVH(image)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPVH(mem, img, image, ""); err != nil {
		t.Fatal(err)
	}
	if v, _ := mem.ReadU32(memory.StartInfoAddr); v != StartInfoMagic {
		t.Fatalf("magic %#x", v)
	}
	if b, _ := mem.ReadU8(memory.CmdlineAddr); b != 0 {
		t.Fatalf("empty cmdline not NUL")
	}
	if b, _ := mem.ReadU8(goodEntry); b != image[img.Segments[0].FileOff+goodEntry-goodText] {
		t.Fatalf("entry byte not loaded")
	}
}

func TestLoadPVHErrors(t *testing.T) {
	good, _ := goodImage(true)
	goodImg, err := ParsePVH(good)
	if err != nil {
		t.Fatal(err)
	}
	low, _ := synth(synthOpts{is64: true, segs: []synthSeg{{paddr: 0x8000, data: pattern(0x20, 1), memsz: 0x20}},
		notes: pvhNote(0x8000, 4)})
	hole, _ := synth(synthOpts{is64: true, segs: []synthSeg{{paddr: memory.MMIOHoleStart, data: pattern(0x20, 1), memsz: 0x20}},
		notes: pvhNote(memory.MMIOHoleStart, 4)})
	tests := []struct {
		name    string
		ramSize int
		regions map[uint64][]byte // overrides ramSize
		image   []byte
		img     *PVHImage // nil: parse image
		cmdline string
		want    error
	}{
		{name: "segment outside RAM", ramSize: 0x18_0000, image: good, want: ErrSegmentOutsideRAM},
		{name: "bss straddles RAM end", ramSize: goodText + 0x800, image: good, want: ErrSegmentOutsideRAM},
		{name: "segment in MMIO hole", ramSize: 4 << 20, image: hole, want: ErrSegmentOutsideRAM},
		{name: "segment below 1 MiB", ramSize: 4 << 20, image: low, want: ErrSegmentLowMem},
		{name: "cmdline too long", ramSize: 4 << 20, image: good, cmdline: strings.Repeat("a", memory.CmdlineMax), want: ErrBadCmdline},
		{name: "cmdline with NUL", ramSize: 4 << 20, image: good, cmdline: "root=/dev/vda\x00init=/evil", want: ErrBadCmdline},
		{name: "image shorter than segments", ramSize: 4 << 20, image: good[:0x400], img: goodImg, want: ErrBadImage},
		{name: "hand-built filesz > memsz", ramSize: 4 << 20, image: good,
			img: &PVHImage{Entry: goodEntry, Segments: []Segment{{PAddr: goodText, FileOff: 0, FileSize: 0x10, MemSize: 8}}}, want: ErrBadImage},
		{name: "hand-built offset wraps", ramSize: 4 << 20, image: good,
			img: &PVHImage{Entry: goodEntry, Segments: []Segment{{PAddr: goodText, FileOff: ^uint64(0), FileSize: 2, MemSize: 2}}}, want: ErrBadImage},
		{name: "hand-built paddr wraps", ramSize: 4 << 20, image: good,
			img: &PVHImage{Entry: goodEntry, Segments: []Segment{{PAddr: ^uint64(0) - 1, FileOff: 0, FileSize: 2, MemSize: 4}}}, want: ErrSegmentOutsideRAM},
		{name: "no segments", ramSize: 4 << 20, image: good, img: &PVHImage{Entry: goodEntry}, want: ErrBadImage},
		{name: "no low RAM", regions: map[uint64][]byte{memory.HighMemStart: make([]byte, 4<<20)}, image: good, want: ErrNoLowRAM},
		{name: "memmap too large", regions: func() map[uint64][]byte {
			m := map[uint64][]byte{0: make([]byte, 4<<20)}
			for i := range uint64(memory.MemmapMax) {
				m[memory.HighRAMStart+i*0x2000] = make([]byte, 0x1000)
			}
			return m
		}(), image: good, want: ErrMemmapTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var mem *memory.Guest
			var snapshot func() []byte
			if tc.regions != nil {
				var err error
				if mem, err = memory.FromSlices(tc.regions); err != nil {
					t.Fatal(err)
				}
				snapshot = func() []byte { return nil }
			} else {
				var ram []byte
				mem, ram = guest(t, tc.ramSize)
				snapshot = func() []byte { return append([]byte(nil), ram...) }
			}
			img := tc.img
			if img == nil {
				var err error
				if img, err = ParsePVH(tc.image); err != nil {
					t.Fatalf("test image does not parse: %v", err)
				}
			}
			before := snapshot()
			boot, err := LoadPVH(mem, img, tc.image, tc.cmdline)
			if !errors.Is(err, tc.want) {
				t.Fatalf("LoadPVH err = %v, want %v", err, tc.want)
			}
			if boot != nil {
				t.Fatal("boot info returned alongside error")
			}
			if !bytes.Equal(before, snapshot()) {
				t.Fatal("failed LoadPVH modified guest memory")
			}
		})
	}
	// Longest legal cmdline fits exactly.
	mem, ram := guest(t, 4<<20)
	long := strings.Repeat("b", memory.CmdlineMax-1)
	if _, err := LoadPVH(mem, goodImg, good, long); err != nil {
		t.Fatalf("cmdline of CmdlineMax-1 bytes: %v", err)
	}
	if ram[memory.CmdlineAddr+memory.CmdlineMax-1] != 0 || ram[memory.CmdlineAddr+memory.CmdlineMax] != 0xCC {
		t.Fatal("cmdline NUL or bound wrong")
	}
}

func TestMemoryMap(t *testing.T) {
	const ebda, mb = memory.EBDAStart, memory.HighMemStart
	tests := []struct {
		name    string
		regions map[uint64]int
		want    []MemmapEntry
	}{
		{"64 MiB", map[uint64]int{0: 64 << 20}, []MemmapEntry{
			{0, ebda, MemmapRAM}, {ebda, mb - ebda, MemmapReserved}, {mb, 64<<20 - mb, MemmapRAM}}},
		{"below EBDA only", map[uint64]int{0: 0x8000}, []MemmapEntry{{0, 0x8000, MemmapRAM}}},
		{"ends inside legacy area", map[uint64]int{0: 0xA0000}, []MemmapEntry{
			{0, ebda, MemmapRAM}, {ebda, 0xA0000 - ebda, MemmapReserved}}},
		{"exactly 1 MiB", map[uint64]int{0: mb}, []MemmapEntry{{0, ebda, MemmapRAM}, {ebda, mb - ebda, MemmapReserved}}},
		{"low and high", map[uint64]int{0: 2 << 20, memory.HighRAMStart: 1 << 20}, []MemmapEntry{
			{0, ebda, MemmapRAM}, {ebda, mb - ebda, MemmapReserved}, {mb, 1 << 20, MemmapRAM},
			{memory.HighRAMStart, 1 << 20, MemmapRAM}}},
		{"adjacent regions merge", map[uint64]int{0: mb, mb: 1 << 20, 2 << 20: 1 << 20}, []MemmapEntry{
			{0, ebda, MemmapRAM}, {ebda, mb - ebda, MemmapReserved}, {mb, 2 << 20, MemmapRAM}}},
		{"inside legacy area", map[uint64]int{0xA0000: 0x1000}, []MemmapEntry{{0xA0000, 0x1000, MemmapReserved}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[uint64][]byte{}
			for gpa, n := range tc.regions {
				m[gpa] = make([]byte, n)
			}
			g, err := memory.FromSlices(m)
			if err != nil {
				t.Fatal(err)
			}
			got := MemoryMap(g)
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("entry %d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
	// The real layout: nothing in the hole is reported, RAM totals match.
	g, err := memory.New(memory.Options{Size: memory.MMIOHoleStart + 2<<20})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var total uint64
	for _, e := range MemoryMap(g) {
		if e.Addr < memory.MMIOHoleEnd && e.Addr+e.Size > memory.MMIOHoleStart {
			t.Errorf("entry %+v overlaps the MMIO hole", e)
		}
		total += e.Size
	}
	if total != g.Size() {
		t.Errorf("memmap covers %#x bytes, RAM is %#x", total, g.Size())
	}
}

func TestGDT(t *testing.T) {
	e := GDTEntries()
	if len(e)*8-1 != GDTLimit || len(e)*8 > memory.GDTMax {
		t.Fatalf("%d entries vs GDTLimit %d / GDTMax %d", len(e), GDTLimit, memory.GDTMax)
	}
	if e[0] != 0 {
		t.Fatalf("null descriptor %#x", e[0])
	}
	// 0x00cf9b000000ffff is the classic flat 32-bit code descriptor (e.g.
	// Linux's boot GDT_ENTRY(0xc09b, 0, 0xfffff)): an independent oracle.
	if e[SelectorCode32/8] != 0x00cf9b000000ffff || e[SelectorData32/8] != 0x00cf93000000ffff {
		t.Fatalf("code/data = %#x/%#x", e[1], e[2])
	}
	tests := []struct {
		sel  uint16
		want SegmentDesc
	}{
		{SelectorCode32, SegmentDesc{Base: 0, Limit: 0xffffffff, Selector: 0x08, Type: 0xb, Present: 1, S: 1, DB: 1, G: 1}},
		{SelectorData32, SegmentDesc{Base: 0, Limit: 0xffffffff, Selector: 0x10, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}},
		{SelectorTSS, SegmentDesc{Base: 0, Limit: 0x67, Selector: 0x18, Type: 0xb, Present: 1}},
	}
	for _, tc := range tests {
		if got := SegmentFromGDT(e[tc.sel/8], tc.sel); got != tc.want {
			t.Errorf("selector %#x: got %+v, want %+v", tc.sel, got, tc.want)
		}
	}
}

func TestGDTEntryRoundTrip(t *testing.T) {
	tests := []struct {
		flags       uint16
		base, limit uint32
		want        SegmentDesc
	}{
		{0xa09b, 0, 0xfffff, SegmentDesc{Limit: 0xffffffff, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}},
		{0x40f3, 0x12345678, 0xabcde, SegmentDesc{Base: 0x12345678, Limit: 0xabcde, Type: 3, Present: 1, S: 1, DPL: 3, DB: 1}},
		{0x1089, 0xff000001, 0x1, SegmentDesc{Base: 0xff000001, Limit: 1, Type: 9, Present: 1, AVL: 1}},
		{0x0000, 0, 0, SegmentDesc{}},
	}
	for _, tc := range tests {
		got := SegmentFromGDT(gdtEntry(tc.flags, tc.base, tc.limit), 0x28)
		tc.want.Selector = 0x28
		if got != tc.want {
			t.Errorf("gdtEntry(%#x, %#x, %#x) decodes to %+v, want %+v", tc.flags, tc.base, tc.limit, got, tc.want)
		}
	}
}
