package x86

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmm/govmm/memory"
)

// acpiTable is one table as an OS sees it after checking its header.
type acpiTable struct {
	addr uint64
	sig  string
	rev  byte
	data []byte // the whole table, Length bytes
}

// parsedACPI is what a reader modelled on ACPICA (tbxfroot.c, tbutils.c,
// tbfadt.c) and Linux's MADT parser (arch/x86/kernel/acpi/boot.c)
// extracts.
type parsedACPI struct {
	rsdpAddr uint64
	rsdp     []byte
	xsdt     []acpiTable // tables the XSDT lists
	rsdt     []acpiTable // tables the RSDT lists
	dsdt     acpiTable   // reached through the FADT's X_DSDT
	spans    []memory.Range

	// MADT contents.
	lapicAddr, madtFlags uint32
	cpus                 []madtCPU
	ioapics              []madtIOAPIC
	overrides            int
	nmis                 []madtNMI
}

type madtCPU struct {
	uid, apicID byte
	flags       uint32
}

type madtIOAPIC struct {
	id      byte
	addr    uint32
	gsiBase uint32
}

type madtNMI struct {
	uid   byte
	flags uint16
	lint  byte
}

// readTable reads a table's header at a, checks its length and checksum
// and returns the table, as ACPICA's acpi_tb_verify_temp_table does.
func readTable(g *memory.Guest, a uint64, p *parsedACPI) (acpiTable, error) {
	h := make([]byte, acpiHeaderSize)
	if err := g.Read(a, h); err != nil {
		return acpiTable{}, fmt.Errorf("table header at %#x: %w", a, err)
	}
	n := binary.LittleEndian.Uint32(h[4:8])
	if n < acpiHeaderSize || n > memory.ACPIMax {
		return acpiTable{}, fmt.Errorf("table %q at %#x: length %d", h[0:4], a, n)
	}
	t := acpiTable{addr: a, sig: string(h[0:4]), rev: h[8], data: make([]byte, n)}
	if err := g.Read(a, t.data); err != nil {
		return acpiTable{}, fmt.Errorf("table %q at %#x: %w", t.sig, a, err)
	}
	if s := sum(t.data); s != 0 {
		return acpiTable{}, fmt.Errorf("table %q at %#x: checksum: sum %#x", t.sig, a, s)
	}
	if !bytes.Equal(t.data[10:16], []byte("GOVMM ")) || !bytes.Equal(t.data[16:24], []byte("GOVMMVM ")) ||
		!bytes.Equal(t.data[28:32], []byte("GOVM")) {
		return acpiTable{}, fmt.Errorf("table %q: OEM id %q, table id %q, creator %q", t.sig, t.data[10:16], t.data[16:24], t.data[28:32])
	}
	p.spans = append(p.spans, memory.Range{Start: a, Size: uint64(n)})
	return t, nil
}

// readRoot reads an RSDT (entry size 4) or XSDT (8) and the tables it
// lists.
func readRoot(g *memory.Guest, a uint64, sig string, entSize int, p *parsedACPI) ([]acpiTable, error) {
	root, err := readTable(g, a, p)
	if err != nil {
		return nil, err
	}
	if root.sig != sig || root.rev != 1 {
		return nil, fmt.Errorf("root table at %#x: %q revision %d, want %q revision 1", a, root.sig, root.rev, sig)
	}
	body := root.data[acpiHeaderSize:]
	if len(body)%entSize != 0 {
		return nil, fmt.Errorf("%s: %d bytes of entries, not a multiple of %d", sig, len(body), entSize)
	}
	var out []acpiTable
	for i := 0; i < len(body); i += entSize {
		var ta uint64
		if entSize == 4 {
			ta = uint64(binary.LittleEndian.Uint32(body[i:]))
		} else {
			ta = binary.LittleEndian.Uint64(body[i:])
		}
		t, err := readTable(g, ta, p)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", sig, i/entSize, err)
		}
		out = append(out, t)
	}
	return out, nil
}

func findTable(ts []acpiTable, sig string) (acpiTable, bool) {
	for _, t := range ts {
		if t.sig == sig {
			return t, true
		}
	}
	return acpiTable{}, false
}

// parseACPI finds the RSDP the way ACPICA's acpi_find_root_pointer does
// when no address is handed over (the EBDA pointer at 0x40E is zero, so
// only the [0xE0000, 0x100000) window on 16-byte boundaries), checks both
// RSDP checksums, follows the XSDT and the RSDT, checks every table, and
// decodes the MADT.
func parseACPI(t *testing.T, g *memory.Guest) (parsedACPI, error) {
	t.Helper()
	var p parsedACPI
	le := binary.LittleEndian
	for a := uint64(0xE0000); a < 0x100000; a += 16 {
		b := make([]byte, rsdpSize)
		if err := g.Read(a, b); err != nil {
			return p, err
		}
		if string(b[0:8]) != "RSD PTR " || sum(b[:20]) != 0 {
			continue
		}
		if b[15] >= 2 && (le.Uint32(b[20:24]) != rsdpSize || sum(b) != 0) {
			continue // ACPICA rejects it and keeps scanning
		}
		p.rsdpAddr, p.rsdp = a, b
		break
	}
	if p.rsdp == nil {
		return p, errors.New("no valid RSDP in [0xE0000, 0x100000)")
	}
	if p.rsdp[15] != 2 || !bytes.Equal(p.rsdp[9:15], []byte("GOVMM ")) {
		return p, fmt.Errorf("RSDP revision %d, OEM %q", p.rsdp[15], p.rsdp[9:15])
	}
	p.spans = append(p.spans, memory.Range{Start: p.rsdpAddr, Size: rsdpSize})
	var err error
	if p.xsdt, err = readRoot(g, le.Uint64(p.rsdp[24:32]), "XSDT", 8, &p); err != nil {
		return p, err
	}
	if p.rsdt, err = readRoot(g, uint64(le.Uint32(p.rsdp[16:20])), "RSDT", 4, &p); err != nil {
		return p, err
	}
	fadt, ok := findTable(p.xsdt, "FACP")
	if !ok {
		return p, errors.New("XSDT lists no FACP")
	}
	if len(fadt.data) != fadtSize {
		return p, fmt.Errorf("FADT length %d, want %d", len(fadt.data), fadtSize)
	}
	x := le.Uint64(fadt.data[fadtOffXDSDT:])
	if p.dsdt, err = readTable(g, x, &p); err != nil {
		return p, fmt.Errorf("X_DSDT: %w", err)
	}
	if p.dsdt.sig != "DSDT" {
		return p, fmt.Errorf("X_DSDT points at %q", p.dsdt.sig)
	}
	madt, ok := findTable(p.xsdt, "APIC")
	if !ok {
		return p, errors.New("XSDT lists no APIC")
	}
	return p, p.parseMADT(madt.data)
}

