//go:build linux && amd64

package x86

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/govmm/govmm/kvm"
)

// CPUIDOptions selects the per-vCPU view BuildCPUID produces.
type CPUIDOptions struct {
	// VCPUID is the KVM vCPU id of the vCPU the table is for; it becomes
	// its initial APIC ID and x2APIC ID.
	VCPUID int
	// NumVCPUs is the number of vCPUs of the VM, 1..MaxVCPUs.
	NumVCPUs int
	// HostModel passes the host's identity through: the brand string, the
	// stepping, the brand index and AMD's brand id/package type. By
	// default they are hidden (see BuildCPUID).
	HostModel bool
}

// ErrBadCPUID reports a supported-CPUID list BuildCPUID cannot work from.
var ErrBadCPUID = errors.New("x86: unusable supported CPUID list")

// MaxCPUIDEntries is KVM_MAX_CPUID_ENTRIES (arch/x86/include/asm/
// kvm_host.h): KVM_SET_CPUID2 refuses longer tables, so BuildCPUID does
// too, with a clearer error.
const MaxCPUIDEntries = 256

// BrandString is the processor brand string the guest sees unless
// CPUIDOptions.HostModel is set.
const BrandString = "govmm virtual CPU"

// CPUID leaves (functions) this file edits.
const (
	leafVendor        = 0x0
	leafFeatures      = 0x1
	leafSerial        = 0x3
	leafCacheParams   = 0x4
	leafMonitor       = 0x5
	leafThermal       = 0x6
	leafExtFeatures   = 0x7
	leafPMU           = 0xA
	leafTopology      = 0xB
	leafSGX           = 0x12
	leafPT            = 0x14
	leafTopologyV2    = 0x1F
	leafArchPerfExt   = 0x23
	leafHypervisor    = 0x4000_0000
	leafKVMFeatures   = 0x4000_0001
	leafHypervisorEnd = 0x4FFF_FFFF // hypervisor range, Intel SDM CPUID notes
	leafExtMax        = 0x8000_0000
	leafExtFeatures1  = 0x8000_0001
	leafBrand0        = 0x8000_0002
	leafBrand2        = 0x8000_0004
	leafAddrSizes     = 0x8000_0008
	leafSVM           = 0x8000_000A
	leafAMDCacheTopo  = 0x8000_001D
	leafAMDTopoExt    = 0x8000_001E
	leafAMDPerfMonV2  = 0x8000_0022
)

// Leaf 1 ECX bits (Intel SDM vol. 2A, CPUID, table "Feature Information
// Returned in the ECX Register").
const (
	f1ECXDTES64     = 1 << 2  // 64-bit debug store: no DS emulation
	f1ECXMonitor    = 1 << 3  // MONITOR/MWAIT: KVM runs MWAIT as a NOP unless exits are disabled
	f1ECXDSCPL      = 1 << 4  // CPL-qualified debug store
	f1ECXVMX        = 1 << 5  // no nested virtualization: a large attack surface
	f1ECXSMX        = 1 << 6  // GETSEC/TXT: not virtualizable
	f1ECXEST        = 1 << 7  // Enhanced SpeedStep: the host owns P-states
	f1ECXTM2        = 1 << 8  // Thermal Monitor 2
	f1ECXSDBG       = 1 << 11 // IA32_DEBUG_INTERFACE silicon debug
	f1ECXxTPR       = 1 << 14 // xTPR update control (IA32_MISC_ENABLE bit 23)
	f1ECXPDCM       = 1 << 15 // IA32_PERF_CAPABILITIES: no PMU is exposed
	f1ECXHypervisor = 1 << 31 // reserved on hardware, "running under a hypervisor"

	f1ECXClear = f1ECXDTES64 | f1ECXMonitor | f1ECXDSCPL | f1ECXVMX | f1ECXSMX |
		f1ECXEST | f1ECXTM2 | f1ECXSDBG | f1ECXxTPR | f1ECXPDCM
)

// Leaf 1 EDX bits (Intel SDM, "Feature Information Returned in the EDX
// Register").
const (
	f1EDXPSN  = 1 << 18 // processor serial number: leaf 3 is cleared
	f1EDXDS   = 1 << 21 // debug store (BTS/PEBS): not emulated
	f1EDXACPI = 1 << 22 // thermal monitor and clock control MSRs
	f1EDXHTT  = 1 << 28 // EBX[23:16] is valid: more than one logical CPU
	f1EDXTM   = 1 << 29 // thermal monitor
	f1EDXPBE  = 1 << 31 // pending break enable (FERR#/PBE# pin)

	f1EDXClear = f1EDXPSN | f1EDXDS | f1EDXACPI | f1EDXTM | f1EDXPBE
)

