//go:build linux && amd64

package kvm

import (
	"fmt"
	"math"

	"golang.org/x/sys/unix"
)

const pageSize = 0x1000

// VM is a KVM virtual machine fd. vCPU fds created from it keep the VM
// alive in the kernel even after Close.
type VM struct {
	f        fdRef
	mmapSize int // KVM_GET_VCPU_MMAP_SIZE, >= sizeofKVMRun; immutable
}

// Close closes the VM fd.
func (vm *VM) Close() error { return vm.f.close("VM", nil) }

func (vm *VM) ioctlArg(name string, req, arg uintptr) (int, error) {
	fd, err := vm.f.acquire()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	defer vm.f.release()
	r, err := ioctl(fd, name, req, arg)
	return int(r), err
}

func vmIoctlPtr[T any](vm *VM, name string, req uintptr, p *T) error {
	fd, err := vm.f.acquire()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer vm.f.release()
	_, err = ioctlPtr(fd, name, req, p)
	return err
}

func invalid(name, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", name, fmt.Sprintf(format, args...), ErrInvalidArgument)
}

// checkMemoryRegion validates KVM_SET_USER_MEMORY_REGION arguments. KVM
// checks the same things, but an EINVAL from the kernel does not say which.
func checkMemoryRegion(flags uint32, gpa, size uint64, host uintptr) error {
	const name = "KVM_SET_USER_MEMORY_REGION"
	switch {
	case flags&^(MemLogDirtyPages|MemReadonly) != 0:
		return invalid(name, "unknown flags %#x", flags)
	case gpa%pageSize != 0 || size%pageSize != 0 || uint64(host)%pageSize != 0:
		return invalid(name, "gpa %#x size %#x host %#x not page aligned", gpa, size, host)
	case gpa > math.MaxUint64-size:
		return invalid(name, "gpa %#x + size %#x overflows", gpa, size)
	case size != 0 && host == 0:
		return invalid(name, "nil host address for %#x bytes", size)
	case uint64(host) > math.MaxUint64-size:
		return invalid(name, "host %#x + size %#x overflows", host, size)
	}
	return nil
}

// SetUserMemoryRegion maps size bytes of host memory at host into guest
// physical address gpa as memory slot slot (size 0 deletes the slot).
// The host memory must stay mapped for as long as the slot exists.
func (vm *VM) SetUserMemoryRegion(slot, flags uint32, gpa, size uint64, host uintptr) error {
	if err := checkMemoryRegion(flags, gpa, size, host); err != nil {
		return err
	}
	r := userspaceMemoryRegion{Slot: slot, Flags: flags, GuestPhysAddr: gpa, MemorySize: size, UserspaceAddr: uint64(host)}
	return vmIoctlPtr(vm, "KVM_SET_USER_MEMORY_REGION", ioctlSetUserMemoryRegion, &r)
}

// Sizes of the areas Intel VMX needs below 4 GiB for real-mode emulation.
const (
	TSSSize         = 3 * pageSize
	IdentityMapSize = pageSize
)

func checkTSSAddr(addr uint64) error {
	if addr > 1<<32-TSSSize {
		return invalid("KVM_SET_TSS_ADDR", "%#x: the 3-page TSS must lie below 4 GiB", addr)
	}
	return nil
}

func checkIdentityMapAddr(addr uint64) error {
	if addr%pageSize != 0 || addr > 1<<32-IdentityMapSize {
		return invalid("KVM_SET_IDENTITY_MAP_ADDR", "%#x: must be a page-aligned page below 4 GiB", addr)
	}
	return nil
}

// SetTSSAddr places the 3-page real-mode TSS (KVM_SET_TSS_ADDR) at a
// guest-physical address that must not overlap RAM or devices.
func (vm *VM) SetTSSAddr(addr uint64) error {
	if err := checkTSSAddr(addr); err != nil {
		return err
	}
	_, err := vm.ioctlArg("KVM_SET_TSS_ADDR", ioctlSetTSSAddr, uintptr(addr))
	return err
}

// SetIdentityMapAddr places the one-page EPT identity map
// (KVM_SET_IDENTITY_MAP_ADDR).
func (vm *VM) SetIdentityMapAddr(addr uint64) error {
	if err := checkIdentityMapAddr(addr); err != nil {
		return err
	}
	return vmIoctlPtr(vm, "KVM_SET_IDENTITY_MAP_ADDR", ioctlSetIdentityMapAddr, &addr)
}

// CreateIRQChip creates the in-kernel PIC, IOAPIC and local APICs
// (KVM_CREATE_IRQCHIP). It must precede CreateVCPU.
func (vm *VM) CreateIRQChip() error {
	_, err := vm.ioctlArg("KVM_CREATE_IRQCHIP", ioctlCreateIRQChip, 0)
	return err
}

// CreatePIT2 creates the in-kernel i8254 PIT (KVM_CREATE_PIT2, flags 0).
func (vm *VM) CreatePIT2() error {
	var c pitConfig
	return vmIoctlPtr(vm, "KVM_CREATE_PIT2", ioctlCreatePIT2, &c)
}

// IRQLine sets the level of an in-kernel irqchip input (KVM_IRQ_LINE).
func (vm *VM) IRQLine(irq uint32, level bool) error {
	l := irqLevel{IRQ: irq}
	if level {
		l.Level = 1
	}
	return vmIoctlPtr(vm, "KVM_IRQ_LINE", ioctlIRQLine, &l)
}

