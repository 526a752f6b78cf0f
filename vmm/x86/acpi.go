package x86

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/memory"
)

// ACPI 6.3 structure sizes, revisions and field values (ACPI Specification
// 6.3, chapter 5.2). The tables claim 6.3 throughout: it is the first
// revision whose MADT (revision 5) defines the Online Capable bit, so a
// Local APIC flags value of just "Enabled" is unambiguous, and its FADT
// layout (276 bytes) is the one every 6.x revision uses.
const (
	acpiHeaderSize = 36 // system description table header (5.2.6)

	rsdpSize        = 36 // ACPI 2.0+ RSDP (5.2.5.3)
	rsdpChecksumLen = 20 // the ACPI 1.0 part the first checksum covers
	rsdpRevision    = 2  // 2: has Length, XsdtAddress, extended checksum

	rsdtRevision = 1
	xsdtRevision = 1

	fadtSize          = 276 // FADT revision 6 (5.2.9, table 5-33)
	fadtRevision      = 6
	fadtMinorRevision = 3 // bits 0-3 minor (6.3), bits 4-7 errata 0

	dsdtRevision = 2 // >= 2: AML integers are 64-bit (5.2.11.1)

	madtRevision     = 5  // ACPI 6.3
	madtHeaderSize   = 44 // header + Local Interrupt Controller Address + Flags
	madtLAPICSize    = 8  // Processor Local APIC structure (type 0)
	madtIOAPICSize   = 12 // I/O APIC structure (type 1)
	madtLAPICNMISize = 6  // Local APIC NMI structure (type 4)

	madtTypeLAPIC    = 0
	madtTypeIOAPIC   = 1
	madtTypeLAPICNMI = 4

	madtPCATCompat   = 1 << 0 // MADT Flags: a dual 8259 is present
	madtLAPICEnabled = 1 << 0 // Local APIC Flags: processor is usable

	// madtAllProcessors as the ACPI Processor UID of a Local APIC NMI
	// structure means "every processor".
	madtAllProcessors = 0xFF
	madtNMILINT       = 1 // NMI is wired to LINT1, as in the MP table

	acpiOEMRevision     = 1
	acpiCreatorRevision = 1

	// acpiTableAlign keeps every table on a 16-byte boundary: the RSDP
	// must be on one (the OS scans 16-byte steps), the other tables need
	// only byte alignment, and one rule for all keeps the layout obvious.
	acpiTableAlign = 16
)

