package devices

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// fakeClock is an injectable host clock for single-goroutine tests.
type fakeClock struct{ t time.Time }

func (f *fakeClock) now() time.Time { return f.t }

// cop is one CMOS step: select reg and write val, select reg and read
// expecting val, or advance the fake clock by d.
type cop struct {
	kind uint8 // 'w', 'r' or '+'
	reg  uint8
	val  uint8
	d    time.Duration
}

func cw(reg, v uint8) cop      { return cop{kind: 'w', reg: reg, val: v} }
func cr(reg, want uint8) cop   { return cop{kind: 'r', reg: reg, val: want} }
func cadv(d time.Duration) cop { return cop{kind: '+', d: d} }
func utc(s string) time.Time   { t, _ := time.Parse(time.RFC3339Nano, s); return t }
func mustUTC(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// runCMOS drives c through the PIO bus, as the vCPU loop does.
func runCMOS(t *testing.T, c *CMOS, clk *fakeClock, ops []cop) {
	t.Helper()
	bus := NewBus("pio")
	if err := bus.RegisterRanges(c.Ranges()); err != nil {
		t.Fatal(err)
	}
	for i, o := range ops {
		if o.kind == '+' {
			clk.t = clk.t.Add(o.d)
			continue
		}
		if err := bus.Write(CMOSIndexPort, []byte{o.reg}); err != nil {
			t.Fatalf("op %d: index write: %v", i, err)
		}
		b := []byte{o.val}
		if o.kind == 'w' {
			if err := bus.Write(CMOSDataPort, b); err != nil {
				t.Fatalf("op %d: data write: %v", i, err)
			}
			continue
		}
		if err := bus.Read(CMOSDataPort, b); err != nil {
			t.Fatalf("op %d: data read: %v", i, err)
		}
		if b[0] != o.val {
			t.Fatalf("op %d: register %#02x = %#02x, want %#02x", i, o.reg, b[0], o.val)
		}
	}
}

// readTime is the eight time registers in order sec, min, hour, wday,
// mday, mon, year, century.
func readTime(reg ...uint8) []cop {
	regs := []uint8{cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek, cmosDayOfMonth, cmosMonth, cmosYear, cmosCentury}
	ops := make([]cop, len(reg))
	for i, v := range reg {
		ops[i] = cr(regs[i], v)
	}
	return ops
}

func TestCMOSTimeRead(t *testing.T) {
	tests := []struct {
		name string
		now  string
		regB uint8
		want []uint8 // sec min hour wday mday mon year century
	}{
		{"BCD 24h", "2026-03-14T15:09:26.7Z", regB24h, []uint8{0x26, 0x09, 0x15, 7, 0x14, 0x03, 0x26, 0x20}},
		{"binary 24h", "2026-03-14T15:09:26Z", regB24h | regBBinary, []uint8{26, 9, 15, 7, 14, 3, 26, 20}},
		{"BCD 12h PM", "2026-03-14T15:09:26Z", 0, []uint8{0x26, 0x09, 0x83, 7, 0x14, 0x03, 0x26, 0x20}},
		{"BCD 12h 11 PM", "2026-03-14T23:59:59Z", 0, []uint8{0x59, 0x59, 0x91, 7, 0x14, 0x03, 0x26, 0x20}},
		{"BCD 12h midnight is 12 AM", "2026-03-14T00:30:00Z", 0, []uint8{0x00, 0x30, 0x12, 7, 0x14, 0x03, 0x26, 0x20}},
		{"BCD 12h noon is 12 PM", "2026-03-14T12:00:00Z", 0, []uint8{0x00, 0x00, 0x92, 7, 0x14, 0x03, 0x26, 0x20}},
		{"BCD 12h 1 AM", "2026-03-14T01:00:00Z", 0, []uint8{0x00, 0x00, 0x01, 7, 0x14, 0x03, 0x26, 0x20}},
		{"binary 12h PM", "2026-03-14T22:00:00Z", regBBinary, []uint8{0, 0, 0x80 | 10, 7, 14, 3, 26, 20}},
		{"binary 12h noon", "2026-03-14T12:00:00Z", regBBinary, []uint8{0, 0, 0x80 | 12, 7, 14, 3, 26, 20}},
		{"leap day 2024", "2024-02-29T08:00:00Z", regB24h, []uint8{0x00, 0x00, 0x08, 5, 0x29, 0x02, 0x24, 0x20}},
		{"leap day 2000 (divisible by 400)", "2000-02-29T00:00:00Z", regB24h, []uint8{0x00, 0x00, 0x00, 3, 0x29, 0x02, 0x00, 0x20}},
		{"1999 last second", "1999-12-31T23:59:59Z", regB24h, []uint8{0x59, 0x59, 0x23, 6, 0x31, 0x12, 0x99, 0x19}},
		{"2099 last second", "2099-12-31T23:59:59Z", regB24h, []uint8{0x59, 0x59, 0x23, 5, 0x31, 0x12, 0x99, 0x20}},
		{"2100 first second", "2100-01-01T00:00:00Z", regB24h, []uint8{0x00, 0x00, 0x00, 6, 0x01, 0x01, 0x00, 0x21}},
		{"2100 is not leap", "2100-03-01T00:00:00Z", regB24h, []uint8{0x00, 0x00, 0x00, 2, 0x01, 0x03, 0x00, 0x21}},
		{"Sunday is 1", "2026-03-15T00:00:00Z", regB24h, []uint8{0x00, 0x00, 0x00, 1, 0x15, 0x03, 0x26, 0x20}},
		{"binary century", "2100-01-01T00:00:00Z", regB24h | regBBinary, []uint8{0, 0, 0, 6, 1, 1, 0, 21}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{mustUTC(t, tc.now)}
			c := NewCMOS(clk.now)
			ops := append([]cop{cw(cmosRegB, tc.regB), cr(cmosRegB, tc.regB)}, readTime(tc.want...)...)
			runCMOS(t, c, clk, ops)
		})
	}
}

