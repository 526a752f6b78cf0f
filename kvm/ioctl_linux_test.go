//go:build linux && amd64

package kvm

import "testing"

// TestIoctlNumbers checks every request number, built from the Go mirrors'
// sizes, against the value the C preprocessor produces from
// <linux/kvm.h>. The expected values were printed by testdata/cabi.c
// (gcc 12, Debian 12 linux-libc-dev); the ioctl ABI is stable, so they do
// not change with the kernel version.
func TestIoctlNumbers(t *testing.T) {
	tests := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"KVM_GET_API_VERSION", ioctlGetAPIVersion, 0x0000ae00},
		{"KVM_CREATE_VM", ioctlCreateVM, 0x0000ae01},
		{"KVM_GET_MSR_INDEX_LIST", ioctlGetMSRIndexList, 0xc004ae02},
		{"KVM_CHECK_EXTENSION", ioctlCheckExtension, 0x0000ae03},
		{"KVM_GET_VCPU_MMAP_SIZE", ioctlGetVCPUMmapSize, 0x0000ae04},
		{"KVM_GET_SUPPORTED_CPUID", ioctlGetSupportedCPUID, 0xc008ae05},
		{"KVM_SET_USER_MEMORY_REGION", ioctlSetUserMemoryRegion, 0x4020ae46},
		{"KVM_SET_TSS_ADDR", ioctlSetTSSAddr, 0x0000ae47},
		{"KVM_SET_IDENTITY_MAP_ADDR", ioctlSetIdentityMapAddr, 0x4008ae48},
		{"KVM_CREATE_IRQCHIP", ioctlCreateIRQChip, 0x0000ae60},
		{"KVM_CREATE_PIT2", ioctlCreatePIT2, 0x4040ae77},
		{"KVM_IRQ_LINE", ioctlIRQLine, 0x4008ae61},
		{"KVM_IRQFD", ioctlIRQFD, 0x4020ae76},
		{"KVM_IOEVENTFD", ioctlIOEventFD, 0x4040ae79},
		{"KVM_SET_GSI_ROUTING", ioctlSetGSIRouting, 0x4008ae6a},
		{"KVM_GET_CLOCK", ioctlGetClock, 0x8030ae7c},
		{"KVM_SET_CLOCK", ioctlSetClock, 0x4030ae7b},
		{"KVM_CREATE_VCPU", ioctlCreateVCPU, 0x0000ae41},
		{"KVM_RUN", ioctlRun, 0x0000ae80},
		{"KVM_GET_REGS", ioctlGetRegs, 0x8090ae81},
		{"KVM_SET_REGS", ioctlSetRegs, 0x4090ae82},
		{"KVM_GET_SREGS", ioctlGetSregs, 0x8138ae83},
		{"KVM_SET_SREGS", ioctlSetSregs, 0x4138ae84},
		{"KVM_GET_FPU", ioctlGetFPU, 0x81a0ae8c},
		{"KVM_SET_FPU", ioctlSetFPU, 0x41a0ae8d},
		{"KVM_GET_MSRS", ioctlGetMSRs, 0xc008ae88},
		{"KVM_SET_MSRS", ioctlSetMSRs, 0x4008ae89},
		{"KVM_SET_CPUID2", ioctlSetCPUID2, 0x4008ae90},
		{"KVM_GET_LAPIC", ioctlGetLAPIC, 0x8400ae8e},
		{"KVM_SET_LAPIC", ioctlSetLAPIC, 0x4400ae8f},
		{"KVM_GET_VCPU_EVENTS", ioctlGetVCPUEvents, 0x8040ae9f},
		{"KVM_SET_VCPU_EVENTS", ioctlSetVCPUEvents, 0x4040aea0},
		{"KVM_GET_MP_STATE", ioctlGetMPState, 0x8004ae98},
		{"KVM_SET_MP_STATE", ioctlSetMPState, 0x4004ae99},
		{"KVM_INTERRUPT", ioctlInterrupt, 0x4004ae86},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %#08x, want %#08x (C headers)", tt.name, tt.got, tt.want)
		}
	}
}