// Leaf 7 subleaf 0 bits (Intel SDM, "Structured Extended Feature Flags").
const (
	f7EBXSGX   = 1 << 2  // SGX: enclaves need EPC the VMM does not provide
	f7EBXPT    = 1 << 25 // Intel Processor Trace: traces reach host-visible buffers
	f7ECXSGXLC = 1 << 30 // SGX launch configuration

	f7EBXClear = f7EBXSGX | f7EBXPT
	f7ECXClear = f7ECXSGXLC
)

// Leaf 0x80000001 ECX bits (AMD APM vol. 3, appendix E). They are reserved
// (zero) on Intel, so clearing them is vendor-neutral.
const (
	fx1ECXSVM      = 1 << 2  // no nested virtualization, as VMX
	fx1ECXIBS      = 1 << 10 // instruction-based sampling: PMU
	fx1ECXSKINIT   = 1 << 12 // SKINIT/STGI: the AMD counterpart of SMX
	fx1ECXWDT      = 1 << 13 // watchdog timer
	fx1ECXPerfCore = 1 << 23 // core performance counter extensions
	fx1ECXPerfNB   = 1 << 24 // northbridge performance counters
	fx1ECXPerfTSC  = 1 << 27 // performance TSC
	fx1ECXPerfLLC  = 1 << 28 // L3 performance counters

	fx1ECXClear = fx1ECXSVM | fx1ECXIBS | fx1ECXSKINIT | fx1ECXWDT |
		fx1ECXPerfCore | fx1ECXPerfNB | fx1ECXPerfTSC | fx1ECXPerfLLC
)

// Leaf 6 EAX bit 2, ARAT: the APIC timer keeps running in deep C-states.
const f6EAXARAT = 1 << 2

// KVM paravirtual feature bits of leaf 0x40000001 EAX
// (Documentation/virt/kvm/x86/cpuid.rst).
const (
	KVMFeatureClocksource  = 1 << 0 // kvm-clock, MSRs 0x11/0x12
	KVMFeatureClocksource2 = 1 << 3 // kvm-clock, MSRs 0x4b564d00/01
)

// kvmSignature is "KVMKVMKVM\0\0\0" as leaf 0x40000000 EBX, ECX, EDX
// (little-endian bytes of each register in order).
var kvmSignature = [3]uint32{0x4b4d564b, 0x564b4d56, 0x0000004d}

// Leaf 0xB/0x1F level types (Intel SDM, "Extended Topology Enumeration").
const (
	topoLevelInvalid = 0
	topoLevelSMT     = 1
	topoLevelCore    = 2
)

type cpuVendor int

const (
	vendorOther cpuVendor = iota
	vendorIntel
	vendorAMD // AMD and Hygon: the same extended topology leaves
)

func vendorOf(e kvm.CPUIDEntry) cpuVendor {
	var b [12]byte
	for i, r := range []uint32{e.EBX, e.EDX, e.ECX} {
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(r), byte(r>>8), byte(r>>16), byte(r>>24)
	}
	switch string(b[:]) {
	case "GenuineIntel":
		return vendorIntel
	case "AuthenticAMD", "HygonGenuine":
		return vendorAMD
	}
	return vendorOther
}

type leafKey struct{ fn, idx uint32 }

func keyOf(e kvm.CPUIDEntry) leafKey {
	if e.Flags&kvm.CPUIDFlagSignificantIndex == 0 {
		return leafKey{e.Function, 0}
	}
	return leafKey{e.Function, e.Index}
}

