package memory

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// twoRegions is a guest shaped like New's: low RAM at 0 and high RAM at
// 4 GiB, plus a region that ends one page below 2^64 to exercise wrapping.
func twoRegions(t testing.TB) (*Guest, map[uint64][]byte) {
	t.Helper()
	m := map[uint64][]byte{
		0:                       make([]byte, 0x3000),
		HighRAMStart:            make([]byte, 0x2000),
		math.MaxUint64 - 0x1fff: make([]byte, 0x1000), // [2^64-0x2000, 2^64-0x1000)
	}
	g, err := FromSlices(m)
	if err != nil {
		t.Fatal(err)
	}
	return g, m
}

func TestRAMRanges(t *testing.T) {
	tests := []struct {
		name string
		size uint64
		want []Range
		err  bool
	}{
		{"zero", 0, nil, true},
		{"unaligned", PageSize + 1, nil, true},
		{"one page", PageSize, []Range{{0, PageSize}}, false},
		{"exactly hole start", MMIOHoleStart, []Range{{0, MMIOHoleStart}}, false},
		{"just above hole", MMIOHoleStart + PageSize, []Range{{0, MMIOHoleStart}, {HighRAMStart, PageSize}}, false},
		{"8 GiB", 8 << 30, []Range{{0, MMIOHoleStart}, {HighRAMStart, 8<<30 - MMIOHoleStart}}, false},
		{"max", MaxRAM, []Range{{0, MMIOHoleStart}, {HighRAMStart, MaxRAM - MMIOHoleStart}}, false},
		{"absurd", MaxRAM + PageSize, nil, true},
		{"near 2^64", math.MaxUint64 &^ (PageSize - 1), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := RAMRanges(tc.size)
			if tc.err {
				if !errors.Is(err, ErrBadSize) {
					t.Fatalf("RAMRanges(%#x) err = %v, want ErrBadSize", tc.size, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			var total uint64
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("got %v, want %v", got, tc.want)
				}
				total += got[i].Size
				if s, e := got[i].Start, got[i].End(); s < MMIOHoleEnd && e > MMIOHoleStart {
					t.Errorf("range %v overlaps the MMIO hole", got[i])
				}
			}
			if total != tc.size {
				t.Errorf("total %#x, want %#x", total, tc.size)
			}
		})
	}
}

func TestLayoutNoOverlap(t *testing.T) {
	areas := []struct {
		name       string
		start, end uint64
	}{
		{"GDT", GDTAddr, GDTAddr + GDTMax},
		{"start_info", StartInfoAddr, StartInfoAddr + StartInfoSize},
		{"memmap", MemmapAddr, MemmapAddr + MemmapMax*MemmapEntSize},
		{"zero page", ZeroPageAddr, ZeroPageAddr + PageSize},
		{"page tables", PML4Addr, PageTablesEnd},
		{"cmdline", CmdlineAddr, CmdlineAddr + CmdlineMax},
		{"legacy", EBDAStart, HighMemStart},
		{"virtio", VirtioMMIOBase, VirtioMMIOBase + VirtioMMIOSize},
		{"ioapic", IOAPICBase, IOAPICBase + IOAPICSize},
		{"lapic", LAPICBase, LAPICBase + LAPICSize},
		{"identity map", IdentityMapAddr, IdentityMapAddr + PageSize},
		{"tss", TSSAddr, TSSAddr + TSSSize},
	}
	for i, a := range areas {
		if a.start >= a.end {
			t.Errorf("%s: empty", a.name)
		}
		inHole := a.start >= MMIOHoleStart
		if inHole && a.end > MMIOHoleEnd {
			t.Errorf("%s leaves the MMIO hole", a.name)
		}
		if !inHole && a.end > HighMemStart {
			t.Errorf("%s: boot structure reaches past HighMemStart", a.name)
		}
		for _, b := range areas[i+1:] {
			if a.start < b.end && b.start < a.end {
				t.Errorf("%s [%#x,%#x) overlaps %s [%#x,%#x)", a.name, a.start, a.end, b.name, b.start, b.end)
			}
		}
	}
}

func TestFromSlicesValidation(t *testing.T) {
	tests := []struct {
		name string
		m    map[uint64][]byte
	}{
		{"none", map[uint64][]byte{}},
		{"empty region", map[uint64][]byte{0: {}}},
		{"wraps", map[uint64][]byte{math.MaxUint64: make([]byte, 2)}},
		{"ends at 2^64", map[uint64][]byte{math.MaxUint64 - 0xfff: make([]byte, 0x1000)}},
		{"overlap", map[uint64][]byte{0: make([]byte, 0x2000), 0x1fff: make([]byte, 1)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := FromSlices(tc.m); !errors.Is(err, ErrBadRegions) {
				t.Fatalf("err = %v, want ErrBadRegions", err)
			}
		})
	}
	g, err := FromSlices(map[uint64][]byte{0x2000: make([]byte, 0x1000), 0: make([]byte, 0x2000)})
	if err != nil {
		t.Fatalf("adjacent regions: %v", err)
	}
	r := g.Regions()
	if len(r) != 2 || r[0].GPA != 0 || r[1].GPA != 0x2000 || g.Size() != 0x3000 {
		t.Fatalf("regions %+v size %#x", r, g.Size())
	}
}

