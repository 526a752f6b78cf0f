//go:build linux && amd64

package kvm

import "fmt"

// Cap is a KVM_CAP_* extension number for System.CheckExtension.
type Cap int

// KVM_CAP_* values from <linux/kvm.h>.
const (
	CapIRQChip            Cap = 0
	CapHLT                Cap = 1
	CapUserMemory         Cap = 3
	CapSetTSSAddr         Cap = 4
	CapExtCPUID           Cap = 7
	CapNrVCPUs            Cap = 9
	CapNrMemslots         Cap = 10
	CapPIT                Cap = 11
	CapMPState            Cap = 14
	CapCoalescedMMIO      Cap = 15
	CapUserNMI            Cap = 22
	CapSetGuestDebug      Cap = 23
	CapIRQRouting         Cap = 25
	CapIRQInjectStatus    Cap = 26
	CapIRQFD              Cap = 32
	CapPIT2               Cap = 33
	CapPITState2          Cap = 35
	CapIOEventFD          Cap = 36
	CapSetIdentityMapAddr Cap = 37
	CapAdjustClock        Cap = 39
	CapVCPUEvents         Cap = 41
	CapDebugRegs          Cap = 50
	CapXSAVE              Cap = 55
	CapXCRS               Cap = 56
	CapTSCControl         Cap = 60
	CapGetTSCKHz          Cap = 61
	CapMaxVCPUs           Cap = 66
	CapTSCDeadlineTimer   Cap = 72
	CapSyncRegs           Cap = 74
	CapKVMClockCtrl       Cap = 76
	CapSignalMSI          Cap = 77
	CapReadonlyMem        Cap = 81
	CapIRQFDResample      Cap = 82
	CapSplitIRQChip       Cap = 121
	CapMaxVCPUID          Cap = 128
	CapX2APICAPI          Cap = 129
	CapImmediateExit      Cap = 136
)

var capNames = map[Cap]string{
	CapIRQChip: "IRQCHIP", CapHLT: "HLT", CapUserMemory: "USER_MEMORY",
	CapSetTSSAddr: "SET_TSS_ADDR", CapExtCPUID: "EXT_CPUID", CapNrVCPUs: "NR_VCPUS",
	CapNrMemslots: "NR_MEMSLOTS", CapPIT: "PIT", CapMPState: "MP_STATE",
	CapCoalescedMMIO: "COALESCED_MMIO", CapUserNMI: "USER_NMI",
	CapSetGuestDebug: "SET_GUEST_DEBUG", CapIRQRouting: "IRQ_ROUTING",
	CapIRQInjectStatus: "IRQ_INJECT_STATUS", CapIRQFD: "IRQFD", CapPIT2: "PIT2",
	CapPITState2: "PIT_STATE2", CapIOEventFD: "IOEVENTFD",
	CapSetIdentityMapAddr: "SET_IDENTITY_MAP_ADDR", CapAdjustClock: "ADJUST_CLOCK",
	CapVCPUEvents: "VCPU_EVENTS", CapDebugRegs: "DEBUGREGS", CapXSAVE: "XSAVE",
	CapXCRS: "XCRS", CapTSCControl: "TSC_CONTROL", CapGetTSCKHz: "GET_TSC_KHZ",
	CapMaxVCPUs: "MAX_VCPUS", CapTSCDeadlineTimer: "TSC_DEADLINE_TIMER",
	CapSyncRegs: "SYNC_REGS", CapKVMClockCtrl: "KVMCLOCK_CTRL",
	CapSignalMSI: "SIGNAL_MSI", CapReadonlyMem: "READONLY_MEM",
	CapIRQFDResample: "IRQFD_RESAMPLE", CapSplitIRQChip: "SPLIT_IRQCHIP",
	CapMaxVCPUID: "MAX_VCPU_ID", CapX2APICAPI: "X2APIC_API",
	CapImmediateExit: "IMMEDIATE_EXIT",
}

func (c Cap) String() string {
	if n, ok := capNames[c]; ok {
		return "KVM_CAP_" + n
	}
	return fmt.Sprintf("Cap(%d)", int(c))
}

