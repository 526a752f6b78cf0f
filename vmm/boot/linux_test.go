package boot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/govmm/govmm/memory"
)

func zeroPage(t *testing.T, mem *memory.Guest) []byte {
	t.Helper()
	zp := make([]byte, ZeroPageSize)
	if err := mem.Read(memory.ZeroPageAddr, zp); err != nil {
		t.Fatal(err)
	}
	return zp
}

// field reads a little-endian field of 1, 2, 4 or 8 bytes.
func field(b []byte, off, size int) uint64 {
	var v uint64
	for i := size - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[off+i])
	}
	return v
}

// e820FromZeroPage decodes e820_entries and e820_table.
func e820FromZeroPage(zp []byte) []MemmapEntry {
	var out []MemmapEntry
	for i := range int(zp[0x1e8]) {
		e := zp[0x2d0+20*i:]
		out = append(out, MemmapEntry{Addr: binary.LittleEndian.Uint64(e), Size: binary.LittleEndian.Uint64(e[8:]),
			Type: binary.LittleEndian.Uint32(e[16:])})
	}
	return out
}

func TestLoadLinuxBzImage(t *testing.T) {
	const ramSize = 8 << 20
	mem, ram := guest(t, ramSize)
	o := goodBzOpts()
	image := synthBz(o)
	initrd := pattern(0x2345, 0x33)
	const cmdline = "console=ttyS0 earlyprintk=ttyS0 noxsave"
	boot, err := LoadLinux(mem, image, initrd, cmdline)
	if err != nil {
		t.Fatal(err)
	}
	// The initrd goes page-aligned as high as RAM allows: 8 MiB - 0x2345
	// rounded down to a page.
	const initrdAddr = 0x7f_d000
	want := LinuxBoot{
		Entry: bzPref + 0x200, ZeroPage: memory.ZeroPageAddr, PML4: memory.PML4Addr,
		GDTBase: memory.GDTAddr, GDTLimit: 47, Kind: KindBzImage,
		LoadAddr: bzPref, KernelEnd: bzPref + bzInitSize, InitrdAddr: initrdAddr, InitrdSize: 0x2345,
	}
	gdt := boot.GDT
	boot.GDT = nil
	if fmt.Sprintf("%+v", *boot) != fmt.Sprintf("%+v", want) {
		t.Fatalf("boot = %+v\nwant %+v", *boot, want)
	}
	if fmt.Sprint(gdt) != fmt.Sprint(GDTEntries64()) {
		t.Fatalf("GDT %#x", gdt)
	}

	if !bytes.Equal(ram[bzPref:bzPref+0x400], o.payload) {
		t.Error("payload not copied to the load address")
	}
	if ram[bzPref+0x400] != 0xCC {
		t.Error("bytes after the payload were written (LoadLinux must not clear init_size)")
	}
	if !bytes.Equal(ram[initrdAddr:initrdAddr+0x2345], initrd) || ram[initrdAddr-1] != 0xCC {
		t.Error("initrd not copied exactly")
	}
	if got := ram[memory.CmdlineAddr : memory.CmdlineAddr+memory.CmdlineMax]; !bytes.Equal(got[:len(cmdline)], []byte(cmdline)) ||
		!bytes.Equal(got[len(cmdline):], make([]byte, memory.CmdlineMax-len(cmdline))) {
		t.Error("cmdline not NUL-terminated and NUL-padded")
	}
	for i, e := range GDTEntries64() {
		if v, _ := mem.ReadU64(memory.GDTAddr + uint64(8*i)); v != e {
			t.Errorf("GDT slot %d in memory %#x, want %#x", i, v, e)
		}
	}

	zp := zeroPage(t, mem)
	fields := []struct {
		name      string
		off, size int
		want      uint64
	}{
		// Written by the loader (boot.rst "write"/"modify" fields).
		{"vid_mode (obligatory, 0xFFFF = normal)", 0x1fa, 2, 0xffff},
		{"type_of_loader (0xFF = undefined)", 0x210, 1, 0xff},
		{"loadflags: LOADED_HIGH only", 0x211, 1, LoadedHigh},
		{"code32_start = load address", 0x214, 4, bzPref},
		{"ramdisk_image", 0x218, 4, initrdAddr},
		{"ramdisk_size", 0x21c, 4, 0x2345},
		{"heap_end_ptr", 0x224, 2, 0},
		{"cmd_line_ptr", 0x228, 4, memory.CmdlineAddr},
		{"hardware_subarch reset to X86_SUBARCH_PC", 0x23c, 4, 0},
		{"hardware_subarch_data cleared", 0x240, 8, 0},
		{"setup_data cleared", 0x250, 8, 0},
		{"ext_ramdisk_image", 0x0c0, 4, 0},
		{"ext_ramdisk_size", 0x0c4, 4, 0},
		{"ext_cmd_line_ptr", 0x0c8, 4, 0},
		{"acpi_rsdp_addr", 0x070, 8, 0},
		{"sentinel stays 0", 0x1ef, 1, 0},
		{"e820_entries", 0x1e8, 1, 3},
		// Copied from the kernel's header unchanged.
		{"setup_sects", 0x1f1, 1, 2},
		{"syssize", 0x1f4, 4, 0x40},
		{"boot_flag", 0x1fe, 2, 0xaa55},
		{"jump", 0x200, 2, 0x6aeb},
		{"header", 0x202, 4, 0x53726448},
		{"version", 0x206, 2, 0x020f},
		{"kernel_version", 0x20e, 2, 0x1234},
		{"initrd_addr_max", 0x22c, 4, 0x7fff_ffff},
		{"kernel_alignment", 0x230, 4, 0x20_0000},
		{"relocatable_kernel", 0x234, 1, 1},
		{"min_alignment", 0x235, 1, 21},
		{"xloadflags", 0x236, 2, XLFKernel64 | XLFCanBeLoadedAbove4G},
		{"cmdline_size", 0x238, 4, 0x7ff},
		{"payload_offset", 0x248, 4, 0x2cc},
		{"pref_address", 0x258, 8, bzPref},
		{"init_size", 0x260, 4, bzInitSize},
		{"kernel_info_offset", 0x268, 4, 0x77},
	}
	for _, f := range fields {
		if got := field(zp, f.off, f.size); got != f.want {
			t.Errorf("%s at %#x: %#x, want %#x", f.name, f.off, got, f.want)
		}
	}
	// Everything outside the header and the e820 table is zero: nothing
	// past the header's end (0x26c) or before 0x1f1 came from the image.
	for i, b := range zp {
		inHdr := i >= 0x1f1 && i < 0x26c
		inE820 := i == 0x1e8 || (i >= 0x2d0 && i < 0x2d0+3*20)
		if !inHdr && !inE820 && b != 0 {
			t.Fatalf("zero page byte %#x is %#x, want 0", i, b)
		}
	}
	if got, want := e820FromZeroPage(zp), MemoryMap(mem); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("e820 %+v, want MemoryMap %+v", got, want)
	}
}

