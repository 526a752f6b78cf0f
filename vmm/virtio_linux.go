package vmm

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/devices/virtio/blk"
	"github.com/govmm/govmm/devices/virtio/mmio"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/memory"
	"github.com/govmm/govmm/vmm/x86"
)

// virtioIRQs are the GSIs handed to virtio-mmio devices, in order. They
// skip 0-2 (PIT, keyboard, PIC cascade), 4 (COM1), 8 (RTC) and 9 (the
// ACPI SCI), so no device shares a line with the platform devices. They
// stop at 15: a kernel that learns interrupts from the MP table (our
// guest kernel has no ACPI) maps only the 16 ISA lines it describes, and
// a command-line virtio-mmio device names a bare IRQ number.
var virtioIRQs = []uint32{5, 6, 7, 10, 11, 12, 13, 14, 15}

// virtioMMIO is one virtio-mmio device: its window, its interrupt and the
// worker that serves its queues.
type virtioMMIO struct {
	name   string
	base   uint64
	irq    uint32
	irqfd  int
	t      *mmio.Transport
	disk   *blk.Disk // the backend, closed with the VM
	worker *deviceWorker
}

// irqfdInterrupt raises a device's interrupt by writing its irqfd: KVM
// injects it without the device worker ever leaving its epoll loop for a
// vCPU, and no vCPU exit to userspace is needed.
type irqfdInterrupt struct{ fd int }

func (i irqfdInterrupt) Trigger() error {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(i.fd, one[:]); err != nil {
		return fmt.Errorf("write irqfd: %w", err)
	}
	return nil
}

// virtioNotifyOffset is QueueNotify in the virtio-mmio register layout
// (virtio 1.2 §4.2.2); KVM matches guest writes there against each queue's
// ioeventfd by the written value (the queue index).
const virtioNotifyOffset = 0x50

// setupVirtio creates the block devices, places their windows upward from
// memory.VirtioMMIOBase and wires notifications and interrupts.
func (v *VM) setupVirtio() error {
	if len(v.cfg.Disks) > len(virtioIRQs) {
		return fmt.Errorf("%w: %d disks, at most %d virtio devices", ErrConfig, len(v.cfg.Disks), len(virtioIRQs))
	}
	if len(v.cfg.Disks) > 0 && v.cfg.NoIRQChip {
		return fmt.Errorf("%w: virtio devices need the in-kernel irqchip", ErrConfig)
	}
	for i, spec := range v.cfg.Disks {
		d, err := blk.Open(spec.Path, spec.Options())
		if err != nil {
			return fmt.Errorf("%w: --disk %s: %w", ErrConfig, spec.Path, err)
		}
		dev := &virtioMMIO{name: fmt.Sprintf("virtio-blk%d", i), disk: d,
			base: memory.VirtioMMIOBase + uint64(i)*memory.VirtioMMIOSize, irq: virtioIRQs[i], irqfd: -1}
		v.virtio = append(v.virtio, dev)
		if dev.irqfd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
			return fmt.Errorf("eventfd: %w", err)
		}
		if err := v.vm.IRQFD(dev.irqfd, dev.irq, 0); err != nil {
			return err
		}
		dev.t = mmio.New(d, v.mem, irqfdInterrupt{dev.irqfd}, v.log.With("device", dev.name))
		if err := v.mmio.Register(dev.base, memory.VirtioMMIOSize, dev.name, dev.t); err != nil {
			return err
		}
		if dev.worker, err = newDeviceWorker(dev.name, dev.t.Notify, d.RetryAfter); err != nil {
			return err
		}
		dev.t.SetKicker(dev.worker.kick)
		for q := range d.QueueMaxSizes() {
			fd, err := dev.worker.addQueue(q)
			if err != nil {
				return err
			}
			if err := v.vm.IOEventFD(fd, dev.base+virtioNotifyOffset, 4, uint64(q), kvm.IOEventFDDatamatch); err != nil {
				return err
			}
		}
	}
	return nil
}

// virtioCmdline is what the guest needs to find the devices: one
// virtio_mmio.device=<size>@<base>:<irq> per device, which Linux's
// virtio_mmio driver (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES) and our guest
// programs parse.
//
// The same devices are also in the ACPI DSDT (virtioACPI, LNRO0005
// devices), and both stay, because each serves kernels the other cannot:
//
//   - The command line is the only way for kernels without ACPI (our
//     guest kernel, guest/kernel/govmm.config, has CONFIG_ACPI off and
//     CONFIG_X86_MPPARSE on), for acpi=off, and for the PVH test programs.
//     Their IRQ is the bare number, which the MP table's identity ISA
//     routing maps (hence GSIs below 16).
//   - The DSDT is the only way for a stock ACPI kernel: Debian's cloud
//     kernel (6.1, CONFIG_ACPI=y) builds virtio_mmio without
//     CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES, so it ignores the command-line
//     entries; and an ACPI kernel that does parse them could not use their
//     IRQ, because in HW-reduced mode Linux maps no ISA IRQ numbers (see
//     x86's dsdtAML), only GSIs a _CRS names.
//
// A kernel with ACPI and CMDLINE_DEVICES sees each device twice; Linux does
// not de-duplicate, but the outcome is fixed: the ACPI scan
// (subsys_initcall) registers the LNRO0005 platform device before the
// command-line parameters are applied (device initcall level, or module
// load), so the ACPI one probes first and claims the window, and the
// command-line duplicate's probe fails with -EBUSY (devm_ioremap_resource:
// "can't request region"): two warnings in dmesg, nothing else. That is
// what Firecracker ships (docs/kernel-policy.md, "Caveats": devices are
// passed "twice, once through ACPI and a second time via kernel command
// line ... the devices will work correctly"). QEMU's microvm writes one
// or the other instead (command line only with acpi=off), but it has a
// machine option to choose by; govmm cannot tell from a bzImage whether
// its kernel has ACPI.
func (v *VM) virtioCmdline() string {
	var b strings.Builder
	for _, d := range v.virtio {
		fmt.Fprintf(&b, " virtio_mmio.device=4K@%#x:%d", d.base, d.irq)
	}
	return b.String()
}

// virtioACPI describes the devices for the ACPI DSDT: window and GSI, in
// allocation order (device i is --disk i).
func (v *VM) virtioACPI() []x86.VirtioMMIO {
	out := make([]x86.VirtioMMIO, 0, len(v.virtio))
	for _, d := range v.virtio {
		out = append(out, x86.VirtioMMIO{Base: d.base, Size: memory.VirtioMMIOSize, GSI: d.irq})
	}
	return out
}

func (v *VM) startVirtio(gate *startGate) {
	for i, d := range v.virtio {
		d.worker.start(func(tid int) bool {
			return gate.park(v, Thread{Class: ThreadDevice, Index: i, Name: d.name, TID: tid})
		})
	}
}

// closeVirtio stops the workers (after the vCPUs, so no notification is
// half-handled) and releases the devices.
func (v *VM) closeVirtio() error {
	var first error
	for _, d := range v.virtio {
		if d.worker != nil {
			d.worker.stop()
			d.worker.close()
		}
		if d.irqfd >= 0 {
			unix.Close(d.irqfd)
		}
		if d.disk != nil {
			if err := d.disk.Close(); err != nil && first == nil {
				first = err
			}
		}
	}
	return first
}
