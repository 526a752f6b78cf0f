package x86

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govmm/govmm/memory"
)

// MaxVCPUs is the most vCPUs this package describes. xAPIC IDs are 8 bits
// and 0xFF is the broadcast ID, and the I/O APIC needs an ID that no CPU
// has (it gets NumVCPUs), so 0..253 are CPUs and 254 is the I/O APIC.
const MaxVCPUs = 254

// ErrBadCPUCount reports a vCPU count or vCPU ID outside what this package
// can describe.
var ErrBadCPUCount = errors.New("x86: invalid vCPU count or id")

// Intel MultiProcessor Specification 1.4, chapter 4 ("MP Configuration
// Table"): structure sizes, entry types and field values.
const (
	mpFloatSize   = 16 // MP floating pointer structure, 1 paragraph
	mpHeaderSize  = 44 // MP configuration table header
	mpProcSize    = 20 // processor entry (type 0)
	mpOtherSize   = 8  // bus, I/O APIC, I/O and local interrupt entries
	mpSpecRev     = 4  // spec revision 1.4
	mpEntryProc   = 0
	mpEntryBus    = 1
	mpEntryIOAPIC = 2
	mpEntryIOInt  = 3
	mpEntryLInt   = 4

	mpCPUEnabled = 1 << 0 // processor entry flags: EN
	mpCPUBSP     = 1 << 1 // BP: the bootstrap processor

	mpIOAPICEnabled = 1 << 0

	mpIntINT    = 0 // vectored interrupt, vector from the APIC
	mpIntNMI    = 1
	mpIntExtINT = 3 // vector from the 8259 PIC

	// mpAllLAPICs as the destination of a local interrupt entry means
	// "every local APIC".
	mpAllLAPICs = 0xFF

	// LAPICVersion is what KVM's in-kernel local APIC reports in its
	// version register (an integrated xAPIC, 0x14). Linux compares the MP
	// table's value with 0x10 to tell an integrated APIC from an external
	// 82489DX, so it must not be lower.
	LAPICVersion = 0x14
	// IOAPICVersion is the version KVM's in-kernel I/O APIC reports (0x11,
	// the 82093AA's).
	IOAPICVersion = 0x11

	// ISAIRQs is how many ISA interrupt lines the table assigns.
	ISAIRQs = 16

	mpBusISA = 0 // bus id of the only bus
)

// mpCPUSignature and mpCPUFeatures fill the processor entries' signature
// fields. The MP table is written once for the whole VM, before CPUID is
// settled per vCPU, and Linux ignores both fields (it reads the CPU's own
// CPUID), so they are a fixed, generic value rather than a copy of the
// host's signature: family 6, model 0, stepping 0, and the two features an
// MP system must have, FPU (bit 0) and an on-chip APIC (bit 9).
const (
	mpCPUSignature = 6 << 8
	mpCPUFeatures  = 1<<0 | 1<<9
)

var (
	mpOEMID      = [8]byte{'G', 'O', 'V', 'M', 'M', ' ', ' ', ' '}
	mpProductID  = [12]byte{'M', 'I', 'C', 'R', 'O', 'V', 'M', ' ', ' ', ' ', ' ', ' '}
	mpBusTypeISA = [6]byte{'I', 'S', 'A', ' ', ' ', ' '}
)

// mpTableSize is the byte size of the floating pointer plus the
// configuration table for numCPUs processors.
func mpTableSize(numCPUs int) int {
	return mpFloatSize + mpHeaderSize + numCPUs*mpProcSize + mpOtherSize*mpOtherEntries
}

// mpOtherEntries counts the 8-byte entries: one bus, one I/O APIC, the ISA
// IRQs, and the two local interrupt entries (ExtINT, NMI).
const mpOtherEntries = 1 + 1 + ISAIRQs + 2

// MPTableSize reports how many bytes WriteMPTable writes at
// memory.MPTableAddr for numCPUs processors, or an error if numCPUs is out
// of range or the table would not fit in memory.MPTableMax.
func MPTableSize(numCPUs int) (int, error) {
	if numCPUs < 1 || numCPUs > MaxVCPUs {
		return 0, fmt.Errorf("%w: %d vCPUs, want 1..%d", ErrBadCPUCount, numCPUs, MaxVCPUs)
	}
	n := mpTableSize(numCPUs)
	if n > memory.MPTableMax {
		// Cannot happen with today's constants (254 CPUs need 5300 bytes);
		// the check keeps a future change of MaxVCPUs or the layout honest.
		return 0, fmt.Errorf("x86: MP table for %d vCPUs needs %d bytes, %d reserved", numCPUs, n, memory.MPTableMax)
	}
	return n, nil
}

