//go:build linux && amd64

package kvm

import (
	"errors"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests drive the real /dev/kvm. They skip only when the device does
// not exist; any other failure to open it is a test failure.

func openKVM(t *testing.T) *System {
	t.Helper()
	if _, err := os.Stat(DevicePath); errors.Is(err, os.ErrNotExist) {
		t.Skipf("%s does not exist: no KVM on this host", DevicePath)
	}
	s, err := Open(DevicePath)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createVM(t *testing.T, s *System) *VM {
	t.Helper()
	vm, err := s.CreateVM()
	if err != nil {
		t.Fatalf("CreateVM: %v", err)
	}
	t.Cleanup(func() { vm.Close() })
	return vm
}

const (
	guestRAMSize = 64 << 10
	codeAddr     = 0x1000
)

// realModeGuest is a VM with 64 KiB of RAM at GPA 0 holding code at
// codeAddr, and one vCPU in real mode with CS:IP = 0000:codeAddr.
type realModeGuest struct {
	vm   *VM
	vcpu *VCPU
	ram  []byte
}

func newRealModeGuest(t *testing.T, code []byte) *realModeGuest {
	t.Helper()
	s := openKVM(t)
	vm := createVM(t, s)
	ram, err := unix.Mmap(-1, 0, guestRAMSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|unix.MAP_NORESERVE)
	if err != nil {
		t.Fatalf("mmap guest RAM: %v", err)
	}
	copy(ram[codeAddr:], code)
	if err := vm.SetTSSAddr(0xfffb_d000); err != nil {
		t.Fatalf("SetTSSAddr: %v", err)
	}
	if err := vm.SetUserMemoryRegion(0, 0, 0, guestRAMSize, hostAddr(ram)); err != nil {
		t.Fatalf("SetUserMemoryRegion: %v", err)
	}
	vcpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatalf("CreateVCPU: %v", err)
	}
	// The vCPU must go before the RAM it might still be running from.
	t.Cleanup(func() { vcpu.Close(); vm.Close(); unix.Munmap(ram) })
	sr, err := vcpu.GetSregs()
	if err != nil {
		t.Fatalf("GetSregs: %v", err)
	}
	sr.CS.Base, sr.CS.Selector = 0, 0
	for _, seg := range []*Segment{&sr.DS, &sr.ES, &sr.SS} {
		seg.Base, seg.Selector = 0, 0
	}
	if err := vcpu.SetSregs(sr); err != nil {
		t.Fatalf("SetSregs: %v", err)
	}
	if err := vcpu.SetRegs(Regs{RIP: codeAddr, RFLAGS: 2, RSP: 0x8000}); err != nil {
		t.Fatalf("SetRegs: %v", err)
	}
	return &realModeGuest{vm: vm, vcpu: vcpu, ram: ram}
}

// run enters the guest until an exit other than an EINTR, which Go's
// preemption signals produce at any time.
func (g *realModeGuest) run(t *testing.T) ExitReason {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := g.vcpu.Run()
		if err == nil {
			return g.vcpu.RunData().ExitReason()
		}
		if !errors.Is(err, ErrInterrupted) {
			t.Fatalf("Run: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run: still interrupted after 20s")
		}
	}
}

func (g *realModeGuest) expectIO(t *testing.T, dir IODirection, port uint16) IOExit {
	t.Helper()
	rd := g.vcpu.RunData()
	if r := g.run(t); r != ExitIO {
		sub, data := rd.InternalError()
		t.Fatalf("exit %v (internal suberror %d %x), want KVM_EXIT_IO", r, sub, data)
	}
	io, err := rd.IO()
	if err != nil {
		t.Fatalf("IO: %v", err)
	}
	if io.Direction != dir || io.Port != port || io.Size != 1 || io.Count != 1 || len(io.Data) != 1 {
		t.Fatalf("IO exit = %+v, want %v port %#x size 1", io, dir, port)
	}
	return io
}

func (g *realModeGuest) expectHLT(t *testing.T) {
	t.Helper()
	if r := g.run(t); r != ExitHLT {
		t.Fatalf("exit %v, want KVM_EXIT_HLT", r)
	}
}