func TestCMOSHostTimeZoneIgnored(t *testing.T) {
	// The RTC is UTC whatever Location the host clock carries.
	loc := time.FixedZone("UTC+5", 5*3600)
	clk := &fakeClock{time.Date(2026, 1, 1, 3, 0, 0, 0, loc)} // 2025-12-31 22:00 UTC
	runCMOS(t, NewCMOS(clk.now), clk, readTime(0x00, 0x00, 0x22, 4, 0x31, 0x12, 0x25, 0x20))
}

func TestCMOSClockAdvances(t *testing.T) {
	tests := []struct {
		name string
		now  string
		ops  []cop
	}{
		{"century rollover", "2099-12-31T23:59:59Z", append(
			append(readTime(0x59, 0x59, 0x23, 5, 0x31, 0x12, 0x99, 0x20), cadv(time.Second)),
			readTime(0x00, 0x00, 0x00, 6, 0x01, 0x01, 0x00, 0x21)...)},
		{"leap day follows Feb 28 2028", "2028-02-28T23:59:59.5Z", append(
			append(readTime(0x59), cadv(500*time.Millisecond)),
			readTime(0x00, 0x00, 0x00, 3, 0x29, 0x02, 0x28, 0x20)...)},
		{"sub-second advance keeps the second", "2026-03-14T15:09:26.1Z", []cop{
			cr(cmosSeconds, 0x26), cadv(800 * time.Millisecond), cr(cmosSeconds, 0x26),
			cadv(100 * time.Millisecond), cr(cmosSeconds, 0x27),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{mustUTC(t, tc.now)}
			runCMOS(t, NewCMOS(clk.now), clk, tc.ops)
		})
	}
}