// ExitReason is kvm_run.exit_reason (KVM_EXIT_*). It is written by the
// kernel but describes guest behaviour, so any value must be handled.
type ExitReason uint32

// KVM_EXIT_* values from <linux/kvm.h>.
const (
	ExitUnknown       ExitReason = 0
	ExitException     ExitReason = 1
	ExitIO            ExitReason = 2
	ExitHypercall     ExitReason = 3
	ExitDebug         ExitReason = 4
	ExitHLT           ExitReason = 5
	ExitMMIO          ExitReason = 6
	ExitIRQWindowOpen ExitReason = 7
	ExitShutdown      ExitReason = 8
	ExitFailEntry     ExitReason = 9
	ExitIntr          ExitReason = 10
	ExitSetTPR        ExitReason = 11
	ExitTPRAccess     ExitReason = 12
	ExitNMI           ExitReason = 16
	ExitInternalError ExitReason = 17
	ExitWatchdog      ExitReason = 21
	ExitEPR           ExitReason = 23
	ExitSystemEvent   ExitReason = 24
	ExitIOAPICEOI     ExitReason = 26
	ExitHyperV        ExitReason = 27
	ExitX86RDMSR      ExitReason = 29
	ExitX86WRMSR      ExitReason = 30
	ExitDirtyRingFull ExitReason = 31
	ExitAPResetHold   ExitReason = 32
	ExitX86BusLock    ExitReason = 33
	ExitXen           ExitReason = 34
	ExitNotify        ExitReason = 37
	ExitMemoryFault   ExitReason = 39 // Linux 6.8+; absent from Debian 12 headers
)

var exitNames = map[ExitReason]string{
	ExitUnknown: "UNKNOWN", ExitException: "EXCEPTION", ExitIO: "IO",
	ExitHypercall: "HYPERCALL", ExitDebug: "DEBUG", ExitHLT: "HLT",
	ExitMMIO: "MMIO", ExitIRQWindowOpen: "IRQ_WINDOW_OPEN",
	ExitShutdown: "SHUTDOWN", ExitFailEntry: "FAIL_ENTRY", ExitIntr: "INTR",
	ExitSetTPR: "SET_TPR", ExitTPRAccess: "TPR_ACCESS", ExitNMI: "NMI",
	ExitInternalError: "INTERNAL_ERROR", ExitWatchdog: "WATCHDOG",
	ExitEPR: "EPR", ExitSystemEvent: "SYSTEM_EVENT", ExitIOAPICEOI: "IOAPIC_EOI",
	ExitHyperV: "HYPERV", ExitX86RDMSR: "X86_RDMSR", ExitX86WRMSR: "X86_WRMSR",
	ExitDirtyRingFull: "DIRTY_RING_FULL", ExitAPResetHold: "AP_RESET_HOLD",
	ExitX86BusLock: "X86_BUS_LOCK", ExitXen: "XEN", ExitNotify: "NOTIFY",
	ExitMemoryFault: "MEMORY_FAULT",
}

func (e ExitReason) String() string {
	if n, ok := exitNames[e]; ok {
		return "KVM_EXIT_" + n
	}
	return fmt.Sprintf("ExitReason(%d)", uint32(e))
}

// IODirection is kvm_run.io.direction (KVM_EXIT_IO_IN/OUT).
type IODirection uint8

const (
	IOIn  IODirection = 0
	IOOut IODirection = 1
)

func (d IODirection) String() string {
	switch d {
	case IOIn:
		return "in"
	case IOOut:
		return "out"
	}
	return fmt.Sprintf("IODirection(%d)", uint8(d))
}

// Internal error suberrors (KVM_INTERNAL_ERROR_*).
const (
	InternalErrorEmulation            = 1
	InternalErrorSimulEx              = 2
	InternalErrorDeliveryEv           = 3
	InternalErrorUnexpectedExitReason = 4
)

// System event types (KVM_SYSTEM_EVENT_*).
const (
	SystemEventShutdown = 1
	SystemEventReset    = 2
	SystemEventCrash    = 3
	SystemEventWakeup   = 4
	SystemEventSuspend  = 5
)
