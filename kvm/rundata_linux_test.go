//go:build linux && amd64

package kvm

import (
	"encoding/binary"
	"errors"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeRun is a page-aligned anonymous mapping standing in for kvm_run, so
// RunData can be exercised with hostile contents without KVM. Fields are
// written at the C offsets (cRunOff), not the package's own constants.
type fakeRun struct {
	mem []byte
	rd  *RunData
}

func newFakeRun(tb testing.TB, size int) *fakeRun {
	tb.Helper()
	mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		tb.Fatalf("mmap: %v", err)
	}
	tb.Cleanup(func() { unix.Munmap(mem) })
	rd, err := newRunData(mem)
	if err != nil {
		tb.Fatalf("newRunData(%d bytes): %v", size, err)
	}
	return &fakeRun{mem: mem, rd: rd}
}

func (f *fakeRun) u8(off uintptr, v uint8)   { f.mem[off] = v }
func (f *fakeRun) u16(off uintptr, v uint16) { binary.LittleEndian.PutUint16(f.mem[off:], v) }
func (f *fakeRun) u32(off uintptr, v uint32) { binary.LittleEndian.PutUint32(f.mem[off:], v) }
func (f *fakeRun) u64(off uintptr, v uint64) { binary.LittleEndian.PutUint64(f.mem[off:], v) }

const fakeRunSize = 3 * 4096 // what KVM_GET_VCPU_MMAP_SIZE reports on x86

func (f *fakeRun) setIO(dir, size uint8, port uint16, count uint32, off uint64) {
	f.u32(cRunOff.exitReason, uint32(ExitIO))
	f.u8(cRunOff.ioDirection, dir)
	f.u8(cRunOff.ioSize, size)
	f.u16(cRunOff.ioPort, port)
	f.u32(cRunOff.ioCount, count)
	f.u64(cRunOff.ioDataOffset, off)
}

func TestNewRunDataRejects(t *testing.T) {
	mem, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for _, tt := range []struct {
		name string
		buf  []byte
	}{
		{"short", mem[:cRunOff.size-1]},
		{"empty", mem[:0]},
		{"misaligned", mem[1 : 1+cRunOff.size]},
	} {
		if _, err := newRunData(tt.buf); !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("%s: err = %v, want ErrInvalidArgument", tt.name, err)
		}
	}
}

func TestRunDataIO(t *testing.T) {
	tests := []struct {
		name   string
		dir    uint8
		size   uint8
		count  uint32
		off    uint64
		ok     bool
		nbytes int
	}{
		{"out byte", 1, 1, 1, 4096, true, 1},
		{"in word", 0, 2, 1, 4096, true, 2},
		{"in dword", 0, 4, 1, 4096, true, 4},
		{"rep outsb", 1, 1, 4096, 4096, true, 4096},
		{"rep fills mapping", 1, 4, 2048, 4096, true, 8192},
		{"last byte", 1, 1, 1, fakeRunSize - 1, true, 1},
		{"one past end", 1, 1, 1, fakeRunSize, false, 0},
		{"rep past end", 1, 4, 2049, 4096, false, 0},
		{"count overflow", 1, 4, 0xffffffff, 4096, false, 0},
		{"offset wraps", 1, 4, 2, 0xffff_ffff_ffff_fffe, false, 0},
		{"offset huge", 1, 1, 1, 1 << 62, false, 0},
		{"aliases kvm_run", 1, 1, 1, 0, false, 0},
		{"inside kvm_run", 1, 2, 1, uint64(cRunOff.size) - 1, false, 0},
		{"size 0", 1, 0, 1, 4096, false, 0},
		{"size 3", 1, 3, 1, 4096, false, 0},
		{"size 8", 1, 8, 1, 4096, false, 0},
		{"count 0", 1, 1, 0, 4096, false, 0},
		{"direction 2", 2, 1, 1, 4096, false, 0},
	}
	f := newFakeRun(t, fakeRunSize)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.setIO(tt.dir, tt.size, 0x3f8, tt.count, tt.off)
			if tt.ok {
				f.mem[tt.off] = 0x5a
			}
			io, err := f.rd.IO()
			if !tt.ok {
				if !errors.Is(err, ErrBadExit) {
					t.Fatalf("IO() = %+v, %v; want ErrBadExit", io, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("IO(): %v", err)
			}
			if io.Direction != IODirection(tt.dir) || io.Size != tt.size || io.Port != 0x3f8 || io.Count != tt.count {
				t.Errorf("IO() = %v/%d/%#x/%d, want %d/%d/0x3f8/%d", io.Direction, io.Size, io.Port, io.Count, tt.dir, tt.size, tt.count)
			}
			if len(io.Data) != tt.nbytes || cap(io.Data) != tt.nbytes {
				t.Errorf("len/cap(Data) = %d/%d, want %d", len(io.Data), cap(io.Data), tt.nbytes)
			}
			if io.Data[0] != 0x5a {
				t.Errorf("Data[0] = %#x, want the byte at data_offset", io.Data[0])
			}
			// Writes through Data (IN exits) must land at data_offset.
			io.Data[0] = 0xa5
			if f.mem[tt.off] != 0xa5 {
				t.Errorf("write through Data did not reach the mapping")
			}
		})
	}
}

