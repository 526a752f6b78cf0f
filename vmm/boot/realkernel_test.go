package boot

import (
	"os"
	"testing"

	"github.com/govmm/govmm/memory"
)

// TestRealKernel parses and loads a real vmlinux when GOVMM_TEST_VMLINUX
// names one (e.g. extracted from Debian's linux-image-*-cloud-amd64 with
// CONFIG_PVH=y). Real kernels emit the PVH entry note with an 8-byte desc.
func TestRealKernel(t *testing.T) {
	path := os.Getenv("GOVMM_TEST_VMLINUX")
	if path == "" {
		t.Skip("set GOVMM_TEST_VMLINUX to a PVH-capable vmlinux to run")
	}
	image, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := ParsePVH(image)
	if err != nil {
		t.Fatal(err)
	}
	mem, err := memory.New(memory.Options{Size: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	boot, err := LoadPVH(mem, img, image, "console=ttyS0")
	if err != nil {
		t.Fatal(err)
	}
	// The entry must point at loaded kernel text that matches the file.
	for _, s := range img.Segments {
		if e := uint64(boot.Entry); e >= s.PAddr && e-s.PAddr < s.FileSize {
			got, err := mem.Slice(e, 16)
			if err != nil {
				t.Fatal(err)
			}
			want := image[s.FileOff+e-s.PAddr:][:16]
			if string(got) != string(want) {
				t.Fatalf("entry bytes % x, want % x", got, want)
			}
			t.Logf("entry %#x in segment %+v", boot.Entry, s)
			return
		}
	}
	t.Fatalf("entry %#x not in any segment", boot.Entry)
}
