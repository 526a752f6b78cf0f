package tests

import (
	"bufio"
	"io"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkStartup measures, for the hello guest, the time from exec of
// the VMM to the first byte the guest writes to its serial port, and from
// exec to the VMM's exit. The same measurement is made for QEMU microvm
// on the same image in the same run (when qemu-system-x86_64 is
// installed), so the figures can be reported as ratios.
func BenchmarkStartup(b *testing.B) {
	RequireKVM(b)
	hello := Guest(b, "hello")
	b.Run("govmm", func(b *testing.B) {
		benchStartup(b, GovmmBin(b), "run", "--kernel", hello, "--memory", "128M")
	})
	b.Run("qemu-microvm", func(b *testing.B) {
		qemu, err := exec.LookPath("qemu-system-x86_64")
		if err != nil {
			b.Skip("qemu-system-x86_64 not installed: no peer figure (apt-get install qemu-system-x86)")
		}
		// -device i8042 gives microvm the reset line hello ends with;
		// -no-reboot turns that reset into an exit, as govmm does.
		benchStartup(b, qemu, "-M", "microvm,acpi=off", "-enable-kvm", "-cpu", "qemu64",
			"-m", "128M", "-nodefaults", "-no-user-config", "-nographic", "-serial", "stdio",
			"-device", "i8042", "-no-reboot", "-kernel", hello)
	})
}

func benchStartup(b *testing.B, bin string, args ...string) {
	var firstByte, total time.Duration
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReader(out)
		if _, err := r.ReadByte(); err != nil {
			b.Fatalf("%s: no serial output: %v", bin, err)
		}
		firstByte += time.Since(start)
		io.Copy(io.Discard, r)
		if err := cmd.Wait(); err != nil {
			b.Fatalf("%s: %v", bin, err)
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(firstByte.Microseconds())/float64(b.N), "µs-to-first-byte")
	b.ReportMetric(float64(total.Microseconds())/float64(b.N), "µs-to-exit")
}
