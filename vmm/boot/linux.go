package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/govmm/govmm/memory"
)

// This file implements the loader side of the Linux 64-bit boot protocol
// (Documentation/arch/x86/boot.rst, "64-bit Boot Protocol"): a zero page
// (struct boot_params) holding the kernel's setup header, the command line,
// the initrd and an e820 map, identity-mapping page tables, and a GDT with
// __BOOT_CS/__BOOT_DS. The real-mode setup code is never run.

// Sentinel errors of LoadLinux (besides those of ParseBzImage, parseELF
// and the shared ErrNoLowRAM and ErrMemmapTooLarge).
var (
	ErrUnknownKernel  = errors.New("boot: kernel is neither a bzImage nor an ELF image")
	ErrKernelTooBig   = errors.New("boot: kernel does not fit in guest RAM")
	ErrKernelLowMem   = errors.New("boot: kernel would load below 1 MiB, over the boot structures")
	ErrInitrdTooLarge = errors.New("boot: initrd does not fit in guest RAM")
	ErrCmdlineTooLong = errors.New("boot: kernel command line too long")
	ErrCmdlineNUL     = errors.New("boot: NUL byte in kernel command line")
)

// Offsets in struct boot_params (the zero page) outside the setup header,
// from Documentation/arch/x86/zero-page.rst and
// arch/x86/include/uapi/asm/bootparam.h.
const (
	ZeroPageSize       = 0x1000 // sizeof(struct boot_params)
	zpAcpiRsdpAddr     = 0x070  // u64 acpi_rsdp_addr
	zpExtRamdiskImage  = 0x0c0  // u32 ext_ramdisk_image: ramdisk_image high 32 bits
	zpExtRamdiskSize   = 0x0c4  // u32 ext_ramdisk_size
	zpExtCmdLinePtr    = 0x0c8  // u32 ext_cmd_line_ptr
	zpE820Entries      = 0x1e8  // u8 e820_entries
	zpSentinel         = 0x1ef  // u8 sentinel: must stay 0 (header.S has 0xff there)
	zpE820Table        = 0x2d0  // struct boot_e820_entry e820_table[128]
	E820MaxEntries     = 128    // E820_MAX_ENTRIES_ZEROPAGE
	e820EntrySize      = 20     // struct boot_e820_entry: u64 addr, u64 size, u32 type (packed)
	typeOfLoaderUndef  = 0xff   // "0xFF = undefined": govmm has no assigned loader ID
	vidModeNormal      = 0xffff // "normal" video mode
	syntheticProtocol  = 0x020f // the protocol the synthetic header claims (2.15)
	syntheticInitrdMax = 0x7fff_ffff
	// syntheticAlignment is what Linux's header.S reports on x86-64
	// (CONFIG_PHYSICAL_ALIGN's default); informational for an ELF kernel.
	syntheticAlignment = 0x20_0000
)

// The e820 table fits in the zero page before eddbuf (0xd00).
var _ = [1]struct{}{}[0xd00-zpE820Table-E820MaxEntries*e820EntrySize-0x30]

// LinuxBoot is where the vCPU must start for the 64-bit boot protocol:
// long mode with paging (CR3 = PML4), RIP = Entry, RSI = ZeroPage, CS =
// SelectorCode64 and DS/ES/SS (and FS/GS) = SelectorData64 decoded from GDT
// with SegmentFromGDT, TR = SelectorTSS64, GDTR = {GDTBase, GDTLimit},
// interrupts disabled.
type LinuxBoot struct {
	Entry    uint64 // RIP: bzImage load address + 0x200, or an ELF64's e_entry
	ZeroPage uint64 // RSI: memory.ZeroPageAddr
	PML4     uint64 // CR3: memory.PML4Addr
	GDT      []uint64
	GDTBase  uint64 // memory.GDTAddr
	GDTLimit uint16 // GDTLimit64

	Kind       KernelKind // KindBzImage or KindELF64
	LoadAddr   uint64     // start of the kernel in guest RAM
	KernelEnd  uint64     // end of the RAM reserved for it (LoadAddr + init_size for a bzImage)
	InitrdAddr uint64     // 0 if no initrd
	InitrdSize uint64
}

