package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/govmm/govmm/memory"
)

// Sentinel errors of LoadPVH.
var (
	ErrSegmentOutsideRAM = errors.New("PVH: segment outside guest RAM")
	ErrSegmentLowMem     = errors.New("PVH: segment below 1 MiB, over the boot structures")
	ErrBadCmdline        = errors.New("PVH: bad kernel command line")
	ErrMemmapTooLarge    = errors.New("PVH: memory map has too many entries")
	ErrBadImage          = errors.New("PVH: image does not match its parsed segments")
	ErrNoLowRAM          = errors.New("PVH: guest RAM does not cover the boot structures")
)

// PVH ABI constants, from xen/include/public/arch-x86/hvm/start_info.h.
const (
	StartInfoMagic   = 0x336ec578 // XEN_HVM_START_MAGIC_VALUE
	StartInfoVersion = 1
	MemmapRAM        = 1 // XEN_HVM_MEMMAP_TYPE_RAM
	MemmapReserved   = 2 // XEN_HVM_MEMMAP_TYPE_RESERVED
)

// Byte offsets in struct hvm_start_info (start_info.h), little-endian:
//
//	0  u32 magic            4  u32 version        8  u32 flags
//	12 u32 nr_modules      16  u64 modlist_paddr 24  u64 cmdline_paddr
//	32 u64 rsdp_paddr      40  u64 memmap_paddr  48  u32 memmap_entries
//	52 u32 reserved        56  (size)
//
// and in struct hvm_memmap_table_entry: 0 u64 addr, 8 u64 size, 16 u32 type,
// 20 u32 reserved, 24 (size).
const (
	siMagic         = 0
	siVersion       = 4
	siFlags         = 8
	siNrModules     = 12
	siModlistPaddr  = 16
	siCmdlinePaddr  = 24
	siRsdpPaddr     = 32
	siMemmapPaddr   = 40
	siMemmapEntries = 48
	siReserved      = 52
)

// MemmapEntry mirrors struct hvm_memmap_table_entry in
// xen/include/public/arch-x86/hvm/start_info.h (minus its reserved word).
type MemmapEntry struct {
	Addr, Size uint64
	Type       uint32
}

// PVHBoot is where the vCPU must start: EIP=Entry, EBX=StartInfo, flat
// 32-bit protected mode with paging off, CS=SelectorCode32, the other data
// segments SelectorData32, TR=SelectorTSS, GDTR={memory.GDTAddr, GDTLimit}.
type PVHBoot struct {
	Entry     uint32
	StartInfo uint64
}

// MemoryMap derives the PVH memmap (and e820) from the guest's RAM regions:
// RAM is usable except [memory.EBDAStart, memory.HighMemStart), which is
// reported reserved because legacy-aware kernels expect the EBDA, VGA window
// and BIOS ROM there. The MMIO hole is not RAM and is simply absent, as on
// real firmware for MMIO that is not RAM-like; the LAPIC/IOAPIC are found via
// their architectural addresses (and later ACPI/MP tables), not the memmap.
// Adjacent entries of the same type are merged. Entries are sorted by Addr.
func MemoryMap(mem *memory.Guest) []MemmapEntry {
	regions := mem.Regions()
	ranges := make([]memory.Range, len(regions))
	for i, r := range regions {
		ranges[i] = memory.Range{Start: r.GPA, Size: r.Size}
	}
	return MemoryMapFor(ranges)
}

// MemoryMapFor is MemoryMap for RAM laid out as ranges (sorted, as
// memory.RAMRanges returns them). Tests use it to predict the map a guest
// of a given size must see.
func MemoryMapFor(ranges []memory.Range) []MemmapEntry {
	var out []MemmapEntry
	add := func(start, end uint64, typ uint32) {
		if start >= end {
			return
		}
		if n := len(out); n > 0 && out[n-1].Type == typ && out[n-1].Addr+out[n-1].Size == start {
			out[n-1].Size += end - start
			return
		}
		out = append(out, MemmapEntry{Addr: start, Size: end - start, Type: typ})
	}
	for _, r := range ranges {
		start, end := r.Start, r.Start+r.Size
		add(start, min(end, memory.EBDAStart), MemmapRAM)
		add(max(start, memory.EBDAStart), min(end, memory.HighMemStart), MemmapReserved)
		add(max(start, memory.HighMemStart), end, MemmapRAM)
	}
	return out
}

