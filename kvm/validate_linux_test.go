//go:build linux && amd64

package kvm

import (
	"errors"
	"math"
	"testing"
)

func TestCheckMemoryRegion(t *testing.T) {
	tests := []struct {
		name      string
		flags     uint32
		gpa, size uint64
		host      uintptr
		wantOK    bool
	}{
		{"ok", 0, 0, 0x10000, 0x7f00_0000_0000, true},
		{"readonly", MemReadonly, 0x1_0000_0000, 0x1000, 0x7f00_0000_0000, true},
		{"delete slot", 0, 0x1000, 0, 0, true},
		{"unknown flag", 1 << 5, 0, 0x1000, 0x7f00_0000_0000, false},
		{"gpa unaligned", 0, 0x10, 0x1000, 0x7f00_0000_0000, false},
		{"size unaligned", 0, 0, 0x1001, 0x7f00_0000_0000, false},
		{"host unaligned", 0, 0, 0x1000, 0x7f00_0000_0010, false},
		{"gpa wraps", 0, math.MaxUint64 - 0xfff, 0x2000, 0x7f00_0000_0000, false},
		{"host wraps", 0, 0, 0x2000, math.MaxUint64 - 0xfff, false},
		{"nil host", 0, 0, 0x1000, 0, false},
	}
	for _, tt := range tests {
		err := checkMemoryRegion(tt.flags, tt.gpa, tt.size, tt.host)
		if tt.wantOK != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.wantOK)
		}
	}
}

func TestCheckIOEventFD(t *testing.T) {
	tests := []struct {
		name   string
		fd     int
		addr   uint64
		length uint32
		flags  uint32
		wantOK bool
	}{
		{"mmio 4", 3, 0xd000_0050, 4, 0, true},
		{"mmio any length", 3, 0xd000_0050, 0, 0, true},
		{"pio datamatch", 3, 0x3f8, 1, IOEventFDPIO | IOEventFDDatamatch, true},
		{"pio last port", 3, 0xffff, 1, IOEventFDPIO, true},
		{"pio past 64k", 3, 0xffff, 2, IOEventFDPIO, false},
		{"pio huge", 3, 1 << 40, 1, IOEventFDPIO, false},
		{"mmio wraps", 3, math.MaxUint64 - 1, 4, 0, false},
		{"length 3", 3, 0x1000, 3, 0, false},
		{"length 16", 3, 0x1000, 16, 0, false},
		{"datamatch no length", 3, 0x1000, 0, IOEventFDDatamatch, false},
		{"unknown flag", 3, 0x1000, 4, 1 << 3, false},
		{"negative fd", -1, 0x1000, 4, 0, false},
		{"fd too big", math.MaxInt32 + 1, 0x1000, 4, 0, false},
	}
	for _, tt := range tests {
		err := checkIOEventFD(tt.fd, tt.addr, tt.length, tt.flags)
		if tt.wantOK != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidArgument)) {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.wantOK)
		}
	}
}

func TestCheckSmallArgs(t *testing.T) {
	tests := []struct {
		name   string
		err    error
		wantOK bool
	}{
		{"irqfd ok", checkIRQFD(5, 0), true},
		{"irqfd deassign", checkIRQFD(5, IRQFDDeassign), true},
		{"irqfd resample unsupported", checkIRQFD(5, 1<<1), false},
		{"irqfd bad fd", checkIRQFD(-3, 0), false},
		{"tss qemu address", checkTSSAddr(0xfffb_d000), true},
		{"tss last fit", checkTSSAddr(1<<32 - 3*4096), true},
		{"tss crosses 4G", checkTSSAddr(1<<32 - 2*4096), false},
		{"tss huge", checkTSSAddr(math.MaxUint64), false},
		{"identity map ok", checkIdentityMapAddr(0xfffb_c000), true},
		{"identity map unaligned", checkIdentityMapAddr(0xfffb_c010), false},
		{"identity map above 4G", checkIdentityMapAddr(1 << 32), false},
		{"routing ok", checkRouting([]IRQRoutingEntry{IRQChipRoute(4, IRQChipIOAPIC, 4), MSIRoute(24, 0xfee0_0000, 0x31)}), true},
		{"routing empty", checkRouting(nil), true},
		{"routing bad type", checkRouting([]IRQRoutingEntry{{GSI: 1, Type: 3}}), false},
		{"routing too long", checkRouting(make([]IRQRoutingEntry, maxRoutingEntries+1)), false},
	}
	for _, tt := range tests {
		if tt.wantOK != (tt.err == nil) || (tt.err != nil && !errors.Is(tt.err, ErrInvalidArgument)) {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, tt.err, tt.wantOK)
		}
	}
}

func TestRouteConstructors(t *testing.T) {
	e := IRQChipRoute(9, IRQChipPICSlave, 1)
	if e.GSI != 9 || e.Type != IRQRoutingIRQChip || e.U[0] != IRQChipPICSlave || e.U[1] != 1 {
		t.Errorf("IRQChipRoute = %+v", e)
	}
	m := MSIRoute(30, 0x1_fee0_1000, 0x4041)
	if m.GSI != 30 || m.Type != IRQRoutingMSI || m.U[0] != 0xfee0_1000 || m.U[1] != 1 || m.U[2] != 0x4041 {
		t.Errorf("MSIRoute = %+v", m)
	}
}

func TestLAPICReg(t *testing.T) {
	var l LAPICState
	for _, tt := range []struct {
		off    uint32
		wantOK bool
	}{
		{0, true}, {LAPICRegLVT0, true}, {0x3f0, true},
		{0x3f4, false}, {0x351, false}, {0x400, false}, {math.MaxUint32, false}, {math.MaxUint32 - 15, false},
	} {
		err := l.SetReg(tt.off, 0x700+tt.off)
		v, gerr := l.Reg(tt.off)
		if tt.wantOK {
			if err != nil || gerr != nil || v != 0x700+tt.off {
				t.Errorf("offset %#x: SetReg %v, Reg = %#x, %v", tt.off, err, v, gerr)
			}
			if got := uint32(l.Regs[tt.off]) | uint32(l.Regs[tt.off+1])<<8; got != (0x700+tt.off)&0xffff {
				t.Errorf("offset %#x: not stored little-endian at the offset", tt.off)
			}
		} else if !errors.Is(err, ErrInvalidArgument) || !errors.Is(gerr, ErrInvalidArgument) {
			t.Errorf("offset %#x: SetReg %v, Reg %v; want ErrInvalidArgument", tt.off, err, gerr)
		}
	}
}
