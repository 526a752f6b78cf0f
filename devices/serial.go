package devices

import (
	"io"
	"sync"
)

// COM1 wiring on a PC.
const (
	SerialCOM1Port = 0x3f8 // base I/O port
	SerialPorts    = 8     // registers occupy [base, base+8)
	SerialCOM1IRQ  = 4     // ISA IRQ line
	// SerialRxMax bounds host->guest bytes buffered in the UART. It stands
	// in for the 16-byte FIFO plus the host side: input beyond it is dropped,
	// counted, and flagged to the guest as an overrun (LSR.OE).
	SerialRxMax = 64 << 10
)

// Register offsets (DLAB = LCR bit 7 selects DLL/DLM at 0 and 1).
const (
	uartRBR = 0 // read: receiver buffer; write: THR; DLAB: DLL
	uartIER = 1 // DLAB: DLM
	uartIIR = 2 // read: IIR; write: FCR
	uartLCR = 3
	uartMCR = 4
	uartLSR = 5
	uartMSR = 6
	uartSCR = 7
)

const (
	ierRDA  = 0x01 // ERBFI: received data available
	ierTHRE = 0x02 // ETBEI: transmitter holding register empty
	ierRLS  = 0x04 // ELSI: receiver line status
	ierMS   = 0x08 // EDSSI: modem status
	ierMask = 0x0f // 16550A: bits 4-7 read as 0

	iirNoInt = 0x01
	iirMS    = 0x00
	iirTHRE  = 0x02
	iirRDA   = 0x04
	iirRLS   = 0x06
	iirFIFO  = 0xc0 // both bits set when FCR.0 enabled the FIFOs

	fcrEnable  = 0x01
	fcrClearRX = 0x02
	fcrClearTX = 0x04
	fcrTrigger = 0xc0

	lcrDLAB = 0x80

	mcrDTR  = 0x01
	mcrRTS  = 0x02
	mcrOUT1 = 0x04
	mcrOUT2 = 0x08
	mcrLoop = 0x10
	mcrMask = 0x1f // 16550A: bits 5-7 read as 0

	lsrDR     = 0x01
	lsrOE     = 0x02
	lsrErrors = 0x1e // OE|PE|FE|BI: what raises a line-status interrupt
	lsrTHRE   = 0x20
	lsrTEMT   = 0x40

	msrDCTS  = 0x01
	msrDDSR  = 0x02
	msrTERI  = 0x04
	msrDDCD  = 0x08
	msrCTS   = 0x10
	msrDSR   = 0x20
	msrRI    = 0x40
	msrDCD   = 0x80
	msrDelta = 0x0f

	// With no real modem, the lines read as a connected, ready peer. Like
	// QEMU's: so drivers and gettys that wait for carrier or CTS proceed.
	msrIdle = msrDCD | msrDSR | msrCTS
)

// SerialStats are counters for the host side, for logs and tests.
type SerialStats struct {
	TxBytes     uint64 // bytes the guest transmitted and out accepted
	WriteErrors uint64 // out.Write calls that failed or wrote short (the byte is lost)
	RxBytes     uint64 // bytes queued for the guest (Input and loopback)
	RxDropped   uint64 // bytes dropped: buffer full, or Input during loopback
	RxPending   int    // bytes queued and not yet read by the guest
	IRQErrors   uint64 // IRQ SetLevel failures (retried at the next access)
}

// Serial is a 16550A UART. Transmission is immediate: a byte written to THR
// goes to out before Write returns, so LSR.THRE and LSR.TEMT always read 1.
//
// Not modelled, deliberately: baud timing, parity/framing errors and break,
// the character-timeout interrupt (IIR 0x0C; RDA is reported whenever data is
// buffered, regardless of the FIFO trigger level), and OUT2 gating of the
// interrupt line (the line follows IIR bit 0, as in QEMU; Linux always sets
// OUT2 on a port with an IRQ anyway).
//
// Threads: Read/Write come from vCPU threads, Input from a host reader
// goroutine, Stats/Flush from anywhere. mu serialises all of them.
//
// IRQ choice: the line is re-evaluated after every register access and
// every Input, and irq.SetLevel is called, with mu held, only when the level
// differs from the last one pushed. Holding mu keeps pushes in the order the
// levels were computed (releasing it first would let a vCPU and the input
// goroutine deliver stale levels out of order and leave the line wrong).
// This is fine because KVM_IRQ_LINE and irqfd writes are short and never
// call back into the Serial.
//
// Output: out.Write is also called with mu held, one byte per call, so out
// need not be goroutine-safe. A slow out stalls the writing vCPU, so the vmm
// should give a buffered writer (e.g. bufio.Writer over stdout) and call
// Serial.Flush at exit and whenever it wants output to appear; Flush takes
// mu, so it is safe against concurrent guest writes.
type Serial struct {
	mu sync.Mutex // guards everything below

	out io.Writer // never nil (io.Discard when given nil)
	irq IRQ       // never nil (NoIRQ when given nil)

	dll, dlm uint8
	ier      uint8 // only ierMask bits
	lcr      uint8
	mcr      uint8 // only mcrMask bits
	scr      uint8
	fcr      uint8 // fcrEnable|fcrTrigger bits only; the clear bits self-reset
	lsrErr   uint8 // sticky LSR error bits (only lsrOE is ever set); cleared by reading LSR
	msrDelta uint8 // MSR bits 0-3; cleared by reading MSR
	// threPending is the THRE interrupt latch: set when THR becomes empty
	// (after every transmitted byte) or when IER.ETBEI is turned on, cleared
	// by a THR write and by an IIR read that reports THRE.
	threPending bool

	// rx is a ring buffer: rxLen bytes starting at rxHead, rxLen <= SerialRxMax.
	rx     []byte
	rxHead int
	rxLen  int
	lastRx uint8 // RBR reads this when rx is empty, like the real holding register

	irqLevel bool // level last pushed successfully to irq
	txb      [1]byte
	stats    SerialStats
}