// parseMADT walks the subtables the way Linux's acpi_parse_entries_array
// does, with BAD_MADT_ENTRY's check that each entry has exactly the size
// of its structure.
func (p *parsedACPI) parseMADT(m []byte) error {
	le := binary.LittleEndian
	if len(m) < madtHeaderSize {
		return fmt.Errorf("MADT length %d", len(m))
	}
	p.lapicAddr = le.Uint32(m[36:40])
	p.madtFlags = le.Uint32(m[40:44])
	want := map[byte]int{0: 8, 1: 12, 2: 10, 4: 6}
	for off := madtHeaderSize; off < len(m); {
		if off+2 > len(m) {
			return fmt.Errorf("MADT subtable header at %d overruns the table", off)
		}
		typ, n := m[off], int(m[off+1])
		if n == 0 || off+n > len(m) {
			return fmt.Errorf("MADT subtable type %d at %d: length %d", typ, off, n)
		}
		if w, known := want[typ]; !known || n != w {
			return fmt.Errorf("MADT subtable type %d at %d: length %d (known %v, want %d)", typ, off, n, known, w)
		}
		e := m[off : off+n]
		switch typ {
		case 0:
			p.cpus = append(p.cpus, madtCPU{uid: e[2], apicID: e[3], flags: le.Uint32(e[4:8])})
		case 1:
			p.ioapics = append(p.ioapics, madtIOAPIC{id: e[2], addr: le.Uint32(e[4:8]), gsiBase: le.Uint32(e[8:12])})
		case 2:
			p.overrides++
		case 4:
			p.nmis = append(p.nmis, madtNMI{uid: e[2], flags: le.Uint16(e[3:5]), lint: e[5]})
		}
		off += n
	}
	return nil
}