func TestCMOSStatusRegisters(t *testing.T) {
	tests := []struct {
		name string
		ops  []cop
	}{
		{"power-on A B C D", []cop{
			cr(cmosRegA, regADefault), cr(cmosRegB, regBDefault), cr(cmosRegC, 0), cr(cmosRegD, regDVRT),
		}},
		{"UIP is read-only and never set", []cop{
			cw(cmosRegA, 0xff), cr(cmosRegA, 0x7f), cadv(999 * time.Millisecond), cr(cmosRegA, 0x7f),
			cw(cmosRegA, 0x70), cr(cmosRegA, 0x70), // divider reset, as Linux writes while setting
			cw(cmosRegB, regBSet|regB24h), cr(cmosRegA, 0x70), cw(cmosRegB, regB24h),
			cw(cmosRegA, regADefault), cr(cmosRegA, regADefault),
		}},
		{"C reads 0 with every interrupt enabled", []cop{
			cw(cmosRegB, regB24h|regBPIE|regBAIE|regBUIE), cadv(5 * time.Second), cr(cmosRegC, 0), cr(cmosRegC, 0),
			cw(cmosRegC, 0xff), cr(cmosRegC, 0),
		}},
		{"D is exactly VRT (Linux wants bit 6 clear)", []cop{
			cw(cmosRegD, 0x00), cr(cmosRegD, 0x80), cw(cmosRegD, 0x7f), cr(cmosRegD, 0x80),
		}},
		{"B stores its bits", []cop{
			cw(cmosRegB, regBSQWE|regBBinary|regB24h|regBDSE), cr(cmosRegB, 0x0f),
		}},
		{"SET clears UIE", []cop{
			cw(cmosRegB, regBUIE|regB24h), cr(cmosRegB, regBUIE|regB24h),
			cw(cmosRegB, regBSet|regBUIE|regB24h), cr(cmosRegB, regBSet|regB24h),
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{utc("2026-03-14T15:09:26.999Z")}
			runCMOS(t, NewCMOS(clk.now), clk, tc.ops)
		})
	}
}

// setTime is the sequence Linux's mc146818_set_time writes (minus the
// register A divider pulse, covered separately): SET, year..seconds, then
// register B restored with SET clear.
func setTime(regB uint8, yr, mon, day, hr, mn, sec uint8) []cop {
	return []cop{
		cw(cmosRegB, regB|regBSet),
		cw(cmosYear, yr), cw(cmosMonth, mon), cw(cmosDayOfMonth, day),
		cw(cmosHours, hr), cw(cmosMinutes, mn), cw(cmosSeconds, sec),
		cw(cmosRegB, regB),
	}
}

