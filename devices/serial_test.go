package devices

import (
	"bufio"
	"bytes"
	"errors"
	"sync"
	"testing"
)

// sop is one step of a register-level script: a write of val, or a read
// whose result must equal want (after masking with mask, 0 meaning 0xff).
type sop struct {
	write bool
	off   uint64
	val   uint8 // written value, or expected read value
	mask  uint8
}

func w(off uint64, v uint8) sop        { return sop{write: true, off: off, val: v} }
func r(off uint64, want uint8) sop     { return sop{off: off, val: want} }
func rm(off uint64, want, m uint8) sop { return sop{off: off, val: want, mask: m} }

func runScript(t *testing.T, s *Serial, ops []sop) {
	t.Helper()
	for i, o := range ops {
		buf := []byte{o.val}
		if o.write {
			if err := s.Write(o.off, buf); err != nil {
				t.Fatalf("op %d: write %#x to %d: %v", i, o.val, o.off, err)
			}
			continue
		}
		if err := s.Read(o.off, buf); err != nil {
			t.Fatalf("op %d: read %d: %v", i, o.off, err)
		}
		m := o.mask
		if m == 0 {
			m = 0xff
		}
		if buf[0]&m != o.val {
			t.Fatalf("op %d: read reg %d = %#02x (mask %#02x), want %#02x", i, o.off, buf[0], m, o.val)
		}
	}
}

func TestSerialRegisters(t *testing.T) {
	tests := []struct {
		name string
		ops  []sop
	}{
		{"reset state", []sop{
			r(uartIER, 0), r(uartIIR, 0x01), r(uartLCR, 0), r(uartMCR, 0),
			r(uartLSR, lsrTHRE|lsrTEMT), r(uartMSR, msrIdle), r(uartSCR, 0),
		}},
		{"divisor latch round trip", []sop{
			w(uartLCR, 0x83), w(uartRBR, 0x0c), w(uartIER, 0x12),
			r(uartRBR, 0x0c), r(uartIER, 0x12), r(uartLCR, 0x83),
			// DLAB off: the same offsets are RBR/IER again and IER is untouched.
			w(uartLCR, 0x03), r(uartIER, 0x00),
			w(uartLCR, 0x80), r(uartRBR, 0x0c), r(uartIER, 0x12),
		}},
		{"divisor write does not transmit", []sop{
			w(uartLCR, 0x80), w(uartRBR, 'x'), w(uartLCR, 0), r(uartLSR, lsrTHRE|lsrTEMT),
		}},
		{"scratch", []sop{w(uartSCR, 0xa5), r(uartSCR, 0xa5), w(uartSCR, 0x5a), r(uartSCR, 0x5a)}},
		{"IER upper bits read as zero", []sop{w(uartIER, 0xff), r(uartIER, 0x0f)}},
		{"MCR upper bits read as zero", []sop{w(uartMCR, 0xef), r(uartMCR, 0x0f)}},
		{"LCR all bits", []sop{w(uartLCR, 0x7f), r(uartLCR, 0x7f)}},
		{"LSR after TX", []sop{w(uartRBR, 'a'), r(uartLSR, lsrTHRE|lsrTEMT), w(uartRBR, 'b'), r(uartLSR, lsrTHRE|lsrTEMT)}},
		{"LSR and MSR writes ignored", []sop{w(uartLSR, 0xff), w(uartMSR, 0x0f), r(uartLSR, 0x60), r(uartMSR, msrIdle)}},
		{"FIFO bits in IIR", []sop{
			w(uartIIR, 0x01), r(uartIIR, 0xc1),
			w(uartIIR, 0xc7), r(uartIIR, 0xc1),
			w(uartIIR, 0x00), r(uartIIR, 0x01),
			// FCR0 = 0: other bits are not programmed.
			w(uartIIR, 0xc6), r(uartIIR, 0x01),
		}},
		{"16750 probe sees a 16550A", []sop{
			// Linux autoconfig: 64-byte FIFO bit with and without DLAB; IIR>>5 must be 6 both times.
			w(uartLCR, 0), w(uartIIR, 0x21), rm(uartIIR, 0xc0, 0xe0),
			w(uartLCR, 0x80), w(uartIIR, 0x21), rm(uartIIR, 0xc0, 0xe0),
		}},
		{"Linux THRE probe", []sop{
			// serial8250_do_startup: IER=THRI, IIR; IER=0; IER=THRI, IIR.
			w(uartIER, ierTHRE), r(uartIIR, 0x02),
			w(uartIER, 0), w(uartIER, ierTHRE), r(uartIIR, 0x02),
			// Acknowledged: no longer pending.
			r(uartIIR, 0x01),
			w(uartIER, 0),
		}},
		{"loopback MSR mirrors MCR", []sop{
			// Linux autoconfig: MCR = LOOP|0x0a, MSR&0xf0 must be 0x90.
			w(uartMCR, mcrLoop|mcrRTS|mcrOUT2), rm(uartMSR, 0x90, 0xf0),
			w(uartMCR, mcrLoop|mcrDTR|mcrOUT1), rm(uartMSR, msrDSR|msrRI, 0xf0),
			w(uartMCR, 0), rm(uartMSR, msrIdle, 0xf0),
		}},
		{"MSR delta bits", []sop{
			// Idle (CTS|DSR|DCD) -> loop with nothing: all three change.
			w(uartMCR, mcrLoop), r(uartMSR, msrDCTS|msrDDSR|msrDDCD),
			r(uartMSR, 0),                                  // deltas clear on read
			w(uartMCR, mcrLoop|mcrOUT1), r(uartMSR, msrRI), // RI rising edge: no TERI
			w(uartMCR, mcrLoop), r(uartMSR, msrTERI), // trailing edge
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runScript(t, NewSerial(nil, nil), tc.ops)
		})
	}
}

