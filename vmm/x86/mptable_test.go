package x86

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/govmm/govmm/memory"
)

// parsedMP is what a reader of the MP table (modelled on Linux's
// arch/x86/kernel/mpparse.c) extracts.
type parsedMP struct {
	floatAddr uint64
	lapicAddr uint32
	cpus      []mpCPU
	buses     map[byte]string
	ioapics   []mpIOAPIC
	ioints    []mpInt
	lints     []mpInt
}

type mpCPU struct {
	apicID, version, flags byte
}

type mpIOAPIC struct {
	id, version, flags byte
	addr               uint32
}

type mpInt struct {
	typ           byte
	flags         uint16
	bus, irq      byte
	dstID, dstPin byte
}

func sum(b []byte) byte {
	var s byte
	for _, c := range b {
		s += c
	}
	return s
}

// parseMP finds and checks the table the way an OS does: scan the last KiB
// of base memory for "_MP_" on 16-byte boundaries, verify the pointer's
// length, revision and checksum, follow it to "PCMP", verify that header,
// then walk the entries, requiring that they end exactly at the base
// table length.
func parseMP(t *testing.T, g *memory.Guest) (parsedMP, error) {
	t.Helper()
	var p parsedMP
	var fp []byte
	for a := uint64(memory.MPTableAddr); a < 0xA0000; a += 16 {
		b := make([]byte, 16)
		if err := g.Read(a, b); err != nil {
			return p, err
		}
		if string(b[0:4]) != "_MP_" {
			continue
		}
		if b[8] != 1 || (b[9] != 1 && b[9] != 4) || sum(b) != 0 {
			return p, fmt.Errorf("bad floating pointer at %#x: % x", a, b)
		}
		fp, p.floatAddr = b, a
		break
	}
	if fp == nil {
		return p, errors.New("no _MP_ floating pointer in [0x9FC00, 0xA0000)")
	}
	if fp[11] != 0 {
		return p, fmt.Errorf("feature byte 1 = %d: default configuration, no table", fp[11])
	}
	le := binary.LittleEndian
	cfgAddr := uint64(le.Uint32(fp[4:8]))
	hdr := make([]byte, 44)
	if err := g.Read(cfgAddr, hdr); err != nil {
		return p, fmt.Errorf("config table at %#x: %w", cfgAddr, err)
	}
	if string(hdr[0:4]) != "PCMP" {
		return p, fmt.Errorf("config table signature %q", hdr[0:4])
	}
	length := int(le.Uint16(hdr[4:6]))
	if hdr[6] != 4 {
		return p, fmt.Errorf("config table spec revision %d", hdr[6])
	}
	cfg := make([]byte, length)
	if err := g.Read(cfgAddr, cfg); err != nil {
		return p, err
	}
	if sum(cfg) != 0 {
		return p, fmt.Errorf("config table checksum: sum %#x", sum(cfg))
	}
	if !bytes.Equal(cfg[8:16], []byte("GOVMM   ")) {
		return p, fmt.Errorf("OEM id %q", cfg[8:16])
	}
	if le.Uint16(cfg[40:42]) != 0 {
		return p, errors.New("unexpected extended table")
	}
	count := int(le.Uint16(cfg[34:36]))
	p.lapicAddr = le.Uint32(cfg[36:40])
	p.buses = map[byte]string{}
	off := 44
	for i := 0; i < count; i++ {
		if off >= length {
			return p, fmt.Errorf("entry %d at %d past the table length %d", i, off, length)
		}
		typ := cfg[off]
		size := 8
		if typ == 0 {
			size = 20
		}
		if typ > 4 {
			return p, fmt.Errorf("entry %d: unknown type %d", i, typ)
		}
		if off+size > length {
			return p, fmt.Errorf("entry %d overruns the table", i)
		}
		e := cfg[off : off+size]
		switch typ {
		case 0:
			p.cpus = append(p.cpus, mpCPU{apicID: e[1], version: e[2], flags: e[3]})
		case 1:
			if _, dup := p.buses[e[1]]; dup {
				return p, fmt.Errorf("bus %d twice", e[1])
			}
			p.buses[e[1]] = string(e[2:8])
		case 2:
			p.ioapics = append(p.ioapics, mpIOAPIC{id: e[1], version: e[2], flags: e[3], addr: le.Uint32(e[4:8])})
		case 3, 4:
			in := mpInt{typ: e[1], flags: le.Uint16(e[2:4]), bus: e[4], irq: e[5], dstID: e[6], dstPin: e[7]}
			if typ == 3 {
				p.ioints = append(p.ioints, in)
			} else {
				p.lints = append(p.lints, in)
			}
		}
		off += size
	}
	if off != length {
		return p, fmt.Errorf("entries end at %d, table length %d", off, length)
	}
	return p, nil
}

