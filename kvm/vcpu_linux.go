//go:build linux && amd64

package kvm

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// VCPU is a vCPU fd and its mapped kvm_run.
type VCPU struct {
	f   fdRef
	id  int      // immutable
	mem []byte   // the kvm_run mapping; unmapped by Close (under f's write lock)
	run *RunData // view of mem; detached before mem is unmapped
}

// ID returns the vCPU id given to CreateVCPU.
func (v *VCPU) ID() int { return v.id }

// Close detaches RunData, unmaps kvm_run and closes the fd. It waits for a
// KVM_RUN in progress to return, so stop the vCPU first (package doc).
func (v *VCPU) Close() error {
	return v.f.close(fmt.Sprintf("vCPU %d", v.id), func() error {
		v.run.release()
		err := unix.Munmap(v.mem)
		v.mem = nil
		if err != nil {
			return fmt.Errorf("munmap kvm_run of vCPU %d: %w", v.id, err)
		}
		return nil
	})
}

// RunData returns the view of this vCPU's kvm_run.
func (v *VCPU) RunData() *RunData { return v.run }

// Run enters the guest once (KVM_RUN) and returns when it exits; the exit
// is then described by RunData. If a signal interrupted KVM_RUN, or
// immediate_exit was set, Run returns an error matching both ErrInterrupted
// and unix.EINTR. That is routine (Go preempts goroutines with SIGURG), so
// callers loop deliberately, checking their own stop condition, rather than
// treating it as failure. Run is not retried internally for the same reason.
func (v *VCPU) Run() error {
	fd, err := v.f.acquire()
	if err != nil {
		return fmt.Errorf("KVM_RUN: %w", err)
	}
	defer v.f.release()
	switch errno := ioctlRunOnce(fd); errno {
	case 0:
		return nil
	case unix.EINTR:
		return fmt.Errorf("KVM_RUN: %w (%w)", ErrInterrupted, errno)
	default:
		return fmt.Errorf("KVM_RUN: %w", errno)
	}
}

func vcpuIoctlPtr[T any](v *VCPU, name string, req uintptr, p *T) (int, error) {
	fd, err := v.f.acquire()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	defer v.f.release()
	r, err := ioctlPtr(fd, name, req, p)
	return int(r), err
}

func vcpuGet[T any](v *VCPU, name string, req uintptr) (T, error) {
	var x T
	_, err := vcpuIoctlPtr(v, name, req, &x)
	return x, err
}

func vcpuSet[T any](v *VCPU, name string, req uintptr, x T) error {
	_, err := vcpuIoctlPtr(v, name, req, &x)
	return err
}

// GetRegs returns the general-purpose registers (KVM_GET_REGS).
func (v *VCPU) GetRegs() (Regs, error) { return vcpuGet[Regs](v, "KVM_GET_REGS", ioctlGetRegs) }

// SetRegs sets the general-purpose registers (KVM_SET_REGS).
func (v *VCPU) SetRegs(r Regs) error { return vcpuSet(v, "KVM_SET_REGS", ioctlSetRegs, r) }

// GetSregs returns the segment and control registers (KVM_GET_SREGS).
func (v *VCPU) GetSregs() (Sregs, error) { return vcpuGet[Sregs](v, "KVM_GET_SREGS", ioctlGetSregs) }

// SetSregs sets the segment and control registers (KVM_SET_SREGS).
func (v *VCPU) SetSregs(s Sregs) error { return vcpuSet(v, "KVM_SET_SREGS", ioctlSetSregs, s) }

// GetFPU returns the FPU/SSE state (KVM_GET_FPU).
func (v *VCPU) GetFPU() (FPU, error) { return vcpuGet[FPU](v, "KVM_GET_FPU", ioctlGetFPU) }

// SetFPU sets the FPU/SSE state (KVM_SET_FPU).
func (v *VCPU) SetFPU(f FPU) error { return vcpuSet(v, "KVM_SET_FPU", ioctlSetFPU, f) }

// GetLAPIC returns the local APIC register page (KVM_GET_LAPIC; needs an
// in-kernel irqchip).
func (v *VCPU) GetLAPIC() (LAPICState, error) {
	return vcpuGet[LAPICState](v, "KVM_GET_LAPIC", ioctlGetLAPIC)
}

// SetLAPIC sets the local APIC register page (KVM_SET_LAPIC).
func (v *VCPU) SetLAPIC(l LAPICState) error { return vcpuSet(v, "KVM_SET_LAPIC", ioctlSetLAPIC, l) }