// BuildCPUID derives the CPUID table of one vCPU from supported, the result
// of KVM_GET_SUPPORTED_CPUID, which it does not modify. Call it once per
// vCPU: the APIC IDs differ.
//
// The table never sets a feature bit KVM did not report, with three
// documented exceptions that describe the VM rather than the CPU: leaf 1
// ECX bit 31 (hypervisor present), leaf 1 EDX bit 28 (HTT, set iff
// NumVCPUs > 1), and, only if KVM reported no leaf 0x40000001 at all,
// the kvm-clock bits KVMFeatureClocksource|KVMFeatureClocksource2. It
// clears features the VMM does not emulate or that give a microVM guest
// host-side reach (nested virtualization, SMX/SKINIT, power and thermal
// control, debug store, PMU, processor trace, SGX); see the bit
// constants for each reason.
//
// Topology: one package, NumVCPUs cores, one thread per core, APIC ID =
// core number = vCPU id. Leaves 1, 4, 0xB, 0x1F and AMD's 0x80000008,
// 0x8000001D and 0x8000001E say the same thing; 0xB and 0x1F are rewritten
// only where KVM lists them.
//
// Identity: the vendor string is the host's, always: KVM emulates
// vendor-specific behaviour (SYSCALL in compatibility mode, MSR sets,
// VMX/SVM differences show through) and guest kernels pick vendor code
// paths from it, so a different vendor breaks guests. Family and model
// stay too: guest kernels choose errata workarounds and, more important
// for security, speculative-execution mitigations from family/model lists,
// and several of those lists name the vulnerable models (Intel RETBleed,
// MMIO stale data, GDS), so a hidden model would switch mitigations off in
// the guest. Without HostModel the stepping, the brand index and AMD's
// brand id/package type are zeroed and the brand string replaced by
// BrandString, in line with BSI SYS.1.5's advice to disclose no more of
// the host than needed; stepping 0 is the earliest silicon, which the
// stepping ranges of Linux's vulnerability lists include, so guests err
// towards more mitigation, not less. The serial number (leaf 3) is always
// cleared.
func BuildCPUID(supported []kvm.CPUIDEntry, opts CPUIDOptions) ([]kvm.CPUIDEntry, error) {
	n, id := opts.NumVCPUs, opts.VCPUID
	if n < 1 || n > MaxVCPUs {
		return nil, fmt.Errorf("%w: NumVCPUs %d, want 1..%d", ErrBadCPUCount, n, MaxVCPUs)
	}
	if id < 0 || id >= n {
		return nil, fmt.Errorf("%w: VCPUID %d with %d vCPUs", ErrBadCPUCount, id, n)
	}
	if len(supported) > MaxCPUIDEntries {
		return nil, fmt.Errorf("%w: %d entries, KVM accepts at most %d", ErrBadCPUID, len(supported), MaxCPUIDEntries)
	}
	seen := make(map[leafKey]bool, len(supported))
	vendor, haveLeaf0 := vendorOther, false
	maxExt := uint32(0)
	var kvmFeatures *kvm.CPUIDEntry
	for i := range supported {
		e := supported[i]
		k := keyOf(e)
		if seen[k] {
			return nil, fmt.Errorf("%w: leaf %#x subleaf %d listed twice", ErrBadCPUID, k.fn, k.idx)
		}
		seen[k] = true
		switch e.Function {
		case leafVendor:
			vendor, haveLeaf0 = vendorOf(e), true
		case leafExtMax:
			maxExt = e.EAX
		case leafKVMFeatures:
			kvmFeatures = &supported[i]
		}
	}
	if !haveLeaf0 {
		return nil, fmt.Errorf("%w: no leaf 0", ErrBadCPUID)
	}

	// coreShift is the x2APIC ID bit count of the core level: the
	// package ID is APIC ID >> coreShift, and 0..n-1 fit below it.
	coreShift := uint32(bits.Len(uint(n - 1)))
	apicID := uint32(id)

	out := make([]kvm.CPUIDEntry, 0, len(supported)+8)
	emittedTopo := map[uint32]bool{}
	emittedHV := false
	for _, e := range supported {
		switch fn := e.Function; {
		case fn == leafTopology || fn == leafTopologyV2:
			// KVM lists as many subleaves as the host has levels; the
			// guest's topology has exactly two, so the group is
			// replaced wholesale at the position of its first entry.
			if !emittedTopo[fn] {
				emittedTopo[fn] = true
				out = append(out, topologyLeaves(fn, apicID, coreShift, uint32(n))...)
			}
			continue
		case fn >= leafHypervisor && fn <= leafHypervisorEnd:
			// Only the two KVM leaves are described; anything else in
			// the hypervisor range (none today) is dropped.
			if !emittedHV {
				emittedHV = true
				out = append(out, hypervisorLeaves(kvmFeatures)...)
			}
			continue
		case fn >= leafBrand0 && fn <= leafBrand2:
			if !opts.HostModel {
				e = brandLeaf(fn)
			}
		default:
			editLeaf(&e, vendor, opts, apicID, coreShift)
		}
		out = append(out, e)
	}
	if !emittedHV {
		out = append(out, hypervisorLeaves(nil)...)
	}
	if !opts.HostModel && maxExt >= leafBrand2 {
		// The guest will read the brand leaves because leaf 0x80000000
		// says they exist; make sure it reads ours even if KVM omitted
		// them.
		for fn := uint32(leafBrand0); fn <= leafBrand2; fn++ {
			if !seen[leafKey{fn, 0}] {
				out = append(out, brandLeaf(fn))
			}
		}
	}
	if len(out) > MaxCPUIDEntries {
		return nil, fmt.Errorf("%w: result has %d entries, KVM accepts at most %d", ErrBadCPUID, len(out), MaxCPUIDEntries)
	}
	return out, nil
}

