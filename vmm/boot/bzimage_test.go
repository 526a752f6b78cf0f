package boot

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestSetupHeaderOffsets checks every offset constant against the tables
// in Documentation/arch/x86/boot.rst ("Offset/Size  Proto  Name") and
// zero-page.rst, quoted row by row: an independent oracle for the constants.
func TestSetupHeaderOffsets(t *testing.T) {
	tests := []struct {
		doc  string // the documentation row
		got  int
		want int
	}{
		{"boot.rst: 01F1/1 ALL(1) setup_sects", offSetupSects, 0x1f1},
		{"boot.rst: 01F2/2 ALL root_flags", offRootFlags, 0x1f2},
		{"boot.rst: 01F4/4 2.04+(2) syssize", offSyssize, 0x1f4},
		{"boot.rst: 01FA/2 ALL vid_mode", offVidMode, 0x1fa},
		{"boot.rst: 01FC/2 ALL root_dev", offRootDev, 0x1fc},
		{"boot.rst: 01FE/2 ALL boot_flag", offBootFlag, 0x1fe},
		{"boot.rst: 0200/2 2.00+ jump", offJump, 0x200},
		{"boot.rst: 0202/4 2.00+ header", offHeader, 0x202},
		{"boot.rst: 0206/2 2.00+ version", offVersion, 0x206},
		{"boot.rst: 0210/1 2.00+ type_of_loader", offTypeOfLoader, 0x210},
		{"boot.rst: 0211/1 2.00+ loadflags", offLoadflags, 0x211},
		{"boot.rst: 0214/4 2.00+ code32_start", offCode32Start, 0x214},
		{"boot.rst: 0218/4 2.00+ ramdisk_image", offRamdiskImage, 0x218},
		{"boot.rst: 021C/4 2.00+ ramdisk_size", offRamdiskSize, 0x21c},
		{"boot.rst: 0224/2 2.01+ heap_end_ptr", offHeapEndPtr, 0x224},
		{"boot.rst: 0226/1 2.02+(3) ext_loader_ver", offExtLoaderVer, 0x226},
		{"boot.rst: 0227/1 2.02+(3) ext_loader_type", offExtLoaderType, 0x227},
		{"boot.rst: 0228/4 2.02+ cmd_line_ptr", offCmdLinePtr, 0x228},
		{"boot.rst: 022C/4 2.03+ initrd_addr_max", offInitrdAddrMax, 0x22c},
		{"boot.rst: 0230/4 2.05+ kernel_alignment", offKernelAlign, 0x230},
		{"boot.rst: 0234/1 2.05+ relocatable_kernel", offRelocatable, 0x234},
		{"boot.rst: 0235/1 2.10+ min_alignment", offMinAlignment, 0x235},
		{"boot.rst: 0236/2 2.12+ xloadflags", offXLoadflags, 0x236},
		{"boot.rst: 0238/4 2.06+ cmdline_size", offCmdlineSize, 0x238},
		{"boot.rst: 023C/4 2.07+ hardware_subarch", offHardwareSub, 0x23c},
		{"boot.rst: 0240/8 2.07+ hardware_subarch_data", offHardwareSubDat, 0x240},
		{"boot.rst: 0250/8 2.09+ setup_data", offSetupData, 0x250},
		{"boot.rst: 0258/8 2.10+ pref_address", offPrefAddress, 0x258},
		{"boot.rst: 0260/4 2.10+ init_size", offInitSize, 0x260},
		{"boot.rst: 0268/4 2.15+ kernel_info_offset", offKernelInfo, 0x268},
		{"zero-page.rst: 070/008 ALL acpi_rsdp_addr", zpAcpiRsdpAddr, 0x070},
		{"zero-page.rst: 0C0/004 ALL ext_ramdisk_image", zpExtRamdiskImage, 0x0c0},
		{"zero-page.rst: 0C4/004 ALL ext_ramdisk_size", zpExtRamdiskSize, 0x0c4},
		{"zero-page.rst: 0C8/004 ALL ext_cmd_line_ptr", zpExtCmdLinePtr, 0x0c8},
		{"zero-page.rst: 1E8/001 ALL e820_entries", zpE820Entries, 0x1e8},
		{"zero-page.rst: 1EF/001 ALL sentinel", zpSentinel, 0x1ef},
		{"zero-page.rst: 2D0/A00 ALL e820_table", zpE820Table, 0x2d0},
		{"zero-page.rst: e820_table is 0xA00 bytes of 20-byte entries", E820MaxEntries * e820EntrySize, 0xa00},
		{"bootparam.h: E820_MAX_ENTRIES_ZEROPAGE 128", E820MaxEntries, 128},
		{"bootparam.h: struct boot_params is 4096 bytes (_pad9 ends at 0x1000)", ZeroPageSize, 0x1000},
		{"bootparam.h: LOADED_HIGH (1<<0)", LoadedHigh, 1},
		{"bootparam.h: CAN_USE_HEAP (1<<7)", CanUseHeap, 0x80},
		{"bootparam.h: XLF_KERNEL_64 (1<<0)", XLFKernel64, 1},
		{"bootparam.h: XLF_CAN_BE_LOADED_ABOVE_4G (1<<1)", XLFCanBeLoadedAbove4G, 2},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: constant is %#x, documented %#x", tc.doc, tc.got, tc.want)
		}
	}
}