// FADT fields (ACPI 6.3, table 5-33): byte offsets and the values written.
const (
	fadtOffDSDT       = 40
	fadtOffSCIInt     = 46
	fadtOffCentury    = 108
	fadtOffBootArch   = 109 // IAPC_BOOT_ARCH
	fadtOffFlags      = 112
	fadtOffMinor      = 131
	fadtOffXDSDT      = 140
	fadtOffHypervisor = 268 // Hypervisor Vendor Identity (6.0+)

	// Flags. HW_REDUCED_ACPI is the point of the table: govmm has no PM1
	// event/control blocks, PM timer, GPE blocks, SMI command port or
	// FACS, and with this bit set the OS touches none of them (ACPICA
	// skips the SCI handler, fixed events, GPEs and the global lock, and
	// needs no FACS). The other bits say what is true of the machine and
	// keep Linux from inventing devices:
	//
	//   WBINVD     the vCPUs implement WBINVD (KVM emulates it with the
	//              required effect on coherent guest memory).
	//   PWR_BUTTON no fixed-feature power button; a control-method one
	//              would be in the DSDT, and there is none. Clear, Linux's
	//              acpi_bus_scan_fixed would register an LNXPWRBN device.
	//   SLP_BUTTON the same for the sleep button (LNXSLPBN).
	//   FIX_RTC    no RTC wake status in fixed register space (so
	//              rtc-cmos does not ask ACPICA for the fixed RTC event).
	fadtFlagWBINVD    = 1 << 0
	fadtFlagPwrButton = 1 << 4
	fadtFlagSlpButton = 1 << 5
	fadtFlagFixRTC    = 1 << 6
	fadtFlagHWReduced = 1 << 20
	fadtFlags         = fadtFlagWBINVD | fadtFlagPwrButton | fadtFlagSlpButton | fadtFlagFixRTC | fadtFlagHWReduced

	// IAPC_BOOT_ARCH.
	//
	//   LEGACY_DEVICES set: COM1 at 0x3F8 and the CMOS RTC are ISA-style
	//              devices the OS cannot enumerate without the DSDT
	//              (Linux uses the bit only to allow 32-bit PnP BIOS
	//              probing, which finds nothing).
	//   8042       clear, deliberately: govmm's i8042 exists only for its
	//              reset line and has no keyboard or mouse. Linux's i8042
	//              driver (i8042-acpipnpio.h, i8042_pnp_init) finds no
	//              PNP0303/PNP0F13 in the DSDT and then probes the ports
	//              directly only if this bit is set; with it clear it
	//              stops at "PNP: No PS/2 controller found". Probing would
	//              not work anyway: in HW-reduced mode Linux has no legacy
	//              PIC and no ISA IRQ mapping, so request_irq(1) fails.
	//              Reboot does not depend on the bit or the driver:
	//              arch/x86/kernel/reboot.c writes 0xFE to port 0x64
	//              itself, both for reboot=k and as the fallback after
	//              ACPI reset (there is no FADT reset register).
	//   VGA Not Present  set: there is no VGA; Linux must not probe it.
	//   MSI Not Supported set: there is no PCI and govmm routes no MSIs
	//              (clear it when a PCI host bridge arrives).
	//   CMOS RTC Not Present clear: devices.CMOS is at 0x70/0x71.
	bootArchLegacyDevices = 1 << 0
	bootArchNoVGA         = 1 << 2
	bootArchNoMSI         = 1 << 3
	fadtBootArch          = bootArchLegacyDevices | bootArchNoVGA | bootArchNoMSI

	// fadtCentury is the CMOS index of the BCD century byte, where
	// devices.CMOS keeps it (index 0x32, the PC/AT and ACPI convention);
	// Linux's mc146818_get_time reads the century from it.
	fadtCentury = 0x32
)

// SCIGSI is the GSI named as SCI_INT in the FADT. A HW-reduced platform has
// no SCI and the spec tells the OS to ignore the field, and Linux >= 4.16
// does (acpi_parse_madt_ioapic_entries skips its default SCI set-up on
// HW-reduced platforms; ACPICA never installs the handler). Older kernels
// still record the SCI GSI as level-triggered, active-low, so the field
// names a GSI that no device uses: 0 would be read as IRQ 0 (the PIT) and
// reprogram the timer's pin. No device may be given this GSI. The MADT
// carries no Interrupt Source Override for it (or for anything): an
// override whose source equals SCI_INT is taken as the SCI's, by every
// Linux version (acpi_parse_int_src_ovr).
const SCIGSI = 9

var (
	acpiOEMID        = [6]byte{'G', 'O', 'V', 'M', 'M', ' '}
	acpiOEMTableID   = [8]byte{'G', 'O', 'V', 'M', 'M', 'V', 'M', ' '}
	acpiCreatorID    = [4]byte{'G', 'O', 'V', 'M'}
	acpiHypervisorID = [8]byte{'G', 'O', 'V', 'M', 'M', ' ', ' ', ' '}
)

// acpiLayout is where each table sits, as offsets from memory.ACPIAddr.
type acpiLayout struct {
	xsdt, rsdt, fadt, dsdt, madt int
	dsdtSize, madtSize           int
	size                         int // total bytes
}

func alignUp(n, a int) int { return (n + a - 1) / a * a }

// acpiTablesLayout places the RSDP first (at memory.ACPIAddr, where the
// scan starts) and the tables behind it; dsdtBody is the length of the
// DSDT's AML.
func acpiTablesLayout(numCPUs, dsdtBody int) acpiLayout {
	var l acpiLayout
	next := func(size int) int {
		off := alignUp(l.size, acpiTableAlign)
		l.size = off + size
		return off
	}
	next(rsdpSize)
	l.xsdt = next(acpiHeaderSize + 8*2) // FADT, MADT
	l.rsdt = next(acpiHeaderSize + 4*2)
	l.fadt = next(fadtSize)
	l.dsdtSize = acpiHeaderSize + dsdtBody
	l.dsdt = next(l.dsdtSize)
	l.madtSize = madtHeaderSize + numCPUs*madtLAPICSize + madtIOAPICSize + madtLAPICNMISize
	l.madt = next(l.madtSize)
	return l
}

