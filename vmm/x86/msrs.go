//go:build linux && amd64

package x86

import (
	"slices"

	"github.com/govmm/govmm/kvm"
)

// MSR indices (Intel SDM vol. 4, "Model-Specific Registers"; AMD APM vol. 2
// for the SYSCALL MSRs; Documentation/virt/kvm/x86/msr.rst for KVM's).
const (
	MSRIA32TSC          = 0x10
	MSRIA32SysenterCS   = 0x174
	MSRIA32SysenterESP  = 0x175
	MSRIA32SysenterEIP  = 0x176
	MSRIA32MiscEnable   = 0x1A0
	MSRMTRRDefType      = 0x2FF
	MSRSTAR             = 0xC000_0081
	MSRLSTAR            = 0xC000_0082
	MSRCSTAR            = 0xC000_0083
	MSRSyscallMask      = 0xC000_0084
	MSRKernelGSBase     = 0xC000_0102
	MSRKVMWallClockNew  = 0x4B56_4D00 // MSR_KVM_WALL_CLOCK_NEW, guest-written
	MSRKVMSystemTimeNew = 0x4B56_4D01 // MSR_KVM_SYSTEM_TIME_NEW, guest-written
)

// IA32_MISC_ENABLE bits.
const (
	MiscEnableFastString  = 1 << 0  // fast REP MOVS/STOS
	MiscEnableBTSUnavail  = 1 << 11 // branch trace storage unavailable
	MiscEnablePEBSUnavail = 1 << 12 // precise event sampling unavailable
)

// IA32_MTRR_DEF_TYPE fields.
const (
	MTRRDefTypeEnable    = 1 << 11 // E: MTRRs enabled
	MTRRTypeWriteBack    = 6       // memory type WB
	MTRRDefTypeWriteBack = MTRRDefTypeEnable | MTRRTypeWriteBack
)

// BootMSRs returns the MSR values a vCPU starts with, the same for every
// vCPU. Write them with KVM_SET_MSRS after KVM_SET_CPUID2 (KVM checks some
// MSR writes against the vCPU's CPUID) and after FilterMSRs.
//
//   - SYSENTER_CS/ESP/EIP, STAR, LSTAR, CSTAR, SYSCALL_MASK and
//     KERNEL_GS_BASE are 0: the kernel programs its own entry points, and
//     zero is their architectural reset value; writing them states it
//     rather than relying on KVM's vCPU reset.
//   - IA32_TSC is 0 on every vCPU, not only vCPU 0. KVM treats a
//     host-initiated TSC write that matches the previous vCPU's value
//     within about a second of elapsed time as an attempt to synchronize,
//     and gives all such vCPUs the same TSC offset; that keeps the guest's
//     TSCs in step, which kvm-clock's stable mode and the guest's TSC
//     clocksource need. KVM itself writes 0 when it creates a vCPU, so
//     this restates that start value explicitly and, written to all
//     vCPUs in one pass, keeps them in one synchronization generation
//     even if vCPU creation was spread out. A VMM restoring a snapshot
//     would write the saved TSC instead; this function is for cold boot.
//   - IA32_MISC_ENABLE has fast strings on (Linux expects firmware to have
//     enabled them), and keeps the "BTS unavailable" and "PEBS unavailable"
//     bits KVM's own vCPU reset sets: no debug store is exposed, and a
//     zero there would tell the guest otherwise.
//   - IA32_MTRR_DEF_TYPE enables MTRRs with write-back as the default
//     type. The guest has no firmware to program MTRRs. Left disabled
//     (KVM's reset value), all memory is uncacheable in the guest's view:
//     Linux then also leaves PAT off ("MTRRs disabled, skipping PAT
//     initialization too"), and a KVM that honours guest memory types
//     (older kernels, or VMs with non-coherent DMA) really runs it
//     uncached.
func BootMSRs() []kvm.MSREntry {
	return []kvm.MSREntry{
		{Index: MSRIA32SysenterCS},
		{Index: MSRIA32SysenterESP},
		{Index: MSRIA32SysenterEIP},
		{Index: MSRSTAR},
		{Index: MSRLSTAR},
		{Index: MSRCSTAR},
		{Index: MSRSyscallMask},
		{Index: MSRKernelGSBase},
		{Index: MSRIA32TSC},
		{Index: MSRIA32MiscEnable, Data: MiscEnableFastString | MiscEnableBTSUnavail | MiscEnablePEBSUnavail},
		{Index: MSRMTRRDefType, Data: MTRRDefTypeWriteBack},
	}
}

// alwaysEmulated lists MSRs KVM implements for every x86 vCPU in common
// code but leaves out of KVM_GET_MSR_INDEX_LIST. The MTRRs are handled by
// arch/x86/kvm/mtrr.c on every vendor; KVM does not list them because
// userspace is expected to save them when CPUID reports MTRR support
// rather than by index list. Without this exception FilterMSRs would drop
// MTRRdefType on every host.
var alwaysEmulated = []uint32{MSRMTRRDefType}

// FilterMSRs returns the entries of entries whose index KVM knows: those in
// supported (KVM_GET_MSR_INDEX_LIST) and those in alwaysEmulated. The
// order is kept, and entries is not modified. Dropping rather than failing
// keeps a VM bootable on a host whose KVM lacks an MSR that only tunes the
// start state; KVM_SET_MSRS would otherwise stop at the first unknown MSR.
func FilterMSRs(entries []kvm.MSREntry, supported []uint32) []kvm.MSREntry {
	known := make(map[uint32]bool, len(supported)+len(alwaysEmulated))
	for _, i := range supported {
		known[i] = true
	}
	for _, i := range alwaysEmulated {
		known[i] = true
	}
	out := make([]kvm.MSREntry, 0, len(entries))
	for _, e := range entries {
		if known[e.Index] {
			out = append(out, e)
		}
	}
	return slices.Clip(out)
}