var _ Device = (*Serial)(nil)

// NewSerial returns a UART that writes guest output to out (nil discards)
// and drives irq (nil: NoIRQ). Register it at SerialCOM1Port, size SerialPorts.
func NewSerial(out io.Writer, irq IRQ) *Serial {
	if out == nil {
		out = io.Discard
	}
	if irq == nil {
		irq = NoIRQ{}
	}
	return &Serial{
		out: out,
		irq: irq,
		// Divisor 1 is 115200 baud; the guest reprograms it anyway and the
		// value has no effect here. Other registers reset to 0 as on the chip.
		dll: 0x01,
		rx:  make([]byte, SerialRxMax),
	}
}

// Read handles a guest read of register offset. Only 1-byte accesses exist.
func (s *Serial) Read(offset uint64, data []byte) error {
	if len(data) != 1 || offset >= SerialPorts {
		fillOnes(data)
		return ErrBadAccess
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	data[0] = s.readReg(offset)
	s.updateIRQ()
	return nil
}

// Write handles a guest write of register offset. Only 1-byte accesses exist.
func (s *Serial) Write(offset uint64, data []byte) error {
	if len(data) != 1 || offset >= SerialPorts {
		return ErrBadAccess
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writeReg(offset, data[0])
	s.updateIRQ()
	return nil
}

// Input queues host->guest bytes. Bytes beyond SerialRxMax buffered, and all
// bytes while the guest has the UART in loopback (the real chip disconnects
// its serial input then), are dropped and counted; an overflow also sets
// LSR.OE. Safe to call concurrently with register access.
func (s *Serial) Input(b []byte) {
	if len(b) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mcr&mcrLoop != 0 {
		s.stats.RxDropped += uint64(len(b))
		return
	}
	s.enqueue(b)
	s.updateIRQ()
}

// Stats returns a snapshot of the counters.
func (s *Serial) Stats() SerialStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.RxPending = s.rxLen
	return st
}

// Flush flushes out if it has a Flush() error method (bufio.Writer does);
// otherwise it does nothing. Serialised with guest writes.
func (s *Serial) Flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f, ok := s.out.(interface{ Flush() error }); ok {
		return f.Flush()
	}
	return nil
}

// readReg: mu held. Reads of RBR, IIR, LSR and MSR have side effects.
func (s *Serial) readReg(off uint64) uint8 {
	dlab := s.lcr&lcrDLAB != 0
	switch off {
	case uartRBR:
		if dlab {
			return s.dll
		}
		if s.rxLen > 0 {
			s.lastRx = s.rx[s.rxHead]
			s.rxHead = (s.rxHead + 1) % len(s.rx)
			s.rxLen--
		}
		return s.lastRx
	case uartIER:
		if dlab {
			return s.dlm
		}
		return s.ier
	case uartIIR:
		id := s.interruptID()
		if id == iirTHRE {
			// Reading IIR acknowledges a THRE interrupt (and only that one).
			s.threPending = false
		}
		if s.fcr&fcrEnable != 0 {
			id |= iirFIFO
		}
		return id
	case uartLCR:
		return s.lcr
	case uartMCR:
		return s.mcr
	case uartLSR:
		v := s.lsr()
		s.lsrErr = 0
		return v
	case uartMSR:
		v := s.modemLines() | s.msrDelta
		s.msrDelta = 0
		return v
	default: // uartSCR; offset was bounds-checked by the caller
		return s.scr
	}
}

// writeReg: mu held. Writes to LSR and MSR (factory test on real parts) are
// ignored.
func (s *Serial) writeReg(off uint64, v uint8) {
	dlab := s.lcr&lcrDLAB != 0
	switch off {
	case uartRBR:
		if dlab {
			s.dll = v
			return
		}
		s.transmit(v)
	case uartIER:
		if dlab {
			s.dlm = v
			return
		}
		old := s.ier
		s.ier = v & ierMask
		// Turning ETBEI on with THR empty (always, here) raises THRE at
		// once; Linux's start_tx and its UART_BUG_THRE probe rely on it.
		if s.ier&ierTHRE != 0 && old&ierTHRE == 0 {
			s.threPending = true
		} else if s.ier&ierTHRE == 0 {
			s.threPending = false
		}
	case uartIIR: // FCR
		s.writeFCR(v)
	case uartLCR:
		s.lcr = v
	case uartMCR:
		oldLines := s.modemLines()
		s.mcr = v & mcrMask
		s.noteModemChange(oldLines, s.modemLines())
	case uartSCR:
		s.scr = v
	}
}