// editLeaf applies the per-leaf rules to one entry in place.
func editLeaf(e *kvm.CPUIDEntry, vendor cpuVendor, opts CPUIDOptions, apicID, coreShift uint32) {
	n := uint32(opts.NumVCPUs)
	switch e.Function {
	case leafFeatures:
		if !opts.HostModel {
			e.EAX &^= 0xF // stepping ID, bits 3:0; family and model stay
		}
		// EBX: 31:24 initial APIC ID, 23:16 addressable logical
		// processor IDs in the package, 15:8 CLFLUSH line size (kept),
		// 7:0 brand index (identity: hidden unless HostModel).
		ebx := e.EBX&0x0000_FF00 | n<<16 | apicID<<24
		if opts.HostModel {
			ebx |= e.EBX & 0xFF
		}
		e.EBX = ebx
		e.ECX = e.ECX&^f1ECXClear | f1ECXHypervisor
		e.EDX &^= f1EDXClear | f1EDXHTT
		if n > 1 {
			e.EDX |= f1EDXHTT
		}
	case leafSerial, leafMonitor, leafPMU, leafSGX, leafPT, leafArchPerfExt:
		// Serial number: identity. MONITOR/MWAIT parameters: the
		// feature is cleared. PMU (0xA, 0x23): no performance counters
		// are exposed, which removes a well-known side channel and the
		// PMU MSR emulation from the attack surface (on Intel KVM
		// derives the vPMU from leaf 0xA; AMD's legacy counters need
		// the VM-level KVM_CAP_PMU_CAPABILITY to go away). SGX and PT:
		// the features are cleared in leaf 7.
		*e = zeroed(*e)
	case leafThermal:
		// Power and thermal management belong to the host. ARAT is kept
		// where KVM reports it because it is true of KVM's LAPIC timer
		// (an hrtimer that never stops) and without it Linux marks the
		// LAPIC timer as stopping in C3 and looks for a broadcast timer.
		arat := e.EAX & f6EAXARAT
		*e = zeroed(*e)
		e.EAX = arat
	case leafCacheParams:
		editCacheLeaf(e, n)
		if e.EAX&0x1F != 0 {
			// EAX 31:26: addressable core IDs in the package - 1. The
			// field has 6 bits; beyond 64 vCPUs it saturates and guests
			// take the core count from leaf 0xB, as they do on hardware
			// with that many cores.
			e.EAX = e.EAX&^(0x3F<<26) | min(n-1, 0x3F)<<26
		}
	case leafExtFeatures:
		if keyOf(*e).idx == 0 {
			e.EBX &^= f7EBXClear
			e.ECX &^= f7ECXClear
		}
	case leafExtFeatures1:
		if !opts.HostModel {
			e.EAX &^= 0xF // AMD mirrors the leaf 1 signature here
			e.EBX = 0     // AMD BrandId and PkgType; reserved on Intel
		}
		e.ECX &^= fx1ECXClear
	case leafSVM, leafAMDPerfMonV2:
		// SVM revision/features: SVM is cleared. PerfMonV2: no PMU.
		*e = zeroed(*e)
	case leafAddrSizes:
		if vendor == vendorAMD {
			// ECX 7:0 NC = threads in the package - 1; 15:12
			// ApicIdSize = APIC ID bits for the thread within the
			// package. Reserved (zero) on Intel, so only AMD's is
			// touched.
			e.ECX = e.ECX&^(0xFF|0xF<<12) | (n-1)&0xFF | coreShift<<12
		}
	case leafAMDCacheTopo:
		if vendor == vendorAMD {
			editCacheLeaf(e, n)
		}
	case leafAMDTopoExt:
		if vendor == vendorAMD {
			// EAX: extended APIC ID. EBX 7:0 compute unit (core) ID,
			// 15:8 threads per core - 1 = 0. ECX 7:0 node ID 0,
			// 10:8 nodes per package - 1 = 0.
			*e = zeroed(*e)
			e.EAX = apicID
			e.EBX = apicID & 0xFF
		}
	}
}