func TestLoadLinuxNoInitrd(t *testing.T) {
	mem, _ := guest(t, 4<<20)
	boot, err := LoadLinux(mem, synthBz(goodBzOpts()), []byte{}, "")
	if err != nil {
		t.Fatal(err)
	}
	zp := zeroPage(t, mem)
	if boot.InitrdAddr != 0 || boot.InitrdSize != 0 || field(zp, 0x218, 4) != 0 || field(zp, 0x21c, 4) != 0 {
		t.Fatalf("empty initrd reported: %+v", boot)
	}
	if b, _ := mem.ReadU8(memory.CmdlineAddr); b != 0 {
		t.Fatal("empty cmdline not NUL")
	}
}

// TestLoadLinuxPlacement checks the load address rule: a relocatable
// kernel goes to align_up(max(pref_address, 1 MiB), kernel_alignment), a
// non-relocatable one to pref_address.
func TestLoadLinuxPlacement(t *testing.T) {
	tests := []struct {
		name      string
		reloc     bool
		pref      uint64
		align     uint32
		wantLoad  uint64
		initrdMax uint32
	}{
		{"relocatable at pref", true, 0x20_0000, 0x20_0000, 0x20_0000, 0x7fff_ffff},
		{"relocatable unaligned pref", true, 0x23_4567, 0x20_0000, 0x40_0000, 0x7fff_ffff},
		{"relocatable pref 0", true, 0, 0x20_0000, 0x20_0000, 0x7fff_ffff},
		{"relocatable pref low, 4 KiB alignment", true, 0x8000, 0x1000, 0x10_0000, 0x7fff_ffff},
		{"non-relocatable", false, 0x30_0000, 0, 0x30_0000, 0x7fff_ffff},
		{"non-relocatable unaligned", false, 0x12_3400, 0x20_0000, 0x12_3400, 0x7fff_ffff},
		{"initrd_addr_max below RAM top", true, 0x20_0000, 0x20_0000, 0x20_0000, 0x50_0fff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := goodBzOpts()
			o.reloc, o.pref, o.align, o.initrdMax = tc.reloc, tc.pref, tc.align, tc.initrdMax
			mem, _ := guest(t, 8<<20)
			boot, err := LoadLinux(mem, synthBz(o), make([]byte, 0x1000), "")
			if err != nil {
				t.Fatal(err)
			}
			if boot.LoadAddr != tc.wantLoad || boot.Entry != tc.wantLoad+0x200 || boot.KernelEnd != tc.wantLoad+bzInitSize {
				t.Fatalf("boot = %+v, want load %#x", boot, tc.wantLoad)
			}
			// initrd_addr_max is the highest byte the initrd may use.
			wantInitrd := min(uint64(tc.initrdMax)+1, 8<<20) - 0x1000
			if boot.InitrdAddr != wantInitrd {
				t.Fatalf("initrd at %#x, want %#x", boot.InitrdAddr, wantInitrd)
			}
		})
	}
}

