package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/memory"
	"github.com/govmm/govmm/vmm"
	"github.com/govmm/govmm/vmm/boot"
)

// guestTimeout bounds one guest run. The host's KVM emulates every guest
// instruction (about 1 M/s, see shared/HOST.md); the slowest program here
// (memtest over 128 MiB) needs a few seconds.
const guestTimeout = 2 * time.Minute

func TestHelloGuest(t *testing.T) {
	RequireKVM(t)
	r := Boot(t, "hello", guestTimeout)
	RequirePassed(t, r, "hello")
	if !r.Has("Hello from govmm guest") {
		t.Errorf("no greeting in console:\n%s", r.Console)
	}
	if r.ExitCode != vmm.CodeReset {
		t.Errorf("exit code %d, want %d (reset); stderr: %s", r.ExitCode, vmm.CodeReset, r.Stderr)
	}
}

// TestMemtestGuest boots the memory test with several RAM sizes. The guest
// reports the PVH memory map it was given, which must be exactly the map
// the VMM built, and checks a pattern in every page of usable RAM below
// 4 GiB. 4160M puts 64 MiB above the MMIO hole, so the map must show
// high RAM at 4 GiB (the 32-bit guest cannot reach it to test it).
func TestMemtestGuest(t *testing.T) {
	RequireKVM(t)
	for _, size := range []uint64{16 << 20, 128 << 20, 4160 << 20} {
		t.Run(fmt.Sprintf("%dM", size>>20), func(t *testing.T) {
			r := Boot(t, "memtest", guestTimeout, "--memory", fmt.Sprintf("%dM", size>>20))
			RequirePassed(t, r, "memtest")
			var got []string
			for _, l := range r.Lines() {
				if strings.HasPrefix(l, "memmap: ") {
					got = append(got, l)
				}
			}
			want := expectedMemmap(t, size)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("guest saw memmap\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if r.ExitCode != vmm.CodeReset {
				t.Errorf("exit code %d, want reset; stderr: %s", r.ExitCode, r.Stderr)
			}
		})
	}
}

// memoryMapFor is the map govmm gives a guest of size bytes of RAM, for
// both PVH (memmap) and Linux (e820).
func memoryMapFor(t *testing.T, size uint64) []boot.MemmapEntry {
	t.Helper()
	ranges, err := memory.RAMRanges(size)
	if err != nil {
		t.Fatal(err)
	}
	return boot.MemoryMapFor(ranges)
}

// expectedMemmap renders that map in the memtest program's line format.
func expectedMemmap(t *testing.T, size uint64) []string {
	var lines []string
	for _, e := range memoryMapFor(t, size) {
		lines = append(lines, fmt.Sprintf("memmap: %016x-%016x %d", e.Addr, e.Addr+e.Size, e.Type))
	}
	return lines
}

func TestCmdlineGuest(t *testing.T) {
	RequireKVM(t)
	cmdline := "console=ttyS0 govmm.test=\"quoted words\" x=1"
	r := Boot(t, "cmdline", guestTimeout, "--cmdline", cmdline)
	RequirePassed(t, r, "cmdline")
	if !r.Has("cmdline: " + cmdline) {
		t.Errorf("guest did not echo the command line; console:\n%s", r.Console)
	}
}

func TestResetGuest(t *testing.T) {
	RequireKVM(t)
	r := Boot(t, "reset", guestTimeout)
	if !r.Has("resetting via i8042") {
		t.Errorf("guest did not start; console:\n%s", r.Console)
	}
	if strings.Contains(r.Console, "FAIL") {
		t.Errorf("guest kept running after the reset:\n%s", r.Console)
	}
	if r.ExitCode != vmm.CodeReset || !strings.Contains(r.Stderr, "i8042 reset") {
		t.Errorf("exit code %d, stderr %q; want %d and an i8042 reset", r.ExitCode, r.Stderr, vmm.CodeReset)
	}
}

// Without the in-kernel irqchip, HLT reaches the VMM and ends the VM.
func TestHaltGuest(t *testing.T) {
	RequireKVM(t)
	r := Boot(t, "halt", guestTimeout, "--irqchip=off")
	if !r.Has("PASS halt-start") {
		t.Errorf("guest did not start; console:\n%s", r.Console)
	}
	if r.ExitCode != vmm.CodeHalt {
		t.Errorf("exit code %d, want %d (halt); stderr: %s", r.ExitCode, vmm.CodeHalt, r.Stderr)
	}
}

// A triple fault ends the VM as a crash, with a register dump on stderr.
func TestCrashGuest(t *testing.T) {
	RequireKVM(t)
	r := Boot(t, "crash", guestTimeout)
	if !r.Has("crashing") {
		t.Errorf("guest did not start; console:\n%s", r.Console)
	}
	if r.ExitCode != vmm.CodeCrash {
		t.Errorf("exit code %d, want %d (crash); stderr: %s", r.ExitCode, vmm.CodeCrash, r.Stderr)
	}
	for _, want := range []string{"triple fault", "rip=", "cr0=", "cs="} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, r.Stderr)
		}
	}
}

// With the irqchip, a guest halted with interrupts off is parked inside
// KVM_RUN. SIGTERM must still get every vCPU thread out (the kick), and
// the VM ends as stopped. Two vCPUs: the second sits in wait-for-SIPI,
// which is another in-kernel wait the kick must break.
func TestStopBySignal(t *testing.T) {
	RequireKVM(t)
	cmd, out, errb := startGovmm(t, "run", "--kernel", Guest(t, "halt"), "--cpus", "2")
	waitFor(t, out, "PASS halt-start", 30*time.Second)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	code := waitExit(t, cmd, 30*time.Second)
	if code != vmm.CodeStopped {
		t.Errorf("exit code %d, want %d (stopped); stderr: %s", code, vmm.CodeStopped, errb.String())
	}
}

func TestSMPGuestResets(t *testing.T) {
	RequireKVM(t)
	r := Boot(t, "hello", guestTimeout, "--cpus", "2")
	RequirePassed(t, r, "hello")
	if r.ExitCode != vmm.CodeReset {
		t.Errorf("exit code %d, want reset; stderr: %s", r.ExitCode, r.Stderr)
	}
}

func TestConsoleToFile(t *testing.T) {
	RequireKVM(t)
	p := filepath.Join(t.TempDir(), "console.log")
	r := Boot(t, "hello", guestTimeout, "--console", "file:"+p)
	if r.Console != "" {
		t.Errorf("stdout not empty with a console file: %q", r.Console)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "PASS hello") {
		t.Errorf("console file lacks PASS hello: %q", b)
	}
}

// TestDemoGuest is `make run`: no --kernel boots the embedded demo guest,
// which prints a banner, what it found and a self-test result, then resets.
func TestDemoGuest(t *testing.T) {
	RequireKVM(t)
	r := Run(t, guestTimeout, "run")
	for _, want := range []string{"govmm demo guest", "self-test: PASS"} {
		if !strings.Contains(r.Console, want) {
			t.Errorf("demo console lacks %q:\n%s", want, r.Console)
		}
	}
	if !strings.Contains(r.Console, "memmap") && !strings.Contains(r.Console, "memory map") {
		t.Errorf("demo does not report its memory map:\n%s", r.Console)
	}
	if r.ExitCode != vmm.CodeReset {
		t.Errorf("exit code %d, want 0; stderr: %s", r.ExitCode, r.Stderr)
	}
}
