package devices

import (
	"sync"
	"time"
)

// CMOS/RTC ports. The index port selects one of the 128 CMOS bytes; the
// data port reads or writes the selected byte. They register as two
// one-byte ranges, like the i8042, so each Device sees offset 0 only.
const (
	CMOSIndexPort = 0x70 // write: bit 7 NMI disable, bits 0-6 register
	CMOSDataPort  = 0x71
	// CMOSSize is the number of addressable CMOS bytes (7 index bits).
	CMOSSize = 128
)

// Register indices. 0x00-0x0d are the MC146818 clock and control registers;
// 0x0e-0x7f are battery-backed RAM, with the PC/AT and ACPI conventions
// noted below.
const (
	cmosSeconds    = 0x00
	cmosAlarmSec   = 0x01
	cmosMinutes    = 0x02
	cmosAlarmMin   = 0x03
	cmosHours      = 0x04
	cmosAlarmHour  = 0x05
	cmosDayOfWeek  = 0x06 // 1 = Sunday
	cmosDayOfMonth = 0x07
	cmosMonth      = 0x08
	cmosYear       = 0x09 // two digits; the century lives at cmosCentury
	cmosRegA       = 0x0a
	cmosRegB       = 0x0b
	cmosRegC       = 0x0c
	cmosRegD       = 0x0d
	cmosShutdown   = 0x0f // BIOS shutdown status: plain storage here
	cmosFloppy     = 0x10 // drive types: 0 = none
	cmosEquipment  = 0x14
	cmosBaseMemLo  = 0x15 // base memory in KiB (640)
	cmosBaseMemHi  = 0x16
	cmosExtMemLo   = 0x17 // memory above 1 MiB in KiB, capped at 0xffff
	cmosExtMemHi   = 0x18
	cmosChecksumHi = 0x2e // AT checksum: sum of 0x10-0x2d, big-endian
	cmosChecksumLo = 0x2f
	cmosExtMem2Lo  = 0x30 // copy of 0x17/0x18 (what the POST found)
	cmosExtMem2Hi  = 0x31
	cmosCentury    = 0x32 // BCD century (ACPI FADT "century" default index)
	cmosHighMemLo  = 0x34 // memory above 16 MiB in 64 KiB units, capped
	cmosHighMemHi  = 0x35

	cmosChecksumFirst = 0x10
	cmosChecksumLast  = 0x2d
)

// Register A bits.
const (
	regAUIP = 0x80 // update in progress: never set, see CMOS
	// What a PC BIOS leaves: divider 010 (32.768 kHz time base, clock
	// running), rate 0110 (1024 Hz periodic rate, unused here).
	regADefault = 0x26
)

// Register B bits.
const (
	regBSet    = 0x80 // SET: updates inhibited, guest is writing the time
	regBPIE    = 0x40 // periodic interrupt enable (stored; no IRQ 8)
	regBAIE    = 0x20 // alarm interrupt enable (stored; no IRQ 8)
	regBUIE    = 0x10 // update-ended interrupt enable (stored; no IRQ 8)
	regBSQWE   = 0x08 // square wave enable (no pin to drive)
	regBBinary = 0x04 // DM: 1 = binary, 0 = BCD
	regB24h    = 0x02 // 1 = 24-hour mode, 0 = 12-hour with bit 7 = PM
	regBDSE    = 0x01 // daylight saving enable: stored, never applied
	// 24-hour BCD: the only mode Linux's rtc-cmos accepts when it has an
	// IRQ ("only 24-hr supported"), and what every PC BIOS leaves.
	regBDefault = regB24h
)

// Register D: VRT (valid RAM and time). Linux's mc146818_get_time also
// insists bit 6 reads 0 ("RTC accessible"), so D reads exactly 0x80.
const regDVRT = 0x80

// hours12PM is the PM flag in the hours byte in 12-hour mode.
const hours12PM = 0x80

// cmosMaxOffset bounds how far a guest may set its clock from the host's.
// time.Duration overflows at about ±292 years; 200 years leaves room for
// host clock jumps on top, and covers any date a guest plausibly wants.
const cmosMaxOffset = 200 * 365 * 24 * time.Hour

// cmosFields is a broken-down calendar time in binary, hour 0-23.
type cmosFields struct {
	sec, min, hour int
	wday           int // 1-7, 1 = Sunday
	mday, mon      int // 1-31, 1-12
	year           int // 0-99
	century        int // 0-99
}