func TestBounds(t *testing.T) {
	g, _ := twoRegions(t)
	top := uint64(math.MaxUint64 - 0x1fff)
	tests := []struct {
		name   string
		gpa, n uint64
		ok     bool
	}{
		{"start of low", 0, 1, true},
		{"whole low", 0, 0x3000, true},
		{"last byte of low", 0x2fff, 1, true},
		{"straddles end of low", 0x2fff, 2, false},
		{"just past low", 0x3000, 1, false},
		{"in the hole", MMIOHoleStart, 4, false},
		{"LAPIC", LAPICBase, 4, false},
		{"just below high", HighRAMStart - 1, 1, false},
		{"straddles into high", HighRAMStart - 1, 2, false},
		{"start of high", HighRAMStart, 8, true},
		{"straddles end of high", HighRAMStart + 0x1ffc, 8, false},
		{"whole high", HighRAMStart, 0x2000, true},
		{"low and high together", 0, HighRAMStart + 0x2000, false},
		{"zero length inside", 0x100, 0, true},
		{"zero length at region end", 0x3000, 0, true},
		{"zero length in hole", MMIOHoleStart, 0, false},
		{"zero length past end", 0x3001, 0, false},
		{"wraps past 2^64", top, math.MaxUint64, false},
		{"wraps to exactly 0", top, 0x2000, false},
		{"max gpa max len", math.MaxUint64, math.MaxUint64, false},
		{"max gpa len 1", math.MaxUint64, 1, false},
		{"top region whole", top, 0x1000, true},
		{"top region one over", top, 0x1001, false},
		{"huge length from 0", 0, 1 << 63, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := g.Contains(tc.gpa, tc.n); got != tc.ok {
				t.Errorf("Contains(%#x, %#x) = %v, want %v", tc.gpa, tc.n, got, tc.ok)
			}
			check := func(op string, err error) {
				t.Helper()
				if tc.ok && err != nil {
					t.Errorf("%s: unexpected error %v", op, err)
				}
				if !tc.ok && !errors.Is(err, ErrOutOfRange) {
					t.Errorf("%s: err = %v, want ErrOutOfRange", op, err)
				}
			}
			s, err := g.Slice(tc.gpa, tc.n)
			check("Slice", err)
			if err == nil && (uint64(len(s)) != tc.n || uint64(cap(s)) != tc.n) {
				t.Errorf("Slice len %d cap %d, want %d", len(s), cap(s), tc.n)
			}
			check("Zero", g.Zero(tc.gpa, tc.n))
			if tc.n <= 1<<16 {
				buf := make([]byte, tc.n)
				check("Read", g.Read(tc.gpa, buf))
				check("Write", g.Write(tc.gpa, buf))
			}
		})
	}
}

func TestReadWriteLandsInRegion(t *testing.T) {
	g, m := twoRegions(t)
	if err := g.Write(HighRAMStart+0x10, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m[HighRAMStart][0x10:0x13], []byte{1, 2, 3}) {
		t.Fatalf("write did not land at offset 0x10 of the high region: % x", m[HighRAMStart][:0x14])
	}
	got := make([]byte, 3)
	if err := g.Read(HighRAMStart+0x10, got); err != nil || !bytes.Equal(got, []byte{1, 2, 3}) {
		t.Fatalf("Read = % x, %v", got, err)
	}
	s, err := g.Slice(0x10, 4)
	if err != nil {
		t.Fatal(err)
	}
	s = append(s, 0xAA) // must reallocate, not scribble over RAM
	if m[0][0x14] != 0 {
		t.Fatal("append to Slice result wrote past the requested range")
	}
	_ = s
	copy(m[0][0x100:], []byte{9, 9, 9, 9})
	if err := g.Zero(0x101, 2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m[0][0x100:0x104], []byte{9, 0, 0, 9}) {
		t.Fatalf("Zero cleared the wrong bytes: % x", m[0][0x100:0x104])
	}
}