// chunk is file bytes copied to gpa followed by zero bytes of zeroes.
type chunk struct {
	gpa  uint64
	data []byte
	zero uint64
}

// linuxPlan is everything LoadLinux writes, decided before anything is.
type linuxPlan struct {
	kind        KernelKind
	chunks      []chunk
	header      []byte // setup header, placed at zero-page offset 0x1f1
	start, end  uint64 // kernel footprint in RAM
	entry       uint64
	cmdlineSize uint64 // the kernel's cmdline_size
	initrdMax   uint64 // initrd_addr_max: highest byte the initrd may occupy
}

// LoadLinux loads a bzImage, or an ELF64 vmlinux without using its PVH
// note, for the 64-bit boot protocol: the kernel, the initrd (if non-empty)
// high in low RAM, the zero page at memory.ZeroPageAddr, the command line at
// memory.CmdlineAddr, the identity page tables at memory.PML4Addr and the
// GDTEntries64 GDT at memory.GDTAddr. Nothing is written unless every check
// passes. Choose between this and LoadPVH with DetectKernel.
//
// A bzImage is placed where its decompressor will run anyway: the 64-bit
// entry of a relocatable kernel runs at max(align_up(load address,
// kernel_alignment), LOAD_PHYSICAL_ADDR), and pref_address is
// LOAD_PHYSICAL_ADDR, so loading lower saves no RAM. It is loaded at
// align_up(max(pref_address, 1 MiB), kernel_alignment) if relocatable, at
// pref_address otherwise, and init_size bytes from there must be RAM.
// The rest of the init_size area is not cleared: the decompressor clears
// its own bss, and a fresh guest's RAM is zero anyway.
func LoadLinux(mem *memory.Guest, kernel []byte, initrd []byte, cmdline string) (*LinuxBoot, error) {
	if mem == nil {
		return nil, fmt.Errorf("%w: nil guest memory", ErrNoLowRAM)
	}
	var p *linuxPlan
	var err error
	switch k := DetectKernel(kernel); k {
	case KindBzImage:
		p, err = planBzImage(mem, kernel)
	case KindELF64, KindPVH:
		// An ELF with a PVH note can take the 64-bit entry too, if the
		// caller asks; planELF64 rejects ELF32.
		p, err = planELF64(mem, kernel)
	default:
		n := min(len(kernel), 4)
		return nil, fmt.Errorf("%w: %d bytes starting % x", ErrUnknownKernel, len(kernel), kernel[:n])
	}
	if err != nil {
		return nil, err
	}

	limit := min(p.cmdlineSize, memory.CmdlineMax-1)
	if uint64(len(cmdline)) > limit {
		return nil, fmt.Errorf("%w: %d bytes, but the limit is %d (kernel cmdline_size %d, govmm buffer %d including the NUL)",
			ErrCmdlineTooLong, len(cmdline), limit, p.cmdlineSize, memory.CmdlineMax)
	}
	if i := strings.IndexByte(cmdline, 0); i >= 0 {
		return nil, fmt.Errorf("%w: at offset %d", ErrCmdlineNUL, i)
	}
	for _, a := range []struct {
		what      string
		gpa, size uint64
	}{
		{"GDT", memory.GDTAddr, memory.GDTMax},
		{"zero page", memory.ZeroPageAddr, ZeroPageSize},
		{"page tables", memory.PML4Addr, memory.PageTablesEnd - memory.PML4Addr},
		{"cmdline", memory.CmdlineAddr, memory.CmdlineMax},
	} {
		if !mem.Contains(a.gpa, a.size) {
			return nil, fmt.Errorf("%w: %s at [%#x, +%#x)", ErrNoLowRAM, a.what, a.gpa, a.size)
		}
	}
	mm := MemoryMap(mem)
	if len(mm) > E820MaxEntries {
		return nil, fmt.Errorf("%w: e820 needs %d entries, the zero page has room for %d", ErrMemmapTooLarge, len(mm), E820MaxEntries)
	}
	var initrdAddr uint64
	if len(initrd) > 0 {
		if initrdAddr, err = placeInitrd(mem, p, uint64(len(initrd))); err != nil {
			return nil, err
		}
	}

	for _, c := range p.chunks {
		if err := mem.Write(c.gpa, c.data); err != nil {
			return nil, fmt.Errorf("boot: copying the kernel to %#x: %w", c.gpa, err)
		}
		if err := mem.Zero(c.gpa+uint64(len(c.data)), c.zero); err != nil {
			return nil, fmt.Errorf("boot: zeroing kernel bss at %#x: %w", c.gpa+uint64(len(c.data)), err)
		}
	}
	if len(initrd) > 0 {
		if err := mem.Write(initrdAddr, initrd); err != nil {
			return nil, fmt.Errorf("boot: copying the initrd to %#x: %w", initrdAddr, err)
		}
	}
	zp := buildZeroPage(p, mm, initrdAddr, uint64(len(initrd)))
	if err := mem.Write(memory.ZeroPageAddr, zp); err != nil {
		return nil, fmt.Errorf("boot: writing the zero page: %w", err)
	}
	cl := make([]byte, memory.CmdlineMax) // NUL-terminated and NUL-padded
	copy(cl, cmdline)
	if err := mem.Write(memory.CmdlineAddr, cl); err != nil {
		return nil, fmt.Errorf("boot: writing the cmdline: %w", err)
	}
	gdt := GDTEntries64()
	buf := make([]byte, 0, memory.GDTMax)
	for _, e := range gdt {
		buf = binary.LittleEndian.AppendUint64(buf, e)
	}
	if err := mem.Write(memory.GDTAddr, buf); err != nil {
		return nil, fmt.Errorf("boot: writing the GDT: %w", err)
	}
	if err := WriteIdentityPageTables(mem); err != nil {
		return nil, err
	}
	lb := &LinuxBoot{
		Entry: p.entry, ZeroPage: memory.ZeroPageAddr, PML4: memory.PML4Addr,
		GDT: gdt, GDTBase: memory.GDTAddr, GDTLimit: GDTLimit64,
		Kind: p.kind, LoadAddr: p.start, KernelEnd: p.end,
	}
	if len(initrd) > 0 {
		lb.InitrdAddr, lb.InitrdSize = initrdAddr, uint64(len(initrd))
	}
	return lb, nil
}