// The RSDT holds 32-bit table addresses; this constant expression does
// not compile if the reservation ever moves above 4 GiB.
const _ = uint32(memory.ACPIAddr + memory.ACPIMax - 1)

// ACPITablesSize reports how many bytes WriteACPITables writes at
// memory.ACPIAddr for numCPUs processors and the virtio-mmio devices
// virtio, or an error if numCPUs is out of range, a device cannot be
// described (ErrBadVirtioMMIO) or the tables would not fit in
// memory.ACPIMax.
func ACPITablesSize(numCPUs int, virtio []VirtioMMIO) (int, error) {
	l, _, err := acpiPlan(numCPUs, virtio)
	return l.size, err
}

// acpiPlan validates the inputs and lays the tables out around the DSDT's
// AML, which it returns.
func acpiPlan(numCPUs int, virtio []VirtioMMIO) (acpiLayout, []byte, error) {
	if numCPUs < 1 || numCPUs > MaxVCPUs {
		return acpiLayout{}, nil, fmt.Errorf("%w: %d vCPUs, want 1..%d", ErrBadCPUCount, numCPUs, MaxVCPUs)
	}
	if err := checkVirtioMMIO(virtio); err != nil {
		return acpiLayout{}, nil, err
	}
	aml := dsdtAML(virtio)
	l := acpiTablesLayout(numCPUs, len(aml))
	if l.size > memory.ACPIMax {
		// Cannot happen with today's constants (254 CPUs and the most
		// devices checkVirtioMMIO allows need under 5 KiB); the check
		// keeps a future change of MaxVCPUs or the layout honest.
		return acpiLayout{}, nil, fmt.Errorf("x86: ACPI tables for %d vCPUs and %d virtio-mmio devices need %d bytes, %d reserved",
			numCPUs, len(virtio), l.size, memory.ACPIMax)
	}
	return l, aml, nil
}

// VirtioMMIO is one virtio-mmio transport as the DSDT describes it: its
// register window and the GSI its interrupt arrives on.
type VirtioMMIO struct {
	Base uint64 // guest-physical start of the register window
	Size uint64 // window length in bytes
	// GSI is the I/O APIC input the device signals. The description says
	// edge-triggered, active high: the VMM raises it through a KVM irqfd
	// without a resample fd, and KVM injects that as a pulse (line high,
	// then low at once), an edge. A level-triggered pin would be wrong
	// for it: a pulse that came while the previous interrupt was still
	// unacknowledged (remote IRR set) would be lost, because the line is
	// low again by the EOI.
	GSI uint32
}

// ErrBadVirtioMMIO reports a virtio-mmio device the ACPI tables cannot
// describe: a window outside the 32-bit MMIO hole or overlapping another,
// or a GSI that is not an I/O APIC pin, is taken, or is used twice.
var ErrBadVirtioMMIO = errors.New("x86: virtio-mmio device cannot be described in ACPI")

// IOAPICPins is how many inputs KVM's in-kernel I/O APIC has
// (KVM_IOAPIC_NUM_PINS), GSIs 0..23 as the MADT describes them.
const IOAPICPins = 24

// MaxVirtioMMIO bounds the device list: names VR00..VR99.
const MaxVirtioMMIO = 100

// reservedGSI are the pins a virtio-mmio device may not have: the PIT (0),
// the 8259 cascade (2), COM1, the RTC and the SCI named in the FADT.
var reservedGSI = map[uint32]string{
	0: "the PIT", 2: "the 8259 cascade", devices.SerialCOM1IRQ: "COM1", rtcIRQ: "the RTC", SCIGSI: "the SCI",
}