func cat(parts ...[]cop) []cop {
	var out []cop
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestCMOSSetTime(t *testing.T) {
	const b24 = regB24h
	// Host clock: 2026-03-14 15:09:26.25 UTC, a Saturday.
	unchanged := readTime(0x26, 0x09, 0x15, 7, 0x14, 0x03, 0x26, 0x20)
	tests := []struct {
		name string
		ops  []cop
	}{
		{"BCD set then clock runs", cat(
			setTime(b24, 0x30, 0x06, 0x15, 0x08, 0x00, 0x00),
			readTime(0x00, 0x00, 0x08, 7, 0x15, 0x06, 0x30, 0x20), // 2030-06-15 is a Saturday
			[]cop{cadv(90 * time.Second)},
			readTime(0x30, 0x01, 0x08, 7, 0x15, 0x06, 0x30, 0x20),
			[]cop{cadv(24 * time.Hour)},
			readTime(0x30, 0x01, 0x08, 1, 0x16, 0x06, 0x30, 0x20),
		)},
		{"first tick after a full second, not at the host's", cat(
			setTime(b24, 0x30, 0x06, 0x15, 0x08, 0x00, 0x00),
			[]cop{cadv(750 * time.Millisecond), cr(cmosSeconds, 0x00), cadv(250 * time.Millisecond), cr(cmosSeconds, 0x01)},
		)},
		{"binary mode", cat(
			setTime(b24|regBBinary, 99, 12, 31, 23, 59, 58),
			[]cop{cadv(2 * time.Second)},
			readTime(0, 0, 0, 6, 1, 1, 0, 21), // 2100-01-01, a Friday: the century follows the carry
		)},
		{"12h PM", cat(
			setTime(0, 0x26, 0x03, 0x14, 0x80|0x11, 0x30, 0x00),
			[]cop{cw(cmosRegB, b24)},
			readTime(0x00, 0x30, 0x23, 7, 0x14, 0x03, 0x26, 0x20),
		)},
		{"12h 12 AM is hour 0", cat(
			setTime(0, 0x26, 0x03, 0x14, 0x12, 0x00, 0x00),
			[]cop{cw(cmosRegB, b24), cr(cmosHours, 0x00)},
		)},
		{"century written under SET", cat(
			[]cop{cw(cmosRegB, b24|regBSet), cw(cmosCentury, 0x21), cw(cmosYear, 0x05), cw(cmosRegB, b24)},
			readTime(0x26, 0x09, 0x15, 7, 0x14, 0x03, 0x05, 0x21), // 2105-03-14: a Saturday
		)},
		{"reads under SET show the staged time", cat(
			[]cop{cw(cmosRegB, b24|regBSet), cw(cmosMinutes, 0x45), cadv(10 * time.Second)},
			readTime(0x26, 0x45, 0x15, 7, 0x14, 0x03, 0x26, 0x20), // frozen
			[]cop{cw(cmosDayOfWeek, 0x03), cr(cmosDayOfWeek, 0x03), cw(cmosRegB, b24)},
			readTime(0x26, 0x45, 0x15, 7), // weekday derived from the date again
		)},
		{"invalid BCD and out-of-range writes ignored", cat(
			[]cop{cw(cmosRegB, b24|regBSet)},
			[]cop{cw(cmosSeconds, 0x5a), cw(cmosSeconds, 0x60), cw(cmosMinutes, 0xff), cw(cmosHours, 0x24)},
			[]cop{cw(cmosDayOfMonth, 0x00), cw(cmosDayOfMonth, 0x32), cw(cmosMonth, 0x00), cw(cmosMonth, 0x13)},
			[]cop{cw(cmosYear, 0xa0), cw(cmosCentury, 0x1f), cw(cmosDayOfWeek, 0x08), cw(cmosDayOfWeek, 0)},
			unchanged,
			[]cop{cw(cmosRegB, b24)},
			unchanged,
		)},
		{"binary out of range ignored", cat(
			[]cop{cw(cmosRegB, b24|regBBinary|regBSet)},
			[]cop{cw(cmosSeconds, 60), cw(cmosMinutes, 60), cw(cmosHours, 24), cw(cmosMonth, 13), cw(cmosYear, 100)},
			[]cop{cw(cmosRegB, b24)},
			unchanged,
		)},
		{"12h hour 0 and 13 ignored", cat(
			[]cop{cw(cmosRegB, regBSet), cw(cmosHours, 0x00), cw(cmosHours, 0x13), cw(cmosHours, 0x80), cw(cmosRegB, b24)},
			unchanged,
		)},
		{"impossible date keeps the old offset", cat(
			setTime(b24, 0x27, 0x02, 0x29, 0x00, 0x00, 0x00), // 2027 is common
			unchanged,
			setTime(b24, 0x26, 0x04, 0x31, 0x00, 0x00, 0x00),
			unchanged,
		)},
		{"leap day accepted", cat(
			setTime(b24, 0x28, 0x02, 0x29, 0x12, 0x00, 0x00),
			readTime(0x00, 0x00, 0x12, 3, 0x29, 0x02, 0x28, 0x20),
		)},
		{"beyond the offset bound ignored", cat(
			[]cop{cw(cmosRegB, b24|regBSet), cw(cmosCentury, 0x99), cw(cmosRegB, b24)},
			unchanged,
			[]cop{cw(cmosRegB, b24|regBSet), cw(cmosCentury, 0x00), cw(cmosRegB, b24)},
			unchanged,
		)},
		{"SET with nothing written leaves the clock running", cat(
			[]cop{cw(cmosRegB, b24|regBSet), cadv(time.Minute), cw(cmosDayOfWeek, 1), cw(cmosRegB, b24)},
			readTime(0x26, 0x10, 0x15, 7),
		)},
		{"time writes without SET ignored", cat(
			[]cop{cw(cmosSeconds, 0x00), cw(cmosHours, 0x01), cw(cmosYear, 0x50), cw(cmosCentury, 0x21)},
			unchanged,
		)},
		{"second set replaces the first", cat(
			setTime(b24, 0x30, 0x06, 0x15, 0x08, 0x00, 0x00),
			setTime(b24, 0x26, 0x03, 0x14, 0x15, 0x09, 0x26),
			unchanged,
		)},
		{"Linux sequence with divider pulse", cat(
			[]cop{cw(cmosRegB, b24|regBSet), cw(cmosRegA, regADefault|0x70)},
			[]cop{cw(cmosYear, 0x24), cw(cmosMonth, 0x02), cw(cmosDayOfMonth, 0x29)},
			[]cop{cw(cmosHours, 0x23), cw(cmosMinutes, 0x59), cw(cmosSeconds, 0x59)},
			[]cop{cw(cmosRegB, b24), cw(cmosRegA, regADefault), cadv(time.Second)},
			readTime(0x00, 0x00, 0x00, 6, 0x01, 0x03, 0x24, 0x20),
			[]cop{cr(cmosRegA, regADefault)},
		)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{utc("2026-03-14T15:09:26.25Z")}
			runCMOS(t, NewCMOS(clk.now), clk, tc.ops)
		})
	}
}

