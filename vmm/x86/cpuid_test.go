//go:build linux && amd64

package x86

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/govmm/govmm/kvm"
)

const sig = kvm.CPUIDFlagSignificantIndex

// vendorLeaf packs a 12-byte vendor string into leaf 0's EBX, EDX, ECX.
func vendorLeaf(maxLeaf uint32, vendor string) kvm.CPUIDEntry {
	b := []byte(vendor)
	r := func(i int) uint32 {
		return uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
	}
	return kvm.CPUIDEntry{Function: 0, EAX: maxLeaf, EBX: r(0), EDX: r(4), ECX: r(8)}
}

// brandLeaves packs a brand string into leaves 0x80000002..4.
func brandLeaves(s string) []kvm.CPUIDEntry {
	var b [48]byte
	copy(b[:47], s)
	var out []kvm.CPUIDEntry
	for i := 0; i < 3; i++ {
		p := b[16*i:]
		r := func(j int) uint32 {
			return uint32(p[j]) | uint32(p[j+1])<<8 | uint32(p[j+2])<<16 | uint32(p[j+3])<<24
		}
		out = append(out, kvm.CPUIDEntry{Function: 0x8000_0002 + uint32(i), EAX: r(0), EBX: r(4), ECX: r(8), EDX: r(12)})
	}
	return out
}

