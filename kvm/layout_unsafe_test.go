//go:build linux && amd64

package kvm

import (
	"testing"
	"unsafe"
)

// C values printed by testdata/cabi.c (sizeof/offsetof with gcc 12 and the
// Debian 12 kernel headers).

// cRunOff are offsetof(struct kvm_run, ...) values. The RunData tests
// also use them to build fake exits, so a wrong Go offset cannot agree
// with itself there.
var cRunOff = struct {
	requestInterruptWindow, immediateExit, exitReason, readyForInjection, ifFlag, cr8, apicBase uintptr
	ioDirection, ioSize, ioPort, ioCount, ioDataOffset                                          uintptr
	mmioPhysAddr, mmioData, mmioLen, mmioIsWrite                                                uintptr
	failReason, failCPU                                                                         uintptr
	internalSuberror, internalNData, internalData                                               uintptr
	sysType, sysFlags                                                                           uintptr
	size                                                                                        uintptr
}{
	0, 1, 8, 12, 13, 16, 24,
	32, 33, 34, 36, 40,
	32, 40, 48, 52,
	32, 40,
	32, 36, 40,
	32, 40,
	2352,
}

func TestStructLayout(t *testing.T) {
	sizes := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_regs", unsafe.Sizeof(Regs{}), 144},
		{"kvm_sregs", unsafe.Sizeof(Sregs{}), 312},
		{"kvm_segment", unsafe.Sizeof(Segment{}), 24},
		{"kvm_dtable", unsafe.Sizeof(DTable{}), 16},
		{"kvm_fpu", unsafe.Sizeof(FPU{}), 416},
		{"kvm_lapic_state", unsafe.Sizeof(LAPICState{}), 1024},
		{"kvm_vcpu_events", unsafe.Sizeof(VCPUEvents{}), 64},
		{"kvm_mp_state", unsafe.Sizeof(MPState(0)), 4},
		{"kvm_cpuid_entry2", unsafe.Sizeof(CPUIDEntry{}), 40},
		{"kvm_cpuid2", unsafe.Sizeof(cpuid2Header{}), 8},
		{"kvm_msr_entry", unsafe.Sizeof(MSREntry{}), 16},
		{"kvm_msrs", unsafe.Sizeof(msrsHeader{}), 8},
		{"kvm_msr_list", unsafe.Sizeof(msrListHeader{}), 4},
		{"kvm_clock_data", unsafe.Sizeof(ClockData{}), 48},
		{"kvm_userspace_memory_region", unsafe.Sizeof(userspaceMemoryRegion{}), 32},
		{"kvm_irqfd", unsafe.Sizeof(irqfd{}), 32},
		{"kvm_ioeventfd", unsafe.Sizeof(ioeventfd{}), 64},
		{"kvm_pit_config", unsafe.Sizeof(pitConfig{}), 64},
		{"kvm_irq_level", unsafe.Sizeof(irqLevel{}), 8},
		{"kvm_irq_routing_entry", unsafe.Sizeof(IRQRoutingEntry{}), 48},
		{"kvm_irq_routing", unsafe.Sizeof(irqRoutingHeader{}), 8},
		{"kvm_interrupt", unsafe.Sizeof(interrupt{}), 4},
		{"kvm_run", unsafe.Sizeof(kvmRun{}), cRunOff.size},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("sizeof(struct %s) = %d, want %d", s.name, s.got, s.want)
		}
	}

	var ev VCPUEvents
	var sr Sregs
	var fpu FPU
	var cd ClockData
	var ioe ioeventfd
	var ifd irqfd
	var re IRQRoutingEntry
	offsets := []struct {
		name string
		got  uintptr
		want uintptr
	}{
		{"kvm_run.request_interrupt_window", runOffRequestInterruptWindow, cRunOff.requestInterruptWindow},
		{"kvm_run.immediate_exit", runOffImmediateExit, cRunOff.immediateExit},
		{"kvm_run.exit_reason", runOffExitReason, cRunOff.exitReason},
		{"kvm_run.ready_for_interrupt_injection", runOffReadyForInterruptInjection, cRunOff.readyForInjection},
		{"kvm_run.if_flag", runOffIFFlag, cRunOff.ifFlag},
		{"kvm_run.cr8", runOffCR8, cRunOff.cr8},
		{"kvm_run.apic_base", runOffAPICBase, cRunOff.apicBase},
		{"kvm_run.io.direction", runOffIODirection, cRunOff.ioDirection},
		{"kvm_run.io.size", runOffIOSize, cRunOff.ioSize},
		{"kvm_run.io.port", runOffIOPort, cRunOff.ioPort},
		{"kvm_run.io.count", runOffIOCount, cRunOff.ioCount},
		{"kvm_run.io.data_offset", runOffIODataOffset, cRunOff.ioDataOffset},
		{"kvm_run.mmio.phys_addr", runOffMMIOPhysAddr, cRunOff.mmioPhysAddr},
		{"kvm_run.mmio.data", runOffMMIOData, cRunOff.mmioData},
		{"kvm_run.mmio.len", runOffMMIOLen, cRunOff.mmioLen},
		{"kvm_run.mmio.is_write", runOffMMIOIsWrite, cRunOff.mmioIsWrite},
		{"kvm_run.fail_entry.hardware_entry_failure_reason", runOffFailEntryReason, cRunOff.failReason},
		{"kvm_run.fail_entry.cpu", runOffFailEntryCPU, cRunOff.failCPU},
		{"kvm_run.internal.suberror", runOffInternalSuberror, cRunOff.internalSuberror},
		{"kvm_run.internal.ndata", runOffInternalNData, cRunOff.internalNData},
		{"kvm_run.internal.data", runOffInternalData, cRunOff.internalData},
		{"kvm_run.system_event.type", runOffSystemEventType, cRunOff.sysType},
		{"kvm_run.system_event.flags", runOffSystemEventFlags, cRunOff.sysFlags},
		{"kvm_run.kvm_valid_regs", unsafe.Offsetof(kvmRun{}.KVMValidRegs), 288},
		{"kvm_run.kvm_dirty_regs", unsafe.Offsetof(kvmRun{}.KVMDirtyRegs), 296},
		{"kvm_run.s", unsafe.Offsetof(kvmRun{}.S), 304},
		{"kvm_vcpu_events.interrupt", unsafe.Offsetof(ev.Interrupt), 8},
		{"kvm_vcpu_events.nmi", unsafe.Offsetof(ev.NMI), 12},
		{"kvm_vcpu_events.sipi_vector", unsafe.Offsetof(ev.SIPIVector), 16},
		{"kvm_vcpu_events.flags", unsafe.Offsetof(ev.Flags), 20},
		{"kvm_vcpu_events.smi", unsafe.Offsetof(ev.SMI), 24},
		{"kvm_vcpu_events.triple_fault", unsafe.Offsetof(ev.TripleFault), 28},
		{"kvm_vcpu_events.exception_has_payload", unsafe.Offsetof(ev.ExceptionHasPayload), 55},
		{"kvm_vcpu_events.exception_payload", unsafe.Offsetof(ev.ExceptionPayload), 56},
		{"kvm_sregs.gdt", unsafe.Offsetof(sr.GDT), 192},
		{"kvm_sregs.cr0", unsafe.Offsetof(sr.CR0), 224},
		{"kvm_sregs.efer", unsafe.Offsetof(sr.EFER), 264},
		{"kvm_sregs.apic_base", unsafe.Offsetof(sr.APICBase), 272},
		{"kvm_sregs.interrupt_bitmap", unsafe.Offsetof(sr.InterruptBitmap), 280},
		{"kvm_fpu.fcw", unsafe.Offsetof(fpu.FCW), 128},
		{"kvm_fpu.last_ip", unsafe.Offsetof(fpu.LastIP), 136},
		{"kvm_fpu.xmm", unsafe.Offsetof(fpu.XMM), 152},
		{"kvm_fpu.mxcsr", unsafe.Offsetof(fpu.MXCSR), 408},
		{"kvm_clock_data.flags", unsafe.Offsetof(cd.Flags), 8},
		{"kvm_clock_data.realtime", unsafe.Offsetof(cd.Realtime), 16},
		{"kvm_clock_data.host_tsc", unsafe.Offsetof(cd.HostTSC), 24},
		{"kvm_ioeventfd.addr", unsafe.Offsetof(ioe.Addr), 8},
		{"kvm_ioeventfd.len", unsafe.Offsetof(ioe.Len), 16},
		{"kvm_ioeventfd.fd", unsafe.Offsetof(ioe.FD), 20},
		{"kvm_ioeventfd.flags", unsafe.Offsetof(ioe.Flags), 24},
		{"kvm_irqfd.gsi", unsafe.Offsetof(ifd.GSI), 4},
		{"kvm_irqfd.flags", unsafe.Offsetof(ifd.Flags), 8},
		{"kvm_irqfd.resamplefd", unsafe.Offsetof(ifd.ResampleFD), 12},
		{"kvm_irq_routing_entry.type", unsafe.Offsetof(re.Type), 4},
		{"kvm_irq_routing_entry.flags", unsafe.Offsetof(re.Flags), 8},
		{"kvm_irq_routing_entry.u", unsafe.Offsetof(re.U), 16},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("offsetof(%s) = %d, want %d", o.name, o.got, o.want)
		}
	}
}

