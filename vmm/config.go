package vmm

import (
	"errors"
	"fmt"
	"io"

	"github.com/govmm/govmm/devices/virtio/blk"
	"github.com/govmm/govmm/memory"
	"github.com/govmm/govmm/vmm/boot"
)

// Limits on user configuration. They bound what a (semi-trusted)
// configuration can ask of the host, and keep every size the boot code
// computes far from integer overflow.
const (
	MinMemory = 4 << 20 // room for the boot structures and a kernel at 1 MiB
	MaxMemory = 1 << 40 // 1 TiB
	// MaxCPUs is the xAPIC limit: APIC IDs are 8 bits and 0xff is broadcast.
	MaxCPUs = 254
	// DefaultMemory is what `govmm run` gives a guest without --memory.
	DefaultMemory = 128 << 20
)

// DefaultCmdline is the command line of a Linux guest when the user gives
// none: the serial console, reset through the i8042 keyboard controller
// (our only way out of the VM: there is no ACPI), reboot one second after
// a panic instead of hanging, and no PCI probing (there is no PCI bus).
const DefaultCmdline = "console=ttyS0 reboot=k panic=1 pci=off"

// ErrConfig marks a configuration the VMM refuses before anything runs.
// The CLI exits with CodeUsage for it.
var ErrConfig = errors.New("invalid configuration")

// Config describes one VM.
type Config struct {
	// Kernel is the guest image: a PVH ELF, a Linux bzImage or an ELF64
	// vmlinux. It is parsed as hostile input.
	Kernel []byte
	// Initrd is an optional initial ramdisk for a Linux kernel.
	Initrd []byte
	// KernelName names the image in error messages.
	KernelName string
	// Cmdline is the guest command line.
	Cmdline string
	// Memory is guest RAM in bytes, a multiple of 4 KiB.
	Memory uint64
	// MemoryOptions tunes how RAM is mapped (huge pages, prefault, mlock).
	// Its Size is overwritten with Memory.
	MemoryOptions memory.Options
	// CPUs is the number of vCPUs, 1..MaxCPUs.
	CPUs int
	// Console receives the guest's serial output; nil discards it.
	Console io.Writer
	// ConsoleInput, when set, feeds the guest's serial input.
	ConsoleInput io.Reader
	// NoIRQChip runs without the in-kernel LAPIC/IOAPIC/PIC/PIT. Then HLT
	// reaches the VMM (ExitHalt), and only one vCPU is possible because
	// nothing could send the application processors their start-up IPI.
	NoIRQChip bool
	// Disks are virtio-blk devices, in guest order.
	Disks []blk.Spec
	// HostCPUModel passes the host CPU's brand string and model through
	// CPUID. Off by default: hiding host details from the guest is a BSI
	// SYS.1.5 high-protection requirement.
	HostCPUModel bool
	// KVMPath is the KVM device, "/dev/kvm" when empty.
	KVMPath string
	// Hooks, when set, confine the VM's threads before the guest runs
	// (see ThreadHooks). Nil runs unconfined, as tests and fuzzers do.
	Hooks ThreadHooks
}

// Validate checks the configuration and returns an error wrapping ErrConfig
// that names the offending field.
func (c *Config) Validate() error {
	_, _, err := c.validate()
	return err
}

// validate is Validate, also returning what parsing the kernel found, for
// New, so that the image is parsed once per VM.
func (c *Config) validate() (boot.KernelKind, *boot.PVHImage, error) {
	if len(c.Kernel) == 0 {
		return boot.KindUnknown, nil, fmt.Errorf("%w: no kernel image", ErrConfig)
	}
	if c.Memory < MinMemory {
		return boot.KindUnknown, nil, fmt.Errorf("%w: memory %d bytes is below the minimum of %d MiB", ErrConfig, c.Memory, MinMemory>>20)
	}
	if c.Memory > MaxMemory {
		return boot.KindUnknown, nil, fmt.Errorf("%w: memory %d bytes is above the maximum of %d GiB", ErrConfig, c.Memory, uint64(MaxMemory)>>30)
	}
	if c.Memory%memory.PageSize != 0 {
		return boot.KindUnknown, nil, fmt.Errorf("%w: memory %d bytes is not a multiple of 4 KiB", ErrConfig, c.Memory)
	}
	if c.CPUs < 1 || c.CPUs > MaxCPUs {
		return boot.KindUnknown, nil, fmt.Errorf("%w: cpus %d is outside 1..%d", ErrConfig, c.CPUs, MaxCPUs)
	}
	if c.NoIRQChip && c.CPUs != 1 {
		return boot.KindUnknown, nil, fmt.Errorf("%w: cpus %d needs the in-kernel irqchip (only 1 vCPU without it)", ErrConfig, c.CPUs)
	}
	return c.parseKernel()
}

// parseKernel detects the kernel image's format and parses its headers, so
// a malformed image is refused by Validate, with the parser's reason, before
// any host resource exists: a user who hands over a broken image learns
// that, and not whatever the host setup after it (MAC rules, /dev/kvm, the
// jail) would have failed on first.
func (c *Config) parseKernel() (boot.KernelKind, *boot.PVHImage, error) {
	kind := boot.DetectKernel(c.Kernel)
	switch kind {
	case boot.KindPVH:
		pvh, err := boot.ParsePVH(c.Kernel)
		if err != nil {
			return kind, nil, fmt.Errorf("%w: kernel %s: %w", ErrConfig, c.KernelName, err)
		}
		if len(c.Initrd) > 0 {
			return kind, nil, fmt.Errorf("%w: kernel %s boots through PVH, and govmm does not pass an initrd as a PVH module yet; use a bzImage", ErrConfig, c.KernelName)
		}
		return kind, pvh, nil
	case boot.KindBzImage:
		if _, err := boot.ParseBzImage(c.Kernel); err != nil {
			return kind, nil, fmt.Errorf("%w: kernel %s: %w", ErrConfig, c.KernelName, err)
		}
	case boot.KindELF64:
		// A structurally broken ELF64 is refused here, with the ELF
		// parser's precise reason; lacking a PVH note is what makes it
		// KindELF64 and is fine.
		if _, err := boot.ParsePVH(c.Kernel); err != nil && !errors.Is(err, boot.ErrNoPVHNote) {
			return kind, nil, fmt.Errorf("%w: kernel %s: %w", ErrConfig, c.KernelName, err)
		}
	default:
		if _, err := boot.ParseBzImage(c.Kernel); err != nil {
			return kind, nil, fmt.Errorf("%w: kernel %s: not an ELF or bzImage: %w", ErrConfig, c.KernelName, err)
		}
		return kind, nil, fmt.Errorf("%w: kernel %s: unrecognised image format", ErrConfig, c.KernelName)
	}
	return kind, nil, nil
}
