package boot

import (
	"errors"
	"fmt"
)

// This file parses the bzImage format of the Linux x86 boot protocol
// (Documentation/arch/x86/boot.rst, "THE REAL-MODE KERNEL HEADER"). Only
// what the 64-bit boot protocol needs is read: govmm never runs the
// real-mode setup code, it copies the setup header into the zero page and
// jumps to the protected-mode kernel's 64-bit entry point.

// Sentinel errors of ParseBzImage. Each returned error wraps exactly one of
// them and says in its text what precisely was wrong.
var (
	ErrNotBzImage       = errors.New("bzImage: not a bzImage (no 0xAA55 boot flag or \"HdrS\" header)")
	ErrProtocolTooOld   = errors.New("bzImage: boot protocol too old")
	ErrBadSetupHeader   = errors.New("bzImage: malformed setup header")
	ErrSetupPastEOF     = errors.New("bzImage: setup_sects past the file end")
	ErrTruncatedPayload = errors.New("bzImage: truncated payload")
	ErrNot64Bit         = errors.New("bzImage: kernel has no 64-bit entry point (XLF_KERNEL_64 clear)")
	ErrNotLoadedHigh    = errors.New("bzImage: kernel does not load high (LOADED_HIGH clear)")
)

// Offsets in the kernel image (and, identically, in struct boot_params,
// whose struct setup_header hdr sits at 0x1f1) of the setup header fields
// used here. Source: the header table in boot.rst and struct setup_header
// in arch/x86/include/uapi/asm/bootparam.h.
const (
	hdrStart          = 0x1f1 // setup_sects: first byte of struct setup_header
	offSetupSects     = 0x1f1 // u8, ALL; 0 means 4
	offRootFlags      = 0x1f2 // u16
	offSyssize        = 0x1f4 // u32, 2.04+: protected-mode size in 16-byte paragraphs
	offVidMode        = 0x1fa // u16, modify (obligatory)
	offRootDev        = 0x1fc // u16
	offBootFlag       = 0x1fe // u16, 0xAA55
	offJump           = 0x200 // u8 0xEB, then s8 offset relative to 0x202
	offHeader         = 0x202 // u32, "HdrS"
	offVersion        = 0x206 // u16, (major << 8) | minor
	offTypeOfLoader   = 0x210 // u8, write (obligatory)
	offLoadflags      = 0x211 // u8, modify (obligatory)
	offCode32Start    = 0x214 // u32, modify (reloc)
	offRamdiskImage   = 0x218 // u32, write
	offRamdiskSize    = 0x21c // u32, write
	offHeapEndPtr     = 0x224 // u16, 2.01+
	offExtLoaderVer   = 0x226 // u8, 2.02+
	offExtLoaderType  = 0x227 // u8, 2.02+
	offCmdLinePtr     = 0x228 // u32, 2.02+
	offInitrdAddrMax  = 0x22c // u32, 2.03+: highest byte address the initrd may use
	offKernelAlign    = 0x230 // u32, 2.05+
	offRelocatable    = 0x234 // u8, 2.05+
	offMinAlignment   = 0x235 // u8, 2.10+
	offXLoadflags     = 0x236 // u16, 2.12+
	offCmdlineSize    = 0x238 // u32, 2.06+: max cmdline length without the NUL
	offHardwareSub    = 0x23c // u32, 2.07+
	offHardwareSubDat = 0x240 // u64, 2.07+
	offSetupData      = 0x250 // u64, 2.09+
	offPrefAddress    = 0x258 // u64, 2.10+
	offInitSize       = 0x260 // u32, 2.10+
	offKernelInfo     = 0x268 // u32, 2.15+
	// hdrMinEnd is the end of init_size, the last field LoadLinux reads or
	// writes; a header shorter than that cannot be used.
	hdrMinEnd = 0x264
	// hdrMaxEnd: struct boot_params pads the header to 0x290, where
	// edd_mbr_sig_buffer starts. The s8 jump offset bounds the end to
	// 0x202+0x7f anyway; the check keeps the invariant local.
	hdrMaxEnd = 0x290
)

// Values from boot.rst and bootparam.h.
const (
	bootFlagMagic = 0xaa55
	hdrSMagic     = 0x53726448 // "HdrS" read little-endian
	jumpOpcode    = 0xeb       // short jmp over the header

	// loadflags bits (bootparam.h).
	LoadedHigh = 1 << 0 // LOADED_HIGH: protected-mode code loads at 0x100000
	KASLRFlag  = 1 << 1 // KASLR_FLAG: kernel internal
	QuietFlag  = 1 << 5 // QUIET_FLAG
	CanUseHeap = 1 << 7 // CAN_USE_HEAP: heap_end_ptr is valid

	// xloadflags bits (bootparam.h).
	XLFKernel64           = 1 << 0 // XLF_KERNEL_64: 64-bit entry at load address + 0x200
	XLFCanBeLoadedAbove4G = 1 << 1 // XLF_CAN_BE_LOADED_ABOVE_4G
	XLFEFIHandover32      = 1 << 2
	XLFEFIHandover64      = 1 << 3
	XLFEFIKexec           = 1 << 4
	minProtocol           = 0x0206 // cmdline_size appears in 2.06
	xloadflagsProtocol    = 0x020c // xloadflags (and so XLF_KERNEL_64) appear in 2.12
	sectorSize            = 512
	defaultSetupSects     = 4     // "if this field is 0, the real value is 4"
	entry64Offset         = 0x200 // 64-bit entry: start of the loaded kernel + 0x200
	// maxKernelAlignment bounds kernel_alignment. Real kernels use 2 MiB
	// (CONFIG_PHYSICAL_ALIGN, at most 16 MiB); 1 GiB is far above that
	// and keeps the alignment arithmetic far from overflow.
	maxKernelAlignment = 1 << 30
)