// CMOS is an MC146818-compatible real-time clock with its 128 bytes of
// CMOS RAM, at ports 0x70/0x71.
//
// Time: there is no oscillator or update cycle. Each read of a time
// register computes the value from now() plus a guest-set offset, so the
// clock never drifts from the host and UIP (register A bit 7) is never
// set: Linux's mc146818_avoid_UIP / mc146818_does_rtc_work poll UIP and
// must not spin. Reads of the separate registers are as consistent as on
// real hardware: all fields come from the same second unless a second
// boundary falls between two reads, which Linux detects by re-reading the
// seconds register.
//
// The clock is UTC. Linux assumes a UTC RTC unless userspace says
// otherwise (hwclock --localtime); guests must keep that default. The DSE
// bit is stored but daylight saving is never applied.
//
// Setting the time: the guest sets register B's SET bit, writes the time
// registers in the format register B selects, and clears SET. While SET is
// held the time registers read back what was written (a snapshot taken
// when SET went up, updated by valid writes); writes of invalid BCD or
// out-of-range values are ignored. When SET is cleared, if any time
// register was written, the staged date is checked (day exists in that
// month and year) and the offset from the host clock is recomputed; an
// impossible date, or one more than cmosMaxOffset from the host clock,
// leaves the offset unchanged. Writes to the time registers with SET clear
// are ignored (real chips apply them, racing the update cycle; Linux
// always uses SET). The day-of-week register is derived from the date; a
// value written under SET reads back until SET is cleared, then the
// derived value returns.
//
// Interrupts: none. IRQ 8 is never raised; PIE/AIE/UIE are stored and have
// no effect, register C (the read-to-clear flag register) always reads 0,
// and the alarm registers are plain storage. Linux's rtc-cmos probes and
// works without the interrupt; only userspace waiting on RTC update or
// alarm interrupts (hwclock falls back to polling) would notice.
//
// Register A's divider and rate bits are stored and read back but do not
// stop or restart the clock (Linux pulses the divider reset while setting
// the time; the offset model needs no reset).
//
// Threads: Read/Write run on vCPU threads, possibly several at once. mu
// guards all state, including the index register, so one vCPU's
// index/data pair can interleave with another's exactly as on real
// hardware (guests serialise with their own rtc_lock). now is called with
// mu held and must be quick and must not call into the CMOS.
type CMOS struct {
	mu  sync.Mutex       // guards every field below
	now func() time.Time // host clock; never nil

	index       uint8 // selected register, 0-127
	nmiDisabled bool  // index port bit 7 as last written; informational

	// ram holds every byte that is plain storage: alarms, registers A and
	// B, 0x0e-0x7f. The bytes at the computed registers (time, C, D,
	// century) are unused.
	ram [CMOSSize]byte

	offset time.Duration // guest clock = now() + offset, |offset| <= cmosMaxOffset
	staged cmosFields    // the time registers while SET is held
	dirty  bool          // a time register was written while SET was held
}

// NewCMOS returns a CMOS whose clock follows now (time.Now if nil), with
// the power-on register values a PC BIOS leaves: 24-hour BCD mode, time
// valid, no interrupts, 640 KiB base memory and no extended memory until
// SetMemorySize is called.
func NewCMOS(now func() time.Time) *CMOS {
	if now == nil {
		now = time.Now
	}
	c := &CMOS{now: now}
	c.ram[cmosRegA] = regADefault
	c.ram[cmosRegB] = regBDefault
	c.ram[cmosFloppy] = 0       // no floppy drives
	c.ram[cmosEquipment] = 0x02 // bit 1: math coprocessor; no floppies; EGA/VGA
	c.ram[cmosBaseMemLo] = 640 & 0xff
	c.ram[cmosBaseMemHi] = 640 >> 8
	c.updateChecksumLocked()
	return c
}

// Ranges returns the two bus ranges to register on the PIO bus: 0x70
// (index) and 0x71 (data), each one byte.
func (c *CMOS) Ranges() []PortRange {
	return []PortRange{
		{Base: CMOSIndexPort, Size: 1, Name: "cmos-index", Dev: cmosPort{c, false}},
		{Base: CMOSDataPort, Size: 1, Name: "cmos-data", Dev: cmosPort{c, true}},
	}
}