func TestSystem(t *testing.T) {
	s := openKVM(t)
	v, err := s.APIVersion()
	if err != nil || v != StableAPIVersion {
		t.Fatalf("APIVersion = %d, %v", v, err)
	}
	for _, c := range []Cap{CapIRQChip, CapUserMemory, CapIOEventFD, CapIRQFD, CapImmediateExit, CapSetTSSAddr, CapPIT2, CapNrVCPUs, CapMaxVCPUs} {
		n, err := s.CheckExtension(c)
		if err != nil || n <= 0 {
			t.Errorf("CheckExtension(%v) = %d, %v; want > 0", c, n, err)
		}
	}
	nr, _ := s.CheckExtension(CapNrVCPUs)
	max, _ := s.CheckExtension(CapMaxVCPUs)
	if max < nr {
		t.Errorf("MAX_VCPUS %d < NR_VCPUS %d", max, nr)
	}
	if n, err := s.CheckExtension(Cap(0x7fff_0000)); err != nil || n != 0 {
		t.Errorf("CheckExtension(unknown) = %d, %v; want 0, nil", n, err)
	}
	if _, err := s.CheckExtension(Cap(-1)); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("CheckExtension(-1) err = %v", err)
	}
	size, err := s.VCPUMmapSize()
	if err != nil || size < int(cRunOff.size) || size%4096 != 0 {
		t.Errorf("VCPUMmapSize = %d, %v", size, err)
	}
}

func TestOpenErrors(t *testing.T) {
	openKVM(t)
	if _, err := Open("/nonexistent/kvm"); !errors.Is(err, unix.ENOENT) {
		t.Errorf("Open(missing) = %v, want ENOENT", err)
	}
	// /dev/null accepts the open but not the ioctl.
	if _, err := Open("/dev/null"); !errors.Is(err, unix.ENOTTY) {
		t.Errorf("Open(/dev/null) = %v, want ENOTTY from KVM_GET_API_VERSION", err)
	}
}

func TestClose(t *testing.T) {
	s := openKVM(t)
	vm := createVM(t, s)
	vcpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := vcpu.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := vcpu.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if err := vcpu.Run(); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	if _, err := vcpu.GetRegs(); !errors.Is(err, ErrClosed) {
		t.Errorf("GetRegs after Close = %v, want ErrClosed", err)
	}
	vcpu.RunData().SetImmediateExit(true) // must not touch the unmapped page
	if err := vm.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := vm.CreateVCPU(1); !errors.Is(err, ErrClosed) {
		t.Errorf("CreateVCPU after Close = %v, want ErrClosed", err)
	}
	s2, err := Open(DevicePath)
	if err != nil {
		t.Fatal(err)
	}
	s2.Close()
	if _, err := s2.APIVersion(); !errors.Is(err, ErrClosed) {
		t.Errorf("APIVersion after Close = %v, want ErrClosed", err)
	}
}

func TestSupportedCPUID(t *testing.T) {
	s := openKVM(t)
	ents, err := s.SupportedCPUID()
	if err != nil {
		t.Fatalf("SupportedCPUID: %v", err)
	}
	if len(ents) == 0 {
		t.Fatal("SupportedCPUID returned no entries")
	}
	found := map[uint32]bool{}
	for _, e := range ents {
		found[e.Function] = true
	}
	if !found[0] || !found[1] {
		t.Errorf("leaves 0 and 1 missing from %d entries", len(ents))
	}
	vm := createVM(t, s)
	vcpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer vcpu.Close()
	if err := vcpu.SetCPUID2(ents); err != nil {
		t.Errorf("SetCPUID2(supported): %v", err)
	}
}