func TestRunDataMMIO(t *testing.T) {
	f := newFakeRun(t, fakeRunSize)
	for _, tt := range []struct {
		len     uint32
		isWrite uint8
		wantLen int
	}{
		{1, 1, 1}, {2, 0, 2}, {4, 1, 4}, {8, 1, 8},
		{0, 1, 0}, {9, 1, 0}, {0xffffffff, 0, 0}, {1 << 31, 1, 0},
	} {
		f.u32(cRunOff.exitReason, uint32(ExitMMIO))
		f.u64(cRunOff.mmioPhysAddr, 0xd000_0010)
		copy(f.mem[cRunOff.mmioData:], []byte{1, 2, 3, 4, 5, 6, 7, 8})
		f.u32(cRunOff.mmioLen, tt.len)
		f.u8(cRunOff.mmioIsWrite, tt.isWrite)
		m := f.rd.MMIO()
		if m.Addr != 0xd000_0010 || m.Len != tt.len || m.IsWrite != (tt.isWrite != 0) {
			t.Errorf("len %d: MMIO() = %+v", tt.len, m)
		}
		if len(m.Data) != tt.wantLen || cap(m.Data) != tt.wantLen {
			t.Errorf("len %d: len/cap(Data) = %d/%d, want %d", tt.len, len(m.Data), cap(m.Data), tt.wantLen)
		}
		for i, b := range m.Data {
			if b != byte(i+1) {
				t.Errorf("len %d: Data[%d] = %d, want %d", tt.len, i, b, i+1)
			}
		}
		if tt.wantLen > 0 {
			m.Data[0] = 0xee // MMIO read: the VMM answers through Data
			if f.mem[cRunOff.mmioData] != 0xee {
				t.Errorf("write through MMIO Data did not reach kvm_run.mmio.data")
			}
		}
	}
}

func TestRunDataInternalError(t *testing.T) {
	f := newFakeRun(t, fakeRunSize)
	for _, tt := range []struct {
		ndata uint32
		want  int
	}{{0, 0}, {1, 1}, {16, 16}, {17, 16}, {0xffffffff, 16}} {
		f.u32(cRunOff.internalSuberror, InternalErrorEmulation)
		f.u32(cRunOff.internalNData, tt.ndata)
		for i := 0; i < 16; i++ {
			f.u64(cRunOff.internalData+uintptr(i)*8, uint64(100+i))
		}
		sub, data := f.rd.InternalError()
		if sub != InternalErrorEmulation || len(data) != tt.want {
			t.Errorf("ndata %d: InternalError() = %d, %d entries; want %d, %d", tt.ndata, sub, len(data), InternalErrorEmulation, tt.want)
		}
		for i, d := range data {
			if d != uint64(100+i) {
				t.Errorf("ndata %d: data[%d] = %d", tt.ndata, i, d)
			}
		}
	}
}

func TestRunDataScalars(t *testing.T) {
	f := newFakeRun(t, fakeRunSize)
	f.u32(cRunOff.exitReason, uint32(ExitSystemEvent))
	f.u32(cRunOff.sysType, SystemEventReset)
	f.u64(cRunOff.sysFlags, 0x1234_5678_9abc)
	if got := f.rd.ExitReason(); got != ExitSystemEvent {
		t.Errorf("ExitReason() = %v", got)
	}
	if typ, flags := f.rd.SystemEvent(); typ != SystemEventReset || flags != 0x1234_5678_9abc {
		t.Errorf("SystemEvent() = %d, %#x", typ, flags)
	}
	f.u64(cRunOff.failReason, 0x80000021)
	f.u32(cRunOff.failCPU, 3)
	if r, cpu := f.rd.FailEntry(); r != 0x80000021 || cpu != 3 {
		t.Errorf("FailEntry() = %#x, %d", r, cpu)
	}
	f.u8(cRunOff.readyForInjection, 1)
	f.u8(cRunOff.ifFlag, 0)
	f.u64(cRunOff.cr8, 7)
	f.u64(cRunOff.apicBase, 0xfee00900)
	if !f.rd.ReadyForInterruptInjection() || f.rd.IFFlag() || f.rd.CR8() != 7 || f.rd.APICBase() != 0xfee00900 {
		t.Errorf("scalars: ready %v if %v cr8 %d apic %#x", f.rd.ReadyForInterruptInjection(), f.rd.IFFlag(), f.rd.CR8(), f.rd.APICBase())
	}
	f.u8(cRunOff.ifFlag, 1)
	if !f.rd.IFFlag() {
		t.Errorf("IFFlag() = false after setting if_flag")
	}
}