func checkVirtioMMIO(virtio []VirtioMMIO) error {
	if len(virtio) > MaxVirtioMMIO {
		return fmt.Errorf("%w: %d devices, at most %d", ErrBadVirtioMMIO, len(virtio), MaxVirtioMMIO)
	}
	gsis := map[uint32]int{}
	for i, d := range virtio {
		// Memory32Fixed: the window lies below 4 GiB, and in the MMIO
		// hole, where nothing is RAM. Overflow-safe: Base is checked
		// against the hole before Size is subtracted from its end.
		if d.Size == 0 || d.Base < memory.MMIOHoleStart || d.Base >= memory.MMIOHoleEnd ||
			d.Size > memory.MMIOHoleEnd-d.Base {
			return fmt.Errorf("%w: device %d: window %#x+%#x is not inside the MMIO hole [%#x, %#x)",
				ErrBadVirtioMMIO, i, d.Base, d.Size, uint64(memory.MMIOHoleStart), uint64(memory.MMIOHoleEnd))
		}
		for j, o := range virtio[:i] {
			if d.Base < o.Base+o.Size && o.Base < d.Base+d.Size {
				return fmt.Errorf("%w: device %d: window %#x+%#x overlaps device %d's", ErrBadVirtioMMIO, i, d.Base, d.Size, j)
			}
		}
		if d.GSI >= IOAPICPins {
			return fmt.Errorf("%w: device %d: GSI %d is not an I/O APIC pin (0..%d)", ErrBadVirtioMMIO, i, d.GSI, IOAPICPins-1)
		}
		if what, ok := reservedGSI[d.GSI]; ok {
			return fmt.Errorf("%w: device %d: GSI %d belongs to %s", ErrBadVirtioMMIO, i, d.GSI, what)
		}
		if j, ok := gsis[d.GSI]; ok {
			return fmt.Errorf("%w: devices %d and %d both use GSI %d", ErrBadVirtioMMIO, j, i, d.GSI)
		}
		gsis[d.GSI] = i
	}
	return nil
}

