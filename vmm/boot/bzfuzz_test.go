package boot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/govmm/govmm/memory"
)

var parseBzSentinels = []error{
	ErrNotBzImage, ErrProtocolTooOld, ErrBadSetupHeader, ErrSetupPastEOF,
	ErrTruncatedPayload, ErrNot64Bit, ErrNotLoadedHigh,
}

// loadLinuxSentinels are the errors LoadLinux may return for a kernel that
// parsed, into a guest whose low RAM covers the boot structures.
var loadLinuxSentinels = []error{ErrKernelTooBig, ErrKernelLowMem, ErrInitrdTooLarge, ErrCmdlineTooLong}

func isOneOf(err error, sentinels []error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

var fuzzInitrd = pattern(0x1800, 0x11)

func FuzzParseBzImage(f *testing.F) {
	f.Add(synthBz(goodBzOpts()))
	mem, err := memory.FromSlices(map[uint64][]byte{0: fuzzRAM})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, image []byte) {
		b, err := ParseBzImage(image)
		if err != nil {
			if b != nil {
				t.Fatal("BzImage returned alongside error")
			}
			if !isOneOf(err, parseBzSentinels) {
				t.Fatalf("error %v wraps no ParseBzImage sentinel", err)
			}
			return
		}
		// Everything ParseBzImage promises about a successful parse.
		n := uint64(len(image))
		switch {
		case b.SetupSects == 0 || b.SetupSize != (uint64(b.SetupSects)+1)*512 || b.PayloadOff != b.SetupSize:
			t.Fatalf("setup %d sectors, %#x bytes, payload at %#x", b.SetupSects, b.SetupSize, b.PayloadOff)
		case b.PayloadSize <= 0x200 || b.PayloadOff+b.PayloadSize > n || b.PayloadSize%16 != 0:
			t.Fatalf("payload [%#x, +%#x) in %#x bytes", b.PayloadOff, b.PayloadSize, n)
		case b.HeaderEnd() < 0x264 || b.HeaderEnd() > 0x290 || !bytes.Equal(b.Header, image[0x1f1:b.HeaderEnd()]):
			t.Fatalf("header %d bytes", len(b.Header))
		case b.Version < 0x020c || b.XLoadFlags&XLFKernel64 == 0 || b.LoadFlags&LoadedHigh == 0:
			t.Fatalf("version %#x xloadflags %#x loadflags %#x", b.Version, b.XLoadFlags, b.LoadFlags)
		case b.InitSize < b.PayloadSize:
			t.Fatalf("init_size %#x < payload %#x", b.InitSize, b.PayloadSize)
		}

		boot, err := LoadLinux(mem, image, fuzzInitrd, "console=ttyS0")
		if err != nil {
			if boot != nil || !isOneOf(err, loadLinuxSentinels) {
				t.Fatalf("unexpected LoadLinux result %+v, %v", boot, err)
			}
			return
		}
		checkLinuxBoot(t, mem, boot)
		if boot.Kind != KindBzImage || boot.Entry != boot.LoadAddr+0x200 || boot.KernelEnd != boot.LoadAddr+b.InitSize {
			t.Fatalf("boot %+v for %+v", boot, b)
		}
		got, _ := mem.Slice(boot.LoadAddr, b.PayloadSize)
		if !bytes.Equal(got, image[b.PayloadOff:b.PayloadOff+b.PayloadSize]) {
			t.Fatal("payload not at the load address")
		}
	})
}

// FuzzLoadLinux runs arbitrary kernels of every kind, and arbitrary command
// lines, through DetectKernel and LoadLinux.
func FuzzLoadLinux(f *testing.F) {
	elf, _ := elf64NoNote()
	pvh, _ := goodImage(true)
	elf32, _ := goodImage(false)
	for _, k := range [][]byte{synthBz(goodBzOpts()), elf, pvh, elf32} {
		f.Add(k, "console=ttyS0")
	}
	mem, err := memory.FromSlices(map[uint64][]byte{0: fuzzRAM})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, kernel []byte, cmdline string) {
		kind := DetectKernel(kernel)
		boot, err := LoadLinux(mem, kernel, fuzzInitrd, cmdline)
		if err != nil {
			if boot != nil {
				t.Fatal("LinuxBoot returned alongside error")
			}
			if kind == KindUnknown && !errors.Is(err, ErrUnknownKernel) {
				t.Fatalf("unknown kernel gave %v", err)
			}
			return
		}
		if kind == KindUnknown || (boot.Kind == KindBzImage) != (kind == KindBzImage) {
			t.Fatalf("loaded a %v kernel as %v", kind, boot.Kind)
		}
		checkLinuxBoot(t, mem, boot)
		got := make([]byte, len(cmdline)+1)
		if err := mem.Read(memory.CmdlineAddr, got); err != nil || string(got) != cmdline+"\x00" {
			t.Fatalf("cmdline %q, %v", got, err)
		}
	})
}