// WriteMPTable writes an MP Spec 1.4 floating pointer at memory.MPTableAddr
// and the configuration table right behind it, describing numCPUs
// processors (APIC IDs 0..numCPUs-1, vCPU 0 the bootstrap processor), one
// ISA bus, one I/O APIC (ID numCPUs at memory.IOAPICBase) and the interrupt
// wiring of KVM's in-kernel irqchip.
//
// The floating pointer lands at 0x9FC00, the start of the last KiB of base
// memory, one of the three places Linux's mpparse (and any MP-conformant
// OS) searches. memory.MPTableAddr lies in the area the boot memory map
// marks reserved, so the guest never reuses it as RAM.
//
// Interrupt wiring: KVM's default GSI routing, installed by
// KVM_CREATE_IRQCHIP, connects GSI n to I/O APIC pin n for n = 0..23 and
// GSIs 0..15 also to the 8259 pair, and KVM's PIT raises GSI 0. So ISA IRQ
// n is assigned to I/O APIC pin n, IRQ 0 included: not the PC convention of
// timer on pin 2 (which ACPI expresses as an interrupt source override), as
// that would send the guest to a pin nothing drives. Linux's check_timer
// takes the timer pin from the table. ExtINT (the 8259's output) is a
// local interrupt on LINT0 and NMI on LINT1 of every local APIC, the
// virtual-wire wiring that KVM's LAPIC emulation models; the floating
// pointer's IMCRP bit stays clear (no IMCR, virtual wire mode).
//
// The I/O APIC ID numCPUs is outside the CPU ID range, so the guest's
// APIC ID space has no collision. KVM's I/O APIC register holds only a
// 4-bit ID, so the register and the table disagree beyond 15 CPUs; that is
// harmless because 64-bit Linux and 32-bit Linux on xAPIC-version LAPICs
// use the table's ID as a name only and never reprogram the register.
func WriteMPTable(mem *memory.Guest, numCPUs int) error {
	if mem == nil {
		return errors.New("x86: WriteMPTable: nil guest memory")
	}
	size, err := MPTableSize(numCPUs)
	if err != nil {
		return err
	}
	b := make([]byte, size)
	le := binary.LittleEndian
	const cfgAddr = memory.MPTableAddr + mpFloatSize

	// Floating pointer structure (MP spec 4.1).
	copy(b[0:4], "_MP_")
	le.PutUint32(b[4:8], cfgAddr) // physical address of the config table
	b[8] = 1                      // length in 16-byte paragraphs
	b[9] = mpSpecRev
	// b[10] checksum, below. b[11] = 0: a configuration table is present
	// (non-zero would select a default configuration instead). b[12] = 0:
	// IMCRP clear, virtual wire mode. b[13:16] reserved.
	b[10] = checksum(b[0:mpFloatSize])

	cfg := b[mpFloatSize:]
	// Entries first, so the header can carry their count and length.
	off := mpHeaderSize
	count := 0
	put := func(n int) []byte {
		e := cfg[off : off+n]
		off += n
		count++
		return e
	}
	for id := 0; id < numCPUs; id++ {
		e := put(mpProcSize)
		e[0] = mpEntryProc
		e[1] = byte(id) // local APIC ID == KVM vCPU id
		e[2] = LAPICVersion
		e[3] = mpCPUEnabled
		if id == 0 {
			// vCPU 0 is the one the VMM starts; the others wait for
			// INIT/SIPI in KVM's LAPIC.
			e[3] |= mpCPUBSP
		}
		le.PutUint32(e[4:8], mpCPUSignature)
		le.PutUint32(e[8:12], mpCPUFeatures)
		// e[12:20] reserved
	}
	{
		e := put(mpOtherSize)
		e[0] = mpEntryBus
		e[1] = mpBusISA
		copy(e[2:8], mpBusTypeISA[:])
	}
	ioapicID := byte(numCPUs)
	{
		e := put(mpOtherSize)
		e[0] = mpEntryIOAPIC
		e[1] = ioapicID
		e[2] = IOAPICVersion
		e[3] = mpIOAPICEnabled
		le.PutUint32(e[4:8], memory.IOAPICBase)
	}
	for irq := 0; irq < ISAIRQs; irq++ {
		e := put(mpOtherSize)
		e[0] = mpEntryIOInt
		e[1] = mpIntINT
		// e[2:4] flags 0: polarity and trigger mode conform to the bus
		// (ISA: active high, edge), which is what KVM's PIT and the
		// legacy devices signal.
		e[4] = mpBusISA
		e[5] = byte(irq)
		e[6] = ioapicID
		e[7] = byte(irq) // INTIN# == GSI, KVM's default routing
	}
	for _, l := range []struct{ typ, lint byte }{{mpIntExtINT, 0}, {mpIntNMI, 1}} {
		e := put(mpOtherSize)
		e[0] = mpEntryLInt
		e[1] = l.typ
		e[4] = mpBusISA
		e[5] = 0
		e[6] = mpAllLAPICs
		e[7] = l.lint
	}
	if off != len(cfg) {
		// The size arithmetic and the writer disagree: a bug here, not
		// bad input. Fail rather than hand the guest a short table.
		return fmt.Errorf("x86: MP table writer produced %d bytes, sized %d", off, len(cfg))
	}

	// Configuration table header (MP spec 4.2).
	copy(cfg[0:4], "PCMP")
	le.PutUint16(cfg[4:6], uint16(len(cfg))) // base table length
	cfg[6] = mpSpecRev
	// cfg[7] checksum, below.
	copy(cfg[8:16], mpOEMID[:])
	copy(cfg[16:28], mpProductID[:])
	// cfg[28:32] OEM table pointer, cfg[32:34] OEM table size: none.
	le.PutUint16(cfg[34:36], uint16(count))
	le.PutUint32(cfg[36:40], memory.LAPICBase)
	// cfg[40:42] extended table length, cfg[42] its checksum: no
	// extended entries. cfg[43] reserved.
	cfg[7] = checksum(cfg)

	if err := mem.Write(memory.MPTableAddr, b); err != nil {
		return fmt.Errorf("x86: writing the MP table at %#x: %w", memory.MPTableAddr, err)
	}
	return nil
}

// checksum returns the byte that makes the sum of b plus it 0 mod 256,
// given that b's checksum byte is still zero.
func checksum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return -s
}