// The GDT must fit the area the address plan reserves for it.
var _ = [1]struct{}{}[memory.GDTMax-(GDTLimit64+1)]

func planBzImage(mem *memory.Guest, kernel []byte) (*linuxPlan, error) {
	b, err := ParseBzImage(kernel)
	if err != nil {
		return nil, err
	}
	load := b.PrefAddress
	if b.Relocatable {
		// Below 1 MiB would cover the boot structures; the kernel
		// realigns itself upward anyway.
		load = max(load, memory.HighMemStart)
		if load > IdentityMapEnd {
			return nil, fmt.Errorf("%w: pref_address %#x is above the 4 GiB identity map", ErrKernelTooBig, b.PrefAddress)
		}
		a := uint64(b.KernelAlignment)   // power of two <= 1 GiB (ParseBzImage)
		load = (load + a - 1) &^ (a - 1) // < 2^33: no overflow
	} else if load < memory.HighMemStart {
		return nil, fmt.Errorf("%w: non-relocatable kernel with pref_address %#x", ErrKernelLowMem, load)
	}
	if load > IdentityMapEnd || b.InitSize > IdentityMapEnd-load {
		return nil, fmt.Errorf("%w: init_size %#x bytes from %#x end above the 4 GiB identity map",
			ErrKernelTooBig, b.InitSize, load)
	}
	if !mem.Contains(load, b.InitSize) {
		return nil, fmt.Errorf("%w: the kernel needs init_size %#x bytes of RAM at [%#x, %#x); guest RAM is %#x bytes",
			ErrKernelTooBig, b.InitSize, load, load+b.InitSize, mem.Size())
	}
	return &linuxPlan{
		kind:        KindBzImage,
		chunks:      []chunk{{gpa: load, data: kernel[b.PayloadOff : b.PayloadOff+b.PayloadSize]}},
		header:      b.Header,
		start:       load,
		end:         load + b.InitSize,
		entry:       load + entry64Offset,
		cmdlineSize: uint64(b.CmdlineSize),
		initrdMax:   uint64(b.InitrdAddrMax),
	}, nil
}