func TestMSRs(t *testing.T) {
	s := openKVM(t)
	list, err := s.MSRIndexList()
	if err != nil {
		t.Fatalf("MSRIndexList: %v", err)
	}
	if len(list) == 0 {
		t.Fatal("MSRIndexList is empty")
	}
	vm := createVM(t, s)
	vcpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer vcpu.Close()
	const sysenterCS, sysenterESP = 0x174, 0x175
	want := []MSREntry{{Index: sysenterCS, Data: 0x10}, {Index: sysenterESP, Data: 0xffff_8000_1234_5000}}
	if err := vcpu.SetMSRs(want); err != nil {
		t.Fatalf("SetMSRs: %v", err)
	}
	got, err := vcpu.GetMSRs([]uint32{sysenterCS, sysenterESP})
	if err != nil {
		t.Fatalf("GetMSRs: %v", err)
	}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("GetMSRs = %+v, want %+v", got, want)
	}
	// An MSR KVM does not know stops the list: the short count must
	// surface as an error naming it, not as a partial result.
	_, err = vcpu.GetMSRs([]uint32{sysenterCS, 0x4000_7fff})
	if !errors.Is(err, ErrMSRNotProcessed) {
		t.Errorf("GetMSRs(unknown MSR) err = %v, want ErrMSRNotProcessed", err)
	}
	if got, err := vcpu.GetMSRs(nil); err != nil || len(got) != 0 {
		t.Errorf("GetMSRs(nil) = %v, %v", got, err)
	}
}

func TestVMDevices(t *testing.T) {
	s := openKVM(t)
	vm := createVM(t, s)
	if err := vm.SetIdentityMapAddr(0xfffb_c000); err != nil {
		t.Fatalf("SetIdentityMapAddr: %v", err)
	}
	if err := vm.SetTSSAddr(0xfffb_d000); err != nil {
		t.Fatalf("SetTSSAddr: %v", err)
	}
	if err := vm.CreateIRQChip(); err != nil {
		t.Fatalf("CreateIRQChip: %v", err)
	}
	if err := vm.CreatePIT2(); err != nil {
		t.Fatalf("CreatePIT2: %v", err)
	}
	if err := vm.IRQLine(4, true); err != nil {
		t.Errorf("IRQLine(4, high): %v", err)
	}
	if err := vm.IRQLine(4, false); err != nil {
		t.Errorf("IRQLine(4, low): %v", err)
	}
	routes := []IRQRoutingEntry{IRQChipRoute(0, IRQChipIOAPIC, 2)}
	for i := uint32(1); i < 24; i++ {
		routes = append(routes, IRQChipRoute(i, IRQChipIOAPIC, i))
	}
	for i := uint32(0); i < 16; i++ {
		if i != 2 {
			routes = append(routes, IRQChipRoute(i, IRQChipPICMaster+i/8, i%8))
		}
	}
	routes = append(routes, MSIRoute(24, 0xfee0_0000, 0x31))
	if err := vm.SetGSIRouting(routes); err != nil {
		t.Errorf("SetGSIRouting: %v", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	if err := vm.IRQFD(efd, 5, 0); err != nil {
		t.Errorf("IRQFD assign: %v", err)
	}
	if err := vm.IRQFD(efd, 5, IRQFDDeassign); err != nil {
		t.Errorf("IRQFD deassign: %v", err)
	}
	if err := vm.IOEventFD(efd, 0xd000_0050, 4, 0, 0); err != nil {
		t.Errorf("IOEventFD mmio: %v", err)
	}
	if err := vm.IOEventFD(efd, 0xd000_0050, 4, 0, IOEventFDDeassign); err != nil {
		t.Errorf("IOEventFD deassign: %v", err)
	}
	if err := vm.IOEventFD(efd, 0x510, 2, 7, IOEventFDPIO|IOEventFDDatamatch); err != nil {
		t.Errorf("IOEventFD pio datamatch: %v", err)
	}
	// Deassigning what was never assigned is the kernel's ENOENT.
	if err := vm.IOEventFD(efd, 0xd000_1000, 4, 0, IOEventFDDeassign); !errors.Is(err, unix.ENOENT) {
		t.Errorf("IOEventFD deassign unknown = %v, want ENOENT", err)
	}
	c, err := vm.GetClock()
	if err != nil {
		t.Fatalf("GetClock: %v", err)
	}
	c2 := c
	c2.Clock += uint64(time.Second)
	c2.Flags = 0 // plain set, no realtime adjustment
	if err := vm.SetClock(c2); err != nil {
		t.Fatalf("SetClock: %v", err)
	}
	c3, err := vm.GetClock()
	if err != nil {
		t.Fatal(err)
	}
	if c3.Clock < c2.Clock || c3.Clock > c2.Clock+uint64(10*time.Second) {
		t.Errorf("clock after SetClock(%d) = %d", c2.Clock, c3.Clock)
	}

	vcpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatalf("CreateVCPU: %v", err)
	}
	defer vcpu.Close()
	if vcpu.ID() != 0 {
		t.Errorf("ID = %d", vcpu.ID())
	}
	lapic, err := vcpu.GetLAPIC()
	if err != nil {
		t.Fatalf("GetLAPIC: %v", err)
	}
	// The version register (0x30) of an integrated APIC is 0x1X in its low byte.
	if ver, _ := lapic.Reg(0x30); ver&0xf0 != 0x10 {
		t.Errorf("LAPIC version register = %#x", ver)
	}
	lvt0 := uint32(0x700) // ExtINT, as a BIOS programs LINT0
	if err := lapic.SetReg(LAPICRegLVT0, lvt0); err != nil {
		t.Fatal(err)
	}
	if err := vcpu.SetLAPIC(lapic); err != nil {
		t.Fatalf("SetLAPIC: %v", err)
	}
	back, err := vcpu.GetLAPIC()
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := back.Reg(LAPICRegLVT0); v != lvt0 {
		t.Errorf("LVT0 after SetLAPIC = %#x, want %#x", v, lvt0)
	}
	st, err := vcpu.GetMPState()
	if err != nil {
		t.Fatalf("GetMPState: %v", err)
	}
	if st != MPStateRunnable {
		t.Errorf("BSP MP state = %v, want RUNNABLE", st)
	}
	if err := vcpu.SetMPState(MPStateRunnable); err != nil {
		t.Errorf("SetMPState: %v", err)
	}
	if _, err := vm.CreateVCPU(-1); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("CreateVCPU(-1) = %v", err)
	}
}