func TestScalars(t *testing.T) {
	g, m := twoRegions(t)
	tests := []struct {
		name  string
		width int
		write func(uint64, uint64) error
		read  func(uint64) (uint64, error)
		v     uint64
		le    []byte
	}{
		{"u8", 1, func(a, v uint64) error { return g.WriteU8(a, uint8(v)) },
			func(a uint64) (uint64, error) { v, err := g.ReadU8(a); return uint64(v), err },
			0xAB, []byte{0xAB}},
		{"u16", 2, func(a, v uint64) error { return g.WriteU16(a, uint16(v)) },
			func(a uint64) (uint64, error) { v, err := g.ReadU16(a); return uint64(v), err },
			0xABCD, []byte{0xCD, 0xAB}},
		{"u32", 4, func(a, v uint64) error { return g.WriteU32(a, uint32(v)) },
			func(a uint64) (uint64, error) { v, err := g.ReadU32(a); return uint64(v), err },
			0x01020304, []byte{4, 3, 2, 1}},
		{"u64", 8, func(a, v uint64) error { return g.WriteU64(a, v) },
			func(a uint64) (uint64, error) { v, err := g.ReadU64(a); return v, err },
			0x0102030405060708, []byte{8, 7, 6, 5, 4, 3, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			const off = 0x201 // deliberately unaligned
			if err := tc.write(off, tc.v); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(m[0][off:off+tc.width], tc.le) {
				t.Fatalf("bytes % x, want little-endian % x", m[0][off:off+tc.width], tc.le)
			}
			if v, err := tc.read(off); err != nil || v != tc.v {
				t.Fatalf("read %#x, %v; want %#x", v, err, tc.v)
			}
			end := uint64(0x3000 - tc.width + 1) // last byte straddles the region end
			if err := tc.write(end, tc.v); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("write straddling end: %v", err)
			}
			if _, err := tc.read(end); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("read straddling end: %v", err)
			}
			if _, err := tc.read(MMIOHoleStart); !errors.Is(err, ErrOutOfRange) {
				t.Errorf("read in hole: %v", err)
			}
		})
	}
}

func TestAtomicU16(t *testing.T) {
	g, m := twoRegions(t)
	for _, gpa := range []uint64{0x10, 0x12, HighRAMStart + 0x1ffe} {
		before := append([]byte(nil), m[0][0x10:0x14]...)
		if err := g.StoreU16Release(gpa, 0xBEEF); err != nil {
			t.Fatalf("StoreU16Release(%#x): %v", gpa, err)
		}
		v, err := g.LoadU16Acquire(gpa)
		if err != nil || v != 0xBEEF {
			t.Fatalf("LoadU16Acquire(%#x) = %#x, %v", gpa, v, err)
		}
		if plain, _ := g.ReadU16(gpa); plain != 0xBEEF {
			t.Fatalf("plain read %#x after atomic store", plain)
		}
		if gpa == 0x12 && !bytes.Equal(m[0][0x10:0x12], before[:2]) {
			t.Fatalf("store at 0x12 clobbered the other half of the word")
		}
	}
	// Other half of a word is preserved.
	if err := g.WriteU32(0x20, 0x11223344); err != nil {
		t.Fatal(err)
	}
	if err := g.StoreU16Release(0x22, 0xAAAA); err != nil {
		t.Fatal(err)
	}
	if v, _ := g.ReadU32(0x20); v != 0xAAAA3344 {
		t.Fatalf("word = %#x, want 0xaaaa3344", v)
	}
	if v, err := g.LoadU16Acquire(0x20); err != nil || v != 0x3344 {
		t.Fatalf("low half = %#x, %v", v, err)
	}

	if _, err := g.LoadU16Acquire(0x11); !errors.Is(err, ErrMisaligned) {
		t.Errorf("odd gpa: %v", err)
	}
	if err := g.StoreU16Release(0x11, 1); !errors.Is(err, ErrMisaligned) {
		t.Errorf("odd gpa store: %v", err)
	}
	if _, err := g.LoadU16Acquire(0x3000); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("past end: %v", err)
	}
	if _, err := g.LoadU16Acquire(math.MaxUint64 - 1); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("top of address space: %v", err)
	}
}

