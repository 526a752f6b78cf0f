package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/govmm/govmm/vmm"
)

const sectorSize = 512

// makeImage writes a disk image of n sectors with the pattern the guest
// programs verify: sector s, byte i = (s*7 + i) & 0xff.
func makeImage(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n*sectorSize)
	for s := 0; s < n; s++ {
		for i := 0; i < sectorSize; i++ {
			b[s*sectorSize+i] = byte(s*7 + i)
		}
	}
	p := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// checkSectors fails unless sectors from..to of img hold want(s, i).
func checkSectors(t *testing.T, img []byte, from, to int, want func(s, i int) byte) {
	t.Helper()
	for s := from; s <= to; s++ {
		for i := 0; i < sectorSize; i++ {
			if got := img[s*sectorSize+i]; got != want(s, i) {
				t.Fatalf("sector %d byte %d = %#x, want %#x", s, i, got, want(s, i))
			}
		}
	}
}

func original(s, i int) byte { return byte(s*7 + i) }

// requireVblkPassed checks every line of the vblk guest's run and its
// normal end.
func requireVblkPassed(t *testing.T, r Result) {
	t.Helper()
	for _, want := range []string{"PASS vblk-read", "PASS vblk-write-flush", "vblk: wrote sectors 16-23",
		"PASS vblk-read-past-end", "vblk: id govmm-disk-0", "PASS vblk-get-id", "PASS vblk-unsupp", "PASS vblk-bad-len"} {
		if !r.Has(want) {
			t.Errorf("console lacks %q", want)
		}
	}
	requireNoFail(t, r)
	if r.ExitCode != vmm.CodeReset {
		t.Errorf("exit code %d, want reset; stderr: %s", r.ExitCode, r.Stderr)
	}
}

// TestVirtioBlkGuest: a C virtio-mmio driver in the guest finds the disk
// from its command line, negotiates, reads the pattern, writes + flushes
// + reads back, reads past the end (IOERR), GET_ID, an unknown type
// (UNSUPP) and a bad length; the host then checks the image file.
func TestVirtioBlkGuest(t *testing.T) {
	RequireKVM(t)
	img := makeImage(t, 64)
	r := Boot(t, "vblk", guestTimeout, "--disk", "path="+img+",serial=govmm-disk-0",
		"--cmdline", "console=ttyS0 vblk.expect_id=govmm-disk-0")
	requireVblkPassed(t, r)
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	checkSectors(t, b, 0, 15, original)
	checkSectors(t, b, 16, 23, func(s, i int) byte { return byte((s ^ 0x5a) + i) })
	checkSectors(t, b, 24, 63, original)
}

func requireNoFail(t *testing.T, r Result) {
	t.Helper()
	for _, l := range r.Lines() {
		if strings.HasPrefix(l, "FAIL") {
			t.Errorf("guest reported %q", l)
		}
	}
	if t.Failed() {
		t.Logf("console:\n%s\nstderr:\n%s", r.Console, r.Stderr)
	}
}

func TestVirtioBlkReadOnly(t *testing.T) {
	RequireKVM(t)
	img := makeImage(t, 64)
	before, _ := os.ReadFile(img)
	r := Boot(t, "vblk", guestTimeout, "--disk", "path="+img+",readonly=on", "--cmdline", "console=ttyS0 vblk.expect_ro=1")
	if !r.Has("PASS vblk-readonly") || !r.Has("PASS vblk-read") {
		t.Errorf("read-only checks missing")
	}
	requireNoFail(t, r)
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Errorf("read-only image changed")
	}
}

// TestVirtioBlkHostile runs each attack against the first disk while a
// second, healthy disk must keep working; govmm must survive, the attacked
// device must end in NEEDS_RESET or fail the request, and recover after a
// reset.
func TestVirtioBlkHostile(t *testing.T) {
	RequireKVM(t)
	attacks := []string{"loop", "outside-ram", "wrap", "long-chain", "writable-header", "no-status",
		"indirect-in-indirect", "rings-in-hole", "bad-queue-size", "reset-mid-io", "notify-data"}
	for _, a := range attacks {
		t.Run(a, func(t *testing.T) {
			bad, good := makeImage(t, 64), makeImage(t, 64)
			before, _ := os.ReadFile(bad)
			r := Boot(t, "vblk_hostile", guestTimeout, "--disk", "path="+bad, "--disk", "path="+good,
				"--cmdline", "console=ttyS0 vblk.attack="+a)
			for _, want := range []string{"PASS vblk-hostile-" + a, "PASS vblk-healthy-after-" + a} {
				if !r.Has(want) {
					t.Errorf("console lacks %q", want)
				}
			}
			requireNoFail(t, r)
			if r.ExitCode != vmm.CodeReset {
				t.Errorf("govmm exit code %d, want a clean guest reset; stderr: %s", r.ExitCode, r.Stderr)
			}
			after, _ := os.ReadFile(bad)
			if !bytes.Equal(before, after) {
				t.Errorf("attacked image changed")
			}
		})
	}
}

// TestVirtioBlkDurability: the guest writes, flushes and sees the FLUSH
// complete; the test then SIGKILLs govmm, and the data must be in the file.
func TestVirtioBlkDurability(t *testing.T) {
	RequireKVM(t)
	img := makeImage(t, 64)
	cmd, out, errb := startGovmm(t, "run", "--kernel", Guest(t, "vblk"), "--disk", "path="+img,
		"--cmdline", "console=ttyS0 vblk.durable=1")
	waitFor(t, out, "vblk: durable-flushed", time.Minute)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	b, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	checkSectors(t, b, 32, 39, func(s, i int) byte { return byte(0xd0 + (s - 32) + i) })
	if t.Failed() {
		t.Logf("stderr: %s", errb.String())
	}
}

func TestVirtioBlkBadDisks(t *testing.T) {
	RequireKVM(t)
	dir := t.TempDir()
	odd := filepath.Join(dir, "odd.img")
	os.WriteFile(odd, make([]byte, 1000), 0o644)
	img := makeImage(t, 64)
	cases := []struct {
		name, spec, mention string
	}{
		{"missing file", "path=" + filepath.Join(dir, "nope.img"), "nope.img"},
		{"size not multiple of 512", "path=" + odd, "512"},
		{"unknown key", "path=" + img + ",cache=none", "cache"},
		{"bad bool", "path=" + img + ",readonly=maybe", "readonly"},
		{"no path", "readonly=on", "path"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Run(t, 30*time.Second, "run", "--kernel", Guest(t, "hello"), "--disk", c.spec)
			requireOneLineError(t, r, vmm.CodeUsage, c.mention)
		})
	}
	// Two VMs may not open one image writable: the second is refused.
	_, out, _ := startGovmm(t, "run", "--kernel", Guest(t, "vblk"), "--disk", "path="+img, "--cmdline", "console=ttyS0 vblk.durable=1")
	waitFor(t, out, "vblk: durable-flushed", time.Minute)
	r := Run(t, 30*time.Second, "run", "--kernel", Guest(t, "hello"), "--disk", "path="+img)
	requireOneLineError(t, r, vmm.CodeUsage, "in use")
}