// WriteACPITables writes a minimal HW-reduced ACPI 6.3 table set at
// memory.ACPIAddr: an RSDP, an XSDT and an RSDT listing the FADT and the
// MADT, a FADT pointing at the DSDT, a DSDT naming COM1 and the CMOS RTC
// with their IRQs and each virtio-mmio device of virtio, in order, with
// its window and GSI (see dsdtAML for why), and a MADT describing numCPUs
// processors (APIC IDs and ACPI processor UIDs 0..numCPUs-1, all enabled),
// one I/O APIC (ID numCPUs at memory.IOAPICBase, GSIs from 0) and the NMI
// on LINT1 of every local APIC. It returns the RSDP's guest-physical
// address, which a loader may also hand over explicitly
// (boot_params.acpi_rsdp_addr, hvm_start_info.rsdp_paddr).
//
// Without that, Linux finds the RSDP itself: ACPICA's acpi_find_root_pointer
// scans the first KiB of the EBDA (the BDA's pointer at 0x40E is zero here,
// so that is skipped) and then [0xE0000, 0x100000) in 16-byte steps for
// "RSD PTR " with valid checksums. memory.ACPIAddr is the start of that
// window and lies in the area the boot memory map marks reserved, so the
// guest never reuses the tables as RAM.
//
// Interrupt wiring is the MP table's (see WriteMPTable): KVM's default
// routing connects GSI n to I/O APIC pin n, the PIT included, and ACPI
// assumes exactly that identity mapping for ISA IRQs without Interrupt
// Source Overrides, so there are none. In particular there is no IRQ 0 ->
// GSI 2 override (the PC convention), which would send the timer to a pin
// nothing drives.
//
// Everything is built in one buffer and written with one bounds-checked
// write, so an error leaves guest RAM untouched.
func WriteACPITables(mem *memory.Guest, numCPUs int, virtio []VirtioMMIO) (rsdp uint64, err error) {
	if mem == nil {
		return 0, errors.New("x86: WriteACPITables: nil guest memory")
	}
	l, aml, err := acpiPlan(numCPUs, virtio)
	if err != nil {
		return 0, err
	}
	b := make([]byte, l.size)
	le := binary.LittleEndian
	const base = memory.ACPIAddr
	addr := func(off int) uint64 { return base + uint64(off) }

	// MADT (5.2.12).
	madt := b[l.madt : l.madt+l.madtSize]
	putACPIHeader(madt, "APIC", madtRevision)
	le.PutUint32(madt[36:40], memory.LAPICBase)
	// KVM's in-kernel irqchip has the 8259 pair. Linux >= 6.x then skips
	// probing for it; in HW-reduced mode it uses no legacy PIC anyway.
	le.PutUint32(madt[40:44], madtPCATCompat)
	off := madtHeaderSize
	for id := 0; id < numCPUs; id++ {
		e := madt[off : off+madtLAPICSize]
		e[0] = madtTypeLAPIC
		e[1] = madtLAPICSize
		e[2] = byte(id) // ACPI processor UID
		e[3] = byte(id) // APIC ID == KVM vCPU id
		le.PutUint32(e[4:8], madtLAPICEnabled)
		off += madtLAPICSize
	}
	{
		e := madt[off : off+madtIOAPICSize]
		e[0] = madtTypeIOAPIC
		e[1] = madtIOAPICSize
		e[2] = byte(numCPUs) // outside the CPU IDs, as in the MP table
		// e[3] reserved
		le.PutUint32(e[4:8], memory.IOAPICBase)
		le.PutUint32(e[8:12], 0) // GSI base: pins 0..23 are GSIs 0..23
		off += madtIOAPICSize
	}
	{
		e := madt[off : off+madtLAPICNMISize]
		e[0] = madtTypeLAPICNMI
		e[1] = madtLAPICNMISize
		e[2] = madtAllProcessors
		le.PutUint16(e[3:5], 0) // MPS INTI flags: conforms to the bus
		e[5] = madtNMILINT
		off += madtLAPICNMISize
	}
	if off != l.madtSize {
		// The layout and the writer disagree: a bug here, not bad input.
		return 0, fmt.Errorf("x86: MADT writer produced %d bytes, sized %d", off, l.madtSize)
	}
	sealACPITable(madt)

	// DSDT (5.2.11.1).
	dsdt := b[l.dsdt : l.dsdt+l.dsdtSize]
	putACPIHeader(dsdt, "DSDT", dsdtRevision)
	copy(dsdt[acpiHeaderSize:], aml)
	sealACPITable(dsdt)

	// FADT (5.2.9). Everything not set is zero: no FACS (optional on
	// HW-reduced platforms), no PM1/PM2/PM timer/GPE blocks, no SMI
	// command port (the machine is always in ACPI mode), no reset
	// register, no sleep control/status registers (so no ACPI S5
	// power-off: Linux's acpi_sleep_state_supported requires them on
	// HW-reduced platforms), Preferred_PM_Profile 0 (unspecified), no
	// day/month alarm.
	fadt := b[l.fadt : l.fadt+fadtSize]
	putACPIHeader(fadt, "FACP", fadtRevision)
	// Both the 32-bit and the 64-bit DSDT pointer, equal: ACPI 2.0+
	// readers take X_DSDT, 1.0 readers DSDT, and ACPICA warns only when
	// both are set and differ.
	le.PutUint32(fadt[fadtOffDSDT:], uint32(addr(l.dsdt)))
	le.PutUint16(fadt[fadtOffSCIInt:], SCIGSI)
	fadt[fadtOffCentury] = fadtCentury
	le.PutUint16(fadt[fadtOffBootArch:], fadtBootArch)
	le.PutUint32(fadt[fadtOffFlags:], fadtFlags)
	fadt[fadtOffMinor] = fadtMinorRevision
	le.PutUint64(fadt[fadtOffXDSDT:], addr(l.dsdt))
	copy(fadt[fadtOffHypervisor:], acpiHypervisorID[:])
	sealACPITable(fadt)

	// XSDT and RSDT (5.2.8, 5.2.7): the same two tables. The DSDT is
	// reached through the FADT only, as the spec says.
	entries := []int{l.fadt, l.madt}
	xsdt := b[l.xsdt : l.xsdt+acpiHeaderSize+8*len(entries)]
	putACPIHeader(xsdt, "XSDT", xsdtRevision)
	rsdt := b[l.rsdt : l.rsdt+acpiHeaderSize+4*len(entries)]
	putACPIHeader(rsdt, "RSDT", rsdtRevision)
	for i, t := range entries {
		le.PutUint64(xsdt[acpiHeaderSize+8*i:], addr(t))
		le.PutUint32(rsdt[acpiHeaderSize+4*i:], uint32(addr(t)))
	}
	sealACPITable(xsdt)
	sealACPITable(rsdt)

	// RSDP (5.2.5.3).
	r := b[0:rsdpSize]
	copy(r[0:8], "RSD PTR ")
	// r[8] checksum of bytes 0..19, below.
	copy(r[9:15], acpiOEMID[:])
	r[15] = rsdpRevision
	le.PutUint32(r[16:20], uint32(addr(l.rsdt)))
	le.PutUint32(r[20:24], rsdpSize)
	le.PutUint64(r[24:32], addr(l.xsdt))
	// r[32] extended checksum of all 36 bytes, r[33:36] reserved.
	r[8] = checksum(r[:rsdpChecksumLen])
	r[32] = checksum(r)

	if err := mem.Write(base, b); err != nil {
		return 0, fmt.Errorf("x86: writing the ACPI tables at %#x: %w", uint64(base), err)
	}
	return base, nil
}