// checkLinuxBoot checks the invariants of any successful LoadLinux.
func checkLinuxBoot(t *testing.T, mem *memory.Guest, boot *LinuxBoot) {
	t.Helper()
	zp := zeroPage(t, mem)
	switch {
	case boot.ZeroPage != memory.ZeroPageAddr || boot.PML4 != memory.PML4Addr || boot.GDTBase != memory.GDTAddr:
		t.Fatalf("boot %+v", boot)
	case boot.LoadAddr < memory.HighMemStart || boot.KernelEnd <= boot.LoadAddr || !mem.Contains(boot.LoadAddr, boot.KernelEnd-boot.LoadAddr):
		t.Fatalf("kernel at [%#x, %#x)", boot.LoadAddr, boot.KernelEnd)
	case boot.Entry < boot.LoadAddr || boot.Entry >= boot.KernelEnd:
		t.Fatalf("entry %#x outside the kernel [%#x, %#x)", boot.Entry, boot.LoadAddr, boot.KernelEnd)
	case boot.InitrdSize != uint64(len(fuzzInitrd)) || boot.InitrdAddr < boot.KernelEnd ||
		boot.InitrdAddr%memory.PageSize != 0 || !mem.Contains(boot.InitrdAddr, boot.InitrdSize):
		t.Fatalf("initrd at %#x+%#x, kernel ends %#x", boot.InitrdAddr, boot.InitrdSize, boot.KernelEnd)
	case field(zp, 0x1fe, 2) != 0xaa55 || field(zp, 0x202, 4) != 0x53726448 || zp[0x210] != 0xff || zp[0x211] != LoadedHigh:
		t.Fatal("zero page header magic/type_of_loader/loadflags")
	case field(zp, 0x228, 4) != memory.CmdlineAddr || field(zp, 0x250, 8) != 0 || field(zp, 0x218, 4) != boot.InitrdAddr:
		t.Fatal("zero page cmd_line_ptr/setup_data/ramdisk_image")
	case fmt.Sprint(e820FromZeroPage(zp)) != fmt.Sprint(MemoryMap(mem)):
		t.Fatal("zero page e820 differs from MemoryMap")
	}
	if pa, err := translate(t, mem, boot.PML4, boot.Entry); err != nil || pa != boot.Entry {
		t.Fatalf("entry %#x not identity-mapped: %#x, %v", boot.Entry, pa, err)
	}
}

// TestBzFuzzCorpus keeps the committed seed corpora honest: each must hold
// images that load, and FuzzParseBzImage's must include the seeds taken
// from a real kernel's header.
func TestBzFuzzCorpus(t *testing.T) {
	for _, tc := range []struct {
		dir      string
		wantGood int
		wantReal bool
	}{
		{"FuzzParseBzImage", 2, true},
		{"FuzzLoadLinux", 3, false},
	} {
		files, err := filepath.Glob(filepath.Join("testdata/fuzz", tc.dir, "*"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no seed corpus: %v", tc.dir, err)
		}
		good, nReal := 0, 0
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			image, ok := decodeCorpusBytes(firstValue(b))
			if !ok {
				t.Fatalf("%s: not a go test fuzz v1 file starting with a []byte", f)
			}
			if bytes.HasPrefix([]byte(filepath.Base(f)), []byte("real-")) {
				nReal++
			}
			mem, _ := guest(t, len(fuzzRAM))
			if _, err := LoadLinux(mem, image, fuzzInitrd, "console=ttyS0"); err == nil {
				good++
			}
		}
		if good < tc.wantGood || (tc.wantReal && nReal < 2) {
			t.Errorf("%s: %d of %d seeds load, %d from a real kernel", tc.dir, good, len(files), nReal)
		}
	}
}

// firstValue keeps the header and first value line of a corpus file, so
// that decodeCorpusBytes also reads two-value (FuzzLoadLinux) files.
func firstValue(b []byte) []byte {
	lines := bytes.SplitN(b, []byte("\n"), 3)
	if len(lines) < 2 {
		return b
	}
	return append(append(lines[0], '\n'), lines[1]...)
}

