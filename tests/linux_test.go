package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/vmm"
	"github.com/govmm/govmm/vmm/boot"
)

// linuxTimeout bounds a real kernel's boot. Under this host's instruction
// emulator Debian's kernel spends tens of seconds decompressing itself
// (shared/HOST.md); on hardware virtualization it takes well under one.
const linuxTimeout = 6 * time.Minute

// debianKernel returns Debian's cloud kernel (bzImage), fetched once into
// a cache outside the repository by scripts/debian-kernel.sh.
func debianKernel(t *testing.T) string {
	t.Helper()
	script := filepath.Join(RepoRoot(t), "scripts", "debian-kernel.sh")
	out, err := exec.Command(script).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", script, err, stderr)
	}
	p := strings.TrimSpace(string(out))
	if p == "" {
		t.Fatalf("%s printed no kernel path", script)
	}
	if i := strings.LastIndexByte(p, '\n'); i >= 0 {
		p = p[i+1:]
	}
	return p
}

// hardwareVirt reports whether the host CPU advertises VT-x or AMD-V, in
// which case a real kernel runs at full speed and the test boots it all
// the way to user space.
func hardwareVirt(t *testing.T) bool {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`(?m)^flags\s*:.*\b(vmx|svm)\b`).Match(b)
}

// expectedE820 renders the map govmm builds for size bytes as Linux prints
// it ("BIOS-e820: [mem 0x...-0x...] usable", inclusive end).
func expectedE820(t *testing.T, size uint64) []string {
	var lines []string
	for _, e := range memoryMapFor(t, size) {
		kind := "reserved"
		if e.Type == boot.MemmapRAM {
			kind = "usable"
		}
		lines = append(lines, fmt.Sprintf("BIOS-e820: [mem 0x%016x-0x%016x] %s", e.Addr, e.Addr+e.Size-1, kind))
	}
	return lines
}

// kernelLines strips the "[    0.000000] " timestamps Linux prefixes.
var kernelTimestamp = regexp.MustCompile(`^\[\s*\d+\.\d+\] `)

func kernelLines(console string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(console, "\r", ""), "\n") {
		out = append(out, kernelTimestamp.ReplaceAllString(l, ""))
	}
	return out
}

// TestDebianKernelEarlyBoot boots Debian's stock cloud kernel with two
// vCPUs. On this host (PVM, no VT-x/AMD-V) the kernel runs under KVM's
// instruction emulator and dies on an instruction it lacks after its early
// boot log; everything it prints before that is checked against what
// govmm built. Where the host has hardware virtualization the same kernel
// boots to an init made by `govmm mkinitrd`, which prints a marker and
// resets.
func TestDebianKernelEarlyBoot(t *testing.T) {
	RequireKVM(t)
	kernel := debianKernel(t)
	const memSize = 256 << 20
	cmdline := "console=ttyS0 earlyprintk=ttyS0 noxsave reboot=k panic=-1 pci=off govmm.test=early"
	args := []string{"run", "--kernel", kernel, "--memory", "256M", "--cpus", "2", "--cmdline", cmdline}
	full := hardwareVirt(t)
	if full {
		initrd := filepath.Join(t.TempDir(), "initrd.cpio")
		initBin := filepath.Join(t.TempDir(), "init")
		build := exec.Command("go", "build", "-o", initBin, "./tests/initmarker")
		build.Dir = RepoRoot(t)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building initmarker: %v\n%s", err, out)
		}
		mk := Run(t, time.Minute, "mkinitrd", "-o", initrd, "--init", initBin)
		if mk.ExitCode != 0 {
			t.Fatalf("govmm mkinitrd: exit %d: %s", mk.ExitCode, mk.Stderr)
		}
		args = append(args, "--initrd", initrd)
	}
	r := Run(t, linuxTimeout, args...)
	lines := kernelLines(r.Console)
	has := func(re string) bool {
		rx := regexp.MustCompile(re)
		for _, l := range lines {
			if rx.MatchString(l) {
				return true
			}
		}
		return false
	}
	defer func() {
		if t.Failed() {
			t.Logf("console:\n%s\nstderr:\n%s\nexit %d after %v", r.Console, r.Stderr, r.ExitCode, r.Elapsed)
		}
	}()
	if !has(`^Linux version \d+\.\d+`) {
		t.Fatalf("no Linux version banner")
	}
	var e820 []string
	for _, l := range lines {
		if strings.HasPrefix(l, "BIOS-e820: ") {
			e820 = append(e820, l)
		}
	}
	if want := expectedE820(t, memSize); strings.Join(e820, "\n") != strings.Join(want, "\n") {
		t.Errorf("kernel's e820 map\n%s\nwant\n%s", strings.Join(e820, "\n"), strings.Join(want, "\n"))
	}
	if !has(`^Command line: ` + regexp.QuoteMeta(cmdline) + `$`) {
		t.Errorf("kernel did not echo the command line %q", cmdline)
	}
	if !has(`^Hypervisor detected: KVM$`) {
		t.Errorf("no \"Hypervisor detected: KVM\"")
	}
	if !has(`^kvm-clock: Using msrs 4b564d01 and 4b564d00`) {
		t.Errorf("kvm-clock did not register its MSRs")
	}
	if !has(`^clocksource: kvm-clock: `) {
		t.Errorf("kvm-clock is not a clocksource")
	}
	if !has(`^smpboot: Allowing 2 CPUs, 0 hotplug CPUs$`) {
		t.Errorf("kernel does not see the 2 vCPUs")
	}
	if full {
		if !has(`GOVMM-INIT-MARKER: user space reached`) {
			t.Errorf("hardware virtualization: kernel did not reach /init")
		}
		if !has(`^GOVMM-INIT-CPUS: 2$`) {
			t.Errorf("hardware virtualization: init does not see 2 CPUs online")
		}
		if r.ExitCode != vmm.CodeReset {
			t.Errorf("exit code %d, want reset", r.ExitCode)
		}
		return
	}
	// Emulated host: the kernel must end as a crash (the emulator's
	// internal error), reported with a register dump, not hang or be
	// reported as something else.
	if r.ExitCode != vmm.CodeCrash || !strings.Contains(r.Stderr, "rip=") {
		t.Errorf("exit code %d, want %d (crash) with a register dump", r.ExitCode, vmm.CodeCrash)
	}
	t.Logf("early boot reached in %v; %d console lines; ended: %s", r.Elapsed, len(lines), firstLine(r.Stderr))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