// TestLoadLinuxE820 boots guests of several sizes, including ones with
// RAM above the MMIO hole, and checks the zero page's e820 table against
// MemoryMapFor(memory.RAMRanges(size)): the same map PVH guests get.
func TestLoadLinuxE820(t *testing.T) {
	const mb, gb = 1 << 20, 1 << 30
	for _, size := range []uint64{8 * mb, 64 * mb, 1 * gb, 3 * gb, 3*gb + 2*mb, 6 * gb} {
		t.Run(fmt.Sprintf("%d MiB", size/mb), func(t *testing.T) {
			mem, err := memory.New(memory.Options{Size: size})
			if err != nil {
				t.Fatal(err)
			}
			defer mem.Close()
			boot, err := LoadLinux(mem, synthBz(goodBzOpts()), make([]byte, 0x1800), "console=ttyS0")
			if err != nil {
				t.Fatal(err)
			}
			ranges, err := memory.RAMRanges(size)
			if err != nil {
				t.Fatal(err)
			}
			want := MemoryMapFor(ranges)
			got := e820FromZeroPage(zeroPage(t, mem))
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("e820 %+v\nwant %+v", got, want)
			}
			if size > memory.MMIOHoleStart && got[len(got)-1] != (MemmapEntry{memory.HighRAMStart, size - memory.MMIOHoleStart, MemmapRAM}) {
				t.Fatalf("high RAM entry missing: %+v", got)
			}
			// The initrd sits page-aligned just below min(low RAM end,
			// initrd_addr_max + 1 = 2 GiB).
			top := min(size, memory.MMIOHoleStart, 2*gb)
			if boot.InitrdAddr != top-0x2000 {
				t.Fatalf("initrd at %#x, want %#x", boot.InitrdAddr, top-0x2000)
			}
		})
	}
}

