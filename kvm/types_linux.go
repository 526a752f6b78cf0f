//go:build linux && amd64

package kvm

import (
	"encoding/binary"
	"fmt"
)

// The types below mirror kernel structs byte for byte: they are passed to
// ioctls by address, and their sizes feed the ioctl numbers (see
// ioctl_linux.go), so a layout mistake changes an ioctl number and fails
// TestIoctlNumbers, and TestStructLayout compares sizes and offsets with
// values measured from the C headers. Blank (_) fields are kernel padding or
// reserved space; they are ignored by == and must stay zero on input.

// Regs mirrors struct kvm_regs in <asm/kvm.h> (x86-64).
type Regs struct {
	RAX, RBX, RCX, RDX uint64
	RSI, RDI, RSP, RBP uint64
	R8, R9, R10, R11   uint64
	R12, R13, R14, R15 uint64
	RIP, RFLAGS        uint64
}

// Segment mirrors struct kvm_segment in <asm/kvm.h>. The one-byte flags are
// booleans (0/1) except Type, which holds the 4-bit descriptor type.
type Segment struct {
	Base     uint64
	Limit    uint32
	Selector uint16
	Type     uint8
	Present  uint8
	DPL      uint8
	DB       uint8
	S        uint8
	L        uint8
	G        uint8
	AVL      uint8
	Unusable uint8
	_        uint8
}

// DTable mirrors struct kvm_dtable in <asm/kvm.h> (GDTR/IDTR).
type DTable struct {
	Base  uint64
	Limit uint16
	_     [3]uint16
}

// NrInterrupts is KVM_NR_INTERRUPTS: the size in bits of Sregs.InterruptBitmap.
const NrInterrupts = 256

// Sregs mirrors struct kvm_sregs in <asm/kvm.h>.
type Sregs struct {
	CS, DS, ES, FS, GS, SS Segment
	TR, LDT                Segment
	GDT, IDT               DTable
	CR0, CR2, CR3, CR4     uint64
	CR8                    uint64
	EFER                   uint64
	APICBase               uint64
	// InterruptBitmap has one bit per vector pending injection (no-irqchip
	// mode only).
	InterruptBitmap [(NrInterrupts + 63) / 64]uint64
}

// FPU mirrors struct kvm_fpu in <asm/kvm.h> (FXSAVE-style state).
type FPU struct {
	FPR        [8][16]uint8
	FCW        uint16
	FSW        uint16
	FTWX       uint8 // abridged tag word, FXSAVE format
	_          uint8
	LastOpcode uint16
	LastIP     uint64
	LastDP     uint64
	XMM        [16][16]uint8
	MXCSR      uint32
	_          uint32
}

// MSREntry mirrors struct kvm_msr_entry in <asm/kvm.h>.
type MSREntry struct {
	Index uint32
	_     uint32
	Data  uint64
}

// CPUIDEntry mirrors struct kvm_cpuid_entry2 in <asm/kvm.h>.
type CPUIDEntry struct {
	Function uint32
	Index    uint32 // subleaf; meaningful only with CPUIDFlagSignificantIndex
	Flags    uint32
	EAX      uint32
	EBX      uint32
	ECX      uint32
	EDX      uint32
	_        [3]uint32
}

// CPUIDEntry.Flags bits (KVM_CPUID_FLAG_*).
const (
	CPUIDFlagSignificantIndex = 1 << 0
	CPUIDFlagStatefulFunc     = 1 << 1
	CPUIDFlagStateReadNext    = 1 << 2
)

// LAPICRegSize is KVM_APIC_REG_SIZE.
const LAPICRegSize = 0x400

// LAPICState mirrors struct kvm_lapic_state in <asm/kvm.h>: the 1 KiB local
// APIC register page, each 32-bit register at a 16-byte aligned offset.
type LAPICState struct {
	Regs [LAPICRegSize]uint8
}

// Local APIC register offsets used by VMMs to program LINT0/LINT1.
const (
	LAPICRegLVT0 = 0x350
	LAPICRegLVT1 = 0x360
)

func checkLAPICOffset(off uint32) error {
	// Registers are 32 bits wide at 16-byte aligned offsets; checking the
	// upper bound before adding keeps the test free of wrap-around.
	if off%16 != 0 || off > LAPICRegSize-4 {
		return fmt.Errorf("LAPIC register offset %#x: %w", off, ErrInvalidArgument)
	}
	return nil
}

// Reg returns the 32-bit little-endian register at byte offset off.
func (l *LAPICState) Reg(off uint32) (uint32, error) {
	if err := checkLAPICOffset(off); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(l.Regs[off : off+4]), nil
}

// SetReg stores v in the 32-bit register at byte offset off.
func (l *LAPICState) SetReg(off, v uint32) error {
	if err := checkLAPICOffset(off); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(l.Regs[off:off+4], v)
	return nil
}