// putACPIHeader fills the common header of table t (whose length is
// len(t)), leaving the checksum zero for sealACPITable.
func putACPIHeader(t []byte, sig string, rev byte) {
	le := binary.LittleEndian
	copy(t[0:4], sig)
	le.PutUint32(t[4:8], uint32(len(t)))
	t[8] = rev
	// t[9] checksum
	copy(t[10:16], acpiOEMID[:])
	// The OEM Table ID is the same in every table: the spec asks the
	// FADT's to match the RSDT's, and one machine model is one ID.
	copy(t[16:24], acpiOEMTableID[:])
	le.PutUint32(t[24:28], acpiOEMRevision)
	copy(t[28:32], acpiCreatorID[:])
	le.PutUint32(t[32:36], acpiCreatorRevision)
}

// sealACPITable sets the header checksum so the whole table sums to zero.
// It must be the last write to t.
func sealACPITable(t []byte) { t[9] = checksum(t) }

// dsdtAML is the DSDT's definition block: the legacy ISA devices that raise
// interrupts and the virtio-mmio devices, described so the OS can map their
// interrupts.
//
// HW-reduced ACPI costs the OS its legacy interrupt assumptions: Linux
// (acpi_generic_reduced_hw_init) then runs with no legacy PIC, so
// nr_legacy_irqs() is 0, the I/O APIC's interrupt domain is dynamic and
// no ISA IRQ is identity-mapped to a GSI (mp_config_acpi_legacy_irqs maps
// none). A driver that asks for a hard-wired IRQ number, such as the 8250
// legacy port table's IRQ 4, the rtc_cmos platform device's IRQ 8 or a
// virtio_mmio.device=...:<irq> command-line device, finds no such
// interrupt (request_irq fails with -EINVAL, and opening ttyS0 with it). A
// device in the namespace with the interrupt in its _CRS is mapped
// instead: the ACPI scan registers the GSI (acpi_register_gsi, with the
// trigger and polarity the descriptor gives) and the driver (8250_pnp,
// rtc-cmos, virtio_mmio) gets a working IRQ. So:
//
//	Scope (\_SB) {
//	  Device (COM1) { _HID PNP0501, _UID 1,
//	                  _CRS { IO 0x3F8-0x3FF, IRQ 4 edge active-high } }
//	  Device (RTC)  { _HID PNP0B00,
//	                  _CRS { IO 0x70-0x71, IRQ 8 edge active-high } }
//	  Device (VR00) { _HID "LNRO0005", _UID 0,             // one per device
//	                  _CRS { Memory32Fixed (ReadWrite, Base, Size),
//	                         Interrupt (ResourceConsumer, Edge, ActiveHigh,
//	                                    Exclusive) { GSI } } }
//	}
//
// LNRO0005 is the ACPI ID Linux's virtio_mmio driver matches
// (virtio_mmio_acpi_match; FreeBSD's and NetBSD's virtio-mmio drivers
// match it too); QEMU (virtio_acpi_dsdt_add) and Firecracker
// (add_virtio_aml) describe their virtio-mmio devices the same way. The
// interrupt is an Extended Interrupt descriptor, not the small IRQ one:
// Linux takes its trigger and polarity as given, without the legacy-IRQ
// override logic, and it can carry any GSI. The devices come in the
// VMM's order, which is the order Linux's ACPI scan creates their platform
// devices and virtio_mmio probes them, so the first --disk becomes vda.
// No _CCA: x86 Linux assumes DMA is coherent without one
// (ACPI_CCA_REQUIRED is an arm64 option). No _STA: the devices are always
// present. The VMM also names the devices on the kernel command line; why
// both, see vmm's virtioCmdline.
//
// The i8042 is deliberately absent (see IAPC_BOOT_ARCH's 8042 bit above).
func dsdtAML(virtio []VirtioMMIO) []byte {
	devs := [][]byte{
		amlDevice("COM1",
			amlName("_HID", amlEISAID("PNP0501")),
			amlName("_UID", []byte{amlOneOp}),
			amlName("_CRS", amlResources(
				amlIOPort(devices.SerialCOM1Port, devices.SerialPorts),
				amlIRQ(devices.SerialCOM1IRQ),
			)),
		),
		amlDevice("RTC_",
			amlName("_HID", amlEISAID("PNP0B00")),
			amlName("_CRS", amlResources(
				amlIOPort(devices.CMOSIndexPort, 2), // index and data port
				amlIRQ(rtcIRQ),
			)),
		),
	}
	for i, d := range virtio {
		devs = append(devs, amlDevice(fmt.Sprintf("VR%02d", i),
			amlName("_HID", amlString(virtioMMIOHID)),
			amlName("_UID", amlInteger(uint64(i))),
			amlName("_CRS", amlResources(
				amlMemory32Fixed(uint32(d.Base), uint32(d.Size)),
				amlExtInterrupt(d.GSI),
			)),
		))
	}
	return amlScope(`\_SB_`, devs...)
}