// LoadPVH copies img's segments from image into guest RAM and writes the PVH
// boot structures: hvm_start_info (version 1) at memory.StartInfoAddr, the
// memmap at memory.MemmapAddr, the NUL-terminated cmdline at
// memory.CmdlineAddr and the flat GDT at memory.GDTAddr. Every segment must
// lie inside one RAM region and at or above memory.HighMemStart. Nothing is
// written unless all checks pass.
func LoadPVH(mem *memory.Guest, img *PVHImage, image []byte, cmdline string) (*PVHBoot, error) {
	if mem == nil || img == nil {
		return nil, fmt.Errorf("%w: nil guest memory or image", ErrBadImage)
	}
	if len(cmdline)+1 > memory.CmdlineMax {
		return nil, fmt.Errorf("%w: %d bytes plus NUL exceed the %d-byte limit", ErrBadCmdline, len(cmdline), memory.CmdlineMax)
	}
	if i := strings.IndexByte(cmdline, 0); i >= 0 {
		return nil, fmt.Errorf("%w: NUL byte at offset %d", ErrBadCmdline, i)
	}
	if len(img.Segments) == 0 {
		return nil, fmt.Errorf("%w: no segments", ErrBadImage)
	}
	// Re-check what ParsePVH promised: img may have been built or altered by
	// the caller, and image may not be the bytes it was parsed from.
	for i, s := range img.Segments {
		if s.FileSize > s.MemSize {
			return nil, fmt.Errorf("%w: segment %d file size %#x > memory size %#x", ErrBadImage, i, s.FileSize, s.MemSize)
		}
		if _, ok := fileRange(image, s.FileOff, s.FileSize); !ok {
			return nil, fmt.Errorf("%w: segment %d file range %#x+%#x exceeds the %#x-byte image", ErrBadImage, i, s.FileOff, s.FileSize, len(image))
		}
		if s.PAddr < memory.HighMemStart {
			return nil, fmt.Errorf("%w: segment %d at %#x; kernels must load at or above %#x",
				ErrSegmentLowMem, i, s.PAddr, memory.HighMemStart)
		}
		if !mem.Contains(s.PAddr, s.MemSize) {
			return nil, fmt.Errorf("%w: segment %d [%#x, +%#x) is not inside one RAM region (RAM is %#x bytes)",
				ErrSegmentOutsideRAM, i, s.PAddr, s.MemSize, mem.Size())
		}
	}
	for _, a := range []struct {
		what      string
		gpa, size uint64
	}{
		{"GDT", memory.GDTAddr, memory.GDTMax},
		{"start_info", memory.StartInfoAddr, memory.StartInfoSize},
		{"memmap", memory.MemmapAddr, memory.MemmapMax * memory.MemmapEntSize},
		{"cmdline", memory.CmdlineAddr, memory.CmdlineMax},
	} {
		if !mem.Contains(a.gpa, a.size) {
			return nil, fmt.Errorf("%w: %s at [%#x, +%#x)", ErrNoLowRAM, a.what, a.gpa, a.size)
		}
	}
	mm := MemoryMap(mem)
	if len(mm) > memory.MemmapMax {
		return nil, fmt.Errorf("%w: %d entries, room for %d", ErrMemmapTooLarge, len(mm), memory.MemmapMax)
	}

	for i, s := range img.Segments {
		if err := mem.Write(s.PAddr, image[s.FileOff:s.FileOff+s.FileSize]); err != nil {
			return nil, fmt.Errorf("PVH: copying segment %d: %w", i, err)
		}
		if err := mem.Zero(s.PAddr+s.FileSize, s.MemSize-s.FileSize); err != nil {
			return nil, fmt.Errorf("PVH: zeroing segment %d: %w", i, err)
		}
	}
	if err := writeBootStructures(mem, mm, cmdline); err != nil {
		return nil, err
	}
	return &PVHBoot{Entry: img.Entry, StartInfo: memory.StartInfoAddr}, nil
}

func writeBootStructures(mem *memory.Guest, mm []MemmapEntry, cmdline string) error {
	gdt := make([]byte, 0, memory.GDTMax)
	for _, e := range GDTEntries() {
		gdt = binary.LittleEndian.AppendUint64(gdt, e)
	}
	if err := mem.Write(memory.GDTAddr, gdt); err != nil {
		return fmt.Errorf("PVH: writing GDT: %w", err)
	}

	// Build start_info and memmap in host buffers, then copy each in one
	// write; stale bytes from a previous boot are cleared by the padding.
	var si [memory.StartInfoSize]byte
	binary.LittleEndian.PutUint32(si[siMagic:], StartInfoMagic)
	binary.LittleEndian.PutUint32(si[siVersion:], StartInfoVersion)
	binary.LittleEndian.PutUint32(si[siFlags:], 0)
	binary.LittleEndian.PutUint32(si[siNrModules:], 0)
	binary.LittleEndian.PutUint64(si[siModlistPaddr:], 0)
	binary.LittleEndian.PutUint64(si[siCmdlinePaddr:], memory.CmdlineAddr)
	binary.LittleEndian.PutUint64(si[siRsdpPaddr:], 0)
	binary.LittleEndian.PutUint64(si[siMemmapPaddr:], memory.MemmapAddr)
	binary.LittleEndian.PutUint32(si[siMemmapEntries:], uint32(len(mm)))
	binary.LittleEndian.PutUint32(si[siReserved:], 0)
	if err := mem.Write(memory.StartInfoAddr, si[:]); err != nil {
		return fmt.Errorf("PVH: writing start_info: %w", err)
	}
	table := make([]byte, memory.MemmapMax*memory.MemmapEntSize)
	for i, e := range mm {
		b := table[i*memory.MemmapEntSize:]
		binary.LittleEndian.PutUint64(b[0:], e.Addr)
		binary.LittleEndian.PutUint64(b[8:], e.Size)
		binary.LittleEndian.PutUint32(b[16:], e.Type)
	}
	if err := mem.Write(memory.MemmapAddr, table); err != nil {
		return fmt.Errorf("PVH: writing memmap: %w", err)
	}

	cl := make([]byte, memory.CmdlineMax) // NUL-terminated and NUL-padded
	copy(cl, cmdline)
	if err := mem.Write(memory.CmdlineAddr, cl); err != nil {
		return fmt.Errorf("PVH: writing cmdline: %w", err)
	}
	return nil
}