// VCPUEvents mirrors struct kvm_vcpu_events in <asm/kvm.h>.
type VCPUEvents struct {
	Exception   VCPUEventsException
	Interrupt   VCPUEventsInterrupt
	NMI         VCPUEventsNMI
	SIPIVector  uint32
	Flags       uint32 // VCPUEventValid* bits
	SMI         VCPUEventsSMI
	TripleFault VCPUEventsTripleFault
	_           [26]uint8
	// ExceptionHasPayload and ExceptionPayload are used only with
	// KVM_CAP_EXCEPTION_PAYLOAD enabled.
	ExceptionHasPayload uint8
	ExceptionPayload    uint64
}

// VCPUEventsException mirrors the exception member of struct kvm_vcpu_events.
type VCPUEventsException struct {
	Injected     uint8
	Nr           uint8
	HasErrorCode uint8
	Pending      uint8
	ErrorCode    uint32
}

// VCPUEventsInterrupt mirrors the interrupt member of struct kvm_vcpu_events.
type VCPUEventsInterrupt struct {
	Injected uint8
	Nr       uint8
	Soft     uint8
	Shadow   uint8
}

// VCPUEventsNMI mirrors the nmi member of struct kvm_vcpu_events.
type VCPUEventsNMI struct {
	Injected uint8
	Pending  uint8
	Masked   uint8
	_        uint8
}

// VCPUEventsSMI mirrors the smi member of struct kvm_vcpu_events.
type VCPUEventsSMI struct {
	SMM          uint8
	Pending      uint8
	SMMInsideNMI uint8
	LatchedInit  uint8
}

// VCPUEventsTripleFault mirrors the triple_fault member of struct kvm_vcpu_events.
type VCPUEventsTripleFault struct {
	Pending uint8
}

// VCPUEvents.Flags bits (KVM_VCPUEVENT_VALID_*).
const (
	VCPUEventValidNMIPending  = 0x01
	VCPUEventValidSIPIVector  = 0x02
	VCPUEventValidShadow      = 0x04
	VCPUEventValidSMM         = 0x08
	VCPUEventValidPayload     = 0x10
	VCPUEventValidTripleFault = 0x20
)

// ClockData mirrors struct kvm_clock_data in <linux/kvm.h>.
type ClockData struct {
	Clock    uint64 // kvmclock nanoseconds
	Flags    uint32 // Clock* bits
	_        uint32
	Realtime uint64 // CLOCK_REALTIME ns at the sample, valid with ClockRealtime
	HostTSC  uint64 // host TSC at the sample, valid with ClockHostTSC
	_        [4]uint32
}

// ClockData.Flags bits (KVM_CLOCK_*).
const (
	ClockTSCStable = 1 << 1
	ClockRealtime  = 1 << 2
	ClockHostTSC   = 1 << 3
)

// IRQRoutingEntry mirrors struct kvm_irq_routing_entry in <linux/kvm.h>.
// U is the kernel's 32-byte union; build entries with IRQChipRoute or
// MSIRoute rather than filling U by hand.
type IRQRoutingEntry struct {
	GSI   uint32
	Type  uint32 // IRQRoutingIRQChip or IRQRoutingMSI
	Flags uint32
	_     uint32
	U     [8]uint32
}

// IRQRoutingEntry.Type values (KVM_IRQ_ROUTING_*) and irqchip ids
// (KVM_IRQCHIP_*).
const (
	IRQRoutingIRQChip = 1
	IRQRoutingMSI     = 2

	IRQChipPICMaster = 0
	IRQChipPICSlave  = 1
	IRQChipIOAPIC    = 2
)

// IRQChipRoute routes gsi to pin of an in-kernel irqchip
// (struct kvm_irq_routing_irqchip: irqchip, pin).
func IRQChipRoute(gsi, chip, pin uint32) IRQRoutingEntry {
	e := IRQRoutingEntry{GSI: gsi, Type: IRQRoutingIRQChip}
	e.U[0], e.U[1] = chip, pin
	return e
}

// MSIRoute routes gsi to an MSI write of data to addr
// (struct kvm_irq_routing_msi: address_lo, address_hi, data, pad).
func MSIRoute(gsi uint32, addr uint64, data uint32) IRQRoutingEntry {
	e := IRQRoutingEntry{GSI: gsi, Type: IRQRoutingMSI}
	e.U[0], e.U[1], e.U[2] = uint32(addr), uint32(addr>>32), data
	return e
}

// MPState mirrors struct kvm_mp_state in <linux/kvm.h>, whose only member is
// the __u32 mp_state.
type MPState uint32

// MPState values (KVM_MP_STATE_*).
const (
	MPStateRunnable      MPState = 0
	MPStateUninitialized MPState = 1
	MPStateInitReceived  MPState = 2
	MPStateHalted        MPState = 3
	MPStateSIPIReceived  MPState = 4
	MPStateStopped       MPState = 5
	MPStateCheckStop     MPState = 6
	MPStateOperating     MPState = 7
	MPStateLoad          MPState = 8
	MPStateAPResetHold   MPState = 9
	MPStateSuspended     MPState = 10
)