// translate walks 4-level paging from cr3 like the MMU does for a
// supervisor write, returning the physical address and whether the walk
// succeeded. Only 2 MiB pages are expected; anything else is a failure.
func translate(t *testing.T, mem *memory.Guest, cr3, va uint64) (uint64, error) {
	t.Helper()
	const p, rw, ps = 1, 2, 0x80
	const addrMask = 0x000f_ffff_ffff_f000
	idx := []uint64{va >> 39 & 511, va >> 30 & 511, va >> 21 & 511}
	table := cr3 & addrMask
	for level, i := range idx {
		e, err := mem.ReadU64(table + 8*i)
		if err != nil {
			return 0, fmt.Errorf("level %d entry %d: %w", level, i, err)
		}
		if e&p == 0 || e&rw == 0 {
			return 0, fmt.Errorf("level %d entry %d = %#x: not present/writable", level, i, e)
		}
		if level == 2 {
			if e&ps == 0 {
				return 0, fmt.Errorf("PD entry %d = %#x: not a 2 MiB page", i, e)
			}
			return e&0x000f_ffff_ffe0_0000 | va&(1<<21-1), nil
		}
		if e&ps != 0 {
			return 0, fmt.Errorf("level %d entry %d = %#x: unexpected huge page", level, i, e)
		}
		table = e & addrMask
	}
	panic("unreachable")
}