func newLowGuest(t *testing.T) *memory.Guest {
	t.Helper()
	// Low RAM up to 1 MiB covers the whole reserved MP area.
	g, err := memory.FromSlices(map[uint64][]byte{0: make([]byte, memory.HighMemStart)})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestWriteMPTable(t *testing.T) {
	for _, n := range []int{1, 2, 3, 16, 64, 253, 254} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := newLowGuest(t)
			if err := WriteMPTable(g, n); err != nil {
				t.Fatalf("WriteMPTable: %v", err)
			}
			p, err := parseMP(t, g)
			if err != nil {
				t.Fatal(err)
			}
			if p.floatAddr != memory.MPTableAddr {
				t.Errorf("floating pointer at %#x, want %#x", p.floatAddr, memory.MPTableAddr)
			}
			if p.lapicAddr != memory.LAPICBase {
				t.Errorf("LAPIC address %#x", p.lapicAddr)
			}
			if len(p.cpus) != n {
				t.Fatalf("%d processor entries, want %d", len(p.cpus), n)
			}
			ids := map[byte]bool{}
			for i, c := range p.cpus {
				if ids[c.apicID] {
					t.Errorf("APIC id %d twice", c.apicID)
				}
				ids[c.apicID] = true
				if int(c.apicID) != i {
					t.Errorf("cpu %d has APIC id %d, want the vCPU id", i, c.apicID)
				}
				if c.flags&1 == 0 {
					t.Errorf("cpu %d not enabled", i)
				}
				if bsp := c.flags&2 != 0; bsp != (c.apicID == 0) {
					t.Errorf("cpu %d (APIC id %d): BSP flag %v", i, c.apicID, bsp)
				}
				if c.version != LAPICVersion {
					t.Errorf("cpu %d: LAPIC version %#x", i, c.version)
				}
			}
			if len(p.ioapics) != 1 {
				t.Fatalf("%d I/O APICs", len(p.ioapics))
			}
			io := p.ioapics[0]
			if ids[io.id] || io.id == 0xFF {
				t.Errorf("I/O APIC id %d collides with a CPU or the broadcast id", io.id)
			}
			if io.addr != memory.IOAPICBase || io.flags&1 == 0 || io.version != IOAPICVersion {
				t.Errorf("I/O APIC entry %+v", io)
			}
			if len(p.buses) != 1 || p.buses[0] != "ISA   " {
				t.Errorf("buses %q", p.buses)
			}
			// ISA IRQ n -> pin n of our I/O APIC, each IRQ exactly once.
			pins := map[byte]byte{}
			for _, in := range p.ioints {
				if in.typ != mpIntINT || in.bus != 0 || in.dstID != io.id || in.flags != 0 {
					t.Errorf("I/O interrupt entry %+v", in)
				}
				if _, dup := pins[in.irq]; dup {
					t.Errorf("IRQ %d assigned twice", in.irq)
				}
				pins[in.irq] = in.dstPin
			}
			for irq := byte(0); irq < ISAIRQs; irq++ {
				if pin, ok := pins[irq]; !ok || pin != irq {
					t.Errorf("IRQ %d -> pin %d (assigned %v), want pin %d", irq, pin, ok, irq)
				}
			}
			wantL := []mpInt{
				{typ: mpIntExtINT, dstID: 0xFF, dstPin: 0},
				{typ: mpIntNMI, dstID: 0xFF, dstPin: 1},
			}
			if fmt.Sprint(p.lints) != fmt.Sprint(wantL) {
				t.Errorf("local interrupts %+v, want %+v", p.lints, wantL)
			}
			size, err := MPTableSize(n)
			if err != nil || size > memory.MPTableMax {
				t.Errorf("MPTableSize(%d) = %d, %v", n, size, err)
			}
		})
	}
}

func TestWriteMPTableErrors(t *testing.T) {
	small, err := memory.FromSlices(map[uint64][]byte{0: make([]byte, 0x9F000)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		g     *memory.Guest
		n     int
		count bool // want ErrBadCPUCount
	}{
		{"zero cpus", newLowGuest(t), 0, true},
		{"negative", newLowGuest(t), -1, true},
		{"255 cpus", newLowGuest(t), 255, true},
		{"huge", newLowGuest(t), 1 << 30, true},
		{"no RAM at 0x9FC00", small, 1, false},
		{"nil guest", nil, 1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteMPTable(tc.g, tc.n)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errors.Is(err, ErrBadCPUCount); got != tc.count {
				t.Errorf("error %v: ErrBadCPUCount %v, want %v", err, got, tc.count)
			}
		})
	}
}

func TestWriteMPTableShortRAMWritesNothing(t *testing.T) {
	// RAM that holds the floating pointer but ends inside the config
	// table: the write fails as a whole, leaving no pointer to a torn
	// table behind.
	ram := make([]byte, memory.MPTableAddr+100)
	g, err := memory.FromSlices(map[uint64][]byte{0: ram})
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteMPTable(g, 4); !errors.Is(err, memory.ErrOutOfRange) {
		t.Fatalf("WriteMPTable on short RAM: %v, want ErrOutOfRange", err)
	}
	if !bytes.Equal(ram[memory.MPTableAddr:], make([]byte, 100)) {
		t.Error("a failed WriteMPTable left bytes in guest RAM")
	}
}

func TestMPTableFitsReservation(t *testing.T) {
	// The table must fit the reserved area for every allowed count, and
	// the reserved area must not run into the BIOS ROM area's end.
	n, err := MPTableSize(MaxVCPUs)
	if err != nil {
		t.Fatal(err)
	}
	if n > memory.MPTableMax || memory.MPTableAddr+memory.MPTableMax > memory.HighMemStart {
		t.Errorf("MP table %d bytes, reservation %#x at %#x", n, memory.MPTableMax, memory.MPTableAddr)
	}
}