func checkIRQFD(fd int, flags uint32) error {
	if fd < 0 || fd > math.MaxInt32 {
		return invalid("KVM_IRQFD", "fd %d", fd)
	}
	if flags&^IRQFDDeassign != 0 {
		return invalid("KVM_IRQFD", "unsupported flags %#x", flags)
	}
	return nil
}

// IRQFD makes writes to eventfd fd inject gsi (KVM_IRQFD); flags
// IRQFDDeassign removes the binding.
func (vm *VM) IRQFD(fd int, gsi uint32, flags uint32) error {
	if err := checkIRQFD(fd, flags); err != nil {
		return err
	}
	a := irqfd{FD: uint32(fd), GSI: gsi, Flags: flags}
	return vmIoctlPtr(vm, "KVM_IRQFD", ioctlIRQFD, &a)
}

func checkIOEventFD(fd int, addr uint64, length uint32, flags uint32) error {
	const name = "KVM_IOEVENTFD"
	if fd < 0 || fd > math.MaxInt32 {
		return invalid(name, "fd %d", fd)
	}
	if flags&^(IOEventFDDatamatch|IOEventFDPIO|IOEventFDDeassign) != 0 {
		return invalid(name, "unsupported flags %#x", flags)
	}
	switch length {
	case 0, 1, 2, 4, 8:
	default:
		return invalid(name, "length %d", length)
	}
	if flags&IOEventFDDatamatch != 0 && length == 0 {
		return invalid(name, "datamatch needs a length")
	}
	limit, space := uint64(math.MaxUint64), "physical address"
	if flags&IOEventFDPIO != 0 {
		limit, space = 1<<16, "port"
	}
	if addr > limit || uint64(length) > limit-addr {
		return invalid(name, "address %#x + %d outside the %s space", addr, length, space)
	}
	return nil
}

// IOEventFD makes guest writes of length bytes (0: any length) to addr
// signal eventfd fd instead of exiting (KVM_IOEVENTFD). Flags:
// IOEventFDPIO (addr is a port), IOEventFDDatamatch (only when the value
// equals datamatch), IOEventFDDeassign.
func (vm *VM) IOEventFD(fd int, addr uint64, length uint32, datamatch uint64, flags uint32) error {
	if err := checkIOEventFD(fd, addr, length, flags); err != nil {
		return err
	}
	a := ioeventfd{Datamatch: datamatch, Addr: addr, Len: length, FD: int32(fd), Flags: flags}
	return vmIoctlPtr(vm, "KVM_IOEVENTFD", ioctlIOEventFD, &a)
}

func checkRouting(entries []IRQRoutingEntry) error {
	const name = "KVM_SET_GSI_ROUTING"
	if len(entries) > maxRoutingEntries {
		return invalid(name, "%d entries, at most %d", len(entries), maxRoutingEntries)
	}
	for i, e := range entries {
		if e.Type != IRQRoutingIRQChip && e.Type != IRQRoutingMSI {
			return invalid(name, "entry %d: unsupported type %d", i, e.Type)
		}
	}
	return nil
}

// SetGSIRouting replaces the whole GSI routing table (KVM_SET_GSI_ROUTING).
// Only irqchip and MSI entries are accepted.
func (vm *VM) SetGSIRouting(entries []IRQRoutingEntry) error {
	const name = "KVM_SET_GSI_ROUTING"
	if err := checkRouting(entries); err != nil {
		return err
	}
	f, err := newFlex[irqRoutingHeader, IRQRoutingEntry](len(entries))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	f.hdr.Nr = uint32(len(entries))
	copy(f.ents, entries)
	fd, err := vm.f.acquire()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer vm.f.release()
	_, err = f.ioctl(fd, name, ioctlSetGSIRouting)
	return err
}

// GetClock returns the VM's kvmclock (KVM_GET_CLOCK).
func (vm *VM) GetClock() (ClockData, error) {
	var c ClockData
	err := vmIoctlPtr(vm, "KVM_GET_CLOCK", ioctlGetClock, &c)
	return c, err
}

// SetClock sets the VM's kvmclock (KVM_SET_CLOCK). With ClockRealtime in
// Flags the kernel advances Clock by the time elapsed since Realtime.
func (vm *VM) SetClock(c ClockData) error {
	return vmIoctlPtr(vm, "KVM_SET_CLOCK", ioctlSetClock, &c)
}

// CreateVCPU creates vCPU id (KVM_CREATE_VCPU) and maps its kvm_run.
func (vm *VM) CreateVCPU(id int) (*VCPU, error) {
	if id < 0 || id > math.MaxInt32 {
		return nil, invalid("KVM_CREATE_VCPU", "id %d", id)
	}
	fd, err := vm.ioctlArg("KVM_CREATE_VCPU", ioctlCreateVCPU, uintptr(id))
	if err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(fd, 0, vm.mmapSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mmap kvm_run of vCPU %d: %w", id, err)
	}
	run, err := newRunData(mem)
	if err != nil {
		unix.Munmap(mem)
		unix.Close(fd)
		return nil, err
	}
	return &VCPU{f: newFDRef(fd), id: id, mem: mem, run: run}, nil
}