// TestFlexLayout checks that flexible-array entries start where C puts
// them (offsetof(struct kvm_cpuid2, entries) == 8, kvm_msr_list.indices at
// 4, ...) and that the entries slice has the requested length.
func TestFlexLayout(t *testing.T) {
	check := func(name string, hdr, first unsafe.Pointer, want uintptr) {
		t.Helper()
		if got := uintptr(first) - uintptr(hdr); got != want {
			t.Errorf("%s entries at offset %d, want %d", name, got, want)
		}
	}
	for _, n := range []int{1, 3, 64} {
		c, err := newFlex[cpuid2Header, CPUIDEntry](n)
		if err != nil || len(c.ents) != n {
			t.Fatalf("newFlex cpuid2(%d): len %d, err %v", n, len(c.ents), err)
		}
		check("kvm_cpuid2", unsafe.Pointer(c.hdr), unsafe.Pointer(&c.ents[0]), 8)
		if end := uintptr(unsafe.Pointer(&c.ents[n-1])) + unsafe.Sizeof(CPUIDEntry{}); end > uintptr(unsafe.Pointer(&c.buf[0]))+uintptr(len(c.buf))*8 {
			t.Errorf("kvm_cpuid2(%d): entries end past the buffer", n)
		}
		l, err := newFlex[msrListHeader, uint32](n)
		if err != nil {
			t.Fatal(err)
		}
		check("kvm_msr_list", unsafe.Pointer(l.hdr), unsafe.Pointer(&l.ents[0]), 4)
		m, err := newFlex[msrsHeader, MSREntry](n)
		if err != nil {
			t.Fatal(err)
		}
		check("kvm_msrs", unsafe.Pointer(m.hdr), unsafe.Pointer(&m.ents[0]), 8)
		r, err := newFlex[irqRoutingHeader, IRQRoutingEntry](n)
		if err != nil {
			t.Fatal(err)
		}
		check("kvm_irq_routing", unsafe.Pointer(r.hdr), unsafe.Pointer(&r.ents[0]), 8)
	}
	if f, err := newFlex[msrListHeader, uint32](0); err != nil || len(f.ents) != 0 || f.hdr == nil {
		t.Errorf("newFlex(0) = %v, %v; want header only", f, err)
	}
	for _, n := range []int{-1, 1 << 30} {
		if _, err := newFlex[cpuid2Header, CPUIDEntry](n); err == nil {
			t.Errorf("newFlex(%d) succeeded, want error", n)
		}
	}
}