// TestCMOSOffsetFollowsHostJumps: the guest offset is relative, so a host
// clock step moves the guest clock by the same amount.
func TestCMOSOffsetFollowsHostJumps(t *testing.T) {
	clk := &fakeClock{utc("2026-03-14T15:09:26Z")}
	runCMOS(t, NewCMOS(clk.now), clk, cat(
		setTime(regB24h, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00),
		[]cop{cadv(-time.Hour)},
		readTime(0x00, 0x00, 0x23, 6, 0x31, 0x12, 0x99, 0x19),
	))
}

func TestCMOSNVRAM(t *testing.T) {
	clk := &fakeClock{utc("2026-03-14T15:09:26Z")}
	c := NewCMOS(clk.now)
	// Every storage byte round-trips every value.
	var storage []uint8
	for reg := range uint8(CMOSSize) {
		switch reg {
		case cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek, cmosDayOfMonth, cmosMonth,
			cmosYear, cmosCentury, cmosRegA, cmosRegB, cmosRegC, cmosRegD:
			continue
		}
		storage = append(storage, reg)
	}
	if len(storage) != CMOSSize-12 {
		t.Fatalf("%d storage registers", len(storage))
	}
	for _, v := range []uint8{0x00, 0x5a, 0xa5, 0xff} {
		var ops []cop
		for _, reg := range storage {
			ops = append(ops, cw(reg, v^reg))
		}
		for _, reg := range storage {
			ops = append(ops, cr(reg, v^reg))
		}
		runCMOS(t, c, clk, ops)
	}
	// Writing storage must not disturb the clock.
	runCMOS(t, c, clk, readTime(0x26, 0x09, 0x15, 7, 0x14, 0x03, 0x26, 0x20))
}

func TestCMOSIndexPort(t *testing.T) {
	c := NewCMOS(nil)
	idx, data := c.Ranges()[0].Dev, c.Ranges()[1].Dev
	tests := []struct {
		name  string
		index uint8
		reg   uint8
		nmi   bool
	}{
		{"plain", 0x40, 0x40, false},
		{"bit 7 masked, NMI disabled", 0xc0, 0x40, true},
		{"NMI re-enabled", 0x41, 0x41, false},
		{"0x80 selects seconds", 0x80, 0x00, true},
		{"0xff selects 0x7f", 0xff, 0x7f, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Mark the expected register through an unmasked index, then
			// read it back through the masked one.
			if tc.reg >= 0x0e {
				mustWrite(t, idx, tc.reg)
				mustWrite(t, data, 0x3c)
			}
			mustWrite(t, idx, tc.index)
			if c.NMIDisabled() != tc.nmi {
				t.Fatalf("NMIDisabled %v, want %v", c.NMIDisabled(), tc.nmi)
			}
			c.mu.Lock()
			got := c.index
			c.mu.Unlock()
			if got != tc.reg {
				t.Fatalf("index %#x selected %#x, want %#x", tc.index, got, tc.reg)
			}
			if tc.reg >= 0x0e {
				if v := mustRead(t, data); v != 0x3c {
					t.Fatalf("register %#x read %#x through index %#x", tc.reg, v, tc.index)
				}
			}
			if v := mustRead(t, idx); v != 0xff {
				t.Fatalf("index port read %#x, want 0xff", v)
			}
		})
	}
}

