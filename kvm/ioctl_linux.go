//go:build linux && amd64

package kvm

// Ioctl request encoding from <asm-generic/ioctl.h> (x86 uses the generic
// layout): dir(2) | size(14) | type(8) | nr(8). The numbers are built from
// the sizes of the Go mirrors, so a mirror with the wrong size yields a
// different request number, which TestIoctlNumbers catches against values
// printed by a C program compiled with the kernel headers.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30
	iocSizeMax   = 1<<14 - 1

	kvmio = 0xAE << iocTypeShift

	ioNone = iocNone << iocDirShift
	ioW    = iocWrite << iocDirShift
	ioR    = iocRead << iocDirShift
	ioWR   = (iocRead | iocWrite) << iocDirShift
)

// A size larger than the 14-bit field would silently corrupt the direction
// bits; make that a compile error (negative array length) instead.
var _ [iocSizeMax - sizeofLAPICState]struct{}
var _ [iocSizeMax - sizeofSregs]struct{}
var _ [iocSizeMax - sizeofFPU]struct{}

// System ioctls (on the /dev/kvm fd).
const (
	ioctlGetAPIVersion     uintptr = ioNone | kvmio // nr 0x00
	ioctlCreateVM          uintptr = ioNone | kvmio | 0x01
	ioctlGetMSRIndexList           = ioWR | kvmio | 0x02 | sizeofMSRListHeader<<iocSizeShift
	ioctlCheckExtension    uintptr = ioNone | kvmio | 0x03
	ioctlGetVCPUMmapSize   uintptr = ioNone | kvmio | 0x04
	ioctlGetSupportedCPUID         = ioWR | kvmio | 0x05 | sizeofCPUID2Header<<iocSizeShift
)

// VM ioctls.
const (
	ioctlCreateVCPU          uintptr = ioNone | kvmio | 0x41
	ioctlSetUserMemoryRegion         = ioW | kvmio | 0x46 | sizeofUserspaceMemoryRegion<<iocSizeShift
	ioctlSetTSSAddr          uintptr = ioNone | kvmio | 0x47
	ioctlSetIdentityMapAddr          = ioW | kvmio | 0x48 | sizeofU64<<iocSizeShift
	ioctlCreateIRQChip       uintptr = ioNone | kvmio | 0x60
	ioctlIRQLine                     = ioW | kvmio | 0x61 | sizeofIRQLevel<<iocSizeShift
	ioctlSetGSIRouting               = ioW | kvmio | 0x6a | sizeofIRQRoutingHeader<<iocSizeShift
	ioctlIRQFD                       = ioW | kvmio | 0x76 | sizeofIRQFD<<iocSizeShift
	ioctlCreatePIT2                  = ioW | kvmio | 0x77 | sizeofPITConfig<<iocSizeShift
	ioctlIOEventFD                   = ioW | kvmio | 0x79 | sizeofIOEventFD<<iocSizeShift
	ioctlSetClock                    = ioW | kvmio | 0x7b | sizeofClockData<<iocSizeShift
	ioctlGetClock                    = ioR | kvmio | 0x7c | sizeofClockData<<iocSizeShift
)

// vCPU ioctls.
const (
	ioctlRun           uintptr = ioNone | kvmio | 0x80
	ioctlGetRegs               = ioR | kvmio | 0x81 | sizeofRegs<<iocSizeShift
	ioctlSetRegs               = ioW | kvmio | 0x82 | sizeofRegs<<iocSizeShift
	ioctlGetSregs              = ioR | kvmio | 0x83 | sizeofSregs<<iocSizeShift
	ioctlSetSregs              = ioW | kvmio | 0x84 | sizeofSregs<<iocSizeShift
	ioctlInterrupt             = ioW | kvmio | 0x86 | sizeofInterrupt<<iocSizeShift
	ioctlGetMSRs               = ioWR | kvmio | 0x88 | sizeofMSRsHeader<<iocSizeShift
	ioctlSetMSRs               = ioW | kvmio | 0x89 | sizeofMSRsHeader<<iocSizeShift
	ioctlGetFPU                = ioR | kvmio | 0x8c | sizeofFPU<<iocSizeShift
	ioctlSetFPU                = ioW | kvmio | 0x8d | sizeofFPU<<iocSizeShift
	ioctlGetLAPIC              = ioR | kvmio | 0x8e | sizeofLAPICState<<iocSizeShift
	ioctlSetLAPIC              = ioW | kvmio | 0x8f | sizeofLAPICState<<iocSizeShift
	ioctlSetCPUID2             = ioW | kvmio | 0x90 | sizeofCPUID2Header<<iocSizeShift
	ioctlGetMPState            = ioR | kvmio | 0x98 | sizeofMPState<<iocSizeShift
	ioctlSetMPState            = ioW | kvmio | 0x99 | sizeofMPState<<iocSizeShift
	ioctlGetVCPUEvents         = ioR | kvmio | 0x9f | sizeofVCPUEvents<<iocSizeShift
	ioctlSetVCPUEvents         = ioW | kvmio | 0xa0 | sizeofVCPUEvents<<iocSizeShift
)