// GetVCPUEvents returns pending exceptions/interrupts/NMI/SMI state
// (KVM_GET_VCPU_EVENTS).
func (v *VCPU) GetVCPUEvents() (VCPUEvents, error) {
	return vcpuGet[VCPUEvents](v, "KVM_GET_VCPU_EVENTS", ioctlGetVCPUEvents)
}

// SetVCPUEvents sets that state (KVM_SET_VCPU_EVENTS); Flags selects which
// optional parts are applied.
func (v *VCPU) SetVCPUEvents(e VCPUEvents) error {
	return vcpuSet(v, "KVM_SET_VCPU_EVENTS", ioctlSetVCPUEvents, e)
}

// GetMPState returns the multiprocessing state (KVM_GET_MP_STATE).
func (v *VCPU) GetMPState() (MPState, error) {
	return vcpuGet[MPState](v, "KVM_GET_MP_STATE", ioctlGetMPState)
}

// SetMPState sets the multiprocessing state (KVM_SET_MP_STATE).
func (v *VCPU) SetMPState(s MPState) error {
	return vcpuSet(v, "KVM_SET_MP_STATE", ioctlSetMPState, s)
}

// Interrupt queues external interrupt vector (KVM_INTERRUPT). Only valid
// without an in-kernel irqchip, when RunData reports
// ReadyForInterruptInjection.
func (v *VCPU) Interrupt(vector uint32) error {
	if vector > 0xff {
		return invalid("KVM_INTERRUPT", "vector %d", vector)
	}
	return vcpuSet(v, "KVM_INTERRUPT", ioctlInterrupt, interrupt{IRQ: vector})
}

// SetCPUID2 sets the CPUID the guest sees (KVM_SET_CPUID2).
func (v *VCPU) SetCPUID2(entries []CPUIDEntry) error {
	const name = "KVM_SET_CPUID2"
	if len(entries) > maxCPUIDEntries {
		return invalid(name, "%d entries, at most %d", len(entries), maxCPUIDEntries)
	}
	f, err := newFlex[cpuid2Header, CPUIDEntry](len(entries))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	f.hdr.Nent = uint32(len(entries))
	copy(f.ents, entries)
	fd, err := v.f.acquire()
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer v.f.release()
	_, err = f.ioctl(fd, name, ioctlSetCPUID2)
	return err
}

// msrIoctl runs KVM_GET_MSRS or KVM_SET_MSRS over entries. Both return the
// number of MSRs processed and stop at the first one KVM refuses, so a
// short count is an error naming that MSR rather than a silent partial
// result.
func (v *VCPU) msrIoctl(name string, req uintptr, entries []MSREntry) ([]MSREntry, error) {
	if len(entries) > maxMSRs {
		return nil, invalid(name, "%d MSRs, at most %d", len(entries), maxMSRs)
	}
	if len(entries) == 0 {
		return nil, nil
	}
	f, err := newFlex[msrsHeader, MSREntry](len(entries))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f.hdr.NMSRs = uint32(len(entries))
	copy(f.ents, entries)
	fd, err := v.f.acquire()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer v.f.release()
	r, err := f.ioctl(fd, name, req)
	if err != nil {
		return nil, err
	}
	if r > uintptr(len(entries)) {
		return nil, fmt.Errorf("%s: processed %d of %d MSRs: %w", name, r, len(entries), ErrUnexpectedReply)
	}
	if r < uintptr(len(entries)) {
		return nil, fmt.Errorf("%s: MSR %#x (entry %d of %d): %w", name, entries[r].Index, r, len(entries), ErrMSRNotProcessed)
	}
	return append([]MSREntry(nil), f.ents...), nil
}

// GetMSRs reads the MSRs listed in idx (KVM_GET_MSRS), in order.
func (v *VCPU) GetMSRs(idx []uint32) ([]MSREntry, error) {
	entries := make([]MSREntry, len(idx))
	for i, x := range idx {
		entries[i].Index = x
	}
	return v.msrIoctl("KVM_GET_MSRS", ioctlGetMSRs, entries)
}

// SetMSRs writes entries (KVM_SET_MSRS).
func (v *VCPU) SetMSRs(entries []MSREntry) error {
	_, err := v.msrIoctl("KVM_SET_MSRS", ioctlSetMSRs, entries)
	return err
}