func mustWrite(t *testing.T, d Device, v uint8) {
	t.Helper()
	if err := d.Write(0, []byte{v}); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, d Device) uint8 {
	t.Helper()
	b := []byte{0}
	if err := d.Read(0, b); err != nil {
		t.Fatal(err)
	}
	return b[0]
}

func TestCMOSMemorySize(t *testing.T) {
	const (
		kib = 1 << 10
		mib = 1 << 20
		gib = 1 << 30
	)
	tests := []struct {
		name      string
		size      uint64
		ext, high uint16
	}{
		{"unset", 0, 0, 0},
		{"512 KiB", 512 * kib, 0, 0},
		{"1 MiB", mib, 0, 0},
		{"2 MiB", 2 * mib, 1024, 0},
		{"16 MiB", 16 * mib, 15 * 1024, 0},
		{"17 MiB + 100 B", 17*mib + 100, 16 * 1024, 16},
		{"64 MiB", 64 * mib, 0xfc00, 768},
		{"128 MiB", 128 * mib, 0xffff, 0x0700},
		{"5 GiB", 5 * gib, 0xffff, 0xffff},
		{"max", ^uint64(0), 0xffff, 0xffff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := &fakeClock{utc("2026-03-14T15:09:26Z")}
			c := NewCMOS(clk.now)
			if tc.size != 0 {
				c.SetMemorySize(tc.size)
			}
			ext := []uint8{uint8(tc.ext), uint8(tc.ext >> 8)}
			high := []uint8{uint8(tc.high), uint8(tc.high >> 8)}
			runCMOS(t, c, clk, []cop{
				cr(cmosBaseMemLo, 0x80), cr(cmosBaseMemHi, 0x02), // 640 KiB
				cr(cmosExtMemLo, ext[0]), cr(cmosExtMemHi, ext[1]),
				cr(cmosExtMem2Lo, ext[0]), cr(cmosExtMem2Hi, ext[1]),
				cr(cmosHighMemLo, high[0]), cr(cmosHighMemHi, high[1]),
				cr(cmosFloppy, 0), cr(cmosEquipment, 0x02),
			})
			// The AT checksum, recomputed from what the guest reads.
			var sum uint16
			for reg := uint8(0x10); reg <= 0x2d; reg++ {
				c.mu.Lock()
				sum += uint16(c.readLocked(reg))
				c.mu.Unlock()
			}
			runCMOS(t, c, clk, []cop{cr(cmosChecksumHi, uint8(sum>>8)), cr(cmosChecksumLo, uint8(sum))})
		})
	}
}

