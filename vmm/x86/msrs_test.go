//go:build linux && amd64

package x86

import (
	"slices"
	"testing"

	"github.com/govmm/govmm/kvm"
)

func TestBootMSRs(t *testing.T) {
	want := map[uint32]uint64{
		MSRIA32SysenterCS: 0, MSRIA32SysenterESP: 0, MSRIA32SysenterEIP: 0,
		MSRSTAR: 0, MSRLSTAR: 0, MSRCSTAR: 0, MSRSyscallMask: 0, MSRKernelGSBase: 0,
		MSRIA32TSC:        0,
		MSRIA32MiscEnable: 0x1801, // fast strings, BTS and PEBS unavailable
		MSRMTRRDefType:    0x806,  // MTRRs enabled, default write-back
	}
	got := BootMSRs()
	if len(got) != len(want) {
		t.Errorf("%d MSRs, want %d", len(got), len(want))
	}
	seen := map[uint32]bool{}
	for _, e := range got {
		w, ok := want[e.Index]
		switch {
		case !ok:
			t.Errorf("unexpected MSR %#x", e.Index)
		case seen[e.Index]:
			t.Errorf("MSR %#x twice", e.Index)
		case e.Data != w:
			t.Errorf("MSR %#x = %#x, want %#x", e.Index, e.Data, w)
		}
		seen[e.Index] = true
	}
	// Callers may edit the result: each call returns a fresh slice.
	got[0].Data = 42
	if BootMSRs()[0].Data != 0 {
		t.Error("BootMSRs shares its backing array")
	}
}

func TestFilterMSRs(t *testing.T) {
	e := func(idx ...uint32) []kvm.MSREntry {
		out := []kvm.MSREntry{}
		for _, i := range idx {
			out = append(out, kvm.MSREntry{Index: i, Data: uint64(i) * 3})
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		in        []kvm.MSREntry
		supported []uint32
		want      []kvm.MSREntry
	}{
		{"all known", e(0x10, 0x174), []uint32{0x174, 0x10}, e(0x10, 0x174)},
		{"unknown dropped, order kept", e(0x176, 0x10, 0x1A0), []uint32{0x1A0, 0x176}, e(0x176, 0x1A0)},
		{"nothing known", e(0x10), nil, e()},
		{"MTRRdefType is always emulated", e(0x2FF, 0x10), []uint32{0x10}, e(0x2FF, 0x10)},
		{"empty", nil, []uint32{0x10}, e()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := slices.Clone(tc.in)
			got := FilterMSRs(tc.in, tc.supported)
			if !slices.Equal(got, tc.want) {
				t.Errorf("FilterMSRs = %+v, want %+v", got, tc.want)
			}
			if !slices.Equal(tc.in, orig) {
				t.Error("FilterMSRs modified its input")
			}
		})
	}
}

func hostMSRs(t *testing.T, s *kvm.System) []uint32 {
	t.Helper()
	l, err := s.MSRIndexList()
	if err != nil {
		t.Fatalf("MSRIndexList: %v", err)
	}
	return l
}

// TestKVMClockMSRsListed checks that the host's KVM knows the kvm-clock
// MSRs the CPUID table advertises (KVM_FEATURE_CLOCKSOURCE2): the guest
// writes them, and a VMM that saves state must be able to read them.
func TestKVMClockMSRsListed(t *testing.T) {
	list := hostMSRs(t, openKVM(t))
	for _, m := range []uint32{MSRKVMWallClockNew, MSRKVMSystemTimeNew} {
		if !slices.Contains(list, m) {
			t.Errorf("MSR %#x not in KVM_GET_MSR_INDEX_LIST", m)
		}
	}
}

// TestBootMSRsOnVCPU writes the filtered boot MSRs to a real vCPU, after
// its CPUID as the VMM does, and reads them back.
func TestBootMSRsOnVCPU(t *testing.T) {
	s := openKVM(t)
	list := hostMSRs(t, s)
	sup, err := s.SupportedCPUID()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatal(err)
	}
	defer vm.Close()
	c, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tab, err := BuildCPUID(sup, CPUIDOptions{NumVCPUs: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetCPUID2(tab); err != nil {
		t.Fatal(err)
	}
	boot := BootMSRs()
	msrs := FilterMSRs(boot, list)
	for _, b := range boot {
		if !slices.ContainsFunc(msrs, func(e kvm.MSREntry) bool { return e.Index == b.Index }) {
			t.Logf("this host's KVM does not list MSR %#x; it is not written", b.Index)
		}
	}
	if err := c.SetMSRs(msrs); err != nil {
		t.Fatalf("KVM_SET_MSRS: %v", err)
	}
	idx := make([]uint32, len(msrs))
	for i, e := range msrs {
		idx[i] = e.Index
	}
	got, err := c.GetMSRs(idx)
	if err != nil {
		t.Fatalf("KVM_GET_MSRS: %v", err)
	}
	for i, e := range msrs {
		if e.Index == MSRIA32TSC {
			continue // the TSC runs on after the write
		}
		if got[i].Data != e.Data {
			t.Errorf("MSR %#x reads back %#x, wrote %#x", e.Index, got[i].Data, e.Data)
		}
	}
}