func TestParseBzImage(t *testing.T) {
	o := goodBzOpts()
	image := synthBz(o)
	b, err := ParseBzImage(image)
	if err != nil {
		t.Fatal(err)
	}
	want := BzImage{
		Version: 0x020f, SetupSects: 2, SetupSize: 0x600, PayloadOff: 0x600, PayloadSize: 0x400,
		PrefAddress: bzPref, InitSize: bzInitSize, CmdlineSize: 0x7ff, InitrdAddrMax: 0x7fff_ffff,
		KernelAlignment: 0x20_0000, Relocatable: true, MinAlignment: 21,
		LoadFlags: LoadedHigh, XLoadFlags: XLFKernel64 | XLFCanBeLoadedAbove4G,
	}
	hdr := b.Header
	b.Header = nil
	if fmt.Sprintf("%+v", *b) != fmt.Sprintf("%+v", want) {
		t.Fatalf("got %+v\nwant %+v", *b, want)
	}
	if !bytes.Equal(hdr, image[0x1f1:0x26c]) {
		t.Fatalf("header is % x, want image[0x1f1:0x26c]", hdr)
	}
	image[0x1f1] ^= 0xff
	if hdr[0] == image[0x1f1] {
		t.Fatal("Header aliases the image; it must be a copy")
	}

	// setup_sects 0 reads as 4 (boot.rst note (1)).
	o.setupSects = 0
	if b, err := ParseBzImage(synthBz(o)); err != nil || b.SetupSects != 4 || b.SetupSize != 5*512 {
		t.Fatalf("setup_sects 0: %+v, %v", b, err)
	}
}