func TestWriteACPITables(t *testing.T) {
	for _, n := range []int{1, 2, 16, 253, 254} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := newLowGuest(t)
			// The MP table goes in first, as the loader writes both: the
			// ACPI tables must not disturb it.
			if err := WriteMPTable(g, n); err != nil {
				t.Fatal(err)
			}
			rsdp, err := WriteACPITables(g, n, nil)
			if err != nil {
				t.Fatalf("WriteACPITables: %v", err)
			}
			p, err := parseACPI(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if rsdp != p.rsdpAddr || rsdp != memory.ACPIAddr {
				t.Errorf("returned RSDP %#x, found at %#x, want %#x", rsdp, p.rsdpAddr, uint64(memory.ACPIAddr))
			}
			if _, err := parseMP(t, g); err != nil {
				t.Errorf("MP table after writing ACPI: %v", err)
			}

			// Both root tables list the same FACP and APIC, nothing else.
			for name, list := range map[string][]acpiTable{"XSDT": p.xsdt, "RSDT": p.rsdt} {
				var got []string
				for _, tb := range list {
					got = append(got, fmt.Sprintf("%s@%#x", tb.sig, tb.addr))
				}
				var want []string
				for _, tb := range p.xsdt {
					want = append(want, fmt.Sprintf("%s@%#x", tb.sig, tb.addr))
				}
				if len(got) != 2 || fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s lists %v, want FACP and APIC as in the XSDT %v", name, got, want)
				}
			}

			// Every table lies in the reservation, the reservation clear
			// of the MP table, and no two tables overlap.
			res := memory.Range{Start: memory.ACPIAddr, Size: memory.ACPIMax}
			mp := memory.Range{Start: memory.MPTableAddr, Size: memory.MPTableMax}
			seen := map[uint64]bool{}
			var distinct []memory.Range
			for _, s := range p.spans {
				if !seen[s.Start] {
					seen[s.Start] = true
					distinct = append(distinct, s)
				}
			}
			for i, s := range distinct {
				if s.Start < res.Start || s.End() > res.End() {
					t.Errorf("table at %#x+%d outside [%#x, %#x)", s.Start, s.Size, res.Start, res.End())
				}
				if s.Start < mp.End() && mp.Start < s.End() {
					t.Errorf("table at %#x+%d overlaps the MP table", s.Start, s.Size)
				}
				for _, o := range distinct[i+1:] {
					if s.Start < o.End() && o.Start < s.End() {
						t.Errorf("tables at %#x+%d and %#x+%d overlap", s.Start, s.Size, o.Start, o.Size)
					}
				}
			}

			checkFADT(t, p)

			if len(p.dsdt.data) < acpiHeaderSize || p.dsdt.rev != dsdtRevision {
				t.Errorf("DSDT length %d revision %d", len(p.dsdt.data), p.dsdt.rev)
			}

			// MADT.
			madt, _ := findTable(p.xsdt, "APIC")
			if madt.rev != madtRevision {
				t.Errorf("MADT revision %d", madt.rev)
			}
			if p.lapicAddr != memory.LAPICBase || p.madtFlags != madtPCATCompat {
				t.Errorf("MADT LAPIC address %#x flags %#x", p.lapicAddr, p.madtFlags)
			}
			if len(p.cpus) != n {
				t.Fatalf("%d Processor Local APIC entries, want %d", len(p.cpus), n)
			}
			ids := map[byte]bool{}
			uids := map[byte]bool{}
			for i, c := range p.cpus {
				if ids[c.apicID] || uids[c.uid] {
					t.Errorf("cpu %d: APIC id %d or UID %d twice", i, c.apicID, c.uid)
				}
				ids[c.apicID], uids[c.uid] = true, true
				if int(c.apicID) != i || int(c.uid) != i {
					t.Errorf("cpu %d: APIC id %d UID %d, want the vCPU id", i, c.apicID, c.uid)
				}
				// Linux ignores APIC id 0xFF; UID 0xFF means "all" in NMI entries.
				if c.apicID == 0xFF || c.uid == madtAllProcessors {
					t.Errorf("cpu %d: reserved id", i)
				}
				if c.flags != madtLAPICEnabled {
					t.Errorf("cpu %d: flags %#x, want Enabled only", i, c.flags)
				}
			}
			if len(p.ioapics) != 1 {
				t.Fatalf("%d I/O APICs", len(p.ioapics))
			}
			io := p.ioapics[0]
			if ids[io.id] || io.id == 0xFF || io.addr != memory.IOAPICBase || io.gsiBase != 0 {
				t.Errorf("I/O APIC %+v (CPU ids 0..%d)", io, n-1)
			}
			mpParsed, _ := parseMP(t, g)
			if len(mpParsed.ioapics) == 1 && mpParsed.ioapics[0].id != io.id {
				t.Errorf("I/O APIC id %d, the MP table says %d", io.id, mpParsed.ioapics[0].id)
			}
			// Identity ISA routing, so no overrides; in particular none
			// whose source equals SCI_INT (Linux would take it as the SCI's).
			if p.overrides != 0 {
				t.Errorf("%d Interrupt Source Overrides, want none", p.overrides)
			}
			if want := []madtNMI{{uid: madtAllProcessors, flags: 0, lint: 1}}; fmt.Sprint(p.nmis) != fmt.Sprint(want) {
				t.Errorf("Local APIC NMI entries %+v, want %+v", p.nmis, want)
			}

			size, err := ACPITablesSize(n, nil)
			if err != nil || size > memory.ACPIMax {
				t.Errorf("ACPITablesSize(%d) = %d, %v", n, size, err)
			}
		})
	}
}

// checkFADT checks the FADT fields the OS acts on.
func checkFADT(t *testing.T, p parsedACPI) {
	t.Helper()
	le := binary.LittleEndian
	fadt, _ := findTable(p.xsdt, "FACP")
	f := fadt.data
	if fadt.rev != 6 || f[fadtOffMinor] != 3 {
		t.Errorf("FADT %d.%d, want 6.3", fadt.rev, f[fadtOffMinor])
	}
	flags := le.Uint32(f[fadtOffFlags:])
	for _, c := range []struct {
		name string
		bit  uint32
		want bool
	}{
		{"WBINVD", 1 << 0, true},
		{"PWR_BUTTON (no fixed power button)", 1 << 4, true},
		{"SLP_BUTTON (no fixed sleep button)", 1 << 5, true},
		{"FIX_RTC", 1 << 6, true},
		{"RESET_REG_SUP", 1 << 10, false},
		{"HW_REDUCED_ACPI", 1 << 20, true},
	} {
		if got := flags&c.bit != 0; got != c.want {
			t.Errorf("FADT flag %s = %v, want %v", c.name, got, c.want)
		}
	}
	boot := le.Uint16(f[fadtOffBootArch:])
	for _, c := range []struct {
		name string
		bit  uint16
		want bool
	}{
		{"LEGACY_DEVICES", 1 << 0, true},
		{"8042", 1 << 1, false},
		{"VGA Not Present", 1 << 2, true},
		{"MSI Not Supported", 1 << 3, true},
		{"PCIe ASPM Controls", 1 << 4, false},
		{"CMOS RTC Not Present", 1 << 5, false},
	} {
		if got := boot&c.bit != 0; got != c.want {
			t.Errorf("IAPC_BOOT_ARCH %s = %v, want %v", c.name, got, c.want)
		}
	}
	if sci := le.Uint16(f[fadtOffSCIInt:]); sci != SCIGSI || sci == 0 {
		t.Errorf("SCI_INT %d, want %d", sci, SCIGSI)
	}
	if d32, d64 := le.Uint32(f[fadtOffDSDT:]), le.Uint64(f[fadtOffXDSDT:]); uint64(d32) != d64 || d64 != p.dsdt.addr {
		t.Errorf("DSDT %#x, X_DSDT %#x, DSDT found at %#x", d32, d64, p.dsdt.addr)
	}
	if f[fadtOffCentury] != 0x32 {
		t.Errorf("CENTURY %#x, want the CMOS century index 0x32", f[fadtOffCentury])
	}
	if !bytes.Equal(f[fadtOffHypervisor:fadtOffHypervisor+8], []byte("GOVMM   ")) {
		t.Errorf("hypervisor vendor %q", f[fadtOffHypervisor:fadtOffHypervisor+8])
	}
	// No FACS, no fixed-hardware register blocks, no reset or sleep
	// registers: all zero, so nothing sends the OS to an I/O port that
	// has no device behind it.
	for _, z := range []struct {
		name     string
		from, to int
	}{
		{"FIRMWARE_CTRL", 36, 40},
		{"SMI_CMD .. PM/GPE blocks and lengths, C-state latencies, alarms", 48, 108},
		{"RESET_REG, RESET_VALUE, ARM_BOOT_ARCH", 116, 131},
		{"X_FIRMWARE_CTRL", 132, 140},
		{"X_ register blocks, SLEEP_CONTROL/STATUS_REG", 148, 268},
	} {
		if !bytes.Equal(f[z.from:z.to], make([]byte, z.to-z.from)) {
			t.Errorf("FADT %s [%d, %d) not zero: % x", z.name, z.from, z.to, f[z.from:z.to])
		}
	}
}