func TestAtomicU16WordOutsideRegion(t *testing.T) {
	// A 6-byte region starting 2 bytes into an aligned word: the u16 at gpa
	// 0x100 is fine for plain access, but its enclosing 4-byte word begins
	// before the region, so the atomic must refuse.
	backing := make([]byte, 16) // 8-aligned by the allocator
	g, err := FromSlices(map[uint64][]byte{0x100: backing[2:8]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.ReadU16(0x100); err != nil {
		t.Fatal(err)
	}
	if _, err := g.LoadU16Acquire(0x100); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("LoadU16Acquire = %v, want ErrOutOfRange", err)
	}
	if v, err := g.LoadU16Acquire(0x102); err != nil || v != 0 {
		t.Fatalf("LoadU16Acquire(0x102) = %v, %v", v, err)
	}
	// A region whose host bytes are odd-aligned cannot host atomics at all.
	g2, err := FromSlices(map[uint64][]byte{0: backing[1:9]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g2.LoadU16Acquire(2); !errors.Is(err, ErrMisaligned) {
		t.Fatalf("odd host address: %v", err)
	}
}

func TestCloseFromSlices(t *testing.T) {
	g, _ := twoRegions(t)
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := g.ReadU8(0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read after Close: %v", err)
	}
}

func BenchmarkRead4K(b *testing.B) {
	g, _ := twoRegions(b)
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Read(HighRAMStart+0x800, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWrite4K(b *testing.B) {
	g, _ := twoRegions(b)
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		if err := g.Write(HighRAMStart+0x800, buf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestAccessAllocationFree(t *testing.T) {
	g, _ := twoRegions(t)
	buf := make([]byte, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		_ = g.Read(HighRAMStart, buf[:0x1000])
		_ = g.Write(0x1000, buf[:0x1000])
		_, _ = g.ReadU64(0x8)
		_, _ = g.LoadU16Acquire(0x10)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per successful access, want 0", allocs)
	}
}

// BenchmarkRawCopy4K is the baseline for BenchmarkRead4K: a plain copy
// from the same backing memory with no bounds checks, so the cost of
// checking is the difference between the two.
func BenchmarkRawCopy4K(b *testing.B) {
	g, _ := twoRegions(b)
	var src []byte
	for _, r := range g.Regions() {
		if r.GPA == HighRAMStart {
			src = r.Host[0x800 : 0x800+4096]
		}
	}
	if src == nil {
		b.Fatal("no high region")
	}
	buf := make([]byte, 4096)
	b.SetBytes(4096)
	b.ReportAllocs()
	for b.Loop() {
		copy(buf, src)
	}
}

// TestWordHandles: Word16 and Word32 do the checks of LoadU16Acquire and
// StoreU16Release once, and then access exactly their bytes of guest RAM.
func TestWordHandles(t *testing.T) {
	g, m := twoRegions(t)
	w16, err := g.Word16(0x12)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteU32(0x10, 0x11223344); err != nil {
		t.Fatal(err)
	}
	if v := w16.Load(); v != 0x1122 {
		t.Fatalf("Word16.Load = %#x, want 0x1122", v)
	}
	if err := w16.Store(0xBEEF); err != nil {
		t.Fatal(err)
	}
	if v, _ := g.ReadU32(0x10); v != 0xBEEF3344 {
		t.Fatalf("word after Word16.Store = %#x, want 0xbeef3344 (other half kept)", v)
	}

	w32, err := g.Word32(HighRAMStart + 0x1ffc) // the last word of a region
	if err != nil {
		t.Fatal(err)
	}
	w32.Store(0xA1B2C3D4)
	if got := m[HighRAMStart][0x1ffc:]; !bytes.Equal(got, []byte{0xD4, 0xC3, 0xB2, 0xA1}) {
		t.Fatalf("Word32.Store wrote % x", got)
	}
	if v := w32.Load(); v != 0xA1B2C3D4 {
		t.Fatalf("Word32.Load = %#x", v)
	}
	if m[HighRAMStart][0x1ffb] != 0 {
		t.Fatal("Word32.Store touched the byte before its word")
	}

	for _, tc := range []struct {
		name string
		gpa  uint64
		want error
	}{
		{"misaligned", 0x12, ErrMisaligned},
		{"odd", 0x11, ErrMisaligned},
		{"past the end of a region", 0x3000, ErrOutOfRange},
		{"2-aligned only", HighRAMStart + 0x1ffe, ErrMisaligned},
		{"in the MMIO hole", MMIOHoleStart, ErrOutOfRange},
		{"top of the address space", math.MaxUint64 - 3, ErrOutOfRange},
	} {
		if _, err := g.Word32(tc.gpa); !errors.Is(err, tc.want) {
			t.Errorf("Word32(%s %#x) = %v, want %v", tc.name, tc.gpa, err, tc.want)
		}
	}
	if _, err := g.Word16(0x3000); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Word16 past the end = %v", err)
	}
	// A region whose host bytes are only 2-aligned cannot host a Word32.
	backing := make([]byte, 16)
	g2, err := FromSlices(map[uint64][]byte{0: backing[2:14]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g2.Word32(0); !errors.Is(err, ErrMisaligned) {
		t.Errorf("Word32 on a 2-aligned host address = %v", err)
	}
	// A word that starts inside a region and ends past it.
	g3, err := FromSlices(map[uint64][]byte{0: backing[:6]})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g3.Word32(4); !errors.Is(err, ErrOutOfRange) {
		t.Errorf("Word32 crossing the end of a region = %v", err)
	}
}