func TestSerialTransmit(t *testing.T) {
	var out bytes.Buffer
	s := NewSerial(&out, nil)
	runScript(t, s, []sop{w(uartRBR, 'o'), w(uartRBR, 'k'), w(uartSCR, '!'), w(uartRBR, '\n')})
	if out.String() != "ok\n" {
		t.Fatalf("output %q", out.String())
	}
	if st := s.Stats(); st.TxBytes != 3 || st.WriteErrors != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSerialReceive(t *testing.T) {
	s := NewSerial(nil, nil)
	runScript(t, s, []sop{r(uartLSR, 0x60)})
	s.Input([]byte("hi"))
	s.Input(nil)
	runScript(t, s, []sop{
		r(uartLSR, 0x61), r(uartRBR, 'h'), r(uartLSR, 0x61), r(uartRBR, 'i'),
		r(uartLSR, 0x60), // DR clears with the last byte
		r(uartRBR, 'i'),  // empty: the holding register keeps its last byte
		r(uartLSR, 0x60),
	})
	if st := s.Stats(); st.RxBytes != 2 || st.RxDropped != 0 || st.RxPending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestSerialReceiveWrap pushes more than the ring holds through it in
// pieces, so reads cross the wrap point.
func TestSerialReceiveWrap(t *testing.T) {
	s := NewSerial(nil, nil)
	chunk := make([]byte, SerialRxMax/3+7)
	for round := range 8 {
		// The round number is mixed in because the ring size is a multiple of
		// 256: a plain counter would make stale bytes look right.
		for i := range chunk {
			chunk[i] = byte(i) ^ byte(round*37)
		}
		s.Input(chunk)
		for i, want := range chunk {
			b := []byte{0}
			if err := s.Read(uartRBR, b); err != nil || b[0] != want {
				t.Fatalf("round %d byte %d: got %#x, want %#x (%v)", round, i, b[0], want, err)
			}
		}
	}
	if st := s.Stats(); st.RxDropped != 0 || st.RxPending != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestSerialOverrun(t *testing.T) {
	irq := &CountingIRQ{}
	s := NewSerial(nil, irq)
	runScript(t, s, []sop{w(uartIER, ierRLS)})
	s.Input(make([]byte, SerialRxMax-1))
	if irq.Level() {
		t.Fatal("IRQ raised before any overrun")
	}
	s.Input([]byte{1, 2, 3})
	st := s.Stats()
	if st.RxDropped != 2 || st.RxPending != SerialRxMax {
		t.Fatalf("stats %+v", st)
	}
	if !irq.Level() {
		t.Fatal("overrun did not raise the line-status interrupt")
	}
	runScript(t, s, []sop{
		rm(uartIIR, iirRLS, 0x0f),
		r(uartLSR, lsrTHRE|lsrTEMT|lsrOE|lsrDR), // reading LSR clears OE...
		r(uartLSR, lsrTHRE|lsrTEMT|lsrDR),
		r(uartIIR, 0x01), // ...and with it the interrupt
	})
	if irq.Level() {
		t.Fatal("line still high after LSR read")
	}
}

func TestSerialFCRClearsRX(t *testing.T) {
	s := NewSerial(nil, nil)
	s.Input([]byte("abc"))
	runScript(t, s, []sop{w(uartIIR, fcrEnable), r(uartLSR, 0x60)}) // enabling resets FIFOs
	s.Input([]byte("abc"))
	runScript(t, s, []sop{w(uartIIR, fcrEnable), r(uartLSR, 0x61)}) // already enabled: kept
	runScript(t, s, []sop{w(uartIIR, fcrEnable|fcrClearRX), r(uartLSR, 0x60)})
	s.Input([]byte("abc"))
	runScript(t, s, []sop{w(uartIIR, 0), r(uartLSR, 0x60)}) // disabling resets too
}

func TestSerialInterruptPriority(t *testing.T) {
	irq := &CountingIRQ{}
	s := NewSerial(nil, irq)
	// Make every source pending at once: MSR delta via loopback, then leave
	// loopback so Input is accepted, RX data, an overrun, THRE.
	runScript(t, s, []sop{w(uartMCR, mcrLoop), w(uartMCR, 0)})
	s.Input(make([]byte, SerialRxMax+1))
	runScript(t, s, []sop{
		w(uartIER, ierRDA|ierTHRE|ierRLS|ierMS),
		r(uartIIR, iirRLS),
		r(uartIIR, iirRLS), // not acknowledged by reading IIR
		rm(uartLSR, lsrOE, lsrOE),
		r(uartIIR, iirRDA),
		w(uartIIR, fcrEnable|fcrClearRX),
		r(uartIIR, iirFIFO|iirTHRE),
		r(uartIIR, iirFIFO|iirMS), // THRE acknowledged by the read above
		rm(uartMSR, msrDCTS|msrDDSR|msrDDCD, msrDelta),
		r(uartIIR, iirFIFO|iirNoInt),
	})
	if irq.Level() {
		t.Fatal("line high with nothing pending")
	}
	if irq.Redundant() != 0 {
		t.Fatalf("%d redundant SetLevel calls", irq.Redundant())
	}
}

func TestSerialTHREInterrupt(t *testing.T) {
	irq := &CountingIRQ{}
	s := NewSerial(nil, irq)
	steps := []struct {
		op       sop
		wantHigh bool
	}{
		{w(uartIER, ierTHRE), true},  // enabling with THR empty raises at once
		{r(uartIIR, iirTHRE), false}, // IIR read acknowledges
		{r(uartIIR, iirNoInt), false},
		{w(uartRBR, 'x'), true}, // byte sent at once: THR empty again
		{r(uartLSR, 0x60), true},
		{w(uartIER, ierTHRE), true}, // rewriting the same IER does not re-arm or clear
		{r(uartIIR, iirTHRE), false},
		{w(uartIER, ierTHRE), false},
		{w(uartIER, 0), false},
		{w(uartRBR, 'y'), false}, // disabled: no interrupt
		{w(uartIER, ierTHRE), true},
		{w(uartIER, 0), false}, // disabling drops it
		{w(uartIER, ierTHRE), true},
	}
	for i, st := range steps {
		runScript(t, s, []sop{st.op})
		if irq.Level() != st.wantHigh {
			t.Fatalf("step %d (%+v): line %v, want %v", i, st.op, irq.Level(), st.wantHigh)
		}
	}
	// One raise per "true" entered from "false" in the table above.
	if irq.Raises() != 4 || irq.Lowers() != 3 || irq.Redundant() != 0 {
		t.Fatalf("raises %d lowers %d redundant %d", irq.Raises(), irq.Lowers(), irq.Redundant())
	}
}

func TestSerialRXInterrupt(t *testing.T) {
	irq := &CountingIRQ{}
	s := NewSerial(nil, irq)
	s.Input([]byte("a"))
	if irq.Calls() != 0 {
		t.Fatal("IRQ pushed while RX interrupt disabled")
	}
	runScript(t, s, []sop{w(uartIER, ierRDA)})
	if !irq.Level() {
		t.Fatal("enabling ERBFI with data queued did not raise")
	}
	s.Input([]byte("b")) // already high: no push
	runScript(t, s, []sop{r(uartIIR, iirRDA), r(uartRBR, 'a'), r(uartIIR, iirRDA)})
	if !irq.Level() {
		t.Fatal("dropped with data still queued")
	}
	runScript(t, s, []sop{r(uartRBR, 'b'), r(uartIIR, iirNoInt)})
	if irq.Level() || irq.Raises() != 1 || irq.Lowers() != 1 || irq.Redundant() != 0 {
		t.Fatalf("level %v raises %d lowers %d redundant %d", irq.Level(), irq.Raises(), irq.Lowers(), irq.Redundant())
	}
}

func TestSerialLoopback(t *testing.T) {
	var out bytes.Buffer
	irq := &CountingIRQ{}
	s := NewSerial(&out, irq)
	runScript(t, s, []sop{
		w(uartMCR, mcrLoop), w(uartIER, ierRDA),
		w(uartRBR, 'L'), r(uartLSR, 0x61), r(uartIIR, iirRDA), r(uartRBR, 'L'), r(uartLSR, 0x60),
	})
	s.Input([]byte("host")) // serial input is disconnected in loopback
	runScript(t, s, []sop{r(uartLSR, 0x60), w(uartMCR, 0), w(uartRBR, 'o')})
	if out.String() != "o" {
		t.Fatalf("output %q: loopback bytes leaked or normal bytes lost", out.String())
	}
	st := s.Stats()
	if st.RxDropped != 4 || st.RxBytes != 1 || st.TxBytes != 1 {
		t.Fatalf("stats %+v", st)
	}
	if irq.Raises() != 1 || irq.Lowers() != 1 {
		t.Fatalf("raises %d lowers %d", irq.Raises(), irq.Lowers())
	}
}

func TestSerialBadAccess(t *testing.T) {
	tests := []struct {
		name string
		off  uint64
		n    int
	}{
		{"2-byte", uartRBR, 2}, {"4-byte", uartLSR, 4}, {"empty", uartLSR, 0}, {"offset 8", 8, 1}, {"huge offset", ^uint64(0), 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			s := NewSerial(&out, nil)
			s.Input([]byte("z"))
			d := make([]byte, tc.n)
			if err := s.Read(tc.off, d); !errors.Is(err, ErrBadAccess) {
				t.Fatalf("read: %v", err)
			}
			if !bytes.Equal(d, bytes.Repeat([]byte{0xff}, tc.n)) {
				t.Fatalf("read data %x, want all ones", d)
			}
			if err := s.Write(tc.off, bytes.Repeat([]byte{'q'}, tc.n)); !errors.Is(err, ErrBadAccess) {
				t.Fatalf("write: %v", err)
			}
			if out.Len() != 0 || s.Stats().RxPending != 1 {
				t.Fatal("a rejected access had side effects")
			}
		})
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("host console gone")
}

type shortWriter struct{}

func (shortWriter) Write(p []byte) (int, error) { return 0, nil }

func TestSerialWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		out  interface{ Write([]byte) (int, error) }
	}{{"error", &failWriter{}}, {"short", shortWriter{}}} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewSerial(tc.out, nil)
			runScript(t, s, []sop{w(uartRBR, 'a'), w(uartRBR, 'b'), r(uartLSR, 0x60)})
			if st := s.Stats(); st.WriteErrors != 2 || st.TxBytes != 0 {
				t.Fatalf("stats %+v", st)
			}
		})
	}
}