func TestParseBzImageErrors(t *testing.T) {
	mod := func(f func(*bzOpts)) []byte {
		o := goodBzOpts()
		f(&o)
		return synthBz(o)
	}
	poke := func(off int, v ...byte) []byte {
		img := synthBz(goodBzOpts())
		copy(img[off:], v)
		return img
	}
	tests := []struct {
		name    string
		image   []byte
		want    error
		wantMsg string
	}{
		{"empty", nil, ErrNotBzImage, "0 bytes"},
		{"short", make([]byte, 0x205), ErrNotBzImage, "too short"},
		{"bad boot flag", poke(0x1fe, 0x55, 0xab), ErrNotBzImage, "0xab55"},
		{"bad magic", poke(0x202, 'H', 'd', 'r', 'Z'), ErrNotBzImage, `"HdrZ"`},
		{"ELF", []byte("\x7fELF" + strings.Repeat("\x00", 0x300)), ErrNotBzImage, "boot_flag"},
		{"protocol 2.05", mod(func(o *bzOpts) { o.version = 0x0205 }), ErrProtocolTooOld, "protocol 2.05, need at least 2.06"},
		{"protocol 1.00", mod(func(o *bzOpts) { o.version = 0x0100 }), ErrProtocolTooOld, "1.00"},
		{"no jump opcode", poke(0x200, 0x90), ErrBadSetupHeader, "jmp"},
		{"negative header length", mod(func(o *bzOpts) { o.hdrLen = 0x80 }), ErrBadSetupHeader, "jump offset -128"},
		{"header before init_size", mod(func(o *bzOpts) { o.hdrLen = 0x5f }), ErrBadSetupHeader, "ends at 0x261"},
		{"setup_sects past the file end", poke(0x1f1, 200), ErrSetupPastEOF,
			"setup_sects 200 means 0x19200 bytes of setup, but the file is 0xa00 bytes"},
		{"no payload at all", mod(func(o *bzOpts) { o.truncate = 0x600 }), ErrSetupPastEOF, "file is 0x600 bytes"},
		{"file ends inside the header", synthBz(goodBzOpts())[:0x240], ErrSetupPastEOF, "header ends at 0x26c"},
		{"truncated payload", mod(func(o *bzOpts) { o.truncate = 0x9ff }), ErrTruncatedPayload,
			"syssize 0x40 (x16 = 0x400 bytes) exceeds the 0x3ff bytes after the 0x600-byte setup"},
		{"huge syssize", mod(func(o *bzOpts) { o.syssize = u32p(0xffff_ffff) }), ErrTruncatedPayload, "0xffffffff0 bytes"},
		{"syssize 0", mod(func(o *bzOpts) { o.syssize = u32p(0) }), ErrTruncatedPayload, "syssize is 0"},
		{"payload shorter than the 64-bit entry", mod(func(o *bzOpts) { o.payload = o.payload[:0x200] }),
			ErrTruncatedPayload, "before the 64-bit entry point"},
		{"protocol 2.11 has no xloadflags", mod(func(o *bzOpts) { o.version = 0x020b }), ErrNot64Bit, "predates xloadflags (2.12)"},
		{"32-bit only", mod(func(o *bzOpts) { o.xloadflags = XLFCanBeLoadedAbove4G }), ErrNot64Bit, "xloadflags 0x2"},
		{"not loaded high", mod(func(o *bzOpts) { o.loadflags = 0 }), ErrNotLoadedHigh, "loadflags 0x0"},
		{"init_size below payload", mod(func(o *bzOpts) { o.initSize = 0x3ff }), ErrBadSetupHeader, "init_size 0x3ff"},
		{"alignment 0", mod(func(o *bzOpts) { o.align = 0 }), ErrBadSetupHeader, "kernel_alignment 0x0"},
		{"alignment not a power of two", mod(func(o *bzOpts) { o.align = 0x30_0000 }), ErrBadSetupHeader, "0x300000"},
		{"alignment huge", mod(func(o *bzOpts) { o.align = 1 << 31 }), ErrBadSetupHeader, "0x80000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := ParseBzImage(tc.image)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if b != nil {
				t.Fatal("BzImage returned alongside an error")
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err %q does not say %q", err, tc.wantMsg)
			}
		})
	}
	// A non-relocatable kernel's kernel_alignment is never used.
	if _, err := ParseBzImage(mod(func(o *bzOpts) { o.reloc, o.align = false, 0 })); err != nil {
		t.Fatalf("non-relocatable, alignment 0: %v", err)
	}
}

func TestDetectKernel(t *testing.T) {
	pvh64, _ := goodImage(true)
	pvh32, _ := goodImage(false)
	noNote := goodOpts(true, 4)
	noNote.notes = nil
	elf64, _ := synth(noNote)
	noNote.is64 = false
	elf32, _ := synth(noNote)
	brokenELF64 := append([]byte(nil), elf64[:40]...)
	tests := []struct {
		name  string
		image []byte
		want  KernelKind
	}{
		{"nil", nil, KindUnknown},
		{"garbage", bytes.Repeat([]byte{0xcc}, 0x1000), KindUnknown},
		{"bzImage", synthBz(goodBzOpts()), KindBzImage},
		// Detection only looks at magic: the loader reports the problem.
		{"bzImage too old", synthBz(func() bzOpts { o := goodBzOpts(); o.version = 0x0100; return o }()), KindBzImage},
		{"ELF64 with PVH note", pvh64, KindPVH},
		{"ELF32 with PVH note", pvh32, KindPVH},
		{"ELF64 without PVH note", elf64, KindELF64},
		{"ELF32 without PVH note", elf32, KindPVH},
		{"truncated ELF64", brokenELF64, KindELF64},
		{"bare ELF magic", []byte("\x7fELF"), KindPVH},
	}
	for _, tc := range tests {
		if got := DetectKernel(tc.image); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	for k, s := range map[KernelKind]string{KindUnknown: "unknown", KindPVH: "PVH ELF", KindBzImage: "bzImage",
		KindELF64: "ELF64 (64-bit Linux entry)", KernelKind(99): "unknown"} {
		if k.String() != s {
			t.Errorf("%d.String() = %q, want %q", k, k.String(), s)
		}
	}
}