func TestCMOSBadAccess(t *testing.T) {
	c := NewCMOS(nil)
	for _, r := range c.Ranges() {
		for _, n := range []int{0, 2, 4, 8} {
			b := make([]byte, n)
			if err := r.Dev.Read(0, b); !errors.Is(err, ErrBadAccess) {
				t.Errorf("%s read width %d: %v", r.Name, n, err)
			}
			if !bytes.Equal(b, bytes.Repeat([]byte{0xff}, n)) {
				t.Errorf("%s rejected read gave %x", r.Name, b)
			}
			if err := r.Dev.Write(0, bytes.Repeat([]byte{0x8b}, n)); !errors.Is(err, ErrBadAccess) {
				t.Errorf("%s write width %d: %v", r.Name, n, err)
			}
		}
		if err := r.Dev.Write(1, []byte{0x8b}); !errors.Is(err, ErrBadAccess) {
			t.Errorf("%s write offset 1: %v", r.Name, err)
		}
		b := []byte{0}
		if err := r.Dev.Read(1, b); !errors.Is(err, ErrBadAccess) || b[0] != 0xff {
			t.Errorf("%s read offset 1: %v %#x", r.Name, err, b[0])
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.index != 0 || c.nmiDisabled {
		t.Fatalf("a rejected access changed the index: %#x %v", c.index, c.nmiDisabled)
	}
}

// cmosDecode parses a time register byte per register B and checks it
// against the register's range; it mirrors the datasheet, not cmos.go.
func cmosDecode(reg, v, regB uint8) (int, error) {
	pm := false
	if reg == cmosHours && regB&regB24h == 0 {
		pm = v&0x80 != 0
		v &^= 0x80
	}
	n := int(v)
	if regB&regBBinary == 0 {
		if v>>4 > 9 || v&0xf > 9 {
			return 0, fmt.Errorf("register %#x: %#02x is not BCD", reg, v)
		}
		n = int(v>>4)*10 + int(v&0xf)
	}
	lo, hi := 0, 99
	switch reg {
	case cmosSeconds, cmosMinutes:
		hi = 59
	case cmosHours:
		hi = 23
		if regB&regB24h == 0 {
			lo, hi = 1, 12
		}
	case cmosDayOfWeek:
		lo, hi = 1, 7
	case cmosDayOfMonth:
		lo, hi = 1, 31
	case cmosMonth:
		lo, hi = 1, 12
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("register %#x: %d outside [%d, %d] (raw %#02x, B %#02x)", reg, n, lo, hi, v, regB)
	}
	if reg == cmosHours && regB&regB24h == 0 {
		n %= 12
		if pm {
			n += 12
		}
	}
	return n, nil
}

// TestCMOSDefaultClock: with now == nil the RTC follows time.Now in UTC.
func TestCMOSDefaultClock(t *testing.T) {
	c := NewCMOS(nil)
	regs := []uint8{cmosSeconds, cmosMinutes, cmosHours, cmosDayOfMonth, cmosMonth, cmosYear, cmosCentury}
	// Retry if a second boundary splits the reads, as Linux does.
	for try := 0; try < 5; try++ {
		before := time.Now().UTC()
		var f [7]int
		c.mu.Lock()
		regB := c.ram[cmosRegB]
		for i, reg := range regs {
			n, err := cmosDecode(reg, c.readLocked(reg), regB)
			if err != nil {
				c.mu.Unlock()
				t.Fatal(err)
			}
			f[i] = n
		}
		c.mu.Unlock()
		got := time.Date(f[6]*100+f[5], time.Month(f[4]), f[3], f[2], f[1], f[0], 0, time.UTC)
		after := time.Now().UTC()
		if !got.Before(before.Truncate(time.Second)) && !got.After(after) {
			return
		}
	}
	t.Fatal("RTC never matched time.Now")
}

// TestCMOSConcurrent: several vCPUs hammering index/data pairs and the
// VMM calling SetMemorySize must be race-free (run with -race) and leave
// every time register valid.
func TestCMOSConcurrent(t *testing.T) {
	c := NewCMOS(nil)
	idx, data := c.Ranges()[0].Dev, c.Ranges()[1].Dev
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			b := []byte{0}
			for i := range 2000 {
				reg := uint8(i+g) & 0x0f
				_ = idx.Write(0, []byte{reg})
				if g == 0 && reg == cmosRegB {
					_ = data.Write(0, []byte{uint8(i) & (regBSet | regBBinary | regB24h)})
					continue
				}
				_ = data.Read(0, b)
			}
		})
	}
	wg.Go(func() {
		for i := range 200 {
			c.SetMemorySize(uint64(i) << 24)
		}
	})
	wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readLocked(cmosRegA)&regAUIP != 0 {
		t.Fatal("UIP set")
	}
	regB := c.ram[cmosRegB]
	for _, reg := range []uint8{cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek, cmosDayOfMonth, cmosMonth, cmosYear, cmosCentury} {
		if _, err := cmosDecode(reg, c.readLocked(reg), regB); err != nil {
			t.Fatal(err)
		}
	}
}