func TestWriteACPITablesErrors(t *testing.T) {
	small, err := memory.FromSlices(map[uint64][]byte{0: make([]byte, 0x9F000)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		g     *memory.Guest
		n     int
		count bool // want ErrBadCPUCount
		rng   bool // want memory.ErrOutOfRange
	}{
		{"zero cpus", newLowGuest(t), 0, true, false},
		{"negative", newLowGuest(t), -1, true, false},
		{"255 cpus", newLowGuest(t), 255, true, false},
		{"huge", newLowGuest(t), 1 << 30, true, false},
		{"no RAM at 0xE0000", small, 1, false, true},
		{"nil guest", nil, 1, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rsdp, err := WriteACPITables(tc.g, tc.n, nil)
			if err == nil {
				t.Fatal("no error")
			}
			if rsdp != 0 {
				t.Errorf("RSDP %#x returned with an error", rsdp)
			}
			if got := errors.Is(err, ErrBadCPUCount); got != tc.count {
				t.Errorf("error %v: ErrBadCPUCount %v, want %v", err, got, tc.count)
			}
			if got := errors.Is(err, memory.ErrOutOfRange); got != tc.rng {
				t.Errorf("error %v: ErrOutOfRange %v, want %v", err, got, tc.rng)
			}
		})
	}
}

func TestWriteACPITablesShortRAMWritesNothing(t *testing.T) {
	// RAM that holds the RSDP but ends inside the tables behind it: the
	// write fails as a whole, leaving no RSDP that points at torn tables.
	ram := make([]byte, memory.ACPIAddr+100)
	g, err := memory.FromSlices(map[uint64][]byte{0: ram})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteACPITables(g, 4, nil); !errors.Is(err, memory.ErrOutOfRange) {
		t.Fatalf("WriteACPITables on short RAM: %v, want ErrOutOfRange", err)
	}
	if !bytes.Equal(ram[memory.ACPIAddr:], make([]byte, 100)) {
		t.Error("a failed WriteACPITables left bytes in guest RAM")
	}
}

func TestACPIReservation(t *testing.T) {
	// The largest machine: every CPU and as many devices as there are
	// free GSIs.
	n, err := ACPITablesSize(MaxVCPUs, maxVirtio())
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case n > memory.ACPIMax:
		t.Errorf("ACPI tables for %d CPUs and %d devices: %d bytes, %#x reserved", MaxVCPUs, len(maxVirtio()), n, memory.ACPIMax)
	case memory.ACPIAddr%16 != 0:
		t.Errorf("ACPIAddr %#x not on a 16-byte boundary: the RSDP scan would miss it", memory.ACPIAddr)
	case memory.ACPIAddr < 0xE0000 || memory.ACPIAddr+rsdpSize > 0x100000:
		t.Errorf("ACPIAddr %#x outside the RSDP scan window [0xE0000, 0x100000)", memory.ACPIAddr)
	case memory.ACPIAddr < memory.MPTableAddr+memory.MPTableMax:
		t.Errorf("ACPI reservation at %#x overlaps the MP table [%#x, %#x)", memory.ACPIAddr, memory.MPTableAddr, memory.MPTableAddr+memory.MPTableMax)
	case memory.ACPIAddr < memory.EBDAStart || memory.ACPIAddr+memory.ACPIMax > memory.HighMemStart:
		t.Errorf("ACPI reservation [%#x, %#x) outside the reserved legacy area", memory.ACPIAddr, memory.ACPIAddr+memory.ACPIMax)
	}
}

// decodePkgLength decodes an AML PkgLength (ACPI 6.3, 20.2.4): the value
// and how many bytes encode it.
func decodePkgLength(b []byte) (value, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errors.New("PkgLength: no bytes")
	}
	extra := int(b[0] >> 6)
	if extra == 0 {
		return int(b[0] & 0x3F), 1, nil
	}
	if b[0]&0x30 != 0 {
		return 0, 0, fmt.Errorf("PkgLength lead %#x: bits 4-5 must be zero", b[0])
	}
	if len(b) < 1+extra {
		return 0, 0, errors.New("PkgLength: truncated")
	}
	value = int(b[0] & 0x0F)
	for i := 0; i < extra; i++ {
		value |= int(b[1+i]) << (4 + 8*i)
	}
	return value, 1 + extra, nil
}