// BzImage is a parsed bzImage. The image is not retained; PayloadOff and
// PayloadSize locate the protected-mode kernel inside it.
type BzImage struct {
	Version     uint16 // boot protocol, e.g. 0x020f for 2.15
	SetupSects  uint8  // effective setup_sects (0 in the file reads as 4)
	SetupSize   uint64 // (SetupSects+1)*512: boot sector + real-mode setup
	PayloadOff  uint64 // == SetupSize
	PayloadSize uint64 // syssize*16
	// Header is a copy of the raw setup header, image[0x1f1 : 0x202+s8(image[0x201])],
	// for copying into the zero page at the same offset.
	Header          []byte
	PrefAddress     uint64
	InitSize        uint64 // u32 in the file; widened so sums cannot overflow
	CmdlineSize     uint32
	InitrdAddrMax   uint32
	KernelAlignment uint32
	Relocatable     bool
	MinAlignment    uint8
	LoadFlags       uint8
	XLoadFlags      uint16
}

// HeaderEnd is the image (and zero page) offset one past the setup header.
func (b *BzImage) HeaderEnd() uint64 { return hdrStart + uint64(len(b.Header)) }

// isBzImage reports whether image carries the boot flag and "HdrS" magic.
func isBzImage(image []byte) bool {
	return len(image) >= offHeader+4 &&
		le.Uint16(image[offBootFlag:]) == bootFlagMagic &&
		le.Uint32(image[offHeader:]) == hdrSMagic
}

