package boot

import (
	"bytes"
	"os"
	"testing"

	"github.com/govmm/govmm/memory"
)

// TestRealBzImage parses and loads a real bzImage when GOVMM_TEST_BZIMAGE
// names one (e.g. boot/vmlinuz-* from Debian's linux-image-*-cloud-amd64,
// protocol 2.15).
func TestRealBzImage(t *testing.T) {
	path := os.Getenv("GOVMM_TEST_BZIMAGE")
	if path == "" {
		t.Skip("set GOVMM_TEST_BZIMAGE to a bzImage (protocol 2.12+, 64-bit) to run")
	}
	image, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if k := DetectKernel(image); k != KindBzImage {
		t.Fatalf("DetectKernel = %v", k)
	}
	b, err := ParseBzImage(image)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("protocol %s, setup %d sectors, payload %#x bytes, pref_address %#x, init_size %#x, alignment %#x, xloadflags %#x, cmdline_size %d",
		protoString(b.Version), b.SetupSects, b.PayloadSize, b.PrefAddress, b.InitSize, b.KernelAlignment, b.XLoadFlags, b.CmdlineSize)
	mem, err := memory.New(memory.Options{Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	initrd := bytes.Repeat([]byte("initrd"), 1000)
	boot, err := LoadLinux(mem, image, initrd, "console=ttyS0 earlyprintk=ttyS0 noxsave")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot %+v", *boot)
	if boot.LoadAddr != b.PrefAddress || boot.Entry != b.PrefAddress+0x200 {
		t.Fatalf("kernel at %#x entry %#x, want pref_address %#x (+0x200)", boot.LoadAddr, boot.Entry, b.PrefAddress)
	}
	got, err := mem.Slice(boot.Entry, 64)
	if err != nil {
		t.Fatal(err)
	}
	if want := image[b.PayloadOff+0x200:][:64]; !bytes.Equal(got, want) {
		t.Fatalf("64-bit entry bytes % x, want % x", got, want)
	}
	zp := zeroPage(t, mem)
	if v := field(zp, 0x206, 2); v != uint64(b.Version) || zp[0x210] != 0xff || field(zp, 0x21c, 4) != uint64(len(initrd)) {
		t.Fatalf("zero page version %#x type_of_loader %#x ramdisk_size %d", v, zp[0x210], field(zp, 0x21c, 4))
	}
	if boot.InitrdAddr < boot.KernelEnd || boot.InitrdAddr+boot.InitrdSize > min(256<<20, uint64(b.InitrdAddrMax)+1) {
		t.Fatalf("initrd at %#x", boot.InitrdAddr)
	}
}

// TestRealVmlinux64 boots a real vmlinux (GOVMM_TEST_VMLINUX) through the
// 64-bit entry instead of PVH: Linux links e_entry as the physical address
// of startup_64.
func TestRealVmlinux64(t *testing.T) {
	path := os.Getenv("GOVMM_TEST_VMLINUX")
	if path == "" {
		t.Skip("set GOVMM_TEST_VMLINUX to an x86-64 vmlinux to run")
	}
	image, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := memory.New(memory.Options{Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	boot, err := LoadLinux(mem, image, nil, "console=ttyS0")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("DetectKernel %v; boot %+v", DetectKernel(image), *boot)
	if boot.Kind != KindELF64 || boot.Entry != le.Uint64(image[24:]) {
		t.Fatalf("boot %+v", boot)
	}
}
