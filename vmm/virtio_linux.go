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
func (v *VM) virtioCmdline() string {
	var b strings.Builder
	for _, d := range v.virtio {
		fmt.Fprintf(&b, " virtio_mmio.device=4K@%#x:%d", d.base, d.irq)
	}
	return b.String()
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
