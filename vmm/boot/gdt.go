package boot

// The flat boot GDT written at memory.GDTAddr. The PVH ABI enters the kernel
// in 32-bit protected mode with flat 4 GiB CS and DS/ES/SS; the vCPU's cached
// segment registers must match these descriptors, so the vmm derives them
// with SegmentFromGDT instead of hard-coding a second copy.
const (
	SelectorNull   = 0x00
	SelectorCode32 = 0x08 // 32-bit code, base 0, limit 4 GiB, execute/read
	SelectorData32 = 0x10 // 32-bit data, base 0, limit 4 GiB, read/write
	SelectorTSS    = 0x18 // 32-bit busy TSS, base 0, limit 0x67
	// GDTLimit is the GDTR limit for the boot GDT (size in bytes minus one).
	GDTLimit = 4*8 - 1
)

// gdtEntry encodes a segment descriptor. flags holds the access byte in bits
// 0-7 (P, DPL, S, type) and the G/DB/L/AVL nibble in bits 12-15, the same
// packing as Linux's GDT_ENTRY() macro, so the descriptors read like the
// familiar 0xc09b / 0xc093 constants.
func gdtEntry(flags uint16, base, limit uint32) uint64 {
	return uint64(limit&0xffff) |
		uint64(base&0xff_ffff)<<16 |
		uint64(flags&0xff)<<40 |
		uint64(limit>>16&0xf)<<48 |
		uint64(flags>>12&0xf)<<52 |
		uint64(base>>24)<<56
}

// GDTEntries returns the boot GDT, indexed by selector/8.
//
// Code and data have the accessed bit set so the CPU never needs to write it
// back (and VMX-style entry checks are satisfied). TR must hold a usable busy
// TSS for VM entry; PVH kernels load their own TR before any task switch or
// privilege change could consult it, so it only needs to be well-formed.
func GDTEntries() []uint64 {
	return []uint64{
		0,
		gdtEntry(0xc09b, 0, 0xfffff), // P=1 DPL=0 S=1 type=0xb (code, read, accessed); G=1 D=1
		gdtEntry(0xc093, 0, 0xfffff), // P=1 DPL=0 S=1 type=0x3 (data, write, accessed); G=1 B=1
		gdtEntry(0x008b, 0, 0x67),    // P=1 DPL=0 S=0 type=0xb (32-bit busy TSS); G=0
	}
}

// SegmentDesc is a decoded descriptor in the shape of struct kvm_segment
// (linux/arch/x86/include/uapi/asm/kvm.h), so the vmm can fill one field by
// field without this package importing kvm. Limit is in bytes (already
// scaled by G), as kvm_segment wants it.
type SegmentDesc struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
}

// SegmentFromGDT decodes the 8-byte descriptor entry as loaded through
// selector.
func SegmentFromGDT(entry uint64, selector uint16) SegmentDesc {
	base := entry>>16&0xff_ffff | (entry>>56&0xff)<<24
	limit := uint32(entry&0xffff | (entry>>48&0xf)<<16)
	g := uint8(entry >> 55 & 1)
	if g == 1 {
		limit = limit<<12 | 0xfff
	}
	return SegmentDesc{
		Base:     base,
		Limit:    limit,
		Selector: selector,
		Type:     uint8(entry >> 40 & 0xf),
		S:        uint8(entry >> 44 & 1),
		DPL:      uint8(entry >> 45 & 3),
		Present:  uint8(entry >> 47 & 1),
		AVL:      uint8(entry >> 52 & 1),
		L:        uint8(entry >> 53 & 1),
		DB:       uint8(entry >> 54 & 1),
		G:        g,
	}
}