// virtioMMIOHID is the ACPI hardware ID of a virtio-mmio transport
// (Linaro's "LNRO" vendor prefix, device 0005).
const virtioMMIOHID = "LNRO0005"

// rtcIRQ is the MC146818's ISA IRQ. devices.CMOS never raises it (Linux's
// rtc-cmos works without it), but rtc-cmos requests it at probe and fails
// the probe if it cannot have it.
const rtcIRQ = 8

// AML encoding (ACPI 6.3, chapter 20) and resource descriptors (6.4.2
// small, 6.4.3 large). Only what dsdtAML needs; names are constants of
// this file and values are checked before (checkVirtioMMIO), so the
// encoders check nothing at run time, and the test decodes the result
// independently.
const (
	amlZeroOp      = 0x00
	amlOneOp       = 0x01
	amlNameOp      = 0x08
	amlByteConst   = 0x0A
	amlWordConst   = 0x0B
	amlDWordConst  = 0x0C
	amlStringOp    = 0x0D
	amlQWordConst  = 0x0E
	amlScopeOp     = 0x10
	amlBufferOp    = 0x11
	amlExtOpPrefix = 0x5B
	amlDeviceOp    = 0x82 // after amlExtOpPrefix

	resIOPort   = 0x47 // small item 0x08, 7 bytes follow
	resIODecode = 0x01 // 16-bit address decode
	resIRQ      = 0x22 // small item 0x04, 2 bytes: high-true, edge, exclusive
	resEndTag   = 0x79 // small item 0x0F, 1 byte: checksum (0: none)

	resMemory32Fixed    = 0x86 // large item 0x06, 9 bytes follow
	resMemory32FixedLen = 9
	resMemReadWrite     = 1 << 0 // information byte: writable
	resExtIRQ           = 0x89   // large item 0x09: Extended Interrupt
	resExtIRQLen        = 6      // flags, table length, one DWORD
	resExtIRQConsumer   = 1 << 0 // flags: the device consumes it (Linux: a GSI)
	resExtIRQEdge       = 1 << 1 // flags: edge-triggered (0: level)
	// Active high is bit 2 clear, exclusive bit 3 clear, not a wake
	// source bit 4 clear.
)

// amlPkgLength encodes the PkgLength of a package whose contents after
// the PkgLength are n bytes long. The value counts the PkgLength bytes
// themselves; one byte holds up to 63, longer forms carry the low nibble
// in the lead byte and 8 more bits per following byte.
func amlPkgLength(n int) []byte {
	if n+1 <= 0x3F {
		return []byte{byte(n + 1)}
	}
	for extra := 1; extra <= 3; extra++ {
		v := n + 1 + extra
		if v < 1<<(4+8*extra) {
			out := []byte{byte(extra<<6) | byte(v&0x0F)}
			for i := 0; i < extra; i++ {
				out = append(out, byte(v>>(4+8*i)))
			}
			return out
		}
	}
	// 2^28 bytes of AML: unreachable for the constant tables here.
	return nil
}