// TestGenerateBzCorpus rewrites the bzImage seed corpora. It runs only with
// GOVMM_GEN_BZ_CORPUS=1, and GOVMM_TEST_BZIMAGE naming a real bzImage (the
// committed "real-" seeds came from Debian's linux-image-6.1.0-48-cloud-amd64
// vmlinuz): only its first 16 KiB are used, never the kernel proper.
func TestGenerateBzCorpus(t *testing.T) {
	if os.Getenv("GOVMM_GEN_BZ_CORPUS") != "1" {
		t.Skip("set GOVMM_GEN_BZ_CORPUS=1 and GOVMM_TEST_BZIMAGE to regenerate the seed corpora")
	}
	realImage, err := os.ReadFile(os.Getenv("GOVMM_TEST_BZIMAGE"))
	if err != nil {
		t.Fatal(err)
	}
	if len(realImage) < 16<<10 {
		t.Fatal("real bzImage too short")
	}
	head := realImage[:16<<10]
	// The real header with its setup cut to 8 sectors, a 0x400-byte
	// payload (the first bytes of the real protected-mode code) and
	// placement fields that fit the 4 MiB fuzz guest.
	realSmall := func() []byte {
		sects := int(realImage[0x1f1])
		img := append([]byte(nil), realImage[:0x1000]...)
		img[0x1f1] = 7
		payload := realImage[(sects+1)*512:][:0x400]
		img = append(img, payload...)
		le.PutUint32(img[0x1f4:], 0x400/16)
		le.PutUint64(img[0x258:], 0x20_0000)
		le.PutUint32(img[0x260:], 0x10_0000)
		return img
	}()
	mut := func(f func(*bzOpts)) []byte {
		o := goodBzOpts()
		f(&o)
		return synthBz(o)
	}
	poke := func(img []byte, off int, v ...byte) []byte {
		img = append([]byte(nil), img...)
		copy(img[off:], v)
		return img
	}
	good := synthBz(goodBzOpts())
	write := func(dir, name string, values ...string) {
		body := "go test fuzz v1\n"
		for _, v := range values {
			body += v + "\n"
		}
		if err := os.MkdirAll(filepath.Join("testdata/fuzz", dir), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata/fuzz", dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	q := func(b []byte) string { return "[]byte(" + strconv.Quote(string(b)) + ")" }
	for name, img := range map[string][]byte{
		"real-debian-6.1-first16k":         head,
		"real-debian-6.1-header-small":     realSmall,
		"real-debian-6.1-header-v2.05":     poke(realSmall, 0x206, 0x05, 0x02),
		"real-debian-6.1-header-32bit":     poke(realSmall, 0x236, 0x00),
		"real-debian-6.1-header-truncated": realSmall[:len(realSmall)-1],
		"good-synthetic":                   good,
		"mut-bad-boot-flag":                poke(good, 0x1fe, 0, 0),
		"mut-bad-magic":                    poke(good, 0x202, 'h'),
		"mut-setup-sects-past-eof":         poke(good, 0x1f1, 0xff),
		"mut-setup-sects-zero":             mut(func(o *bzOpts) { o.setupSects = 0 }),
		"mut-syssize-huge":                 mut(func(o *bzOpts) { o.syssize = u32p(0xffff_ffff) }),
		"mut-header-len-negative":          mut(func(o *bzOpts) { o.hdrLen = 0xff }),
		"mut-not-loaded-high":              mut(func(o *bzOpts) { o.loadflags = 0 }),
		"mut-init-size-huge":               mut(func(o *bzOpts) { o.initSize = 0xffff_ffff }),
		"mut-pref-address-huge":            mut(func(o *bzOpts) { o.pref = ^uint64(0) }),
		"mut-non-relocatable":              mut(func(o *bzOpts) { o.reloc = false }),
		"mut-initrd-addr-max-low":          mut(func(o *bzOpts) { o.initrdMax = 0x30_0000 }),
		"mut-cmdline-size-0":               mut(func(o *bzOpts) { o.cmdlineSize = 0 }),
	} {
		write("FuzzParseBzImage", name, q(img))
	}
	elf, _ := elf64NoNote()
	pvh, _ := goodImage(true)
	elf32, _ := goodImage(false)
	for name, v := range map[string][2]string{
		"good-bzimage":            {q(good), strconv.Quote("console=ttyS0 earlyprintk=ttyS0 noxsave")},
		"good-elf64":              {q(elf), strconv.Quote("console=ttyS0")},
		"good-elf64-pvh-note":     {q(pvh), strconv.Quote("")},
		"real-debian-6.1-small":   {q(realSmall), strconv.Quote("root=/dev/vda")},
		"elf32":                   {q(elf32), strconv.Quote("console=ttyS0")},
		"cmdline-nul":             {q(good), strconv.Quote("a\x00b")},
		"elf64-truncated":         {q(elf[:0x80]), strconv.Quote("x")},
		"bzimage-cmdline-too-big": {q(mut(func(o *bzOpts) { o.cmdlineSize = 4 })), strconv.Quote("console=ttyS0")},
	} {
		write("FuzzLoadLinux", name, v[0], "string("+v[1]+")")
	}
}