// editCacheLeaf sets EAX 25:14, "logical processors sharing this cache -
// 1", in Intel leaf 4 and AMD leaf 0x8000001D (same layout: cache type in
// 4:0, level in 7:5). L1 and L2 are per core (one thread each), L3 and
// beyond are shared by the package. A type-0 entry ends the list and stays
// as KVM wrote it.
func editCacheLeaf(e *kvm.CPUIDEntry, n uint32) {
	if e.EAX&0x1F == 0 {
		return
	}
	sharing := uint32(1)
	if level := e.EAX >> 5 & 7; level >= 3 {
		sharing = n
	}
	e.EAX = e.EAX&^(0xFFF<<14) | (sharing-1)<<14
}

// topologyLeaves synthesizes leaf fn (0xB or 0x1F): SMT level (one thread,
// shift 0), core level (n cores, shift coreShift), then the invalid level
// that ends the enumeration. EDX is the x2APIC ID in every subleaf.
func topologyLeaves(fn, apicID, coreShift, n uint32) []kvm.CPUIDEntry {
	mk := func(sub, shift, count, typ uint32) kvm.CPUIDEntry {
		return kvm.CPUIDEntry{
			Function: fn, Index: sub, Flags: kvm.CPUIDFlagSignificantIndex,
			EAX: shift, EBX: count, ECX: sub&0xFF | typ<<8, EDX: apicID,
		}
	}
	return []kvm.CPUIDEntry{
		mk(0, 0, 1, topoLevelSMT),
		mk(1, coreShift, n, topoLevelCore),
		mk(2, 0, 0, topoLevelInvalid),
	}
}

// hypervisorLeaves returns 0x40000000 (max leaf and "KVMKVMKVM") and
// 0x40000001 (KVM paravirtual features). The feature bits are what KVM
// reported; only if it reported none is kvm-clock assumed, which every KVM
// since Linux 2.6.35 implements, so the guest has a stable clock (BSI
// SYS.1.5.A7). EDX, the KVM hints, stays 0: KVM_HINTS_REALTIME promises
// dedicated, never-preempted physical CPUs, a host configuration decision
// this package cannot see.
func hypervisorLeaves(kvmFeatures *kvm.CPUIDEntry) []kvm.CPUIDEntry {
	feat := uint32(KVMFeatureClocksource | KVMFeatureClocksource2)
	if kvmFeatures != nil {
		feat = kvmFeatures.EAX
	}
	return []kvm.CPUIDEntry{
		{Function: leafHypervisor, EAX: leafKVMFeatures,
			EBX: kvmSignature[0], ECX: kvmSignature[1], EDX: kvmSignature[2]},
		{Function: leafKVMFeatures, EAX: feat},
	}
}

// brandLeaf returns leaf fn (0x80000002..4) holding its 16-byte share of
// BrandString, NUL-padded to 48 bytes (the string must be NUL-terminated;
// Linux copies it as a C string).
func brandLeaf(fn uint32) kvm.CPUIDEntry {
	var s [48]byte
	copy(s[:47], BrandString)
	p := s[(fn-leafBrand0)*16:]
	r := func(i int) uint32 {
		return uint32(p[i]) | uint32(p[i+1])<<8 | uint32(p[i+2])<<16 | uint32(p[i+3])<<24
	}
	return kvm.CPUIDEntry{Function: fn, EAX: r(0), EBX: r(4), ECX: r(8), EDX: r(12)}
}

// zeroed keeps an entry's identity (function, index, flags) and clears its
// registers.
func zeroed(e kvm.CPUIDEntry) kvm.CPUIDEntry {
	return kvm.CPUIDEntry{Function: e.Function, Index: e.Index, Flags: e.Flags}
}
