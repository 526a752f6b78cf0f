package devices

import (
	"sync"
	"sync/atomic"
)

// i8042 ports. They are not contiguous (0x61 is port B, 0x62/0x63 are
// unrelated), so the controller registers as two one-byte ranges.
const (
	I8042DataPort    = 0x60
	I8042CommandPort = 0x64 // read: status; write: controller command
)

// Status register bits.
const (
	kbdStatOBF    = 0x01 // output buffer full: data port has a byte
	kbdStatSys    = 0x04 // system flag, mirrors command byte bit 2
	kbdStatCmd    = 0x08 // last write went to the command port
	kbdStatUnlock = 0x10 // keyboard not inhibited
	// IBF (0x02) is never set: writes are consumed instantly, so a driver
	// waiting for "input buffer empty" never spins.
)

// Controller command byte bits.
const (
	kbdCBSys        = 0x04
	kbdCBDisableKbd = 0x10
	kbdCBDisableAux = 0x20
	// What a PC BIOS leaves: translate, system flag, keyboard interrupt.
	kbdCBDefault = 0x45
)

// Controller commands handled; everything else is ignored (no response).
const (
	kbdCmdReadCB      = 0x20
	kbdCmdWriteCB     = 0x60
	kbdCmdDisableAux  = 0xa7
	kbdCmdEnableAux   = 0xa8
	kbdCmdSelfTest    = 0xaa
	kbdCmdDisableKbd  = 0xad
	kbdCmdEnableKbd   = 0xae
	kbdCmdReadOutPort = 0xd0
	kbdCmdWriteOutPrt = 0xd1
	kbdCmdPulseBase   = 0xf0 // 0xf0-0xff: pulse output lines whose bit (0-3) is 0

	kbdSelfTestOK  = 0x55
	kbdOutPortInit = 0x03 // bit 0: reset line deasserted; bit 1: A20 enabled
)

// I8042 is the minimal PS/2 controller a PC guest expects: enough for
// Linux's i8042 probe to get consistent answers and for the guest to reboot
// through it. No keyboard or mouse is attached: bytes written to the data
// port for a device are dropped, and no IRQ 1/12 is ever raised (the
// guest's driver polls the status register for command responses).
//
// Threads: Read/Write run on vCPU threads, possibly several at once; mu
// guards the register state. onReset is called without mu held.
type I8042 struct {
	mu sync.Mutex // guards the fields below (not resetDone/onReset)

	cb      uint8 // controller command byte
	outPort uint8 // controller output port (0xd0/0xd1)
	out     uint8 // output buffer; valid while obf, stale (re-read) after
	obf     bool
	lastCmd bool  // last write was to the command port (status bit 3)
	pending uint8 // command awaiting a data-port byte (kbdCmdWriteCB, kbdCmdWriteOutPrt) or 0

	onReset   func() // may be nil
	resetDone atomic.Bool
}

// NewI8042 returns a controller that calls onReset (if non-nil) the first
// time the guest pulses the CPU reset line; later resets are ignored since
// the VM is already going down.
func NewI8042(onReset func()) *I8042 {
	return &I8042{cb: kbdCBDefault, outPort: kbdOutPortInit, lastCmd: true, onReset: onReset}
}

// Ranges returns the two bus ranges to register on the PIO bus:
// 0x60 (data) and 0x64 (status/command), each one byte.
func (k *I8042) Ranges() []PortRange {
	return []PortRange{
		{Base: I8042DataPort, Size: 1, Name: "i8042-data", Dev: i8042Port{k, false}},
		{Base: I8042CommandPort, Size: 1, Name: "i8042-cmd", Dev: i8042Port{k, true}},
	}
}

// Resets reports whether the guest has requested a reset.
func (k *I8042) Resets() bool { return k.resetDone.Load() }

// i8042Port is the Device for one of the two ports.
type i8042Port struct {
	k   *I8042
	cmd bool // the 0x64 port
}

func (p i8042Port) Read(offset uint64, data []byte) error {
	if len(data) != 1 || offset != 0 {
		fillOnes(data)
		return ErrBadAccess
	}
	if p.cmd {
		data[0] = p.k.status()
	} else {
		data[0] = p.k.readData()
	}
	return nil
}

func (p i8042Port) Write(offset uint64, data []byte) error {
	if len(data) != 1 || offset != 0 {
		return ErrBadAccess
	}
	var reset bool
	if p.cmd {
		reset = p.k.command(data[0])
	} else {
		reset = p.k.writeData(data[0])
	}
	if reset {
		p.k.reset()
	}
	return nil
}

func (k *I8042) status() uint8 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.statusLocked()
}

func (k *I8042) statusLocked() uint8 {
	v := uint8(kbdStatUnlock) | k.cb&kbdCBSys
	if k.obf {
		v |= kbdStatOBF
	}
	if k.lastCmd {
		v |= kbdStatCmd
	}
	return v
}

// readData returns the output buffer and empties it. With nothing new it
// returns the stale byte again, as the real latch does.
func (k *I8042) readData() uint8 {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.obf = false
	return k.out
}

// respond: mu held. A single-byte buffer: a newer response replaces an
// unread one, so the state stays bounded whatever the guest does.
func (k *I8042) respond(v uint8) {
	k.out = v
	k.obf = true
}

// command handles a write to 0x64 and reports whether to reset.
func (k *I8042) command(c uint8) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastCmd = true
	k.pending = 0 // a new command abandons one still waiting for data
	switch {
	case c == kbdCmdReadCB:
		k.respond(k.cb)
	case c == kbdCmdWriteCB, c == kbdCmdWriteOutPrt:
		k.pending = c
	case c == kbdCmdDisableAux:
		k.cb |= kbdCBDisableAux
	case c == kbdCmdEnableAux:
		k.cb &^= kbdCBDisableAux
	case c == kbdCmdDisableKbd:
		k.cb |= kbdCBDisableKbd
	case c == kbdCmdEnableKbd:
		k.cb &^= kbdCBDisableKbd
	case c == kbdCmdSelfTest:
		k.cb |= kbdCBSys
		k.respond(kbdSelfTestOK)
	case c == kbdCmdReadOutPort:
		k.respond(k.outPort)
	case c >= kbdCmdPulseBase:
		// Bits 0-3 select lines to pulse low; line 0 is CPU reset. 0xfe is
		// the classic "reboot"; any even value in 0xf0-0xfe pulses it too.
		return c&1 == 0
	}
	return false
}

// writeData handles a write to 0x60 and reports whether to reset.
func (k *I8042) writeData(v uint8) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.lastCmd = false
	p := k.pending
	k.pending = 0
	switch p {
	case kbdCmdWriteCB:
		k.cb = v
	case kbdCmdWriteOutPrt:
		k.outPort = v
		// Output port bit 0 drives the CPU reset line, active low.
		return v&1 == 0
	}
	// Otherwise a byte for the keyboard, which is absent: dropped.
	return false
}

func (k *I8042) reset() {
	if k.resetDone.CompareAndSwap(false, true) && k.onReset != nil {
		k.onReset()
	}
}
