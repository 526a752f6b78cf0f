package devices

import (
	"bytes"
	"errors"
	"testing"
)

// countWriter counts bytes so the fuzzer can check Stats against reality.
type countWriter struct{ n uint64 }

func (c *countWriter) Write(p []byte) (int, error) { c.n += uint64(len(p)); return len(p), nil }

// FuzzSerial decodes data as a script of accesses, 2 bytes each (op, val):
//
//	op&3 == 0: read  register (op>>2)&7
//	op&3 == 1: write register (op>>2)&7 = val
//	op&3 == 2: Input (op>>2)*1024+1 bytes of val (up to ~64 KiB: overflows the RX buffer fast)
//	op&3 == 3: raw access of width (op>>2)&7 at offset val (read if op&0x20 else write),
//	           mostly invalid; must fail with ErrBadAccess unless it happens to be valid
//
// After every step: the IRQ line equals "IIR reports a pending interrupt",
// SetLevel was never called redundantly, RX stays bounded, LSR.THRE/TEMT
// hold, and the output byte count matches Stats.
func FuzzSerial(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x05, ierTHRE, 0x08, 0, 0x01, 'A', 0x14, 0})       // THRE on, IIR, TX, LSR
	f.Add([]byte{0xfe, 'x', 0x05, 0x0f, 0x08, 0, 0x14, 0, 0x00, 0}) // overflow, all IRQs, IIR, LSR, RBR
	f.Add([]byte{0x11, 0x1a, 0x18, 0, 0x01, 'L', 0x00, 0, 0x08, 0}) // loopback, MSR, TX, RBR, IIR
	f.Add([]byte{0x0d, 0x80, 0x01, 0x0c, 0x04, 0, 0x0d, 0x03, 0x07, 2, 0x27, 0xff})
	scratch := make([]byte, 64*1024+1)
	f.Fuzz(func(t *testing.T, data []byte) {
		irq := &CountingIRQ{}
		var out countWriter
		s := NewSerial(&out, irq)
		for i := 0; i+1 < len(data); i += 2 {
			op, val := data[i], data[i+1]
			switch op & 3 {
			case 0:
				b := []byte{0}
				if err := s.Read(uint64(op>>2)&7, b); err != nil {
					t.Fatalf("step %d: valid read failed: %v", i, err)
				}
			case 1:
				if err := s.Write(uint64(op>>2)&7, []byte{val}); err != nil {
					t.Fatalf("step %d: valid write failed: %v", i, err)
				}
			case 2:
				n := int(op>>2)*1024 + 1
				b := scratch[:n]
				// Doubling copies: a byte loop here would dominate fuzzing time.
				b[0] = val
				for j := 1; j < n; j *= 2 {
					copy(b[j:], b[:j])
				}
				s.Input(b)
			case 3:
				width := int(op>>2) & 7
				off := uint64(val)
				valid := width == 1 && off < SerialPorts
				b := bytes.Repeat([]byte{0x42}, width)
				var err error
				if op&0x20 != 0 {
					err = s.Read(off, b)
					if !valid && !bytes.Equal(b, bytes.Repeat([]byte{0xff}, width)) {
						t.Fatalf("step %d: rejected read left %x", i, b)
					}
				} else {
					err = s.Write(off, b)
				}
				if valid != (err == nil) || (err != nil && !errors.Is(err, ErrBadAccess)) {
					t.Fatalf("step %d: width %d off %d: err %v", i, width, off, err)
				}
			}
			checkSerialInvariants(t, i, s, irq, &out)
		}
	})
}

func checkSerialInvariants(t *testing.T, step int, s *Serial, irq *CountingIRQ, out *countWriter) {
	t.Helper()
	s.mu.Lock()
	pending := s.interruptID() != iirNoInt
	lsr := s.lsr()
	rxLen := s.rxLen
	st := s.stats
	s.mu.Unlock()
	if irq.Level() != pending {
		t.Fatalf("step %d: IRQ line %v but IIR pending %v", step, irq.Level(), pending)
	}
	if irq.Redundant() != 0 {
		t.Fatalf("step %d: %d redundant SetLevel calls", step, irq.Redundant())
	}
	if rxLen < 0 || rxLen > SerialRxMax {
		t.Fatalf("step %d: rx holds %d bytes", step, rxLen)
	}
	if lsr&(lsrTHRE|lsrTEMT) != lsrTHRE|lsrTEMT {
		t.Fatalf("step %d: LSR %#x lost THRE/TEMT", step, lsr)
	}
	if (lsr&lsrDR != 0) != (rxLen > 0) {
		t.Fatalf("step %d: LSR.DR %#x with %d bytes queued", step, lsr, rxLen)
	}
	if st.TxBytes != out.n {
		t.Fatalf("step %d: Stats.TxBytes %d, writer got %d", step, st.TxBytes, out.n)
	}
}