func TestAMLPkgLength(t *testing.T) {
	// Boundaries of the 1-, 2-, 3- and 4-byte forms.
	for _, tc := range []struct{ n, bytes int }{
		{0, 1}, {62, 1}, {63, 2}, {0xFFD, 2}, {0xFFE, 3}, {0xFFFFC, 3}, {0xFFFFD, 4}, {0xFFFFFFB, 4},
	} {
		enc := amlPkgLength(tc.n)
		v, used, err := decodePkgLength(enc)
		if err != nil || used != len(enc) || len(enc) != tc.bytes || v != tc.n+len(enc) {
			t.Errorf("amlPkgLength(%d) = % x: decodes to %d in %d bytes (%v), want %d in %d bytes",
				tc.n, enc, v, used, err, tc.n+tc.bytes, tc.bytes)
		}
	}
	if enc := amlPkgLength(0xFFFFFFC); enc != nil {
		t.Errorf("amlPkgLength(2^28-4) = % x, want nil (not encodable)", enc)
	}
}

// amlDevice as the test decodes it.
type amlDev struct {
	hid  string // decoded EISA ID, or the String
	uid  int    // -1: none
	io   [][2]int
	irqs []int    // small IRQ descriptors: edge, active high, exclusive
	mem  [][2]int // Memory32Fixed: base, length (read-write)
	gsis []extIRQ // Extended Interrupt descriptors
	name string   // the NameSeg, in namespace order
}

type extIRQ struct {
	gsi                                     int
	consumer, edge, activeLow, shared, wake bool
}

// decodeDSDT decodes the AML subset the DSDT uses, independently of the
// encoder: Scope(\_SB_) holding Devices whose Names are integers (EISA
// ID, Zero/One/ByteConst), Strings or resource templates. It returns the
// devices in namespace order.
func decodeDSDT(aml []byte) ([]amlDev, error) {
	if len(aml) < 1 || aml[0] != 0x10 {
		return nil, fmt.Errorf("AML starts % x, want a ScopeOp", aml[:min(len(aml), 4)])
	}
	v, n, err := decodePkgLength(aml[1:])
	if err != nil {
		return nil, err
	}
	if 1+v != len(aml) {
		return nil, fmt.Errorf("Scope PkgLength %d, AML after the opcode is %d bytes", v, len(aml)-1)
	}
	body := aml[1+n:]
	if string(body[:5]) != `\_SB_` {
		return nil, fmt.Errorf("Scope name %q", body[:5])
	}
	body = body[5:]
	var devs []amlDev
	for len(body) > 0 {
		if len(body) < 2 || body[0] != 0x5B || body[1] != 0x82 {
			return nil, fmt.Errorf("expected a DeviceOp, got % x", body[:min(len(body), 2)])
		}
		v, n, err := decodePkgLength(body[2:])
		if err != nil {
			return nil, err
		}
		if 2+v > len(body) {
			return nil, fmt.Errorf("Device PkgLength %d overruns the scope", v)
		}
		d := body[2+n : 2+v]
		body = body[2+v:]
		name := string(d[:4])
		if !validNameSeg(name) {
			return nil, fmt.Errorf("device name %q is not a NameSeg", name)
		}
		dev := amlDev{uid: -1, name: name}
		d = d[4:]
		for len(d) > 0 {
			if d[0] != 0x08 || len(d) < 6 {
				return nil, fmt.Errorf("%s: expected a NameOp, got % x", name, d[:min(len(d), 2)])
			}
			seg := string(d[1:5])
			d = d[5:]
			switch {
			case d[0] == 0x00 || d[0] == 0x01 || d[0] == 0x0A && len(d) >= 2: // Zero, One, ByteConst
				if seg != "_UID" || dev.uid != -1 {
					return nil, fmt.Errorf("%s.%s = integer %#x", name, seg, d[0])
				}
				if d[0] == 0x0A {
					if d[1] < 2 {
						return nil, fmt.Errorf("%s._UID: ByteConst %d, Zero/One would be shorter", name, d[1])
					}
					dev.uid, d = int(d[1]), d[2:]
				} else {
					dev.uid, d = int(d[0]), d[1:]
				}
			case d[0] == 0x0C && len(d) >= 5: // DWordConst: an EISA ID
				if seg != "_HID" || dev.hid != "" {
					return nil, fmt.Errorf("%s.%s is a DWord", name, seg)
				}
				v := int(d[1])<<8 | int(d[2])
				w := int(d[3])<<8 | int(d[4])
				dev.hid = fmt.Sprintf("%c%c%c%04X", '@'+byte(v>>10&31), '@'+byte(v>>5&31), '@'+byte(v&31), w)
				d = d[5:]
			case d[0] == 0x0D: // String: an ACPI ID
				if seg != "_HID" || dev.hid != "" {
					return nil, fmt.Errorf("%s.%s is a String", name, seg)
				}
				end := bytes.IndexByte(d[1:], 0)
				if end < 0 {
					return nil, fmt.Errorf("%s._HID: unterminated String", name)
				}
				dev.hid, d = string(d[1:1+end]), d[2+end:]
				// ACPI 6.3 6.1.5: an ACPI ID is four upper-case letters or
				// digits (vendor) and four hex digits.
				if !acpiIDPattern(dev.hid) {
					return nil, fmt.Errorf("%s._HID %q is not an ACPI ID", name, dev.hid)
				}
			case d[0] == 0x11: // BufferOp: a resource template
				if seg != "_CRS" {
					return nil, fmt.Errorf("%s.%s is a Buffer", name, seg)
				}
				v, n, err := decodePkgLength(d[1:])
				if err != nil {
					return nil, err
				}
				if 1+v > len(d) {
					return nil, fmt.Errorf("%s._CRS: Buffer PkgLength %d overruns the device", name, v)
				}
				buf := d[1+n : 1+v]
				d = d[1+v:]
				if buf[0] != 0x0A || int(buf[1]) != len(buf)-2 {
					return nil, fmt.Errorf("%s._CRS: buffer size % x for %d bytes", name, buf[:2], len(buf)-2)
				}
				if err := decodeResources(buf[2:], &dev); err != nil {
					return nil, fmt.Errorf("%s._CRS: %w", name, err)
				}
			default:
				return nil, fmt.Errorf("%s.%s: unexpected value % x", name, seg, d[:1])
			}
		}
		devs = append(devs, dev)
	}
	return devs, nil
}