func TestRegisterRoundTrip(t *testing.T) {
	s := openKVM(t)
	vm := createVM(t, s)
	vcpu, err := vm.CreateVCPU(0)
	if err != nil {
		t.Fatal(err)
	}
	defer vcpu.Close()
	want := Regs{RAX: 1, RBX: 2, RCX: 3, RDX: 4, RSI: 5, RDI: 6, RSP: 7, RBP: 8,
		R8: 9, R9: 10, R10: 11, R11: 12, R12: 13, R13: 14, R14: 15, R15: 0xdead_beef_0000_0001,
		RIP: 0xfff0, RFLAGS: 0x202}
	if err := vcpu.SetRegs(want); err != nil {
		t.Fatalf("SetRegs: %v", err)
	}
	got, err := vcpu.GetRegs()
	if err != nil {
		t.Fatalf("GetRegs: %v", err)
	}
	if got != want {
		t.Errorf("GetRegs = %+v, want %+v", got, want)
	}

	sr, err := vcpu.GetSregs()
	if err != nil {
		t.Fatalf("GetSregs: %v", err)
	}
	// Reset state: CS selector 0xf000 with base 0xffff0000.
	if sr.CS.Selector != 0xf000 || sr.CS.Base != 0xffff_0000 {
		t.Errorf("reset CS = %#x base %#x", sr.CS.Selector, sr.CS.Base)
	}
	sr.GDT = DTable{Base: 0x500, Limit: 0x27}
	sr.IDT = DTable{Base: 0x0, Limit: 0x3ff}
	if err := vcpu.SetSregs(sr); err != nil {
		t.Fatalf("SetSregs: %v", err)
	}
	sr2, err := vcpu.GetSregs()
	if err != nil {
		t.Fatal(err)
	}
	if sr2.GDT != sr.GDT || sr2.IDT != sr.IDT {
		t.Errorf("GDT/IDT after SetSregs = %+v/%+v, want %+v/%+v", sr2.GDT, sr2.IDT, sr.GDT, sr.IDT)
	}

	// FCW 0x27f differs from the reset value 0x37f, so the round trip is
	// observable. MXCSR is not compared: this project's PVM host reports 0
	// for it from KVM_GET_FPU whatever was set.
	fpu, err := vcpu.GetFPU()
	if err != nil {
		t.Fatalf("GetFPU: %v", err)
	}
	fpu.FCW = 0x27f
	fpu.LastIP = 0x1234
	fpu.XMM[3][0] = 0xab
	if err := vcpu.SetFPU(fpu); err != nil {
		t.Fatalf("SetFPU: %v", err)
	}
	fpu2, err := vcpu.GetFPU()
	if err != nil {
		t.Fatalf("GetFPU: %v", err)
	}
	if fpu2.FCW != 0x27f || fpu2.LastIP != 0x1234 || fpu2.XMM[3][0] != 0xab {
		t.Errorf("GetFPU after SetFPU: fcw %#x last_ip %#x xmm3[0] %#x", fpu2.FCW, fpu2.LastIP, fpu2.XMM[3][0])
	}

	ev, err := vcpu.GetVCPUEvents()
	if err != nil {
		t.Fatalf("GetVCPUEvents: %v", err)
	}
	ev.Flags = VCPUEventValidNMIPending
	ev.NMI.Pending = 1
	if err := vcpu.SetVCPUEvents(ev); err != nil {
		t.Fatalf("SetVCPUEvents: %v", err)
	}
	ev2, err := vcpu.GetVCPUEvents()
	if err != nil {
		t.Fatal(err)
	}
	if ev2.NMI.Pending != 1 {
		t.Errorf("NMI pending after SetVCPUEvents = %d", ev2.NMI.Pending)
	}
	if err := vcpu.Interrupt(256); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("Interrupt(256) = %v", err)
	}
}

