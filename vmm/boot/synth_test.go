package boot

import "encoding/binary"

// This file synthesises small PVH ELF images for the tests and the fuzz
// seed corpus, so every byte of a "good" image is known to the test.

type synthSeg struct {
	paddr uint64
	data  []byte
	memsz uint64
}

type synthOpts struct {
	is64          bool
	segs          []synthSeg
	notes         []byte // raw note bytes (see note())
	noteInSection bool   // SHT_NOTE section instead of a PT_NOTE segment
}

// synthLayout records where things landed, for targeted mutations.
type synthLayout struct {
	phoff, phentsize uint64
	noteOff          uint64   // file offset of the notes
	segOff           []uint64 // file offset of each segment's data
	shoff            uint64   // 0 if no section headers
	notePhdr         int      // index of the PT_NOTE program header, -1 if none
}

// note encodes one ELF note with 4-byte alignment.
func note(name string, typ uint32, desc []byte) []byte {
	pad := func(b []byte) []byte {
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	var b []byte
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
	b = binary.LittleEndian.AppendUint32(b, typ)
	b = pad(append(b, name...))
	return pad(append(b, desc...))
}

// pvhNote is the XEN_ELFNOTE_PHYS32_ENTRY note with a 4- or 8-byte desc.
func pvhNote(entry uint64, descsz int) []byte {
	desc := make([]byte, descsz)
	if descsz == 8 {
		binary.LittleEndian.PutUint64(desc, entry)
	} else {
		binary.LittleEndian.PutUint32(desc, uint32(entry))
	}
	return note("Xen\x00", 18, desc)
}

func synth(o synthOpts) ([]byte, synthLayout) {
	le := binary.LittleEndian
	ehsize, phent, shent := uint64(52), uint64(32), uint64(40)
	machine := uint16(3)
	class := byte(1)
	if o.is64 {
		ehsize, phent, shent, machine, class = 64, 56, 64, 62, 2
	}
	nph := len(o.segs)
	l := synthLayout{phoff: ehsize, phentsize: phent, notePhdr: -1}
	if !o.noteInSection && o.notes != nil {
		l.notePhdr = nph
		nph++
	}
	off := ehsize + uint64(nph)*phent
	l.noteOff = off
	off += uint64(len(o.notes))
	for _, s := range o.segs {
		off = (off + 15) &^ 15
		l.segOff = append(l.segOff, off)
		off += uint64(len(s.data))
	}
	nsh := 0
	if o.noteInSection {
		off = (off + 7) &^ 7
		l.shoff = off
		nsh = 2 // null + .notes
		off += uint64(nsh) * shent
	}
	img := make([]byte, off)

	copy(img, "\x7fELF")
	img[4], img[5], img[6] = class, 1, 1
	le.PutUint16(img[16:], 2) // ET_EXEC
	le.PutUint16(img[18:], machine)
	le.PutUint32(img[20:], 1)
	if o.is64 {
		le.PutUint64(img[24:], 0xffffffff81000000) // e_entry: ignored by PVH
		le.PutUint64(img[32:], l.phoff)
		le.PutUint64(img[40:], l.shoff)
		le.PutUint16(img[52:], uint16(ehsize))
		le.PutUint16(img[54:], uint16(phent))
		le.PutUint16(img[56:], uint16(nph))
		le.PutUint16(img[58:], uint16(shent))
		le.PutUint16(img[60:], uint16(nsh))
	} else {
		le.PutUint32(img[24:], 0xc1000000)
		le.PutUint32(img[28:], uint32(l.phoff))
		le.PutUint32(img[32:], uint32(l.shoff))
		le.PutUint16(img[40:], uint16(ehsize))
		le.PutUint16(img[42:], uint16(phent))
		le.PutUint16(img[44:], uint16(nph))
		le.PutUint16(img[46:], uint16(shent))
		le.PutUint16(img[48:], uint16(nsh))
	}
	putPhdr := func(i int, typ uint32, offset, paddr, filesz, memsz, align uint64) {
		p := img[l.phoff+uint64(i)*phent:]
		if o.is64 {
			le.PutUint32(p[0:], typ)
			le.PutUint32(p[4:], 5)
			le.PutUint64(p[8:], offset)
			le.PutUint64(p[16:], paddr+0xffffffff80000000)
			le.PutUint64(p[24:], paddr)
			le.PutUint64(p[32:], filesz)
			le.PutUint64(p[40:], memsz)
			le.PutUint64(p[48:], align)
		} else {
			le.PutUint32(p[0:], typ)
			le.PutUint32(p[4:], uint32(offset))
			le.PutUint32(p[8:], uint32(paddr))
			le.PutUint32(p[12:], uint32(paddr))
			le.PutUint32(p[16:], uint32(filesz))
			le.PutUint32(p[20:], uint32(memsz))
			le.PutUint32(p[24:], 5)
			le.PutUint32(p[28:], uint32(align))
		}
	}
	for i, s := range o.segs {
		putPhdr(i, 1, l.segOff[i], s.paddr, uint64(len(s.data)), s.memsz, 16)
		copy(img[l.segOff[i]:], s.data)
	}
	copy(img[l.noteOff:], o.notes)
	if l.notePhdr >= 0 {
		putPhdr(l.notePhdr, 4, l.noteOff, 0, uint64(len(o.notes)), uint64(len(o.notes)), 4)
	}
	if o.noteInSection {
		sh := img[l.shoff+shent:] // section 1; section 0 stays all-zero
		le.PutUint32(sh[4:], 7)   // SHT_NOTE
		if o.is64 {
			le.PutUint64(sh[24:], l.noteOff)
			le.PutUint64(sh[32:], uint64(len(o.notes)))
			le.PutUint64(sh[48:], 4)
		} else {
			le.PutUint32(sh[16:], uint32(l.noteOff))
			le.PutUint32(sh[20:], uint32(len(o.notes)))
			le.PutUint32(sh[32:], 4)
		}
	}
	return img, l
}

const (
	goodText  = 0x10_0000 // first segment: "text" + bss
	goodData  = 0x20_0000 // second segment: data only
	goodEntry = 0x10_0010
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

// goodOpts is a two-segment kernel with a PVH note; descsz 4 or 8.
func goodOpts(is64 bool, descsz int) synthOpts {
	return synthOpts{
		is64: is64,
		segs: []synthSeg{
			{paddr: goodText, data: pattern(0x300, 1), memsz: 0x1000},
			{paddr: goodData, data: pattern(0x80, 0x40), memsz: 0x80},
		},
		notes: append(note("GNU\x00", 3, []byte{1, 2, 3, 4, 5, 6, 7, 8}), pvhNote(goodEntry, descsz)...),
	}
}

func goodImage(is64 bool) ([]byte, synthLayout) { return synth(goodOpts(is64, 4)) }
