package devices

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// cmosTimeRegs are the registers computed from the clock.
var cmosTimeRegs = []uint8{cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek, cmosDayOfMonth, cmosMonth, cmosYear, cmosCentury}

// cmosIsStorage reports whether reg is a plain read/write byte.
func cmosIsStorage(reg uint8) bool {
	switch reg {
	case cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek, cmosDayOfMonth, cmosMonth,
		cmosYear, cmosCentury, cmosRegA, cmosRegB, cmosRegC, cmosRegD:
		return false
	}
	return true
}

// FuzzCMOS decodes data as (op, val) pairs:
//
//	op&3 == 0: write val to the index port
//	op&3 == 1: write val to the data port
//	op&3 == 2: read the data port (op&4: the index port, which must read 0xff)
//	op&3 == 3, op&4 == 0: move the host clock by val * 4^((op>>3)&15) ms,
//	           backwards if op&0x80 (up to ~8.7 years a step: host clock jumps)
//	op&3 == 3, op&4 != 0: an invalid access of width (op>>3)&7 (1 becomes 2)
//	           to the index (op&0x40) or data port, read if op&0x80; it must
//	           fail with ErrBadAccess, fill reads with 0xff and change nothing
//
// The host clock starts a few seconds before the 2099/2100 century
// rollover. After every step: UIP clear, C reads 0, D reads exactly VRT,
// every time register is valid BCD or binary (per register B) and in range,
// the readout is a real date while SET is clear, the offset stays bounded,
// and every storage byte reads back the last value written to it.
func FuzzCMOS(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x0a, 0x02, 0, 0x00, 0x00, 0x02, 0, 0x00, 0x32, 0x02, 0}) // UIP, seconds, century
	f.Add([]byte{0x00, 0x0b, 0x01, 0x82, 0x00, 0x09, 0x01, 0x99, 0x00, 0x0b, 0x01, 0x02, 0x2b, 2, 0x00, 0x32, 0x02, 0})
	f.Add([]byte{0x00, 0x0b, 0x01, 0x84, 0x00, 0x04, 0x01, 0x8c, 0x00, 0x0b, 0x01, 0x04, 0x02, 0})
	f.Add([]byte{0x00, 0xc0, 0x01, 0x5a, 0x02, 0, 0x06, 0, 0x17, 0x8b, 0xd7, 0, 0x7b, 0xff})
	base := time.Date(2099, 12, 31, 23, 59, 55, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		clk := &fakeClock{base}
		c := NewCMOS(clk.now)
		c.SetMemorySize(128 << 20)
		rs := c.Ranges()
		idx, dat := rs[0].Dev, rs[1].Dev
		c.mu.Lock()
		shadow := c.ram
		c.mu.Unlock()
		for i := 0; i+1 < len(data); i += 2 {
			op, val := data[i], data[i+1]
			c.mu.Lock()
			reg := c.index
			c.mu.Unlock()
			b := []byte{val}
			switch op & 3 {
			case 0:
				if err := idx.Write(0, b); err != nil {
					t.Fatalf("step %d: index write: %v", i, err)
				}
			case 1:
				if err := dat.Write(0, b); err != nil {
					t.Fatalf("step %d: data write: %v", i, err)
				}
				if cmosIsStorage(reg) {
					shadow[reg] = val
				}
			case 2:
				if op&4 != 0 {
					if err := idx.Read(0, b); err != nil || b[0] != 0xff {
						t.Fatalf("step %d: index read %#x, %v", i, b[0], err)
					}
					break
				}
				if err := dat.Read(0, b); err != nil {
					t.Fatalf("step %d: data read: %v", i, err)
				}
				if cmosIsStorage(reg) && b[0] != shadow[reg] {
					t.Fatalf("step %d: register %#x read %#x, last written %#x", i, reg, b[0], shadow[reg])
				}
			case 3:
				if op&4 == 0 {
					d := time.Duration(val) << (2 * ((op >> 3) & 15)) * time.Millisecond
					if op&0x80 != 0 {
						d = -d
					}
					clk.t = clk.t.Add(d)
					break
				}
				width := int(op>>3) & 7
				if width == 1 {
					width = 2
				}
				dev := dat
				if op&0x40 != 0 {
					dev = idx
				}
				c.mu.Lock()
				before, nmi := c.index, c.nmiDisabled
				c.mu.Unlock()
				buf := bytes.Repeat([]byte{val}, width)
				var err error
				if op&0x80 != 0 {
					err = dev.Read(0, buf)
					if !bytes.Equal(buf, bytes.Repeat([]byte{0xff}, width)) {
						t.Fatalf("step %d: rejected read left %x", i, buf)
					}
				} else {
					err = dev.Write(0, buf)
				}
				if !errors.Is(err, ErrBadAccess) {
					t.Fatalf("step %d: width %d: %v", i, width, err)
				}
				c.mu.Lock()
				changed := c.index != before || c.nmiDisabled != nmi
				c.mu.Unlock()
				if changed {
					t.Fatalf("step %d: rejected access changed the index", i)
				}
			}
			checkCMOSInvariants(t, i, c)
		}
	})
}

func checkCMOSInvariants(t *testing.T, step int, c *CMOS) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.readLocked(cmosRegA); v&regAUIP != 0 {
		t.Fatalf("step %d: register A %#x has UIP set: Linux would spin", step, v)
	}
	if v := c.readLocked(cmosRegC); v != 0 {
		t.Fatalf("step %d: register C %#x", step, v)
	}
	if v := c.readLocked(cmosRegD); v != regDVRT {
		t.Fatalf("step %d: register D %#x", step, v)
	}
	if c.offset > cmosMaxOffset || c.offset < -cmosMaxOffset {
		t.Fatalf("step %d: offset %v out of bounds", step, c.offset)
	}
	regB := c.ram[cmosRegB]
	var f [8]int
	for i, reg := range cmosTimeRegs {
		n, err := cmosDecode(reg, c.readLocked(reg), regB)
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		f[i] = n
	}
	if regB&regBSet != 0 {
		return // staged fields may be a transient impossible date (31 February)
	}
	d := time.Date(f[7]*100+f[6], time.Month(f[5]), f[4], f[2], f[1], f[0], 0, time.UTC)
	if d.Day() != f[4] || int(d.Weekday())+1 != f[3] {
		t.Fatalf("step %d: readout %v is not a real date (fields %v)", step, d, f)
	}
}