func TestRealModeOut(t *testing.T) {
	g := newRealModeGuest(t, []byte{
		0xb0, 'A', // mov al, 'A'
		0xba, 0xf8, 0x03, // mov dx, 0x3f8
		0xee, // out dx, al
		0xf4, // hlt
	})
	io := g.expectIO(t, IOOut, 0x3f8)
	if io.Data[0] != 'A' {
		t.Errorf("OUT data = %q, want 'A'", io.Data[0])
	}
	g.expectHLT(t)
	regs, err := g.vcpu.GetRegs()
	if err != nil {
		t.Fatal(err)
	}
	if regs.RAX&0xff != 'A' || regs.RIP != codeAddr+7 {
		t.Errorf("after hlt: rax %#x rip %#x, want al 'A', rip %#x", regs.RAX, regs.RIP, codeAddr+7)
	}
}

// An IN exit is answered by writing the IOExit's Data before the next Run.
func TestRealModeIn(t *testing.T) {
	g := newRealModeGuest(t, []byte{
		0xba, 0x60, 0x00, // mov dx, 0x60
		0xec,       // in al, dx
		0xfe, 0xc0, // inc al
		0xee, // out dx, al
		0xf4, // hlt
	})
	in := g.expectIO(t, IOIn, 0x60)
	in.Data[0] = 0x41
	out := g.expectIO(t, IOOut, 0x60)
	if out.Data[0] != 0x42 {
		t.Errorf("guest wrote %#x, want 0x42 (the IN answer + 1)", out.Data[0])
	}
	g.expectHLT(t)
}

func TestRealModeMMIO(t *testing.T) {
	// DS = 0x1000 puts [0x0010] at 0x10010, just past the 64 KiB of RAM.
	setDS := []byte{0xb8, 0x00, 0x10, 0x8e, 0xd8} // mov ax, 0x1000; mov ds, ax
	tests := []struct {
		name  string
		code  []byte
		addr  uint64
		write bool
		data  []byte
	}{
		{"byte write", []byte{0xc6, 0x06, 0x10, 0x00, 0x5a}, 0x10010, true, []byte{0x5a}},             // mov byte [0x10], 0x5a
		{"word write", []byte{0xc7, 0x06, 0x20, 0x00, 0x34, 0x12}, 0x10020, true, []byte{0x34, 0x12}}, // mov word [0x20], 0x1234
		{"byte read", []byte{0xa0, 0x30, 0x00}, 0x10030, false, nil},                                  // mov al, [0x30]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code := append(append(append([]byte{}, setDS...), tt.code...),
				0xba, 0xf8, 0x03, // mov dx, 0x3f8
				0xee, // out dx, al
				0xf4) // hlt
			g := newRealModeGuest(t, code)
			if r := g.run(t); r != ExitMMIO {
				t.Fatalf("exit %v, want KVM_EXIT_MMIO", r)
			}
			m := g.vcpu.RunData().MMIO()
			if m.Addr != tt.addr || m.IsWrite != tt.write {
				t.Fatalf("MMIO = addr %#x write %v, want %#x %v", m.Addr, m.IsWrite, tt.addr, tt.write)
			}
			if tt.write {
				if string(m.Data) != string(tt.data) {
					t.Errorf("MMIO data = %x, want %x", m.Data, tt.data)
				}
			} else {
				if len(m.Data) != 1 {
					t.Fatalf("MMIO read of %d bytes, want 1", len(m.Data))
				}
				m.Data[0] = 0x77
			}
			io := g.expectIO(t, IOOut, 0x3f8)
			if !tt.write && io.Data[0] != 0x77 {
				t.Errorf("guest read %#x from MMIO, want 0x77", io.Data[0])
			}
			g.expectHLT(t)
		})
	}
}