// planELF64 places an ELF64 vmlinux's segments at their physical addresses
// and enters at e_entry, which for vmlinux is the physical address of
// startup_64 (arch/x86/kernel/vmlinux.lds.S: ENTRY(phys_startup_64)).
func planELF64(mem *memory.Guest, kernel []byte) (*linuxPlan, error) {
	e, err := parseELF(kernel)
	if err != nil {
		return nil, err
	}
	if !e.h.is64 {
		return nil, fmt.Errorf("%w: ELFCLASS32 kernels have no 64-bit entry; boot them with PVH", ErrBadClass)
	}
	if !inFileData(e.segs, e.h.entry) {
		return nil, fmt.Errorf("%w: e_entry %#x is not a physical address inside the file data of any PT_LOAD segment",
			ErrBadEntry, e.h.entry)
	}
	p := &linuxPlan{kind: KindELF64, entry: e.h.entry, cmdlineSize: memory.CmdlineMax - 1, initrdMax: syntheticInitrdMax}
	for i, s := range e.segs {
		if s.PAddr < memory.HighMemStart {
			return nil, fmt.Errorf("%w: segment %d at %#x", ErrKernelLowMem, i, s.PAddr)
		}
		if !mem.Contains(s.PAddr, s.MemSize) {
			return nil, fmt.Errorf("%w: segment %d [%#x, +%#x) is not inside one RAM region (RAM is %#x bytes)",
				ErrKernelTooBig, i, s.PAddr, s.MemSize, mem.Size())
		}
		p.chunks = append(p.chunks, chunk{gpa: s.PAddr, data: kernel[s.FileOff : s.FileOff+s.FileSize], zero: s.MemSize - s.FileSize})
	}
	// parseELF sorts the segments and guarantees they do not overlap and
	// end at or below 4 GiB, so the span fits a u32 init_size.
	last := e.segs[len(e.segs)-1]
	p.start, p.end = e.segs[0].PAddr, last.PAddr+last.MemSize
	p.header = syntheticSetupHeader(p.start, p.end-p.start)
	return p, nil
}

// syntheticSetupHeader is the setup header a vmlinux would have had as a
// bzImage (bytes 0x1f1 up to 0x26c, the end of protocol 2.15's header), for
// kernels that read boot_params.hdr: the magic numbers, protocol 2.15,
// LOADED_HIGH, XLF_KERNEL_64, and govmm's cmdline and initrd limits.
func syntheticSetupHeader(start, size uint64) []byte {
	const end = offKernelInfo + 4
	h := make([]byte, end-hdrStart)
	at := func(off int) []byte { return h[off-hdrStart:] }
	le.PutUint16(at(offBootFlag), bootFlagMagic)
	at(offJump)[0], at(offJump)[1] = jumpOpcode, byte(end-offHeader)
	le.PutUint32(at(offHeader), hdrSMagic)
	le.PutUint16(at(offVersion), syntheticProtocol)
	at(offLoadflags)[0] = LoadedHigh
	le.PutUint32(at(offInitrdAddrMax), syntheticInitrdMax)
	le.PutUint32(at(offKernelAlign), syntheticAlignment)
	le.PutUint16(at(offXLoadflags), XLFKernel64)
	le.PutUint32(at(offCmdlineSize), memory.CmdlineMax-1)
	le.PutUint64(at(offPrefAddress), start)
	le.PutUint32(at(offInitSize), uint32(size))
	return h
}