// FuzzI8042 decodes data as (op, val) pairs:
//
//	op&1: port (0 = data 0x60, 1 = command/status 0x64)
//	op&2: write val (else read)
//	op>>2 & 7: access width (0 and 1 both mean 1; 2..7 are invalid widths)
//
// It checks: no panic, onReset at most once and exactly when a reset was
// requested, bad widths rejected, and the documented command answers.
func FuzzI8042(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x03, 0xaa, 0x01, 0, 0x00, 0})                            // self-test, status, data
	f.Add([]byte{0x03, 0x20, 0x00, 0, 0x03, 0x60, 0x02, 0x47, 0x03, 0x20}) // read CB, write CB, read CB
	f.Add([]byte{0x03, 0xfe, 0x03, 0xfe})                                  // reset twice
	f.Add([]byte{0x03, 0xd1, 0x02, 0x02, 0x0b, 0x20, 0x08, 0})             // output port reset, bad widths
	f.Fuzz(func(t *testing.T, data []byte) {
		resets := 0
		k := NewI8042(func() { resets++ })
		rs := k.Ranges()
		data0, cmd := rs[0].Dev, rs[1].Dev
		wantReset := false
		for i := 0; i+1 < len(data); i += 2 {
			op, val := data[i], data[i+1]
			dev := data0
			if op&1 != 0 {
				dev = cmd
			}
			width := max(int(op>>2)&7, 1)
			b := make([]byte, width)
			b[0] = val
			var err error
			if op&2 != 0 {
				k.mu.Lock()
				pend := k.pending
				k.mu.Unlock()
				err = dev.Write(0, b)
				if err == nil && op&1 != 0 && val >= 0xf0 && val&1 == 0 {
					wantReset = true
				}
				if err == nil && op&1 == 0 && pend == kbdCmdWriteOutPrt && val&1 == 0 {
					wantReset = true
				}
			} else {
				err = dev.Read(0, b)
			}
			if (width == 1) != (err == nil) || (err != nil && !errors.Is(err, ErrBadAccess)) {
				t.Fatalf("step %d: width %d: %v", i, width, err)
			}
			if err != nil {
				continue
			}
			st := []byte{0}
			if op&3 == 3 && val == kbdCmdSelfTest {
				if cmd.Read(0, st); st[0]&(kbdStatOBF|kbdStatSys) != kbdStatOBF|kbdStatSys {
					t.Fatalf("step %d: status %#x after self-test", i, st[0])
				}
				if data0.Read(0, st); st[0] != kbdSelfTestOK {
					t.Fatalf("step %d: self-test answered %#x", i, st[0])
				}
				if cmd.Read(0, st); st[0]&kbdStatOBF != 0 {
					t.Fatalf("step %d: OBF still set after reading the answer", i)
				}
			}
			if cmd.Read(0, st); st[0]&0x02 != 0 {
				t.Fatalf("step %d: IBF set (%#x): a driver would spin", i, st[0])
			}
		}
		if resets > 1 || (resets == 1) != wantReset || k.Resets() != wantReset {
			t.Fatalf("resets %d, want reset %v (Resets() %v)", resets, wantReset, k.Resets())
		}
	})
}

// FuzzBus checks lookups against a linear scan over a fixed, gappy layout.
// data: (addr low byte, addr high byte, width) triples.
func FuzzBus(f *testing.F) {
	f.Add([]byte{0xf8, 0x03, 1, 0xfd, 0x03, 4, 0x60, 0x00, 1, 0xff, 0xff, 8})
	f.Add([]byte{0x00, 0x00, 0, 0x07, 0x10, 2})
	layout := []struct{ base, size uint64 }{{0x60, 1}, {0x64, 1}, {0x3f8, 8}, {0x1000, 0x100}, {0xfff0, 0x10}}
	f.Fuzz(func(t *testing.T, data []byte) {
		b := NewBus("pio")
		devs := make([]*recDev, len(layout))
		for i, l := range layout {
			devs[i] = &recDev{id: byte(i + 1)}
			if err := b.Register(l.base, l.size, string(rune('a'+i)), devs[i]); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i+2 < len(data); i += 3 {
			addr := uint64(data[i]) | uint64(data[i+1])<<8
			n := int(data[i+2]) & 15
			var wantErr error = ErrNoDevice
			want := -1
			for j, l := range layout {
				if addr >= l.base && addr < l.base+l.size {
					want = j
					wantErr = nil
					if n == 0 || addr+uint64(n) > l.base+l.size {
						want, wantErr = -1, ErrBadAccess
					}
				}
			}
			buf := make([]byte, n)
			err := b.Read(addr, buf)
			if !errors.Is(err, wantErr) || (err == nil) != (wantErr == nil) {
				t.Fatalf("Read(%#x, %d) = %v, want %v", addr, n, err, wantErr)
			}
			fill := byte(0xff)
			if want >= 0 {
				fill = devs[want].id
				if devs[want].lastOff != addr-layout[want].base || devs[want].lastLen != n {
					t.Fatalf("device %d got (%#x,%d)", want, devs[want].lastOff, devs[want].lastLen)
				}
			}
			if !bytes.Equal(buf, bytes.Repeat([]byte{fill}, n)) {
				t.Fatalf("Read(%#x, %d) data %x", addr, n, buf)
			}
		}
	})
}
