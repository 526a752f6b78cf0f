package tests

import (
	"os"
	"testing"

	"github.com/govmm/govmm/vmm"
)

// TestVirtioIRQ boots vblk_irq, a guest that waits for virtio-blk
// completions with `sti; hlt` instead of polling: the device's irqfd must
// reach the guest's IDT through the in-kernel I/O APIC (GSI from the
// virtio_mmio.device= entry, edge, vector 0x30) and local APIC. It also
// checks used-buffer notification suppression, with EVENT_IDX (used_event)
// and without it (VIRTQ_AVAIL_F_NO_INTERRUPT), the configuration-change
// interrupt that comes with DEVICE_NEEDS_RESET, and that the ACPI DSDT
// describes the device as it is really wired (LNRO0005, its window, the
// GSI that just delivered, edge, active high). See tests/guest/vblk_irq.c.
func TestVirtioIRQ(t *testing.T) {
	RequireKVM(t)
	for _, c := range []struct {
		name, cmdline, suppression string
	}{
		{"event-idx", "console=ttyS0 vblk.expect_acpi=1", "vblk-irq: suppression by used_event (EVENT_IDX)"},
		{"no-event-idx", "console=ttyS0 vblk.expect_acpi=1 vblk.no_event_idx=1 vblk.no_indirect=1",
			"vblk-irq: suppression by VIRTQ_AVAIL_F_NO_INTERRUPT (no EVENT_IDX)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img := makeImage(t, 64)
			r := Boot(t, "vblk_irq", guestTimeout, "--disk", "path="+img, "--cmdline", c.cmdline)
			for _, want := range []string{
				"vblk-irq: GSI 5 -> vector 0x30, fixed, physical dest 0, edge, active high (RTE 0x0000000000000030)",
				"PASS vblk-irq-setup",
				"PASS vblk-irq-acpi",
				"vblk-irq: interrupt 1: InterruptStatus 0x1, used idx 1",
				"PASS vblk-irq-read",
				"vblk-irq: wrote sectors 16-23",
				"PASS vblk-irq-more",
				c.suppression,
				"PASS vblk-irq-suppress",
				"vblk-irq: config interrupt: InterruptStatus 0x2, Status 0x4f",
				"PASS vblk-irq-config",
				"PASS vblk-irq-recover",
				"PASS vblk-irq-count",
				"PASS vblk-irq",
			} {
				if !r.Has(want) {
					t.Errorf("console lacks %q", want)
				}
			}
			requireNoFail(t, r)
			if r.ExitCode != vmm.CodeReset {
				t.Errorf("exit code %d, want reset; stderr: %s", r.ExitCode, r.Stderr)
			}
			b, err := os.ReadFile(img)
			if err != nil {
				t.Fatal(err)
			}
			checkSectors(t, b, 0, 15, original)
			checkSectors(t, b, 16, 23, func(s, i int) byte { return byte((s ^ 0x5a) + i) })
			checkSectors(t, b, 24, 63, original)
		})
	}
}
