//go:build linux && amd64

package kvm

import "unsafe"

// Sizes and offsets of the kernel struct mirrors, as compile-time
// constants. They live here so that the only use of package unsafe for
// layout is in this file; ioctl_linux.go builds ioctl numbers from them.
const (
	sizeofRegs                  = unsafe.Sizeof(Regs{})
	sizeofSregs                 = unsafe.Sizeof(Sregs{})
	sizeofFPU                   = unsafe.Sizeof(FPU{})
	sizeofLAPICState            = unsafe.Sizeof(LAPICState{})
	sizeofVCPUEvents            = unsafe.Sizeof(VCPUEvents{})
	sizeofMPState               = unsafe.Sizeof(MPState(0))
	sizeofClockData             = unsafe.Sizeof(ClockData{})
	sizeofUserspaceMemoryRegion = unsafe.Sizeof(userspaceMemoryRegion{})
	sizeofIRQLevel              = unsafe.Sizeof(irqLevel{})
	sizeofIRQFD                 = unsafe.Sizeof(irqfd{})
	sizeofIOEventFD             = unsafe.Sizeof(ioeventfd{})
	sizeofPITConfig             = unsafe.Sizeof(pitConfig{})
	sizeofInterrupt             = unsafe.Sizeof(interrupt{})
	sizeofCPUID2Header          = unsafe.Sizeof(cpuid2Header{})
	sizeofMSRsHeader            = unsafe.Sizeof(msrsHeader{})
	sizeofMSRListHeader         = unsafe.Sizeof(msrListHeader{})
	sizeofIRQRoutingHeader      = unsafe.Sizeof(irqRoutingHeader{})
	sizeofU64                   = unsafe.Sizeof(uint64(0))

	// sizeofKVMRun is the fixed size of struct kvm_run; PIO data lives
	// beyond it in the same mapping.
	sizeofKVMRun = unsafe.Sizeof(kvmRun{})
)

// Offsets into the kvm_run mapping.
const (
	runOffRequestInterruptWindow     = unsafe.Offsetof(kvmRun{}.RequestInterruptWindow)
	runOffImmediateExit              = unsafe.Offsetof(kvmRun{}.ImmediateExit)
	runOffExitReason                 = unsafe.Offsetof(kvmRun{}.ExitReason)
	runOffReadyForInterruptInjection = unsafe.Offsetof(kvmRun{}.ReadyForInterruptInjection)
	runOffIFFlag                     = unsafe.Offsetof(kvmRun{}.IFFlag)
	runOffCR8                        = unsafe.Offsetof(kvmRun{}.CR8)
	runOffAPICBase                   = unsafe.Offsetof(kvmRun{}.APICBase)
	runOffExit                       = unsafe.Offsetof(kvmRun{}.Exit)

	runOffIODirection  = runOffExit + unsafe.Offsetof(kvmRunIO{}.Direction)
	runOffIOSize       = runOffExit + unsafe.Offsetof(kvmRunIO{}.Size)
	runOffIOPort       = runOffExit + unsafe.Offsetof(kvmRunIO{}.Port)
	runOffIOCount      = runOffExit + unsafe.Offsetof(kvmRunIO{}.Count)
	runOffIODataOffset = runOffExit + unsafe.Offsetof(kvmRunIO{}.DataOffset)

	runOffMMIOPhysAddr = runOffExit + unsafe.Offsetof(kvmRunMMIO{}.PhysAddr)
	runOffMMIOData     = runOffExit + unsafe.Offsetof(kvmRunMMIO{}.Data)
	runOffMMIOLen      = runOffExit + unsafe.Offsetof(kvmRunMMIO{}.Len)
	runOffMMIOIsWrite  = runOffExit + unsafe.Offsetof(kvmRunMMIO{}.IsWrite)
	runMMIODataMax     = unsafe.Sizeof(kvmRunMMIO{}.Data)

	runOffFailEntryReason = runOffExit + unsafe.Offsetof(kvmRunFailEntry{}.HardwareEntryFailureReason)
	runOffFailEntryCPU    = runOffExit + unsafe.Offsetof(kvmRunFailEntry{}.CPU)

	runOffInternalSuberror = runOffExit + unsafe.Offsetof(kvmRunInternal{}.Suberror)
	runOffInternalNData    = runOffExit + unsafe.Offsetof(kvmRunInternal{}.NData)
	runOffInternalData     = runOffExit + unsafe.Offsetof(kvmRunInternal{}.Data)
	runInternalDataMax     = unsafe.Sizeof(kvmRunInternal{}.Data) / 8

	runOffSystemEventType  = runOffExit + unsafe.Offsetof(kvmRunSystemEvent{}.Type)
	runOffSystemEventFlags = runOffExit + unsafe.Offsetof(kvmRunSystemEvent{}.Flags)
)
