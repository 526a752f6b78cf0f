package boot

// The boot GDT for the Linux 64-bit boot protocol, written at
// memory.GDTAddr by LoadLinux. boot.rst ("64-bit Boot Protocol") requires
// descriptors for __BOOT_CS (0x10, execute/read) and __BOOT_DS (0x18,
// read/write), both 4 GiB flat, with CS = __BOOT_CS and DS/ES/SS =
// __BOOT_DS. In 64-bit mode CS must also be a long-mode code segment (L=1,
// D=0). Slot 1 stays null, as in Linux's own boot GDT. The TSS follows at
// 0x20: in IA-32e mode a TSS descriptor is 16 bytes, so it takes slots 4
// and 5 (the second half holds base bits 63:32, zero here).
const (
	SelectorCode64 = 0x10 // __BOOT_CS: 64-bit code, execute/read
	SelectorData64 = 0x18 // __BOOT_DS: flat data, read/write
	SelectorTSS64  = 0x20 // 64-bit busy TSS, 16-byte descriptor
	// GDTLimit64 is the GDTR limit for GDTEntries64 (size in bytes minus one).
	GDTLimit64 = 6*8 - 1
)

// GDTEntries64 returns the 64-bit boot GDT, indexed by selector/8.
//
// As in GDTEntries, code and data have the accessed bit set so the CPU
// never writes the descriptors back, and the TSS only needs to be
// well-formed for VM entry: Linux loads its own GDT and TR before anything
// could consult it.
func GDTEntries64() []uint64 {
	return []uint64{
		0,
		0,
		gdtEntry(0xa09b, 0, 0xfffff), // P=1 DPL=0 S=1 type=0xb (code, read, accessed); G=1 L=1 D=0
		gdtEntry(0xc093, 0, 0xfffff), // P=1 DPL=0 S=1 type=0x3 (data, write, accessed); G=1 B=1
		gdtEntry(0x008b, 0, 0x67),    // P=1 DPL=0 S=0 type=0xb (64-bit busy TSS); G=0; limit: 104-byte TSS
		0,                            // TSS descriptor bits 127:64: base 63:32 = 0, reserved
	}
}