// brandOf decodes the brand string from a table ("" if absent).
func brandOf(entries []kvm.CPUIDEntry) string {
	var b []byte
	for fn := uint32(0x8000_0002); fn <= 0x8000_0004; fn++ {
		e := find(entries, fn, 0)
		if e == nil {
			return ""
		}
		for _, r := range []uint32{e.EAX, e.EBX, e.ECX, e.EDX} {
			b = append(b, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
		}
	}
	if i := slices.Index(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// intelLike is a KVM_GET_SUPPORTED_CPUID as a VT-x host might return it,
// deliberately including bits BuildCPUID must clear (a real KVM reports
// fewer of them), so that clearing is observable.
func intelLike() []kvm.CPUIDEntry {
	e := []kvm.CPUIDEntry{
		vendorLeaf(0x1F, "GenuineIntel"),
		// Family 6, model 0x9E, stepping 0xA; brand index 1, CLFLUSH 8
		// (64 bytes), 16 logical CPUs, APIC id 6 (the host's).
		{Function: 1, EAX: 0x000906EA, EBX: 0x06100801, ECX: 0x7FFAFBFF, EDX: 0xBFEBFBFF},
		{Function: 2, EAX: 0x00FEFF01, EDX: 0x00C30000},
		{Function: 3, ECX: 0x1234, EDX: 0x5678},
		// Leaf 4: L1d, L1i, L2 shared by 2 threads, L3 by 16, terminator.
		{Function: 4, Index: 0, Flags: sig, EAX: 0x1C004121, EBX: 0x01C0003F, ECX: 0x3F},
		{Function: 4, Index: 1, Flags: sig, EAX: 0x1C004122, EBX: 0x01C0003F, ECX: 0x3F},
		{Function: 4, Index: 2, Flags: sig, EAX: 0x1C004143, EBX: 0x00C0003F, ECX: 0x3FF},
		{Function: 4, Index: 3, Flags: sig, EAX: 0x1C03C163, EBX: 0x03C0003F, ECX: 0x2FFF, EDX: 6},
		{Function: 4, Index: 4, Flags: sig},
		{Function: 5, EAX: 0x40, EBX: 0x40, ECX: 3, EDX: 0x11142120},
		{Function: 6, EAX: 0x27F7, EBX: 2, ECX: 9},
		{Function: 7, Index: 0, Flags: sig, EAX: 0, EBX: 0x029C6FBF, ECX: 0x40000004, EDX: 0xBC000400},
		{Function: 0xA, EAX: 0x07300404, EDX: 0x603},
		{Function: 0xB, Index: 0, Flags: sig, EAX: 1, EBX: 2, ECX: 0x100, EDX: 6},
		{Function: 0xB, Index: 1, Flags: sig, EAX: 4, EBX: 16, ECX: 0x201, EDX: 6},
		{Function: 0xB, Index: 2, Flags: sig, ECX: 2, EDX: 6},
		{Function: 0xD, Index: 0, Flags: sig, EAX: 0x1F, EBX: 0x440, ECX: 0x440},
		{Function: 0xD, Index: 1, Flags: sig, EAX: 0xF},
		{Function: 0x12, Index: 0, Flags: sig, EAX: 1},
		{Function: 0x14, Index: 0, Flags: sig, EAX: 1, EBX: 0xF},
		{Function: 0x1F, Index: 0, Flags: sig, EAX: 1, EBX: 2, ECX: 0x100, EDX: 6},
		{Function: 0x1F, Index: 1, Flags: sig, EAX: 4, EBX: 16, ECX: 0x201, EDX: 6},
		{Function: 0x1F, Index: 2, Flags: sig, ECX: 2, EDX: 6},
		{Function: 0x4000_0000, EAX: 0x4000_0001, EBX: 0x4b4d564b, ECX: 0x564b4d56, EDX: 0x4d},
		{Function: 0x4000_0001, EAX: 0x01007AFB},
		{Function: 0x8000_0000, EAX: 0x8000_0008},
		{Function: 0x8000_0001, ECX: 0x121, EDX: 0x2C100800},
	}
	e = append(e, brandLeaves("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz")...)
	return append(e,
		kvm.CPUIDEntry{Function: 0x8000_0006, ECX: 0x01006040},
		kvm.CPUIDEntry{Function: 0x8000_0007, EDX: 0x100},
		kvm.CPUIDEntry{Function: 0x8000_0008, EAX: 0x3027},
	)
}

// amdLike is an AMD-V host's list; it also leaves out 0x1F and the KVM
// hypervisor leaves, and the brand leaves although 0x80000000 says they
// exist, to exercise the fallbacks.
func amdLike() []kvm.CPUIDEntry {
	return []kvm.CPUIDEntry{
		vendorLeaf(0x10, "AuthenticAMD"),
		// Family 0x19, model 0x21, stepping 2; 32 logical CPUs.
		{Function: 1, EAX: 0x00A20F12, EBX: 0x0A200800, ECX: 0xFED83203, EDX: 0x178BFBFF},
		{Function: 5, EAX: 0x40, EBX: 0x40, ECX: 3, EDX: 0x11},
		{Function: 6, EAX: 4, ECX: 1},
		{Function: 7, Index: 0, Flags: sig, EBX: 0x219C97A9, ECX: 0x0040069C, EDX: 0x10},
		{Function: 0xB, Index: 0, Flags: sig, EAX: 1, EBX: 2, ECX: 0x100, EDX: 9},
		{Function: 0xB, Index: 1, Flags: sig, EAX: 5, EBX: 32, ECX: 0x201, EDX: 9},
		{Function: 0xD, Index: 0, Flags: sig, EAX: 0x207, EBX: 0x988, ECX: 0x988},
		{Function: 0x8000_0000, EAX: 0x8000_0022},
		{Function: 0x8000_0001, EAX: 0x00A20F12, EBX: 0x40000000, ECX: 0x75C237FF, EDX: 0x2FD3FBFF},
		{Function: 0x8000_0007, EDX: 0x100},
		{Function: 0x8000_0008, EAX: 0x3030, EBX: 0x111EF657, ECX: 0x501F},
		{Function: 0x8000_000A, EAX: 1, EBX: 0x8000, EDX: 0x1EBFBCFF},
		{Function: 0x8000_001D, Index: 0, Flags: sig, EAX: 0x4121, EBX: 0x01C0003F, ECX: 0x3F},
		{Function: 0x8000_001D, Index: 1, Flags: sig, EAX: 0x4122, EBX: 0x01C0003F, ECX: 0x3F},
		{Function: 0x8000_001D, Index: 2, Flags: sig, EAX: 0x4143, EBX: 0x01C0003F, ECX: 0x3FF},
		{Function: 0x8000_001D, Index: 3, Flags: sig, EAX: 0x3C163, EBX: 0x03C0003F, ECX: 0x7FFF},
		{Function: 0x8000_001D, Index: 4, Flags: sig},
		{Function: 0x8000_001E, EAX: 9, EBX: 0x104, ECX: 0},
		{Function: 0x8000_0021, EAX: 0x62FCF},
		{Function: 0x8000_0022, EAX: 7, EBX: 0x6},
	}
}

// find returns the entry the guest sees for CPUID(fn, idx).
func find(entries []kvm.CPUIDEntry, fn, idx uint32) *kvm.CPUIDEntry {
	for i := range entries {
		e := &entries[i]
		if e.Function == fn && (e.Flags&sig == 0 || e.Index == idx) {
			return e
		}
	}
	return nil
}

// openKVM opens /dev/kvm, skipping only if it does not exist: any other
// failure is a test failure.
func openKVM(t *testing.T) *kvm.System {
	t.Helper()
	if _, err := os.Stat(kvm.DevicePath); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s does not exist: no KVM on this host", kvm.DevicePath)
	}
	s, err := kvm.Open(kvm.DevicePath)
	if err != nil {
		t.Fatalf("kvm.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// hostCPUID returns KVM_GET_SUPPORTED_CPUID of this machine.
func hostCPUID(t *testing.T) []kvm.CPUIDEntry {
	t.Helper()
	e, err := openKVM(t).SupportedCPUID()
	if err != nil {
		t.Fatalf("SupportedCPUID: %v", err)
	}
	return e
}

// featureRegs are the registers that hold feature flags: BuildCPUID may
// clear bits in them but must not set bits the supported list lacks.
var featureRegs = []struct {
	fn, idx uint32
	reg     string
}{
	{1, 0, "ECX"}, {1, 0, "EDX"},
	{6, 0, "EAX"},
	{7, 0, "EBX"}, {7, 0, "ECX"}, {7, 0, "EDX"},
	{7, 1, "EAX"}, {7, 1, "EBX"}, {7, 1, "ECX"}, {7, 1, "EDX"},
	{0xD, 1, "EAX"},
	{0x4000_0001, 0, "EAX"}, {0x4000_0001, 0, "EDX"},
	{0x8000_0001, 0, "ECX"}, {0x8000_0001, 0, "EDX"},
	{0x8000_0007, 0, "EDX"},
	{0x8000_0008, 0, "EBX"},
	{0x8000_0021, 0, "EAX"},
}

func reg(e *kvm.CPUIDEntry, name string) uint32 {
	if e == nil {
		return 0
	}
	switch name {
	case "EAX":
		return e.EAX
	case "EBX":
		return e.EBX
	case "ECX":
		return e.ECX
	}
	return e.EDX
}

// checkCPUID asserts every documented rule of BuildCPUID's output.
func checkCPUID(t *testing.T, in, out []kvm.CPUIDEntry, o CPUIDOptions) {
	t.Helper()
	n, id := uint32(o.NumVCPUs), uint32(o.VCPUID)

	// Structure: no duplicate leaves, within KVM's limit.
	keys := map[leafKey]bool{}
	for _, e := range out {
		if keys[keyOf(e)] {
			t.Errorf("leaf %#x/%d twice", e.Function, e.Index)
		}
		keys[keyOf(e)] = true
	}
	if len(out) > MaxCPUIDEntries {
		t.Errorf("%d entries", len(out))
	}

	// Vendor untouched.
	if *find(out, 0, 0) != *find(in, 0, 0) {
		t.Errorf("leaf 0 changed: %+v -> %+v", *find(in, 0, 0), *find(out, 0, 0))
	}

	// Leaf 1.
	l1, l1in := find(out, 1, 0), find(in, 1, 0)
	if got := l1.EBX >> 24; got != id {
		t.Errorf("leaf 1 initial APIC id %d, want %d", got, id)
	}
	if got := l1.EBX >> 16 & 0xFF; got < n {
		t.Errorf("leaf 1 logical processor count %d < %d vCPUs", got, n)
	}
	if l1.EBX>>8&0xFF != l1in.EBX>>8&0xFF {
		t.Errorf("CLFLUSH size changed: %#x -> %#x", l1in.EBX, l1.EBX)
	}
	if l1.ECX&f1ECXHypervisor == 0 {
		t.Error("hypervisor bit clear")
	}
	if htt := l1.EDX&f1EDXHTT != 0; htt != (n > 1) {
		t.Errorf("HTT %v with %d vCPUs", htt, n)
	}
	if l1.ECX&f1ECXClear != 0 || l1.EDX&f1EDXClear != 0 {
		t.Errorf("leaf 1 keeps cleared features: ECX %#x EDX %#x", l1.ECX&f1ECXClear, l1.EDX&f1EDXClear)
	}
	familyModel := uint32(0x0FFF_0FF0)
	if l1.EAX&familyModel != l1in.EAX&familyModel {
		t.Errorf("family/model changed: %#x -> %#x", l1in.EAX, l1.EAX)
	}
	if o.HostModel {
		if l1.EAX != l1in.EAX || l1.EBX&0xFF != l1in.EBX&0xFF {
			t.Errorf("HostModel: signature %#x -> %#x, EBX %#x -> %#x", l1in.EAX, l1.EAX, l1in.EBX, l1.EBX)
		}
	} else if l1.EAX&0xF != 0 || l1.EBX&0xFF != 0 {
		t.Errorf("stepping or brand index visible: EAX %#x EBX %#x", l1.EAX, l1.EBX)
	}

	// Feature bits: only the documented synthesized ones may appear.
	hadKVMLeaf := find(in, 0x4000_0001, 0) != nil
	for _, f := range featureRegs {
		allowed := uint32(0)
		switch {
		case f.fn == 1 && f.reg == "ECX":
			allowed = f1ECXHypervisor
		case f.fn == 1 && f.reg == "EDX" && n > 1:
			allowed = f1EDXHTT
		case f.fn == 0x4000_0001 && f.reg == "EAX" && !hadKVMLeaf:
			allowed = KVMFeatureClocksource | KVMFeatureClocksource2
		}
		if extra := reg(find(out, f.fn, f.idx), f.reg) &^ reg(find(in, f.fn, f.idx), f.reg) &^ allowed; extra != 0 {
			t.Errorf("leaf %#x/%d %s: bits %#x set that KVM did not report", f.fn, f.idx, f.reg, extra)
		}
	}
	if e := find(out, 7, 0); e != nil && (e.EBX&f7EBXClear != 0 || e.ECX&f7ECXClear != 0) {
		t.Errorf("leaf 7 keeps SGX/PT: %+v", *e)
	}
	if e := find(out, 0x8000_0001, 0); e != nil && e.ECX&fx1ECXClear != 0 {
		t.Errorf("0x80000001 ECX keeps %#x", e.ECX&fx1ECXClear)
	}
	for _, fn := range []uint32{3, 5, 0xA, 0x12, 0x14, 0x8000_000A, 0x8000_0022} {
		if e := find(out, fn, 0); e != nil && (e.EAX|e.EBX|e.ECX|e.EDX) != 0 {
			t.Errorf("leaf %#x not cleared: %+v", fn, *e)
		}
	}
	if e := find(out, 6, 0); e != nil && (e.EAX&^f6EAXARAT|e.EBX|e.ECX|e.EDX) != 0 {
		t.Errorf("leaf 6 keeps more than ARAT: %+v", *e)
	}

	// Topology leaves, where KVM listed them.
	for _, fn := range []uint32{0xB, 0x1F} {
		if find(in, fn, 0) == nil {
			if find(out, fn, 0) != nil {
				t.Errorf("leaf %#x invented", fn)
			}
			continue
		}
		s0, s1, s2 := find(out, fn, 0), find(out, fn, 1), find(out, fn, 2)
		if s0 == nil || s1 == nil || s2 == nil {
			t.Fatalf("leaf %#x: subleaves missing", fn)
		}
		if s0.EAX != 0 || s0.EBX != 1 || s0.ECX != 0|1<<8 {
			t.Errorf("leaf %#x SMT level %+v", fn, *s0)
		}
		if s1.EBX != n || s1.ECX != 1|2<<8 || 1<<s1.EAX < n || (n > 1 && 1<<(s1.EAX-1) >= n) {
			t.Errorf("leaf %#x core level %+v for %d vCPUs", fn, *s1, n)
		}
		if s2.ECX != 2 || s2.EBX != 0 {
			t.Errorf("leaf %#x terminator %+v", fn, *s2)
		}
		for _, s := range []*kvm.CPUIDEntry{s0, s1, s2} {
			if s.EDX != id {
				t.Errorf("leaf %#x/%d x2APIC id %d, want %d", fn, s.Index, s.EDX, id)
			}
		}
	}

	// Cache sharing agrees with the topology.
	for _, fn := range []uint32{4, 0x8000_001D} {
		for idx := uint32(0); idx < 8; idx++ {
			e := find(out, fn, idx)
			if e == nil || e.EAX&0x1F == 0 || (fn == 0x8000_001D && vendorOf(*find(in, 0, 0)) != vendorAMD) {
				continue
			}
			want := uint32(0)
			if e.EAX>>5&7 >= 3 {
				want = n - 1
			}
			if got := e.EAX >> 14 & 0xFFF; got != want {
				t.Errorf("leaf %#x/%d: %d sharing - 1, want %d", fn, idx, got, want)
			}
			if fn == 4 {
				if got := e.EAX >> 26; got != min(n-1, 63) {
					t.Errorf("leaf 4/%d: cores - 1 = %d, want %d", idx, got, min(n-1, 63))
				}
			}
		}
	}
	if vendorOf(*find(in, 0, 0)) == vendorAMD {
		if e := find(out, 0x8000_0008, 0); e != nil {
			if nc, size := e.ECX&0xFF, e.ECX>>12&0xF; nc != n-1 || (size != 0 && 1<<size < n) {
				t.Errorf("0x80000008 ECX %#x: NC %d ApicIdSize %d for %d vCPUs", e.ECX, nc, size, n)
			}
		}
		if e := find(out, 0x8000_001E, 0); e != nil && (e.EAX != id || e.EBX != id || e.ECX != 0) {
			t.Errorf("0x8000001E %+v for vCPU %d", *e, id)
		}
	}

	// Hypervisor leaves.
	hv := find(out, 0x4000_0000, 0)
	if hv == nil || hv.EAX != 0x4000_0001 || [3]uint32{hv.EBX, hv.ECX, hv.EDX} != kvmSignature {
		t.Fatalf("0x40000000 = %+v", hv)
	}
	var s []byte
	for _, r := range []uint32{hv.EBX, hv.ECX, hv.EDX} {
		s = append(s, byte(r), byte(r>>8), byte(r>>16), byte(r>>24))
	}
	if string(s) != "KVMKVMKVM\x00\x00\x00" {
		t.Errorf("signature %q", s)
	}
	kf := find(out, 0x4000_0001, 0)
	if kf == nil || kf.EAX&KVMFeatureClocksource2 == 0 && (!hadKVMLeaf || find(in, 0x4000_0001, 0).EAX&KVMFeatureClocksource2 != 0) {
		t.Errorf("kvm-clock not offered: %+v", kf)
	}
	if hadKVMLeaf && kf.EAX != find(in, 0x4000_0001, 0).EAX {
		t.Errorf("KVM features %#x, KVM reported %#x", kf.EAX, find(in, 0x4000_0001, 0).EAX)
	}

	// Brand string.
	maxExt := uint32(0)
	if e := find(in, 0x8000_0000, 0); e != nil {
		maxExt = e.EAX
	}
	switch {
	case o.HostModel:
		if got, want := brandOf(out), brandOf(in); got != want {
			t.Errorf("HostModel brand %q, host's %q", got, want)
		}
	case maxExt >= 0x8000_0004:
		if got := brandOf(out); got != BrandString {
			t.Errorf("brand %q, want %q", got, BrandString)
		}
	}
}

func TestBuildCPUID(t *testing.T) {
	lists := []struct {
		name string
		get  func(t *testing.T) []kvm.CPUIDEntry
	}{
		{"intel", func(*testing.T) []kvm.CPUIDEntry { return intelLike() }},
		{"amd", func(*testing.T) []kvm.CPUIDEntry { return amdLike() }},
		{"host", hostCPUID},
	}
	opts := []CPUIDOptions{
		{VCPUID: 0, NumVCPUs: 1},
		{VCPUID: 0, NumVCPUs: 2},
		{VCPUID: 1, NumVCPUs: 2},
		{VCPUID: 2, NumVCPUs: 3},
		{VCPUID: 15, NumVCPUs: 16},
		{VCPUID: 40, NumVCPUs: 65},
		{VCPUID: 253, NumVCPUs: 254},
		{VCPUID: 0, NumVCPUs: 4, HostModel: true},
		{VCPUID: 3, NumVCPUs: 4, HostModel: true},
	}
	for _, l := range lists {
		t.Run(l.name, func(t *testing.T) {
			in := l.get(t)
			for _, o := range opts {
				t.Run(fmt.Sprintf("%d-of-%d-host%v", o.VCPUID, o.NumVCPUs, o.HostModel), func(t *testing.T) {
					orig := slices.Clone(in)
					out, err := BuildCPUID(in, o)
					if err != nil {
						t.Fatalf("BuildCPUID: %v", err)
					}
					if !slices.Equal(in, orig) {
						t.Fatal("BuildCPUID modified its input")
					}
					checkCPUID(t, in, out, o)
				})
			}
		})
	}
}

func TestBuildCPUIDSpecifics(t *testing.T) {
	// Values the generic checks only bound, pinned for known inputs.
	out, err := BuildCPUID(intelLike(), CPUIDOptions{VCPUID: 5, NumVCPUs: 6})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want uint32
	}{
		{"leaf 1 EAX (stepping hidden)", find(out, 1, 0).EAX, 0x000906E0},
		{"leaf 1 EBX", find(out, 1, 0).EBX, 0x05060800},
		{"leaf 0xB/1 EAX shift", find(out, 0xB, 1).EAX, 3},
		{"leaf 4/0 EAX (L1d)", find(out, 4, 0).EAX, 5<<26 | 0x121},
		{"leaf 4/3 EAX (L3)", find(out, 4, 3).EAX, 5<<26 | 5<<14 | 0x163},
		{"leaf 6 EAX (ARAT only)", find(out, 6, 0).EAX, f6EAXARAT},
		{"leaf 7 EBX", find(out, 7, 0).EBX, 0x029C6FBF &^ (f7EBXSGX | f7EBXPT)},
		{"leaf 0x1F/2 EDX", find(out, 0x1F, 2).EDX, 5},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	amd, err := BuildCPUID(amdLike(), CPUIDOptions{VCPUID: 2, NumVCPUs: 3})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		got, want uint32
	}{
		{"0x80000008 ECX", find(amd, 0x8000_0008, 0).ECX, 0x2002},
		{"0x80000001 EAX", find(amd, 0x8000_0001, 0).EAX, 0x00A20F10},
		{"0x80000001 EBX", find(amd, 0x8000_0001, 0).EBX, 0},
		{"0x8000001E EAX", find(amd, 0x8000_001E, 0).EAX, 2},
		{"0x8000001D/3 sharing", find(amd, 0x8000_001D, 3).EAX >> 14 & 0xFFF, 2},
		{"0x40000001 EAX (fallback)", find(amd, 0x4000_0001, 0).EAX, KVMFeatureClocksource | KVMFeatureClocksource2},
	} {
		if tc.got != tc.want {
			t.Errorf("%s = %#x, want %#x", tc.name, tc.got, tc.want)
		}
	}
	if find(amd, 0x1F, 0) != nil {
		t.Error("leaf 0x1F invented for a host without it")
	}
	if !strings.HasPrefix(brandOf(amd), "govmm") {
		t.Errorf("missing brand leaves not synthesized: %q", brandOf(amd))
	}
}

func TestBuildCPUIDErrors(t *testing.T) {
	good := intelLike()
	noLeaf0 := slices.DeleteFunc(intelLike(), func(e kvm.CPUIDEntry) bool { return e.Function == 0 })
	dup := append(intelLike(), kvm.CPUIDEntry{Function: 4, Index: 2, Flags: sig})
	tooMany := make([]kvm.CPUIDEntry, MaxCPUIDEntries+1)
	for i := range tooMany {
		tooMany[i] = kvm.CPUIDEntry{Function: 0x20, Index: uint32(i), Flags: sig}
	}
	for _, tc := range []struct {
		name string
		in   []kvm.CPUIDEntry
		o    CPUIDOptions
		want error
	}{
		{"no vcpus", good, CPUIDOptions{NumVCPUs: 0}, ErrBadCPUCount},
		{"255 vcpus", good, CPUIDOptions{NumVCPUs: 255}, ErrBadCPUCount},
		{"negative vcpus", good, CPUIDOptions{NumVCPUs: -3}, ErrBadCPUCount},
		{"id = count", good, CPUIDOptions{VCPUID: 4, NumVCPUs: 4}, ErrBadCPUCount},
		{"negative id", good, CPUIDOptions{VCPUID: -1, NumVCPUs: 4}, ErrBadCPUCount},
		{"empty list", nil, CPUIDOptions{NumVCPUs: 1}, ErrBadCPUID},
		{"no leaf 0", noLeaf0, CPUIDOptions{NumVCPUs: 1}, ErrBadCPUID},
		{"duplicate leaf", dup, CPUIDOptions{NumVCPUs: 1}, ErrBadCPUID},
		{"too many", tooMany, CPUIDOptions{NumVCPUs: 1}, ErrBadCPUID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := BuildCPUID(tc.in, tc.o)
			if !errors.Is(err, tc.want) || out != nil {
				t.Errorf("BuildCPUID = %d entries, %v; want %v", len(out), err, tc.want)
			}
		})
	}
}

// TestBuildCPUIDAcceptedByKVM hands every vCPU's table to a real vCPU.
func TestBuildCPUIDAcceptedByKVM(t *testing.T) {
	s := openKVM(t)
	sup, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	const n = 2
	for id := 0; id < n; id++ {
		c, err := vm.CreateVCPU(id)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		tab, err := BuildCPUID(sup, CPUIDOptions{VCPUID: id, NumVCPUs: n})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.SetCPUID2(tab); err != nil {
			t.Errorf("vCPU %d: KVM_SET_CPUID2 refused the table: %v", id, err)
		}
	}
}

// FuzzBuildCPUID feeds arbitrary supported lists: BuildCPUID must return a
// table or an error, never panic, and a table must respect the bounds.
func FuzzBuildCPUID(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0, 1, 0, 0, 0}, 1, 0, false)
	f.Fuzz(func(t *testing.T, raw []byte, n, id int, host bool) {
		var in []kvm.CPUIDEntry
		for len(raw) >= 12 && len(in) < 2*MaxCPUIDEntries {
			u := func(i int) uint32 {
				return uint32(raw[i]) | uint32(raw[i+1])<<8 | uint32(raw[i+2])<<16 | uint32(raw[i+3])<<24
			}
			fn := u(0)
			switch raw[0] % 4 { // steer towards interesting leaves
			case 0:
				fn = uint32(raw[1] % 0x24)
			case 1:
				fn = 0x8000_0000 | uint32(raw[1]%0x24)
			case 2:
				fn = 0x4000_0000 | uint32(raw[1]%3)
			}
			in = append(in, kvm.CPUIDEntry{Function: fn, Index: uint32(raw[2] % 4), Flags: uint32(raw[3] % 2), EAX: u(4), EBX: u(8), ECX: u(4) ^ u(8), EDX: u(8) * 3})
			raw = raw[12:]
		}
		out, err := BuildCPUID(in, CPUIDOptions{VCPUID: id, NumVCPUs: n, HostModel: host})
		if err != nil {
			return
		}
		if len(out) > MaxCPUIDEntries {
			t.Fatalf("%d entries", len(out))
		}
		if e := find(out, 1, 0); e != nil && e.EBX>>24 != uint32(id) {
			t.Fatalf("APIC id %d for vCPU %d", e.EBX>>24, id)
		}
	})
}