// SetMemorySize fills the PC/AT memory-size bytes for a guest with the
// given amount of RAM: 0x17/0x18 and 0x30/0x31 = KiB above 1 MiB, and
// 0x34/0x35 = 64 KiB units above 16 MiB, each capped at 0xffff as the
// 16-bit fields require. Linux boots from the e820/PVH memory map and does
// not read these; firmware-style guests do. The AT checksum is updated.
func (c *CMOS) SetMemorySize(bytes uint64) {
	const (
		kib = 1 << 10
		mib = 1 << 20
	)
	var ext, high uint64
	if bytes > mib {
		ext = min((bytes-mib)/kib, 0xffff)
	}
	if bytes > 16*mib {
		high = min((bytes-16*mib)/(64*kib), 0xffff)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ram[cmosExtMemLo], c.ram[cmosExtMemHi] = byte(ext), byte(ext>>8)
	c.ram[cmosExtMem2Lo], c.ram[cmosExtMem2Hi] = byte(ext), byte(ext>>8)
	c.ram[cmosHighMemLo], c.ram[cmosHighMemHi] = byte(high), byte(high>>8)
	c.updateChecksumLocked()
}

// NMIDisabled reports the NMI-disable bit (index port bit 7) as the guest
// last wrote it. The VMM does not gate NMIs on it; it is kept for
// debugging and so the guest's view of the index port is complete.
func (c *CMOS) NMIDisabled() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nmiDisabled
}

// cmosPort is the Device for one of the two ports.
type cmosPort struct {
	c    *CMOS
	data bool // the 0x71 port
}

// Read: the index port is write-only on real hardware and reads 0xff here
// (an undriven bus), so a guest cannot learn or depend on the latched
// index. The data port reads the selected register.
func (p cmosPort) Read(offset uint64, data []byte) error {
	if len(data) != 1 || offset != 0 {
		fillOnes(data)
		return ErrBadAccess
	}
	if !p.data {
		data[0] = 0xff
		return nil
	}
	p.c.mu.Lock()
	data[0] = p.c.readLocked(p.c.index)
	p.c.mu.Unlock()
	return nil
}

func (p cmosPort) Write(offset uint64, data []byte) error {
	if len(data) != 1 || offset != 0 {
		return ErrBadAccess
	}
	v := data[0]
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	if !p.data {
		p.c.index = v & (CMOSSize - 1)
		p.c.nmiDisabled = v&0x80 != 0
		return nil
	}
	p.c.writeLocked(p.c.index, v)
	return nil
}

// readLocked returns register reg (0-127). mu held. It has no side
// effects: register C's read-to-clear has nothing to clear.
func (c *CMOS) readLocked(reg uint8) byte {
	switch reg {
	case cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek,
		cmosDayOfMonth, cmosMonth, cmosYear, cmosCentury:
		f := c.staged
		if c.ram[cmosRegB]&regBSet == 0 {
			f = c.fieldsLocked()
		}
		return c.encodeLocked(reg, f)
	case cmosRegA:
		return c.ram[cmosRegA] &^ regAUIP
	case cmosRegC:
		return 0
	case cmosRegD:
		return regDVRT
	}
	return c.ram[reg&(CMOSSize-1)]
}

// writeLocked stores v to register reg (0-127). mu held.
func (c *CMOS) writeLocked(reg uint8, v byte) {
	switch reg {
	case cmosSeconds, cmosMinutes, cmosHours, cmosDayOfWeek,
		cmosDayOfMonth, cmosMonth, cmosYear, cmosCentury:
		if c.ram[cmosRegB]&regBSet != 0 {
			c.stageLocked(reg, v)
		}
	case cmosRegA:
		c.ram[cmosRegA] = v &^ regAUIP // UIP is read-only
	case cmosRegB:
		old := c.ram[cmosRegB]
		switch {
		case v&regBSet != 0 && old&regBSet == 0:
			// Freeze the guest's view: the time registers now read the
			// snapshot until the guest rewrites them.
			c.staged = c.fieldsLocked()
			c.dirty = false
			v &^= regBUIE // the datasheet clears UIE when SET is set
		case v&regBSet == 0 && old&regBSet != 0:
			c.commitLocked()
		}
		c.ram[cmosRegB] = v
	case cmosRegC, cmosRegD:
		// Read-only status registers.
	default:
		c.ram[reg&(CMOSSize-1)] = v
	}
}

// guestTimeLocked is the guest's clock, clamped to the years the
// registers can express (0000-9999) so a wild host clock cannot produce an
// out-of-range century. mu held.
func (c *CMOS) guestTimeLocked() time.Time {
	t := c.now().UTC().Add(c.offset)
	switch y := t.Year(); {
	case y < 0:
		return time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC)
	case y > 9999:
		return time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
	}
	return t
}

// fieldsLocked breaks the guest clock into register fields. mu held.
func (c *CMOS) fieldsLocked() cmosFields {
	t := c.guestTimeLocked()
	y := t.Year()
	return cmosFields{
		sec: t.Second(), min: t.Minute(), hour: t.Hour(),
		wday: int(t.Weekday()) + 1,
		mday: t.Day(), mon: int(t.Month()),
		year: y % 100, century: y / 100,
	}
}