func TestSerialIRQErrorRetried(t *testing.T) {
	irq := &CountingIRQ{}
	s := NewSerial(nil, irq)
	irq.FailWith(errors.New("KVM_IRQ_LINE: EBADF"))
	runScript(t, s, []sop{w(uartIER, ierTHRE)})
	if irq.Level() || s.Stats().IRQErrors != 1 {
		t.Fatalf("level %v stats %+v", irq.Level(), s.Stats())
	}
	irq.FailWith(nil)
	runScript(t, s, []sop{r(uartSCR, 0)}) // any access retries the push
	if !irq.Level() {
		t.Fatal("failed raise was not retried")
	}
}

func TestSerialFlush(t *testing.T) {
	var sink bytes.Buffer
	bw := bufio.NewWriter(&sink)
	s := NewSerial(bw, nil)
	runScript(t, s, []sop{w(uartRBR, 'h'), w(uartRBR, 'i')})
	if sink.Len() != 0 {
		t.Fatal("bufio flushed early; test is not testing Flush")
	}
	if err := s.Flush(); err != nil || sink.String() != "hi" {
		t.Fatalf("after Flush: %q, %v", sink.String(), err)
	}
	if err := NewSerial(nil, nil).Flush(); err != nil {
		t.Fatal(err)
	}
}

// TestSerialConcurrentInput races the host reader against a vCPU (run with -race).
func TestSerialConcurrentInput(t *testing.T) {
	irq := &CountingIRQ{}
	s := NewSerial(nil, irq)
	runScript(t, s, []sop{w(uartIER, ierRDA)})
	const total = 10000
	var wg sync.WaitGroup
	wg.Go(func() {
		for range total / 10 {
			s.Input([]byte("0123456789"))
		}
	})
	got := 0
	b := []byte{0}
	for got < total {
		if err := s.Read(uartLSR, b); err != nil {
			t.Fatal(err)
		}
		if b[0]&lsrDR != 0 {
			if err := s.Read(uartRBR, b); err != nil {
				t.Fatal(err)
			}
			if b[0] != '0'+byte(got%10) {
				t.Fatalf("byte %d = %q", got, b[0])
			}
			got++
		}
	}
	wg.Wait()
	if irq.Level() || irq.Redundant() != 0 {
		t.Fatalf("level %v redundant %d", irq.Level(), irq.Redundant())
	}
}