// ParseBzImage parses the setup header of a bzImage without touching guest
// memory and checks that govmm can boot it through the 64-bit boot
// protocol: protocol 2.12 or later (2.06 is the oldest recognised at all),
// XLF_KERNEL_64 and LOADED_HIGH set, and every size inside the file.
func ParseBzImage(image []byte) (*BzImage, error) {
	n := uint64(len(image))
	if n < offHeader+4 {
		return nil, fmt.Errorf("%w: %d bytes, too short to hold the setup header magic at %#x", ErrNotBzImage, n, offHeader)
	}
	if f := le.Uint16(image[offBootFlag:]); f != bootFlagMagic {
		return nil, fmt.Errorf("%w: boot_flag at %#x is %#04x, want %#04x", ErrNotBzImage, offBootFlag, f, bootFlagMagic)
	}
	if m := le.Uint32(image[offHeader:]); m != hdrSMagic {
		return nil, fmt.Errorf("%w: header at %#x is %q, want \"HdrS\"", ErrNotBzImage, offHeader, image[offHeader:offHeader+4])
	}
	if n < offVersion+2 {
		return nil, fmt.Errorf("%w: %d bytes end inside the version field at %#x", ErrBadSetupHeader, n, offVersion)
	}
	b := &BzImage{Version: le.Uint16(image[offVersion:])}
	if b.Version < minProtocol {
		return nil, fmt.Errorf("%w: protocol %s, need at least %s", ErrProtocolTooOld, protoString(b.Version), protoString(minProtocol))
	}
	if op := image[offJump]; op != jumpOpcode {
		return nil, fmt.Errorf("%w: byte at %#x is %#02x, want the short jmp opcode %#02x that gives the header length",
			ErrBadSetupHeader, offJump, op, jumpOpcode)
	}
	// The jump's displacement is signed (boot.rst: "0xEB followed by a
	// signed offset relative to byte 0x202"); a negative one is malformed.
	disp := int64(int8(image[offJump+1]))
	end := int64(offHeader) + disp
	if end < hdrMinEnd || end > hdrMaxEnd {
		return nil, fmt.Errorf("%w: header ends at %#x (jump offset %d), want it to cover init_size (end %#x) and stay below %#x",
			ErrBadSetupHeader, end, disp, hdrMinEnd, hdrMaxEnd)
	}
	hdrEnd := uint64(end)
	if hdrEnd > n {
		return nil, fmt.Errorf("%w: header ends at %#x, past the %#x-byte file", ErrSetupPastEOF, hdrEnd, n)
	}

	b.SetupSects = image[offSetupSects]
	if b.SetupSects == 0 {
		b.SetupSects = defaultSetupSects
	}
	b.SetupSize = (uint64(b.SetupSects) + 1) * sectorSize // at most 256*512
	if b.SetupSize >= n {
		return nil, fmt.Errorf("%w: setup_sects %d means %#x bytes of setup, but the file is %#x bytes",
			ErrSetupPastEOF, b.SetupSects, b.SetupSize, n)
	}
	// SetupSize >= 2*512 > hdrMaxEnd, so the header lies inside the setup.
	b.PayloadOff = b.SetupSize
	syssize := le.Uint32(image[offSyssize:])
	b.PayloadSize = uint64(syssize) * 16 // < 2^36: no overflow
	if b.PayloadSize == 0 {
		return nil, fmt.Errorf("%w: syssize is 0 (no protected-mode kernel)", ErrTruncatedPayload)
	}
	if rest := n - b.SetupSize; b.PayloadSize > rest {
		return nil, fmt.Errorf("%w: syssize %#x (x16 = %#x bytes) exceeds the %#x bytes after the %#x-byte setup",
			ErrTruncatedPayload, syssize, b.PayloadSize, rest, b.SetupSize)
	}
	if b.PayloadSize <= entry64Offset {
		return nil, fmt.Errorf("%w: the %#x-byte payload ends before the 64-bit entry point at offset %#x",
			ErrTruncatedPayload, b.PayloadSize, entry64Offset)
	}

	if b.Version < xloadflagsProtocol {
		return nil, fmt.Errorf("%w: protocol %s predates xloadflags (%s), so the kernel has no 64-bit entry point",
			ErrNot64Bit, protoString(b.Version), protoString(xloadflagsProtocol))
	}
	b.XLoadFlags = le.Uint16(image[offXLoadflags:])
	if b.XLoadFlags&XLFKernel64 == 0 {
		return nil, fmt.Errorf("%w: xloadflags %#x", ErrNot64Bit, b.XLoadFlags)
	}
	b.LoadFlags = image[offLoadflags]
	if b.LoadFlags&LoadedHigh == 0 {
		return nil, fmt.Errorf("%w: loadflags %#x", ErrNotLoadedHigh, b.LoadFlags)
	}

	b.PrefAddress = le.Uint64(image[offPrefAddress:])
	b.InitSize = uint64(le.Uint32(image[offInitSize:]))
	b.CmdlineSize = le.Uint32(image[offCmdlineSize:])
	b.InitrdAddrMax = le.Uint32(image[offInitrdAddrMax:])
	b.KernelAlignment = le.Uint32(image[offKernelAlign:])
	b.Relocatable = image[offRelocatable] != 0
	b.MinAlignment = image[offMinAlignment]
	if b.InitSize < b.PayloadSize {
		return nil, fmt.Errorf("%w: init_size %#x is smaller than the %#x-byte payload it must contain",
			ErrBadSetupHeader, b.InitSize, b.PayloadSize)
	}
	if b.Relocatable {
		a := b.KernelAlignment
		if a == 0 || a&(a-1) != 0 || a > maxKernelAlignment {
			return nil, fmt.Errorf("%w: kernel_alignment %#x of a relocatable kernel is not a power of two up to %#x",
				ErrBadSetupHeader, a, maxKernelAlignment)
		}
	}
	b.Header = append([]byte(nil), image[hdrStart:hdrEnd]...)
	return b, nil
}

func protoString(v uint16) string { return fmt.Sprintf("%d.%02d", v>>8, v&0xff) }

// KernelKind is the boot path a kernel image needs.
type KernelKind int

const (
	KindUnknown KernelKind = iota // neither ELF nor bzImage
	KindPVH                       // ELF (32 or 64-bit) to boot with LoadPVH
	KindBzImage                   // bzImage to boot with LoadLinux
	KindELF64                     // ELF64 without a PVH note: LoadLinux, 64-bit entry at e_entry
)

func (k KernelKind) String() string {
	switch k {
	case KindPVH:
		return "PVH ELF"
	case KindBzImage:
		return "bzImage"
	case KindELF64:
		return "ELF64 (64-bit Linux entry)"
	}
	return "unknown"
}

// DetectKernel picks the boot path for image. It looks at magic numbers
// and, for ELF, whether the image carries a PVH entry note; it never fails.
// A malformed image is classified by its magic so that the loader for that
// kind reports the precise parse error: an ELF64 whose notes cannot be
// parsed is KindELF64, an ELF32 (which only PVH can boot) is KindPVH. An
// ELF with a PVH note is KindPVH even if it could also take the 64-bit
// entry, since PVH needs no page tables and no decompression.
func DetectKernel(image []byte) KernelKind {
	switch {
	case len(image) >= 4 && string(image[:4]) == "\x7fELF":
		if e, err := parseELF(image); err == nil && e.hasPVH {
			return KindPVH
		}
		if len(image) > 4 && image[4] == elfClass64 {
			return KindELF64
		}
		return KindPVH
	case isBzImage(image):
		return KindBzImage
	}
	return KindUnknown
}