var mpStateNames = [...]string{
	"RUNNABLE", "UNINITIALIZED", "INIT_RECEIVED", "HALTED", "SIPI_RECEIVED",
	"STOPPED", "CHECK_STOP", "OPERATING", "LOAD", "AP_RESET_HOLD", "SUSPENDED",
}

func (s MPState) String() string {
	if int(s) < len(mpStateNames) {
		return mpStateNames[s]
	}
	return fmt.Sprintf("MPState(%d)", uint32(s))
}

// Flags for VM.SetUserMemoryRegion (KVM_MEM_*).
const (
	MemLogDirtyPages = 1 << 0
	MemReadonly      = 1 << 1
)

// Flags for VM.IRQFD (KVM_IRQFD_FLAG_*). Resampling needs a resamplefd,
// which this API does not take, so only deassign is accepted.
const IRQFDDeassign = 1 << 0

// Flags for VM.IOEventFD (KVM_IOEVENTFD_FLAG_*).
const (
	IOEventFDDatamatch = 1 << 0
	IOEventFDPIO       = 1 << 1
	IOEventFDDeassign  = 1 << 2
)

// The unexported mirrors below are argument blocks that callers never see.

// userspaceMemoryRegion mirrors struct kvm_userspace_memory_region in <linux/kvm.h>.
type userspaceMemoryRegion struct {
	Slot          uint32
	Flags         uint32
	GuestPhysAddr uint64
	MemorySize    uint64
	UserspaceAddr uint64
}

// irqLevel mirrors struct kvm_irq_level in <linux/kvm.h>.
type irqLevel struct {
	IRQ   uint32
	Level uint32
}

// irqfd mirrors struct kvm_irqfd in <linux/kvm.h>.
type irqfd struct {
	FD         uint32
	GSI        uint32
	Flags      uint32
	ResampleFD uint32
	_          [16]uint8
}

// ioeventfd mirrors struct kvm_ioeventfd in <linux/kvm.h>.
type ioeventfd struct {
	Datamatch uint64
	Addr      uint64
	Len       uint32
	FD        int32
	Flags     uint32
	_         [36]uint8
}

// pitConfig mirrors struct kvm_pit_config in <linux/kvm.h>.
type pitConfig struct {
	Flags uint32
	_     [15]uint32
}

// interrupt mirrors struct kvm_interrupt in <linux/kvm.h>.
type interrupt struct {
	IRQ uint32
}

// The following mirror the fixed headers of structs that end in a flexible
// array; the array element types are CPUIDEntry, MSREntry, uint32 and
// IRQRoutingEntry. The ioctl numbers encode only the header size.

// cpuid2Header mirrors the fixed part of struct kvm_cpuid2 in <asm/kvm.h>.
type cpuid2Header struct {
	Nent uint32
	_    uint32
}

// msrsHeader mirrors the fixed part of struct kvm_msrs in <asm/kvm.h>.
type msrsHeader struct {
	NMSRs uint32
	_     uint32
}

// msrListHeader mirrors the fixed part of struct kvm_msr_list in <asm/kvm.h>.
type msrListHeader struct {
	NMSRs uint32
}

// irqRoutingHeader mirrors the fixed part of struct kvm_irq_routing in <linux/kvm.h>.
type irqRoutingHeader struct {
	Nr    uint32
	Flags uint32
}

// kvmRun mirrors struct kvm_run in <linux/kvm.h> (x86-64). It is never used
// as a Go value: RunData reads the shared mapping with bounds-checked byte
// accesses at offsets derived from this struct and the exit structs below,
// so the offsets come from a layout that TestStructLayout checks.
type kvmRun struct {
	RequestInterruptWindow     uint8
	ImmediateExit              uint8
	_                          [6]uint8
	ExitReason                 uint32
	ReadyForInterruptInjection uint8
	IFFlag                     uint8
	Flags                      uint16
	CR8                        uint64
	APICBase                   uint64
	Exit                       [256]uint8 // the exit-reason union
	KVMValidRegs               uint64
	KVMDirtyRegs               uint64
	S                          [2048]uint8 // union kvm_sync_regs + padding
}

// kvmRunIO mirrors the io member of the kvm_run exit union.
type kvmRunIO struct {
	Direction  uint8
	Size       uint8
	Port       uint16
	Count      uint32
	DataOffset uint64 // relative to the start of kvm_run
}

// kvmRunMMIO mirrors the mmio member of the kvm_run exit union.
type kvmRunMMIO struct {
	PhysAddr uint64
	Data     [8]uint8
	Len      uint32
	IsWrite  uint8
}

// kvmRunFailEntry mirrors the fail_entry member of the kvm_run exit union.
type kvmRunFailEntry struct {
	HardwareEntryFailureReason uint64
	CPU                        uint32
}

// kvmRunInternal mirrors the internal member of the kvm_run exit union.
type kvmRunInternal struct {
	Suberror uint32
	NData    uint32
	Data     [16]uint64
}

// kvmRunSystemEvent mirrors the system_event member of the kvm_run exit
// union; Flags shares its storage with data[0] in newer headers.
type kvmRunSystemEvent struct {
	Type  uint32
	NData uint32
	Flags uint64
}