// writeFCR: mu held. Per the 16550A datasheet, toggling FCR0 resets both
// FIFOs, and the other bits are only programmed while FCR0 is 1.
func (s *Serial) writeFCR(v uint8) {
	was := s.fcr&fcrEnable != 0
	if v&fcrEnable == 0 {
		if was {
			s.clearRX()
		}
		s.fcr = 0
		return
	}
	if !was || v&fcrClearRX != 0 {
		s.clearRX()
	}
	// fcrClearTX: the transmitter is always empty here; nothing to clear.
	s.fcr = v & (fcrEnable | fcrTrigger)
}

// transmit: mu held. Loopback feeds RX instead of out. Either way THR is
// empty again immediately, which re-arms the THRE interrupt as the real
// part does once the byte has shifted out.
func (s *Serial) transmit(v uint8) {
	s.threPending = false
	if s.mcr&mcrLoop != 0 {
		s.txb[0] = v
		s.enqueue(s.txb[:])
	} else {
		s.txb[0] = v
		n, err := s.out.Write(s.txb[:])
		if err != nil || n != 1 {
			s.stats.WriteErrors++
		} else {
			s.stats.TxBytes++
		}
	}
	s.threPending = true
}

// enqueue: mu held. Copies as much of b as fits; the rest is an overrun.
func (s *Serial) enqueue(b []byte) {
	free := len(s.rx) - s.rxLen
	n := min(free, len(b))
	tail := (s.rxHead + s.rxLen) % len(s.rx)
	c := copy(s.rx[tail:], b[:n])
	copy(s.rx, b[c:n])
	s.rxLen += n
	s.stats.RxBytes += uint64(n)
	if n < len(b) {
		s.stats.RxDropped += uint64(len(b) - n)
		s.lsrErr |= lsrOE
	}
}

// clearRX: mu held.
func (s *Serial) clearRX() {
	s.rxHead, s.rxLen = 0, 0
}

// lsr: mu held. THRE and TEMT are constant 1: output is immediate.
func (s *Serial) lsr() uint8 {
	v := uint8(lsrTHRE|lsrTEMT) | s.lsrErr
	if s.rxLen > 0 {
		v |= lsrDR
	}
	return v
}

// modemLines: mu held. The MSR status bits 4-7. In loopback they mirror
// MCR: CTS=RTS, DSR=DTR, RI=OUT1, DCD=OUT2.
func (s *Serial) modemLines() uint8 {
	if s.mcr&mcrLoop == 0 {
		return msrIdle
	}
	var v uint8
	if s.mcr&mcrRTS != 0 {
		v |= msrCTS
	}
	if s.mcr&mcrDTR != 0 {
		v |= msrDSR
	}
	if s.mcr&mcrOUT1 != 0 {
		v |= msrRI
	}
	if s.mcr&mcrOUT2 != 0 {
		v |= msrDCD
	}
	return v
}

// noteModemChange: mu held. Latches the MSR delta bits; TERI is set on the
// trailing (1 -> 0) edge of RI only.
func (s *Serial) noteModemChange(old, cur uint8) {
	ch := old ^ cur
	if ch&msrCTS != 0 {
		s.msrDelta |= msrDCTS
	}
	if ch&msrDSR != 0 {
		s.msrDelta |= msrDDSR
	}
	if ch&msrDCD != 0 {
		s.msrDelta |= msrDDCD
	}
	if old&msrRI != 0 && cur&msrRI == 0 {
		s.msrDelta |= msrTERI
	}
}

// interruptID: mu held. The IIR identification bits (0-3) by 16550A
// priority: line status > received data > THR empty > modem status.
// Returns iirNoInt when nothing enabled is pending.
func (s *Serial) interruptID() uint8 {
	switch {
	case s.ier&ierRLS != 0 && s.lsrErr&lsrErrors != 0:
		return iirRLS
	case s.ier&ierRDA != 0 && s.rxLen > 0:
		return iirRDA
	case s.ier&ierTHRE != 0 && s.threPending:
		return iirTHRE
	case s.ier&ierMS != 0 && s.msrDelta != 0:
		return iirMS
	}
	return iirNoInt
}

// updateIRQ: mu held. Pushes the line level when it changed. A failed push
// leaves irqLevel stale so the next access retries it.
func (s *Serial) updateIRQ() {
	high := s.interruptID() != iirNoInt
	if high == s.irqLevel {
		return
	}
	if err := s.irq.SetLevel(high); err != nil {
		s.stats.IRQErrors++
		return
	}
	s.irqLevel = high
}