func validNameSeg(s string) bool {
	if len(s) != 4 || !(s[0] == '_' || s[0] >= 'A' && s[0] <= 'Z') {
		return false
	}
	for i := 1; i < 4; i++ {
		if c := s[i]; !(c == '_' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func acpiIDPattern(s string) bool {
	if len(s) != 8 {
		return false
	}
	for i := 0; i < 8; i++ {
		c := s[i]
		ok := c >= '0' && c <= '9' || c >= 'A' && c <= 'F'
		if i < 4 {
			ok = c >= '0' && c <= '9' || c >= 'A' && c <= 'Z'
		}
		if !ok {
			return false
		}
	}
	return true
}

// decodeResources walks small (6.4.2) and large (6.4.3) resource
// descriptors up to the End Tag, which must be last.
func decodeResources(r []byte, dev *amlDev) error {
	le := binary.LittleEndian
	for len(r) > 0 {
		tag := r[0]
		if tag&0x80 != 0 { // large: 16-bit length follows
			if len(r) < 3 {
				return fmt.Errorf("large descriptor %#x: truncated header", tag)
			}
			n := int(le.Uint16(r[1:3]))
			if 3+n > len(r) {
				return fmt.Errorf("large descriptor %#x length %d overruns the buffer", tag, n)
			}
			d := r[3 : 3+n]
			r = r[3+n:]
			switch {
			case tag == 0x86 && n == 9: // Memory32Fixed
				if d[0] != 1 {
					return fmt.Errorf("Memory32Fixed information %#x, want read-write", d[0])
				}
				dev.mem = append(dev.mem, [2]int{int(le.Uint32(d[1:5])), int(le.Uint32(d[5:9]))})
			case tag == 0x89 && n >= 6: // Extended Interrupt
				f, count := d[0], int(d[1])
				if f&0xE0 != 0 {
					return fmt.Errorf("Extended Interrupt flags %#x: reserved bits set", f)
				}
				// Exactly the table, no ResourceSource after it (Linux's
				// is_gsi wants none).
				if count < 1 || n != 2+4*count {
					return fmt.Errorf("Extended Interrupt: %d interrupts in %d bytes", count, n)
				}
				for i := 0; i < count; i++ {
					dev.gsis = append(dev.gsis, extIRQ{gsi: int(le.Uint32(d[2+4*i:])),
						consumer: f&1 != 0, edge: f&2 != 0, activeLow: f&4 != 0, shared: f&8 != 0, wake: f&16 != 0})
				}
			default:
				return fmt.Errorf("unexpected large descriptor %#x length %d", tag, n)
			}
			continue
		}
		typ, n := tag>>3&0x0F, int(tag&7)
		if 1+n > len(r) {
			return fmt.Errorf("descriptor %#x overruns the buffer", tag)
		}
		d := r[1 : 1+n]
		r = r[1+n:]
		switch {
		case typ == 0x08 && n == 7: // I/O port
			lo, hi := int(d[1])|int(d[2])<<8, int(d[3])|int(d[4])<<8
			if d[0] != 1 || lo != hi {
				return fmt.Errorf("I/O descriptor % x: want 16-bit decode, fixed base", d)
			}
			dev.io = append(dev.io, [2]int{lo, int(d[6])})
		case typ == 0x04 && n == 2: // IRQ, implicitly edge, active-high, exclusive
			m := int(d[0]) | int(d[1])<<8
			for i := 0; i < 16; i++ {
				if m&(1<<i) != 0 {
					dev.irqs = append(dev.irqs, i)
				}
			}
		case typ == 0x0F && n == 1: // End Tag
			if len(r) != 0 {
				return fmt.Errorf("%d bytes after the End Tag", len(r))
			}
			return nil
		default:
			return fmt.Errorf("unexpected descriptor %#x", tag)
		}
	}
	return errors.New("no End Tag")
}

// The legacy devices every DSDT has, first.
var legacyDevs = []amlDev{
	// COM1 as devices.Serial sits: 8 ports at 0x3F8, ISA IRQ 4.
	{name: "COM1", hid: "PNP0501", uid: 1, io: [][2]int{{0x3F8, 8}}, irqs: []int{4}},
	// The CMOS RTC: index/data ports 0x70/0x71, ISA IRQ 8.
	{name: "RTC_", hid: "PNP0B00", uid: -1, io: [][2]int{{0x70, 2}}, irqs: []int{8}},
}

// virtioDev is what one VirtioMMIO must decode to: an LNRO0005 device with
// the window and one consumed, edge, active-high, exclusive GSI.
func virtioDev(i int, d VirtioMMIO) amlDev {
	return amlDev{name: fmt.Sprintf("VR%02d", i), hid: "LNRO0005", uid: i,
		mem:  [][2]int{{int(d.Base), int(d.Size)}},
		gsis: []extIRQ{{gsi: int(d.GSI), consumer: true, edge: true}}}
}

// govmmVirtio is the list vmm allocates for n disks: 4 KiB windows upward
// from memory.VirtioMMIOBase, GSIs 5, 6, 7, 10..15.
func govmmVirtio(n int) []VirtioMMIO {
	gsis := []uint32{5, 6, 7, 10, 11, 12, 13, 14, 15}
	var out []VirtioMMIO
	for i := 0; i < n; i++ {
		out = append(out, VirtioMMIO{Base: memory.VirtioMMIOBase + uint64(i)*memory.VirtioMMIOSize,
			Size: memory.VirtioMMIOSize, GSI: gsis[i]})
	}
	return out
}

// maxVirtio is the longest valid list: every I/O APIC pin not reserved.
func maxVirtio() []VirtioMMIO {
	var out []VirtioMMIO
	for gsi := uint32(0); gsi < IOAPICPins; gsi++ {
		if _, r := reservedGSI[gsi]; r {
			continue
		}
		out = append(out, VirtioMMIO{Base: memory.VirtioMMIOBase + uint64(len(out))*memory.VirtioMMIOSize,
			Size: memory.VirtioMMIOSize, GSI: gsi})
	}
	return out
}

func TestDSDTDevices(t *testing.T) {
	for _, tc := range []struct {
		name   string
		virtio []VirtioMMIO
	}{
		{"no virtio", nil},
		{"one disk", govmmVirtio(1)},
		{"two disks", govmmVirtio(2)},
		{"nine disks (govmm's maximum)", govmmVirtio(9)},
		{"every free GSI", maxVirtio()},
		{"a window above the virtio area", []VirtioMMIO{{Base: 0xFEB0_0000, Size: 0x200, GSI: 23}}},
		{"window at the end of the hole", []VirtioMMIO{{Base: memory.MMIOHoleEnd - memory.PageSize, Size: memory.PageSize, GSI: 16}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newLowGuest(t)
			if _, err := WriteACPITables(g, 2, tc.virtio); err != nil {
				t.Fatal(err)
			}
			p, err := parseACPI(t, g) // lengths and checksums of every table
			if err != nil {
				t.Fatal(err)
			}
			if p.dsdt.rev != dsdtRevision || !bytes.Equal(p.dsdt.data[0:4], []byte("DSDT")) {
				t.Errorf("DSDT %q revision %d", p.dsdt.data[0:4], p.dsdt.rev)
			}
			size, err := ACPITablesSize(2, tc.virtio)
			if err != nil || p.dsdt.addr+uint64(len(p.dsdt.data)) > memory.ACPIAddr+uint64(size) {
				t.Errorf("ACPITablesSize = %d, %v; DSDT ends at %#x", size, err, p.dsdt.addr+uint64(len(p.dsdt.data)))
			}
			devs, err := decodeDSDT(p.dsdt.data[acpiHeaderSize:])
			if err != nil {
				t.Fatal(err)
			}
			want := append([]amlDev{}, legacyDevs...)
			for i, d := range tc.virtio {
				want = append(want, virtioDev(i, d))
			}
			if fmt.Sprint(devs) != fmt.Sprint(want) {
				t.Errorf("DSDT devices\n got %+v\nwant %+v", devs, want)
			}
			// Names and (per _HID) _UIDs are unique in the scope (ACPI 6.3
			// 6.1.12: _UID must differ between devices with the same _HID).
			names, uids := map[string]bool{}, map[string]bool{}
			for _, d := range devs {
				uid := fmt.Sprint(d.hid, "/", d.uid)
				if names[d.name] || d.uid >= 0 && uids[uid] {
					t.Errorf("device %s (%s) repeats a name or _HID/_UID", d.name, uid)
				}
				names[d.name], uids[uid] = true, true
			}
			// The legacy IRQs must be ones KVM's default routing delivers
			// on the I/O APIC pin of the same number, and none may be the
			// SCI's.
			for _, d := range devs {
				for _, irq := range d.irqs {
					if irq == SCIGSI || irq == 0 || irq >= ISAIRQs {
						t.Errorf("%s uses IRQ %d", d.name, irq)
					}
				}
			}
		})
	}
}

func TestDSDTBytes(t *testing.T) {
	// One device, byte for byte, as ACPI 6.3 encodes it (20.2.5.2 Device,
	// 20.2.3 String, 6.4.3.4 Memory32Fixed, 6.4.3.6 Extended Interrupt).
	got := dsdtAML(govmmVirtio(1))
	dev := []byte{
		0x5B, 0x82, 58, 'V', 'R', '0', '0', // DeviceOp, PkgLength 58 (57 bytes follow it), NameSeg
		0x08, '_', 'H', 'I', 'D', 0x0D, 'L', 'N', 'R', 'O', '0', '0', '0', '5', 0x00,
		0x08, '_', 'U', 'I', 'D', 0x00, // Zero
		0x08, '_', 'C', 'R', 'S', 0x11, 26, 0x0A, 23, // Buffer, PkgLength 26, size 23
		0x86, 9, 0, 0x01, 0x00, 0x00, 0x00, 0xD0, 0x00, 0x10, 0x00, 0x00, // RW, 0xD0000000, 4 KiB
		0x89, 6, 0, 0x03, 1, 5, 0, 0, 0, // consumer|edge, active high, exclusive; GSI 5
		0x79, 0x00, // End Tag
	}
	if !bytes.HasSuffix(got, dev) {
		t.Errorf("DSDT AML ends\n % x\nwant\n % x", got[max(0, len(got)-len(dev)):], dev)
	}
	// The legacy part is unchanged by a device list.
	base := dsdtAML(nil)
	_, n, _ := decodePkgLength(base[1:])
	_, m, _ := decodePkgLength(got[1:])
	if !bytes.Equal(base[1+n:], got[1+m:len(got)-len(dev)]) {
		t.Error("adding a virtio device changed the COM1/RTC devices")
	}
}

func TestWriteACPITablesVirtioErrors(t *testing.T) {
	w := func(base, size uint64, gsi uint32) VirtioMMIO { return VirtioMMIO{Base: base, Size: size, GSI: gsi} }
	const b = memory.VirtioMMIOBase
	for _, tc := range []struct {
		name   string
		virtio []VirtioMMIO
	}{
		{"empty window", []VirtioMMIO{w(b, 0, 5)}},
		{"window in RAM", []VirtioMMIO{w(0x10_0000, 0x1000, 5)}},
		{"window below the hole", []VirtioMMIO{w(memory.MMIOHoleStart-0x1000, 0x2000, 5)}},
		{"window past 4 GiB", []VirtioMMIO{w(memory.MMIOHoleEnd-0x1000, 0x2000, 5)}},
		{"window above 4 GiB", []VirtioMMIO{w(memory.HighRAMStart+0x1000, 0x1000, 5)}},
		{"size wraps", []VirtioMMIO{w(b, ^uint64(0)-b+2, 5)}},
		{"overlapping windows", []VirtioMMIO{w(b, 0x1000, 5), w(b+0x800, 0x1000, 6)}},
		{"same window", []VirtioMMIO{w(b, 0x1000, 5), w(b, 0x1000, 6)}},
		{"GSI past the I/O APIC", []VirtioMMIO{w(b, 0x1000, IOAPICPins)}},
		{"huge GSI", []VirtioMMIO{w(b, 0x1000, 1<<31)}},
		{"PIT's GSI", []VirtioMMIO{w(b, 0x1000, 0)}},
		{"cascade GSI", []VirtioMMIO{w(b, 0x1000, 2)}},
		{"COM1's GSI", []VirtioMMIO{w(b, 0x1000, 4)}},
		{"RTC's GSI", []VirtioMMIO{w(b, 0x1000, 8)}},
		{"SCI's GSI", []VirtioMMIO{w(b, 0x1000, SCIGSI)}},
		{"GSI twice", []VirtioMMIO{w(b, 0x1000, 5), w(b+0x1000, 0x1000, 5)}},
		{"too many", make([]VirtioMMIO, MaxVirtioMMIO+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ram := make([]byte, 0x10_0000)
			g, err := memory.FromSlices(map[uint64][]byte{0: ram})
			if err != nil {
				t.Fatal(err)
			}
			rsdp, err := WriteACPITables(g, 1, tc.virtio)
			if !errors.Is(err, ErrBadVirtioMMIO) || rsdp != 0 {
				t.Errorf("WriteACPITables = %#x, %v; want ErrBadVirtioMMIO", rsdp, err)
			}
			if _, err := ACPITablesSize(1, tc.virtio); !errors.Is(err, ErrBadVirtioMMIO) {
				t.Errorf("ACPITablesSize: %v, want ErrBadVirtioMMIO", err)
			}
			if !bytes.Equal(ram, make([]byte, len(ram))) {
				t.Error("a refused device list left bytes in guest RAM")
			}
		})
	}
}

func TestAMLInteger(t *testing.T) {
	for _, tc := range []struct {
		v    uint64
		want []byte
	}{
		{0, []byte{0x00}},
		{1, []byte{0x01}},
		{2, []byte{0x0A, 2}},
		{0xFF, []byte{0x0A, 0xFF}},
		{0x100, []byte{0x0B, 0x00, 0x01}},
		{0xFFFF, []byte{0x0B, 0xFF, 0xFF}},
		{0x10000, []byte{0x0C, 0x00, 0x00, 0x01, 0x00}},
		{0xFFFF_FFFF, []byte{0x0C, 0xFF, 0xFF, 0xFF, 0xFF}},
		{0x1_0000_0000, []byte{0x0E, 0, 0, 0, 0, 1, 0, 0, 0}},
	} {
		if got := amlInteger(tc.v); !bytes.Equal(got, tc.want) {
			t.Errorf("amlInteger(%#x) = % x, want % x", tc.v, got, tc.want)
		}
	}
}

// TestDSDTIASL disassembles the DSDT with ACPICA's iasl, the same parser
// family Linux runs, when it is installed (Debian: acpica-tools), and
// checks it reports no error and sees the devices. The structural tests
// above do not need it.
func TestDSDTIASL(t *testing.T) {
	iasl, err := exec.LookPath("iasl")
	if err != nil {
		t.Skip("skipping: iasl not installed (apt-get install acpica-tools)")
	}
	g := newLowGuest(t)
	if _, err := WriteACPITables(g, 2, govmmVirtio(2)); err != nil {
		t.Fatal(err)
	}
	p, err := parseACPI(t, g)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	aml := filepath.Join(dir, "dsdt.aml")
	if err := os.WriteFile(aml, p.dsdt.data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(iasl, "-d", aml).CombinedOutput()
	if err != nil {
		t.Fatalf("iasl -d: %v\n%s", err, out)
	}
	dsl, err := os.ReadFile(filepath.Join(dir, "dsdt.dsl"))
	if err != nil {
		t.Fatalf("%v\niasl output:\n%s", err, out)
	}
	text := string(dsl)
	for _, want := range []string{
		`Device (COM1)`, `Name (_HID, EisaId ("PNP0501")`,
		`Device (RTC)`, `Name (_HID, EisaId ("PNP0B00")`,
		`Device (VR00)`, `Device (VR01)`, `Name (_HID, "LNRO0005")`,
		`Memory32Fixed (ReadWrite,`, `0xD0000000,`, `0xD0001000,`,
		`Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )`,
		`0x00000005,`, `0x00000006,`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("disassembly lacks %q", want)
		}
	}
	if strings.Contains(text, "Error") || strings.Contains(string(out), "Error") {
		t.Errorf("iasl reports errors:\n%s\n%s", out, text)
	}
	if t.Failed() {
		t.Logf("disassembly:\n%s", text)
	}
}