// encodeLocked formats field reg of f per register B's DM and 12/24-hour
// bits. Every field of f is in range, so the result is always valid for
// the mode. mu held.
func (c *CMOS) encodeLocked(reg uint8, f cmosFields) byte {
	b := c.ram[cmosRegB]
	enc := func(n int) byte {
		if b&regBBinary != 0 {
			return byte(n)
		}
		return byte(n/10<<4 | n%10)
	}
	switch reg {
	case cmosSeconds:
		return enc(f.sec)
	case cmosMinutes:
		return enc(f.min)
	case cmosHours:
		if b&regB24h != 0 {
			return enc(f.hour)
		}
		h := f.hour % 12
		if h == 0 {
			h = 12 // 00:xx is 12 AM, 12:xx is 12 PM
		}
		v := enc(h)
		if f.hour >= 12 {
			v |= hours12PM
		}
		return v
	case cmosDayOfWeek:
		return enc(f.wday)
	case cmosDayOfMonth:
		return enc(f.mday)
	case cmosMonth:
		return enc(f.mon)
	case cmosYear:
		return enc(f.year)
	default: // cmosCentury: follows DM, as Linux's mc146818_get_time decodes it
		return enc(f.century)
	}
}

// decodeLocked parses a guest-written time byte per register B's DM bit.
// ok is false for a BCD byte with a nibble above 9. mu held.
func (c *CMOS) decodeLocked(v byte) (n int, ok bool) {
	if c.ram[cmosRegB]&regBBinary != 0 {
		return int(v), true
	}
	hi, lo := v>>4, v&0x0f
	if hi > 9 || lo > 9 {
		return 0, false
	}
	return int(hi)*10 + int(lo), true
}

// stageLocked applies a guest write to a time register while SET is held.
// Invalid encodings and out-of-range values are dropped so the staged
// fields, which the registers read back, always stay in range. mu held.
func (c *CMOS) stageLocked(reg uint8, v byte) {
	if reg == cmosHours && c.ram[cmosRegB]&regB24h == 0 {
		n, ok := c.decodeLocked(v &^ hours12PM)
		if !ok || n < 1 || n > 12 {
			return
		}
		n %= 12
		if v&hours12PM != 0 {
			n += 12
		}
		c.staged.hour = n
		c.dirty = true
		return
	}
	n, ok := c.decodeLocked(v)
	if !ok {
		return
	}
	in := func(lo, hi int) bool { return n >= lo && n <= hi }
	f := &c.staged
	switch reg {
	case cmosSeconds:
		if !in(0, 59) {
			return
		}
		f.sec = n
	case cmosMinutes:
		if !in(0, 59) {
			return
		}
		f.min = n
	case cmosHours:
		if !in(0, 23) {
			return
		}
		f.hour = n
	case cmosDayOfWeek:
		// Read back until SET clears; the date decides it afterwards, so
		// this alone does not make the staged time dirty.
		if in(1, 7) {
			f.wday = n
		}
		return
	case cmosDayOfMonth:
		if !in(1, 31) {
			return
		}
		f.mday = n
	case cmosMonth:
		if !in(1, 12) {
			return
		}
		f.mon = n
	case cmosYear:
		if !in(0, 99) {
			return
		}
		f.year = n
	case cmosCentury:
		if !in(0, 99) {
			return
		}
		f.century = n
	}
	c.dirty = true
}

// commitLocked turns the staged time into a new offset when SET is
// cleared. Nothing written: the clock carries on as if SET had never been
// set. mu held.
func (c *CMOS) commitLocked() {
	if !c.dirty {
		return
	}
	c.dirty = false
	f := c.staged
	y := f.century*100 + f.year
	t := time.Date(y, time.Month(f.mon), f.mday, f.hour, f.min, f.sec, 0, time.UTC)
	if t.Day() != f.mday {
		return // e.g. 31 April or 29 February in a common year: normalised away
	}
	off := t.Sub(c.now().UTC())
	if off > cmosMaxOffset || off < -cmosMaxOffset {
		return
	}
	c.offset = off
}

// updateChecksumLocked recomputes the PC/AT checksum over 0x10-0x2d that
// BIOS-style guests verify. Guest writes to NVRAM do not update it, as on
// real hardware. mu held (or c not yet shared).
func (c *CMOS) updateChecksumLocked() {
	var sum uint16
	for _, b := range c.ram[cmosChecksumFirst : cmosChecksumLast+1] {
		sum += uint16(b)
	}
	c.ram[cmosChecksumHi], c.ram[cmosChecksumLo] = byte(sum>>8), byte(sum)
}