// The two userspace flags share a word; setting one must not disturb the
// other, nor the padding bytes around them.
func TestRunDataFlags(t *testing.T) {
	f := newFakeRun(t, fakeRunSize)
	f.mem[2], f.mem[3] = 0x77, 0x88
	steps := []struct {
		immediate, window *bool
		wantIE, wantRIW   byte
	}{
		{immediate: ptr(true), wantIE: 1, wantRIW: 0},
		{window: ptr(true), wantIE: 1, wantRIW: 1},
		{immediate: ptr(false), wantIE: 0, wantRIW: 1},
		{window: ptr(false), wantIE: 0, wantRIW: 0},
		{immediate: ptr(true), wantIE: 1, wantRIW: 0},
	}
	for i, s := range steps {
		if s.immediate != nil {
			f.rd.SetImmediateExit(*s.immediate)
		}
		if s.window != nil {
			f.rd.RequestInterruptWindow(*s.window)
		}
		if f.mem[cRunOff.immediateExit] != s.wantIE || f.mem[cRunOff.requestInterruptWindow] != s.wantRIW {
			t.Errorf("step %d: immediate_exit %d request_interrupt_window %d, want %d %d", i,
				f.mem[cRunOff.immediateExit], f.mem[cRunOff.requestInterruptWindow], s.wantIE, s.wantRIW)
		}
		if f.rd.ImmediateExit() != (s.wantIE == 1) {
			t.Errorf("step %d: ImmediateExit() = %v", i, f.rd.ImmediateExit())
		}
		if f.mem[2] != 0x77 || f.mem[3] != 0x88 {
			t.Errorf("step %d: neighbouring bytes clobbered: %#x %#x", i, f.mem[2], f.mem[3])
		}
	}
}

func ptr[T any](v T) *T { return &v }

// After release (VCPU.Close) accessors must not touch the mapping.
func TestRunDataReleased(t *testing.T) {
	f := newFakeRun(t, fakeRunSize)
	f.setIO(1, 1, 0x3f8, 1, 4096)
	f.rd.release()
	unix.Munmap(f.mem) // any access now would fault
	f.mem = nil
	if _, err := f.rd.IO(); !errors.Is(err, ErrClosed) {
		t.Errorf("IO() after release: %v, want ErrClosed", err)
	}
	if m := f.rd.MMIO(); len(m.Data) != 0 {
		t.Errorf("MMIO() after release returned data")
	}
	f.rd.SetImmediateExit(true)
	if f.rd.ExitReason() != ExitUnknown || f.rd.ImmediateExit() {
		t.Errorf("accessors after release returned mapping values")
	}
	if _, d := f.rd.InternalError(); len(d) != 0 {
		t.Errorf("InternalError() after release returned data")
	}
}

func TestStrings(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{ExitIO.String(), "KVM_EXIT_IO"},
		{ExitHLT.String(), "KVM_EXIT_HLT"},
		{ExitInternalError.String(), "KVM_EXIT_INTERNAL_ERROR"},
		{ExitReason(0xdeadbeef).String(), "ExitReason(3735928559)"},
		{CapIRQChip.String(), "KVM_CAP_IRQCHIP"},
		{CapImmediateExit.String(), "KVM_CAP_IMMEDIATE_EXIT"},
		{Cap(-5).String(), "Cap(-5)"},
		{MPStateHalted.String(), "HALTED"},
		{MPState(99).String(), "MPState(99)"},
		{IOIn.String(), "in"},
		{IODirection(7).String(), "IODirection(7)"},
	} {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}

// FuzzRunData feeds arbitrary kvm_run contents and mapping sizes to every
// accessor: none may panic, and any slice returned must lie inside the
// mapping past the fixed struct with exactly the advertised length.
func FuzzRunData(f *testing.F) {
	f.Add([]byte{}, uint16(8192))
	f.Fuzz(func(t *testing.T, data []byte, extra uint16) {
		size := int(cRunOff.size) + int(extra)
		fr := newFakeRun(t, size)
		copy(fr.mem, data)
		_ = fr.rd.ExitReason().String()
		if io, err := fr.rd.IO(); err == nil {
			n := int(io.Size) * int(io.Count)
			if len(io.Data) != n || cap(io.Data) != n || n == 0 {
				t.Fatalf("IO Data len %d cap %d for size %d count %d", len(io.Data), cap(io.Data), io.Size, io.Count)
			}
			off := binary.LittleEndian.Uint64(fr.mem[cRunOff.ioDataOffset:])
			if off < uint64(cRunOff.size) || off+uint64(n) > uint64(size) {
				t.Fatalf("IO Data [%#x, +%d) escapes [%#x, %#x)", off, n, cRunOff.size, size)
			}
			io.Data[n-1] ^= 0xff // must be writable and in bounds
		} else if !errors.Is(err, ErrBadExit) {
			t.Fatalf("IO() error %v does not wrap ErrBadExit", err)
		}
		m := fr.rd.MMIO()
		if len(m.Data) > 8 || (len(m.Data) != 0 && uint32(len(m.Data)) != m.Len) {
			t.Fatalf("MMIO Data len %d for len %d", len(m.Data), m.Len)
		}
		if _, d := fr.rd.InternalError(); len(d) > 16 {
			t.Fatalf("InternalError returned %d entries", len(d))
		}
		fr.rd.FailEntry()
		fr.rd.SystemEvent()
		fr.rd.SetImmediateExit(true)
		if !fr.rd.ImmediateExit() {
			t.Fatalf("ImmediateExit lost")
		}
	})
}
