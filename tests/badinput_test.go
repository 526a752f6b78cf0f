package tests

import (
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/vmm"
)

// requireOneLineError checks the contract for bad user input: a non-zero
// exit, exactly one line on stderr naming the problem, nothing that looks
// like a Go panic or stack trace.
func requireOneLineError(t *testing.T, r Result, code int, mention string) {
	t.Helper()
	if r.ExitCode != code {
		t.Errorf("exit code %d, want %d", r.ExitCode, code)
	}
	msg := strings.TrimRight(r.Stderr, "\n")
	if strings.Count(msg, "\n") != 0 {
		t.Errorf("stderr has more than one line:\n%s", r.Stderr)
	}
	for _, bad := range []string{"panic", "goroutine ", ".go:"} {
		if strings.Contains(msg, bad) {
			t.Errorf("stderr looks like a crash (%q):\n%s", bad, msg)
		}
	}
	if !strings.Contains(msg, mention) {
		t.Errorf("stderr %q does not mention %q", msg, mention)
	}
}

func TestBadFlags(t *testing.T) {
	// These never reach /dev/kvm, so they run even where it is absent.
	cases := []struct {
		name    string
		args    []string
		mention string
	}{
		{"bad size", []string{"run", "--memory", "12X"}, "--memory"},
		{"size too small", []string{"run", "--memory", "1M"}, "minimum"},
		{"size not page multiple", []string{"run", "--memory", "4194305"}, "multiple of 4 KiB"},
		{"size overflow", []string{"run", "--memory", "99999999999T"}, "too large"},
		{"zero cpus", []string{"run", "--cpus", "0"}, "cpus 0"},
		{"too many cpus", []string{"run", "--cpus", "1000"}, "cpus 1000"},
		{"bad console", []string{"run", "--console", "tty"}, "--console"},
		{"bad irqchip", []string{"run", "--irqchip", "maybe"}, "--irqchip"},
		{"no irqchip smp", []string{"run", "--irqchip", "off", "--cpus", "2"}, "irqchip"},
		{"missing kernel", []string{"run", "--kernel", "/nonexistent/vmlinux"}, "/nonexistent/vmlinux"},
		{"kernel is a dir", []string{"run", "--kernel", "/"}, "not a regular file"},
		{"stray argument", []string{"run", "extra"}, "unexpected argument"},
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"bad log level", []string{"run", "--log-level", "loud"}, "--log-level"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := Run(t, 30*time.Second, c.args...)
			requireOneLineError(t, r, vmm.CodeUsage, c.mention)
		})
	}
}

func TestUnknownFlag(t *testing.T) {
	r := Run(t, 30*time.Second, "run", "--no-such-flag")
	requireOneLineError(t, r, vmm.CodeUsage, "no-such-flag")
	r = Run(t, 30*time.Second, "run", "--cpus", "two")
	requireOneLineError(t, r, vmm.CodeUsage, "-cpus")
}

// TestNoKVM: on a host without KVM, govmm says so and how to fix it, in
// one line, whatever confinement was asked for; not what Landlock or the
// jail happened to fail on first. /dev/kvm is hidden under an empty /dev
// in a private mount namespace, so this runs (as root) on hosts with KVM
// as well as without.
func TestNoKVM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("skipping: hiding /dev/kvm needs a mount namespace, which needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Fatalf("unshare (util-linux) not found: %v", err)
	}
	for _, flags := range [][]string{nil, {"--mac=off"}, {"--jail"}} {
		t.Run(strings.Join(append([]string{"run"}, flags...), " "), func(t *testing.T) {
			args := append([]string{"--mount", "--propagation", "private", "sh", "-c",
				`mount -t tmpfs none /dev && exec "$@"`, "sh", GovmmBin(t), "run"}, flags...)
			r := RunBin(t, unshare, 30*time.Second, args...)
			requireOneLineError(t, r, vmm.CodeError, "KVM is not available on this host")
			if !strings.Contains(r.Stderr, "fix: load kvm_intel or kvm_amd") {
				t.Errorf("stderr %q gives no fix", r.Stderr)
			}
		})
	}
}

// TestMalformedKernels: each broken image is refused with a one-line
// reason before any guest runs.
func TestMalformedKernels(t *testing.T) {
	good, err := os.ReadFile(Guest(t, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	mut := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	phoff := le.Uint64(good[32:])
	cases := []struct {
		name    string
		image   []byte
		mention string
	}{
		{"empty", []byte{}, "empty"},
		{"not elf", []byte("MZ this is not an ELF image at all, not even close......................"), "ELF"},
		{"truncated header", good[:20], "ELF"},
		{"truncated segments", good[:len(good)/2], "ELF"},
		{"wrong class", mut(func(b []byte) []byte { b[4] = 3; return b }), "class"},
		{"big endian", mut(func(b []byte) []byte { b[5] = 2; return b }), "endian"},
		{"wrong machine", mut(func(b []byte) []byte { le.PutUint16(b[18:], 183); return b }), "machine"},
		{"phdrs past end", mut(func(b []byte) []byte { le.PutUint64(b[32:], uint64(len(b))); return b }), "ELF"},
		{"huge segment", mut(func(b []byte) []byte {
			// first program header's p_memsz
			le.PutUint64(b[phoff+40:], 1<<62)
			return b
		}), "ELF"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
			if err := os.WriteFile(p, c.image, 0o644); err != nil {
				t.Fatal(err)
			}
			r := Run(t, 30*time.Second, "run", "--kernel", p)
			requireOneLineError(t, r, vmm.CodeUsage, c.mention)
		})
	}
}