func TestImmediateExit(t *testing.T) {
	g := newRealModeGuest(t, []byte{0xf4}) // hlt
	rd := g.vcpu.RunData()
	rd.SetImmediateExit(true)
	for i := 0; i < 3; i++ {
		err := g.vcpu.Run()
		if !errors.Is(err, ErrInterrupted) || !errors.Is(err, unix.EINTR) {
			t.Fatalf("Run with immediate_exit = %v, want ErrInterrupted and EINTR", err)
		}
	}
	regs, err := g.vcpu.GetRegs()
	if err != nil {
		t.Fatal(err)
	}
	if regs.RIP != codeAddr {
		t.Errorf("guest ran with immediate_exit set: rip %#x", regs.RIP)
	}
	rd.SetImmediateExit(false)
	g.expectHLT(t)
}

// TestStopSpinningVCPU exercises the documented stop protocol against a
// guest that never exits on its own: set immediate_exit, then signal the
// vCPU thread.
func TestStopSpinningVCPU(t *testing.T) {
	g := newRealModeGuest(t, []byte{0xeb, 0xfe}) // jmp $
	rd := g.vcpu.RunData()
	tidc := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- unix.Gettid()
		for {
			err := g.vcpu.Run()
			if errors.Is(err, ErrInterrupted) && rd.ImmediateExit() {
				done <- nil
				return
			}
			if err != nil && !errors.Is(err, ErrInterrupted) {
				done <- err
				return
			}
			if err == nil {
				done <- errors.New("spinning guest exited with " + rd.ExitReason().String())
				return
			}
		}
	}()
	tid := <-tidc
	time.Sleep(100 * time.Millisecond) // let it get into the guest
	rd.SetImmediateExit(true)
	if err := unix.Tgkill(unix.Getpid(), tid, unix.SIGURG); err != nil {
		t.Fatalf("tgkill: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("vCPU did not stop within 10s of immediate_exit + signal")
	}
}

// TestOpenUnavailable: a host without KVM is told apart from a KVM that
// fails: a missing node (or one no driver answers) is ErrUnavailable, with
// the errno; a file that is not KVM is some other error. Needs no KVM.
func TestOpenUnavailable(t *testing.T) {
	type tc struct {
		path        string
		unavailable bool
		errno       error
	}
	dir := t.TempDir()
	cases := []tc{
		{dir + "/kvm", true, unix.ENOENT},
		{os.DevNull, false, unix.ENOTTY}, // opens, but KVM_GET_API_VERSION is not its ioctl
	}
	// A node no driver answers, as /dev/kvm is on a host whose kvm module
	// registered no device: char major 0 is never assigned. It needs root
	// for mknod and a file system that honours device nodes.
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	node := dir + "/nodriver"
	if err := unix.Mknod(node, unix.S_IFCHR|0o600, int(unix.Mkdev(0, 0))); err != nil {
		t.Logf("no driverless-node case: mknod: %v (needs root)", err)
	} else if fs.Flags&unix.ST_NODEV != 0 {
		t.Logf("no driverless-node case: %s is mounted nodev", dir)
	} else {
		cases = append(cases, tc{node, true, unix.ENXIO})
	}
	for _, c := range cases {
		s, err := Open(c.path)
		if err == nil {
			s.Close()
			t.Fatalf("Open(%s) succeeded", c.path)
		}
		if errors.Is(err, ErrUnavailable) != c.unavailable || !errors.Is(err, c.errno) {
			t.Errorf("Open(%s) = %v; want ErrUnavailable %v and %v", c.path, err, c.unavailable, c.errno)
		}
	}
}