// placeInitrd puts an initrd of size bytes page-aligned as high as possible
// in the RAM region holding the end of the kernel, below initrd_addr_max
// and above the kernel's footprint (boot.rst: "an initrd should be placed
// near end of memory"). It stays below 4 GiB even when the kernel could
// take it higher (XLF_CAN_BE_LOADED_ABOVE_4G): low RAM is identity-mapped
// and that keeps ext_ramdisk_* zero.
func placeInitrd(mem *memory.Guest, p *linuxPlan, size uint64) (uint64, error) {
	var regionEnd uint64
	for _, r := range mem.Regions() {
		if p.end-1 >= r.GPA && p.end-1-r.GPA < r.Size {
			regionEnd = r.GPA + r.Size
		}
	}
	top := min(regionEnd, p.initrdMax+1, memory.MMIOHoleStart) // initrd_addr_max is the highest usable byte
	bottom := (p.end + memory.PageSize - 1) &^ (memory.PageSize - 1)
	if top < bottom || size > top-bottom || (top-size)&^(memory.PageSize-1) < bottom {
		return 0, fmt.Errorf("%w: initrd of %d bytes does not fit in RAM between the kernel's end %#x and %#x "+
			"(initrd_addr_max %#x, RAM region end %#x)", ErrInitrdTooLarge, size, bottom, top, p.initrdMax, regionEnd)
	}
	return (top - size) &^ (memory.PageSize - 1), nil
}

// buildZeroPage returns struct boot_params: all zero (boot.rst: "initialized
// to all zero") except the kernel's setup header at 0x1f1 with the fields a
// boot loader writes, and the e820 table. sentinel (0x1ef) stays 0 because
// only the header is copied.
func buildZeroPage(p *linuxPlan, mm []MemmapEntry, initrdAddr, initrdSize uint64) []byte {
	zp := make([]byte, ZeroPageSize)
	copy(zp[hdrStart:], p.header)
	le.PutUint16(zp[offVidMode:], vidModeNormal)
	zp[offTypeOfLoader] = typeOfLoaderUndef
	// LOADED_HIGH is all we keep: QUIET_FLAG would hide early messages,
	// KEEP_SEGMENTS is obsolete, KASLR_FLAG is the kernel's own, and
	// CAN_USE_HEAP only matters to the real-mode setup code (heap_end_ptr),
	// which the 64-bit entry skips.
	zp[offLoadflags] = LoadedHigh
	le.PutUint32(zp[offCode32Start:], uint32(p.start)) // "must set ... to point to the loaded code"
	le.PutUint16(zp[offHeapEndPtr:], 0)
	zp[offExtLoaderVer], zp[offExtLoaderType] = 0, 0
	le.PutUint32(zp[offRamdiskImage:], uint32(initrdAddr))
	le.PutUint32(zp[offRamdiskSize:], uint32(initrdSize))
	le.PutUint32(zp[zpExtRamdiskImage:], uint32(initrdAddr>>32))
	le.PutUint32(zp[zpExtRamdiskSize:], uint32(initrdSize>>32))
	le.PutUint32(zp[offCmdLinePtr:], uint32(memory.CmdlineAddr))
	le.PutUint32(zp[zpExtCmdLinePtr:], uint32(uint64(memory.CmdlineAddr)>>32))
	// A hostile image must not hand the kernel a setup_data list or a
	// foreign subarchitecture: both are the boot loader's to write.
	le.PutUint32(zp[offHardwareSub:], 0) // X86_SUBARCH_PC
	le.PutUint64(zp[offHardwareSubDat:], 0)
	le.PutUint64(zp[offSetupData:], 0)
	le.PutUint64(zp[zpAcpiRsdpAddr:], 0) // no ACPI: the kernel finds the MP table instead

	zp[zpE820Entries] = uint8(len(mm)) // <= E820MaxEntries, checked by the caller
	for i, e := range mm {
		b := zp[zpE820Table+i*e820EntrySize:]
		le.PutUint64(b[0:], e.Addr)
		le.PutUint64(b[8:], e.Size)
		le.PutUint32(b[16:], e.Type) // MemmapRAM/MemmapReserved == E820_TYPE_RAM/E820_TYPE_RESERVED
	}
	return zp
}