func TestIdentityPageTables(t *testing.T) {
	mem, ram := guest(t, 4<<20)
	boot, err := LoadLinux(mem, synthBz(goodBzOpts()), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if boot.PML4 != memory.PML4Addr {
		t.Fatalf("CR3 %#x", boot.PML4)
	}
	for _, va := range []uint64{
		0, 0x1000, memory.ZeroPageAddr, memory.CmdlineAddr, 0x1f_ffff, 0x20_0000, 0x100_0000,
		0xBFFF_FFFF, 0xC000_0000, memory.IOAPICBase, memory.LAPICBase + 0x30, 0xFFFF_FFFF,
	} {
		pa, err := translate(t, mem, boot.PML4, va)
		if err != nil || pa != va {
			t.Errorf("translate(%#x) = %#x, %v; want identity", va, pa, err)
		}
	}
	for _, va := range []uint64{1 << 32, 1<<32 + 0x1000, 1 << 39, 0xffff_ffff_8100_0000} {
		if pa, err := translate(t, mem, boot.PML4, va); err == nil {
			t.Errorf("translate(%#x) = %#x: mapped beyond 4 GiB", va, pa)
		}
	}
	// Exactly 1 + 4 + 4*512 entries are present; the rest of the six
	// pages is zero (stale 0xCC bytes were cleared).
	present := 0
	for off := uint64(memory.PML4Addr); off < memory.PageTablesEnd; off += 8 {
		e := binary.LittleEndian.Uint64(ram[off:])
		switch {
		case e&1 != 0:
			present++
		case e != 0:
			t.Fatalf("non-present entry at %#x is %#x, want 0", off, e)
		}
	}
	if present != 1+4+4*512 {
		t.Fatalf("%d present entries", present)
	}
	if !bytes.Equal(IdentityPageTables(), ram[memory.PML4Addr:memory.PageTablesEnd]) {
		t.Fatal("memory differs from IdentityPageTables")
	}
}

func TestGDT64(t *testing.T) {
	e := GDTEntries64()
	if len(e)*8-1 != GDTLimit64 || len(e)*8 > memory.GDTMax {
		t.Fatalf("%d entries vs GDTLimit64 %d / GDTMax %d", len(e), GDTLimit64, memory.GDTMax)
	}
	if e[0] != 0 || e[1] != 0 || e[5] != 0 {
		t.Fatalf("null slots / TSS high half: %#x", e)
	}
	// 0x00af9b000000ffff is Linux's GDT_ENTRY(0xa09b, 0, 0xfffff) (the
	// __KERNEL_CS of arch/x86/kernel/head_64.S's early GDT); the data
	// descriptor is the classic flat 0x00cf93000000ffff. Independent oracles.
	if e[SelectorCode64/8] != 0x00af9b000000ffff || e[SelectorData64/8] != 0x00cf93000000ffff {
		t.Fatalf("code/data = %#x/%#x", e[2], e[3])
	}
	tests := []struct {
		sel  uint16
		want SegmentDesc
	}{
		{SelectorCode64, SegmentDesc{Limit: 0xffffffff, Selector: 0x10, Type: 0xb, Present: 1, S: 1, L: 1, G: 1}},
		{SelectorData64, SegmentDesc{Limit: 0xffffffff, Selector: 0x18, Type: 0x3, Present: 1, S: 1, DB: 1, G: 1}},
		{SelectorTSS64, SegmentDesc{Limit: 0x67, Selector: 0x20, Type: 0xb, Present: 1}},
	}
	for _, tc := range tests {
		if got := SegmentFromGDT(e[tc.sel/8], tc.sel); got != tc.want {
			t.Errorf("selector %#x: got %+v, want %+v", tc.sel, got, tc.want)
		}
	}
}

// elf64NoNote is the synthetic two-segment ELF64 kernel without a PVH
// note, with e_entry set to the physical entry as vmlinux has it.
func elf64NoNote() ([]byte, synthOpts) {
	o := goodOpts(true, 4)
	o.notes = note("GNU\x00", 3, []byte{1, 2, 3, 4})
	img, _ := synth(o)
	binary.LittleEndian.PutUint64(img[24:], goodEntry)
	return img, o
}

func TestLoadLinuxELF64(t *testing.T) {
	image, o := elf64NoNote()
	if k := DetectKernel(image); k != KindELF64 {
		t.Fatalf("DetectKernel = %v", k)
	}
	mem, ram := guest(t, 4<<20)
	cmdline := strings.Repeat("x", memory.CmdlineMax-1) // the whole buffer: govmm's limit
	boot, err := LoadLinux(mem, image, []byte("initrd"), cmdline)
	if err != nil {
		t.Fatal(err)
	}
	end := uint64(goodData + 0x80)
	if boot.Kind != KindELF64 || boot.Entry != goodEntry || boot.LoadAddr != goodText || boot.KernelEnd != end ||
		boot.InitrdAddr != 4<<20-0x1000 || boot.ZeroPage != memory.ZeroPageAddr || boot.PML4 != memory.PML4Addr {
		t.Fatalf("boot = %+v", boot)
	}
	for _, s := range o.segs {
		got := ram[s.paddr : s.paddr+s.memsz]
		if !bytes.Equal(got[:len(s.data)], s.data) || !bytes.Equal(got[len(s.data):], make([]byte, s.memsz-uint64(len(s.data)))) {
			t.Errorf("segment at %#x not loaded with zeroed bss", s.paddr)
		}
	}
	zp := zeroPage(t, mem)
	for _, f := range []struct {
		name      string
		off, size int
		want      uint64
	}{
		{"boot_flag", 0x1fe, 2, 0xaa55},
		{"jump", 0x200, 2, 0x6aeb},
		{"header", 0x202, 4, 0x53726448},
		{"version 2.15", 0x206, 2, 0x020f},
		{"type_of_loader", 0x210, 1, 0xff},
		{"loadflags", 0x211, 1, LoadedHigh},
		{"vid_mode", 0x1fa, 2, 0xffff},
		{"ramdisk_image", 0x218, 4, 4<<20 - 0x1000},
		{"ramdisk_size", 0x21c, 4, 6},
		{"cmd_line_ptr", 0x228, 4, memory.CmdlineAddr},
		{"initrd_addr_max", 0x22c, 4, 0x7fff_ffff},
		{"xloadflags", 0x236, 2, XLFKernel64},
		{"cmdline_size", 0x238, 4, memory.CmdlineMax - 1},
		{"pref_address", 0x258, 8, goodText},
		{"init_size", 0x260, 4, end - goodText},
		{"setup_data", 0x250, 8, 0},
		{"e820_entries", 0x1e8, 1, 3},
	} {
		if got := field(zp, f.off, f.size); got != f.want {
			t.Errorf("%s at %#x: %#x, want %#x", f.name, f.off, got, f.want)
		}
	}
	// A vmlinux with a PVH note may still take the 64-bit entry if asked.
	pvh, _ := goodImage(true)
	binary.LittleEndian.PutUint64(pvh[24:], goodEntry)
	mem2, _ := guest(t, 4<<20)
	if b, err := LoadLinux(mem2, pvh, nil, ""); err != nil || b.Entry != goodEntry {
		t.Fatalf("PVH-capable ELF64 via LoadLinux: %+v, %v", b, err)
	}
}

func TestLoadLinuxErrors(t *testing.T) {
	bz := func(f func(*bzOpts)) []byte {
		o := goodBzOpts()
		f(&o)
		return synthBz(o)
	}
	good := synthBz(goodBzOpts())
	elfNoNote, _ := elf64NoNote()
	elfVirtEntry, _ := synth(func() synthOpts { o := goodOpts(true, 4); o.notes = nil; return o }()) // e_entry 0xffffffff81000000
	elf32, _ := synth(func() synthOpts { o := goodOpts(false, 4); o.notes = nil; return o }())
	elfLow := func() []byte {
		o := goodOpts(true, 4)
		o.notes = nil
		o.segs[0].paddr = 0x8_0000
		img, _ := synth(o)
		binary.LittleEndian.PutUint64(img[24:], 0x8_0010)
		return img
	}()
	elfBig := func() []byte {
		o := goodOpts(true, 4)
		o.notes = nil
		o.segs[1].memsz = 8 << 20
		img, _ := synth(o)
		binary.LittleEndian.PutUint64(img[24:], goodEntry)
		return img
	}()
	const ram = 8 << 20
	tests := []struct {
		name    string
		regions map[uint64]int // nil: [0, ram)
		kernel  []byte
		initrd  []byte
		cmdline string
		want    error
		wantMsg string
	}{
		{"unknown kernel", nil, []byte("MZ\x90\x00junk"), nil, "", ErrUnknownKernel, "starting 4d 5a 90 00"},
		{"empty kernel", nil, nil, nil, "", ErrUnknownKernel, "0 bytes"},
		{"bad bzImage", nil, bz(func(o *bzOpts) { o.version = 0x0204 }), nil, "", ErrProtocolTooOld, "2.04"},
		{"initrd larger than RAM", nil, good, make([]byte, ram), "", ErrInitrdTooLarge,
			"initrd of 8388608 bytes does not fit in RAM between the kernel's end 0x300000 and 0x800000"},
		{"initrd just too large", nil, good, make([]byte, ram-0x30_0000+1), "", ErrInitrdTooLarge, "5242881 bytes"},
		{"initrd_addr_max below the kernel", nil, bz(func(o *bzOpts) { o.initrdMax = 0x2f_ffff }), []byte{1}, "",
			ErrInitrdTooLarge, "initrd_addr_max 0x2fffff"},
		{"cmdline longer than cmdline_size", nil, good, nil, strings.Repeat("a", 0x800), ErrCmdlineTooLong,
			"2048 bytes, but the limit is 2047 (kernel cmdline_size 2047"},
		{"cmdline_size 0", nil, bz(func(o *bzOpts) { o.cmdlineSize = 0 }), nil, "a", ErrCmdlineTooLong, "limit is 0"},
		{"cmdline longer than govmm's buffer", nil, bz(func(o *bzOpts) { o.cmdlineSize = 0xffff_ffff }), nil,
			strings.Repeat("a", memory.CmdlineMax), ErrCmdlineTooLong, "limit is 65535"},
		{"cmdline with NUL", nil, good, nil, "console=ttyS0\x00evil", ErrCmdlineNUL, "offset 13"},
		{"init_size beyond RAM", nil, bz(func(o *bzOpts) { o.initSize = 0x60_0001 }), nil, "", ErrKernelTooBig,
			"init_size 0x600001 bytes of RAM at [0x200000, 0x800001); guest RAM is 0x800000 bytes"},
		{"init_size past 4 GiB", nil, bz(func(o *bzOpts) { o.pref = 0xffe0_0000; o.initSize = 0x40_0000 }), nil, "",
			ErrKernelTooBig, "end above the 4 GiB identity map"},
		{"pref_address above 4 GiB", nil, bz(func(o *bzOpts) { o.pref = 1 << 40 }), nil, "", ErrKernelTooBig, "pref_address 0x10000000000"},
		{"pref_address wraps", nil, bz(func(o *bzOpts) { o.reloc = false; o.pref = ^uint64(0) - 0x1000 }), nil, "",
			ErrKernelTooBig, "identity map"},
		{"kernel in the MMIO hole", nil, bz(func(o *bzOpts) { o.reloc = false; o.pref = memory.MMIOHoleStart }), nil, "",
			ErrKernelTooBig, "RAM at [0xc0000000"},
		{"non-relocatable below 1 MiB", nil, bz(func(o *bzOpts) { o.reloc = false; o.pref = 0x9_0000 }), nil, "",
			ErrKernelLowMem, "pref_address 0x90000"},
		{"no low RAM for boot structures", map[uint64]int{memory.HighMemStart: ram}, good, nil, "", ErrNoLowRAM, "GDT"},
		{"no RAM for the cmdline", map[uint64]int{0: 0x2_0000, memory.HighMemStart: ram}, good, nil, "", ErrNoLowRAM, "cmdline"},
		{"ELF32 without PVH note", nil, elf32, nil, "", ErrBadClass, "boot them with PVH"},
		{"ELF64 virtual e_entry", nil, elfVirtEntry, nil, "", ErrBadEntry, "e_entry 0xffffffff81000000"},
		{"ELF64 below 1 MiB", nil, elfLow, nil, "", ErrKernelLowMem, "segment 0 at 0x80000"},
		{"ELF64 beyond RAM", nil, elfBig, nil, "", ErrKernelTooBig, "segment 1 [0x200000, +0x800000)"},
		{"ELF64 cmdline over govmm's buffer", nil, elfNoNote, nil, strings.Repeat("a", memory.CmdlineMax), ErrCmdlineTooLong, "65536 bytes"},
		{"truncated ELF64", nil, elfNoNote[:100], nil, "", ErrTruncated, "program header table"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			regions := tc.regions
			if regions == nil {
				regions = map[uint64]int{0: ram}
			}
			m := map[uint64][]byte{}
			for gpa, n := range regions {
				m[gpa] = bytes.Repeat([]byte{0xCC}, n)
			}
			mem, err := memory.FromSlices(m)
			if err != nil {
				t.Fatal(err)
			}
			boot, err := LoadLinux(mem, tc.kernel, tc.initrd, tc.cmdline)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if boot != nil {
				t.Fatal("LinuxBoot returned alongside an error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err %q does not say %q", err, tc.wantMsg)
			}
			for gpa, b := range m {
				for i, v := range b {
					if v != 0xCC {
						t.Fatalf("RAM at %#x written despite the error", gpa+uint64(i))
					}
				}
			}
		})
	}
	if _, err := LoadLinux(nil, good, nil, ""); !errors.Is(err, ErrNoLowRAM) {
		t.Fatalf("nil memory: %v", err)
	}
}