func amlPackage(op []byte, parts ...[]byte) []byte {
	var body []byte
	for _, p := range parts {
		body = append(body, p...)
	}
	out := append(append([]byte{}, op...), amlPkgLength(len(body))...)
	return append(out, body...)
}

// amlScope and amlDevice take a NameString: a NameSeg, or a RootChar
// followed by one, as written.
func amlScope(name string, terms ...[]byte) []byte {
	return amlPackage([]byte{amlScopeOp}, append([][]byte{[]byte(name)}, terms...)...)
}

func amlDevice(name string, terms ...[]byte) []byte {
	return amlPackage([]byte{amlExtOpPrefix, amlDeviceOp}, append([][]byte{[]byte(name)}, terms...)...)
}

func amlName(seg string, value []byte) []byte {
	return append(append([]byte{amlNameOp}, seg...), value...)
}

// amlInteger encodes an integer constant in its shortest form.
func amlInteger(v uint64) []byte {
	switch {
	case v == 0:
		return []byte{amlZeroOp}
	case v == 1:
		return []byte{amlOneOp}
	case v <= 0xFF:
		return []byte{amlByteConst, byte(v)}
	case v <= 0xFFFF:
		return binary.LittleEndian.AppendUint16([]byte{amlWordConst}, uint16(v))
	case v <= 0xFFFF_FFFF:
		return binary.LittleEndian.AppendUint32([]byte{amlDWordConst}, uint32(v))
	default:
		return binary.LittleEndian.AppendUint64([]byte{amlQWordConst}, v)
	}
}

// amlString encodes a String constant (ASCII, NUL-terminated).
func amlString(s string) []byte {
	return append(append([]byte{amlStringOp}, s...), 0)
}

// amlEISAID encodes a 7-character PNP ID the way ASL's EisaId() does: three
// letters in 5 bits each ("A" = 1) and four hex digits, big-endian, stored
// as a DWordConst.
func amlEISAID(id string) []byte {
	hex := func(c byte) uint16 {
		if c >= 'A' {
			return uint16(c-'A') + 10
		}
		return uint16(c - '0')
	}
	v := uint16(id[0]-'@')<<10 | uint16(id[1]-'@')<<5 | uint16(id[2]-'@')
	w := hex(id[3])<<12 | hex(id[4])<<8 | hex(id[5])<<4 | hex(id[6])
	return []byte{amlDWordConst, byte(v >> 8), byte(v), byte(w >> 8), byte(w)}
}

// amlResources is a ResourceTemplate: a Buffer of descriptors closed by an
// End Tag.
func amlResources(descs ...[]byte) []byte {
	var data []byte
	for _, d := range descs {
		data = append(data, d...)
	}
	data = append(data, resEndTag, 0)
	return amlPackage([]byte{amlBufferOp}, amlInteger(uint64(len(data))), data)
}

// amlIOPort is a fixed 16-bit-decoded I/O range of n ports at base.
func amlIOPort(base uint16, n byte) []byte {
	return []byte{resIOPort, resIODecode, byte(base), byte(base >> 8), byte(base), byte(base >> 8), 1, n}
}

// amlIRQ is an ISA IRQ, active-high and edge-triggered: what the 16550A
// and the MC146818 signal, and what KVM's default routing delivers on the
// I/O APIC pin of the same number.
func amlIRQ(irq uint) []byte {
	m := uint16(1) << irq
	return []byte{resIRQ, byte(m), byte(m >> 8)}
}

// amlMemory32Fixed is a fixed, read-write 32-bit memory window.
func amlMemory32Fixed(base, size uint32) []byte {
	b := []byte{resMemory32Fixed, resMemory32FixedLen, 0, resMemReadWrite}
	b = binary.LittleEndian.AppendUint32(b, base)
	return binary.LittleEndian.AppendUint32(b, size)
}

// amlExtInterrupt is an Extended Interrupt descriptor for one GSI the device
// consumes: edge-triggered, active high, exclusive, no wake, no resource
// source (see VirtioMMIO.GSI for why edge).
func amlExtInterrupt(gsi uint32) []byte {
	b := []byte{resExtIRQ, resExtIRQLen, 0, resExtIRQConsumer | resExtIRQEdge, 1}
	return binary.LittleEndian.AppendUint32(b, gsi)
}
