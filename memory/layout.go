// Package memory owns guest RAM: the guest-physical address plan, the host
// mappings that back RAM, and every bounds-checked access to it.
//
// Guest data is hostile. Every address and length that reaches this package may
// come from the guest, so every access is checked against the region table with
// overflow-safe arithmetic and fails with an error wrapping ErrOutOfRange
// instead of touching host memory outside guest RAM.
package memory

import (
	"errors"
	"fmt"
)

// The guest-physical address plan (x86-64). This table is THE plan: any new
// fixed address belongs here, next to its neighbours, so overlaps are visible.
//
//	start          end (excl.)    what
//	-------------  -------------  ------------------------------------------------
//	0x0000_0000    0x0000_0500    real-mode IVT + BIOS data area (left zero; RAM)
//	0x0000_0500    0x0000_0530    GDTAddr: boot GDT, up to 6 x 8 bytes (vmm/boot;
//	                              PVH uses 4, 64-bit Linux entry 6: 16-byte TSS)
//	0x0000_6000    0x0000_6038    StartInfoAddr: PVH struct hvm_start_info (56 B)
//	0x0000_6040    0x0000_6C40    MemmapAddr: PVH memmap, MemmapMax x 24 B
//	0x0000_7000    0x0000_8000    ZeroPageAddr: Linux boot_params (later)
//	0x0000_9000    0x0000_F000    PML4Addr: boot page tables: PML4, PDPT, 4 x PD
//	                              (identity map of the first 4 GiB, 2 MiB pages)
//	0x0002_0000    0x0003_0000    CmdlineAddr: kernel command line, CmdlineMax B
//	0x0009_FC00    0x0010_0000    EBDAStart: EBDA + VGA + BIOS ROM (memmap: reserved)
//	  0x0009_FC00  +MPTableMax      MPTableAddr: MP floating pointer + config table
//	                              (Linux scans [639 KiB, 640 KiB) for the pointer)
//	  0x000E_0000  +ACPIMax         ACPIAddr: ACPI RSDP, then RSDT/XSDT/FADT/DSDT/MADT
//	                              (Linux scans [0xE0000, 1 MiB) for the RSDP)
//	0x0010_0000    MMIOHoleStart  HighMemStart: kernel image and the rest of low RAM
//	0xC000_0000    0x1_0000_0000  MMIO hole (never RAM; KVM exits on access):
//	  0xD000_0000  +n x 4 KiB       VirtioMMIOBase: virtio-mmio windows, upward
//	  0xFEC0_0000  +4 KiB           IOAPICBase
//	  0xFEE0_0000  +4 KiB           LAPICBase
//	  0xFFFB_C000  +4 KiB           IdentityMapAddr: KVM_SET_IDENTITY_MAP_ADDR
//	  0xFFFB_D000  +12 KiB          TSSAddr: KVM_SET_TSS_ADDR (3 pages)
//	0x1_0000_0000  ...            HighRAMStart: RAM beyond MMIOHoleStart bytes
//
// Everything below HighMemStart is reserved for boot structures and legacy
// areas, so a kernel image must load at or above it. The identity-map and TSS
// pages sit in the hole (as in QEMU) so that they can never alias guest RAM.
const (
	PageSize = 0x1000
	// HugePageSize is the size of the huge pages used with Options.HugePages.
	HugePageSize = 0x20_0000

	MMIOHoleStart = 0xC000_0000   // 3 GiB: 32-bit MMIO hole [3 GiB, 4 GiB)
	MMIOHoleEnd   = 0x1_0000_0000 // exclusive
	HighRAMStart  = 0x1_0000_0000 // RAM above MMIOHoleStart continues here

	VirtioMMIOBase  = 0xD000_0000 // 4 KiB virtio-mmio windows, allocated upward
	VirtioMMIOSize  = 0x1000      // one window
	IOAPICBase      = 0xFEC0_0000
	IOAPICSize      = 0x1000
	LAPICBase       = 0xFEE0_0000
	LAPICSize       = 0x1000
	IdentityMapAddr = 0xFFFB_C000 // KVM_SET_IDENTITY_MAP_ADDR: one page
	TSSAddr         = 0xFFFB_D000 // KVM_SET_TSS_ADDR: three pages
	TSSSize         = 3 * PageSize

	GDTAddr       = 0x500
	GDTMax        = 0x30 // bytes reserved for the boot GDT (6 descriptor slots)
	StartInfoAddr = 0x6000
	StartInfoSize = 56
	MemmapAddr    = 0x6040
	MemmapMax     = 128 // entries
	MemmapEntSize = 24  // sizeof(struct hvm_memmap_table_entry)
	ZeroPageAddr  = 0x7000
	PML4Addr      = 0x9000
	PageTablesEnd = 0xF000 // exclusive end of the page-table area (6 pages)
	CmdlineAddr   = 0x2_0000
	CmdlineMax    = 0x1_0000 // bytes including the terminating NUL
	EBDAStart     = 0x9_FC00 // [EBDAStart, HighMemStart) is reserved legacy area
	MPTableAddr   = 0x9_FC00 // MP floating pointer, then the MP config table
	MPTableMax    = 0x4000   // bytes reserved for both (254 CPUs fit easily)
	ACPIAddr      = 0xE_0000 // ACPI RSDP (16-byte aligned) and the tables behind it
	ACPIMax       = 0x1_0000 // bytes reserved for the ACPI tables: [ACPIAddr, 0xF0000)
	HighMemStart  = 0x10_0000

	// MaxRAM bounds RAMRanges: more than this is a configuration mistake, and
	// the bound keeps every derived address far from uint64 overflow.
	MaxRAM = 1 << 40
)

// Range is a half-open guest-physical range [Start, Start+Size).
// Invariant (upheld by every constructor in this package): Start+Size does
// not overflow uint64.
type Range struct{ Start, Size uint64 }

// End returns the exclusive end of r.
func (r Range) End() uint64 { return r.Start + r.Size }

// ErrBadSize reports a RAM size that is zero, misaligned or absurd.
var ErrBadSize = errors.New("invalid guest RAM size")

// RAMRanges splits size bytes of guest RAM around the MMIO hole: low RAM
// [0, min(size, MMIOHoleStart)) and, if anything is left, high RAM starting
// at HighRAMStart. The ranges are sorted by Start.
func RAMRanges(size uint64) ([]Range, error) {
	switch {
	case size == 0:
		return nil, fmt.Errorf("%w: size is 0", ErrBadSize)
	case size%PageSize != 0:
		return nil, fmt.Errorf("%w: %#x is not a multiple of the page size %#x", ErrBadSize, size, PageSize)
	case size > MaxRAM:
		return nil, fmt.Errorf("%w: %#x exceeds the maximum %#x", ErrBadSize, size, uint64(MaxRAM))
	}
	if size <= MMIOHoleStart {
		return []Range{{Start: 0, Size: size}}, nil
	}
	return []Range{
		{Start: 0, Size: MMIOHoleStart},
		{Start: HighRAMStart, Size: size - MMIOHoleStart},
	}, nil
}
