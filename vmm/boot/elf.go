// Package boot loads guest kernels into guest memory and writes the boot
// structures they expect. Images come from users and may be hostile: the ELF
// parser is hand-written, bounds every read against the image and rejects
// anything it does not need to understand.
package boot

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// Sentinel errors of ParsePVH. Each returned error wraps exactly one of them
// and says in its text what precisely was wrong.
var (
	ErrNotELF         = errors.New("ELF: not an ELF image")
	ErrTruncated      = errors.New("ELF: truncated image")
	ErrBadClass       = errors.New("ELF: unsupported class")
	ErrBadEndian      = errors.New("ELF: not little-endian")
	ErrBadVersion     = errors.New("ELF: unsupported version")
	ErrBadType        = errors.New("ELF: not an executable (ET_EXEC)")
	ErrBadMachine     = errors.New("ELF: unsupported machine")
	ErrBadHeader      = errors.New("ELF: malformed header")
	ErrTooLarge       = errors.New("ELF: image too large")
	ErrBadSegment     = errors.New("ELF: malformed segment")
	ErrSegmentOverlap = errors.New("ELF: segments overlap")
	ErrNoSegments     = errors.New("ELF: no loadable segments")
	ErrBadNote        = errors.New("ELF: malformed note")
	ErrNoPVHNote      = errors.New("ELF: no PVH entry note (Xen XEN_ELFNOTE_PHYS32_ENTRY)")
	ErrBadEntry       = errors.New("ELF: bad PVH entry point")
)

// Limits on what ParsePVH accepts. They are far above any real kernel and
// keep the work done on a hostile image small and bounded.
const (
	MaxPhnum    = 64      // program headers
	MaxShnum    = 1024    // section headers (only read when no PT_NOTE has the PVH note)
	MaxImageMem = 1 << 30 // sum of PT_LOAD p_memsz
	// MaxNoteBytes bounds the note data scanned in total. Without it 64
	// PT_NOTEs (or 1024 SHT_NOTEs) all spanning a large file would make the
	// scan cost headers x file size. Real kernels carry well under 4 KiB.
	MaxNoteBytes = 1 << 20
	// maxPhysEnd: the PVH entry runs in 32-bit protected mode without
	// paging, so every segment must end at or below 4 GiB.
	maxPhysEnd = 1 << 32
)

// ELF constants (from the System V gABI / elf.h).
const (
	elfClass32   = 1
	elfClass64   = 2
	elfData2LSB  = 1
	evCurrent    = 1
	etExec       = 2
	em386        = 3
	emX86_64     = 62
	ptLoad       = 1
	ptNote       = 4
	shtNote      = 7
	ehdr32Size   = 52
	ehdr64Size   = 64
	phdr32Size   = 32
	phdr64Size   = 56
	shdr32Size   = 40
	shdr64Size   = 64
	noteHdrSize  = 12
	xenPhys32    = 18 // XEN_ELFNOTE_PHYS32_ENTRY in xen/include/public/elfnote.h
	xenNoteName  = "Xen\x00"
	noteAlignStd = 4
)

// Segment is one PT_LOAD segment: MemSize bytes at guest-physical PAddr, the
// first FileSize of them copied from the image at FileOff, the rest zeroed.
// ParsePVH guarantees FileSize <= MemSize, FileOff+FileSize <= len(image),
// PAddr+MemSize <= 4 GiB, MemSize > 0, and no two segments overlap.
type Segment struct{ PAddr, FileOff, FileSize, MemSize uint64 }

// PVHImage is a parsed PVH kernel. Entry is the 32-bit physical entry point
// from the XEN_ELFNOTE_PHYS32_ENTRY note; it lies inside a segment's file data.
// Segments are sorted by PAddr.
type PVHImage struct {
	Entry    uint32
	Segments []Segment
}

var le = binary.LittleEndian

// fileHeader is the part of the ELF header that ParsePVH uses.
type fileHeader struct {
	is64             bool
	entry            uint64 // e_entry (LoadLinux's ELF64 path enters here)
	phoff, shoff     uint64
	phentsize, phnum uint64
	shentsize, shnum uint64
}

func parseHeader(image []byte) (fileHeader, error) {
	var h fileHeader
	if len(image) < 16 {
		return h, fmt.Errorf("%w: %d bytes, shorter than e_ident", ErrTruncated, len(image))
	}
	if string(image[:4]) != "\x7fELF" {
		return h, fmt.Errorf("%w: magic % x", ErrNotELF, image[:4])
	}
	switch image[4] {
	case elfClass32:
	case elfClass64:
		h.is64 = true
	default:
		return h, fmt.Errorf("%w: EI_CLASS %d", ErrBadClass, image[4])
	}
	if image[5] != elfData2LSB {
		return h, fmt.Errorf("%w: EI_DATA %d", ErrBadEndian, image[5])
	}
	if image[6] != evCurrent {
		return h, fmt.Errorf("%w: EI_VERSION %d", ErrBadVersion, image[6])
	}
	ehsize := uint64(ehdr32Size)
	if h.is64 {
		ehsize = ehdr64Size
	}
	if uint64(len(image)) < ehsize {
		return h, fmt.Errorf("%w: %d bytes, shorter than the %d-byte ELF header", ErrTruncated, len(image), ehsize)
	}
	if t := le.Uint16(image[16:]); t != etExec {
		return h, fmt.Errorf("%w: e_type %d", ErrBadType, t)
	}
	m := le.Uint16(image[18:])
	if h.is64 && m != emX86_64 {
		return h, fmt.Errorf("%w: e_machine %d in an ELFCLASS64 image, want EM_X86_64 (%d)", ErrBadMachine, m, emX86_64)
	}
	if !h.is64 && m != em386 {
		return h, fmt.Errorf("%w: e_machine %d in an ELFCLASS32 image, want EM_386 (%d)", ErrBadMachine, m, em386)
	}
	if v := le.Uint32(image[20:]); v != evCurrent {
		return h, fmt.Errorf("%w: e_version %d", ErrBadVersion, v)
	}
	var gotEhsize uint64
	if h.is64 {
		h.entry = le.Uint64(image[24:])
		h.phoff = le.Uint64(image[32:])
		h.shoff = le.Uint64(image[40:])
		gotEhsize = uint64(le.Uint16(image[52:]))
		h.phentsize = uint64(le.Uint16(image[54:]))
		h.phnum = uint64(le.Uint16(image[56:]))
		h.shentsize = uint64(le.Uint16(image[58:]))
		h.shnum = uint64(le.Uint16(image[60:]))
	} else {
		h.entry = uint64(le.Uint32(image[24:]))
		h.phoff = uint64(le.Uint32(image[28:]))
		h.shoff = uint64(le.Uint32(image[32:]))
		gotEhsize = uint64(le.Uint16(image[40:]))
		h.phentsize = uint64(le.Uint16(image[42:]))
		h.phnum = uint64(le.Uint16(image[44:]))
		h.shentsize = uint64(le.Uint16(image[46:]))
		h.shnum = uint64(le.Uint16(image[48:]))
	}
	if gotEhsize != ehsize {
		return h, fmt.Errorf("%w: e_ehsize %d, want %d", ErrBadHeader, gotEhsize, ehsize)
	}
	return h, nil
}

// table bounds-checks an array of num entries of entsize bytes at off and
// returns it.
func table(image []byte, what string, off, num, entsize uint64) ([]byte, error) {
	// num and entsize are at most 16 bits each, so the product cannot
	// overflow; the sum with off can.
	n := num * entsize
	end := off + n
	if end < off || end > uint64(len(image)) {
		return nil, fmt.Errorf("%w: %s table (offset %#x + %d x %d bytes) extends past end of file (%#x)",
			ErrTruncated, what, off, num, entsize, len(image))
	}
	return image[off:end:end], nil
}

// fileRange bounds-checks [off, off+size) against the image.
func fileRange(image []byte, off, size uint64) ([]byte, bool) {
	end := off + size
	if end < off || end > uint64(len(image)) {
		return nil, false
	}
	return image[off:end:end], true
}

type phdr struct {
	typ                          uint32
	offset, paddr, filesz, memsz uint64
	align                        uint64
}

func readPhdr(b []byte, is64 bool) phdr {
	if is64 {
		return phdr{
			typ: le.Uint32(b[0:]), offset: le.Uint64(b[8:]), paddr: le.Uint64(b[24:]),
			filesz: le.Uint64(b[32:]), memsz: le.Uint64(b[40:]), align: le.Uint64(b[48:]),
		}
	}
	return phdr{
		typ: le.Uint32(b[0:]), offset: uint64(le.Uint32(b[4:])), paddr: uint64(le.Uint32(b[12:])),
		filesz: uint64(le.Uint32(b[16:])), memsz: uint64(le.Uint32(b[20:])), align: uint64(le.Uint32(b[28:])),
	}
}

// ParsePVH parses a PVH ELF image (ELF64 x86-64 or ELF32 i386, little-endian,
// ET_EXEC) without touching guest memory. Segments are placed at their
// physical addresses (p_paddr). The PVH entry comes from a "Xen" note of type
// XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment or, failing that, an SHT_NOTE
// section; e_entry (a virtual address for vmlinux) is ignored.
func ParsePVH(image []byte) (*PVHImage, error) {
	e, err := parseELF(image)
	if err != nil {
		return nil, err
	}
	if !e.hasPVH {
		return nil, ErrNoPVHNote
	}
	entry := e.pvhEntry
	img := &PVHImage{Entry: entry, Segments: e.segs}
	if !inFileData(e.segs, uint64(entry)) {
		return nil, fmt.Errorf("%w: entry %#x is not inside the file data of any PT_LOAD segment", ErrBadEntry, entry)
	}
	return img, nil
}

// inFileData reports whether guest-physical address a lies inside the file
// bytes of one of segs (so the code there comes from the image).
func inFileData(segs []Segment, a uint64) bool {
	for _, s := range segs {
		if a >= s.PAddr && a-s.PAddr < s.FileSize {
			return true
		}
	}
	return false
}

// elfInfo is what parseELF learns: the header, the checked PT_LOAD
// segments (sorted by PAddr) and the PVH entry note, if any. ParsePVH and
// LoadLinux's ELF64 path share it so both apply exactly the same checks.
type elfInfo struct {
	h        fileHeader
	segs     []Segment
	pvhEntry uint32
	hasPVH   bool
}

// parseELF does every check of ParsePVH except requiring the PVH note and
// placing its entry.
func parseELF(image []byte) (*elfInfo, error) {
	h, err := parseHeader(image)
	if err != nil {
		return nil, err
	}
	wantPhent := uint64(phdr32Size)
	if h.is64 {
		wantPhent = phdr64Size
	}
	if h.phnum == 0 {
		return nil, fmt.Errorf("%w: e_phnum is 0", ErrNoSegments)
	}
	if h.phentsize != wantPhent {
		return nil, fmt.Errorf("%w: e_phentsize %d, want %d", ErrBadHeader, h.phentsize, wantPhent)
	}
	if h.phnum > MaxPhnum {
		return nil, fmt.Errorf("%w: e_phnum %d exceeds the limit %d", ErrTooLarge, h.phnum, MaxPhnum)
	}
	phtab, err := table(image, "program header", h.phoff, h.phnum, h.phentsize)
	if err != nil {
		return nil, err
	}

	type indexed struct {
		Segment
		idx int
	}
	var segs []indexed
	var total uint64
	var entry uint32
	found := false
	budget := uint64(MaxNoteBytes)
	for i := range int(h.phnum) {
		p := readPhdr(phtab[uint64(i)*h.phentsize:], h.is64)
		switch p.typ {
		case ptLoad:
			if p.filesz > p.memsz {
				return nil, fmt.Errorf("%w: program header %d (PT_LOAD) has p_filesz %#x > p_memsz %#x",
					ErrBadSegment, i, p.filesz, p.memsz)
			}
			if _, ok := fileRange(image, p.offset, p.filesz); !ok {
				return nil, fmt.Errorf("%w: program header %d (PT_LOAD) extends past end of file (offset %#x + %#x > %#x)",
					ErrTruncated, i, p.offset, p.filesz, len(image))
			}
			if p.memsz > MaxImageMem {
				return nil, fmt.Errorf("%w: program header %d (PT_LOAD) p_memsz %#x exceeds the limit %#x",
					ErrTooLarge, i, p.memsz, MaxImageMem)
			}
			if end := p.paddr + p.memsz; end < p.paddr || end > maxPhysEnd {
				return nil, fmt.Errorf("%w: program header %d (PT_LOAD) [%#x, +%#x) ends above 4 GiB, unreachable from the 32-bit PVH entry",
					ErrBadSegment, i, p.paddr, p.memsz)
			}
			if p.memsz == 0 {
				continue
			}
			total += p.memsz // each term <= 1 GiB, at most 64 terms: no overflow
			if total > MaxImageMem {
				return nil, fmt.Errorf("%w: PT_LOAD segments need %#x bytes in total, more than the limit %#x",
					ErrTooLarge, total, MaxImageMem)
			}
			segs = append(segs, indexed{Segment{PAddr: p.paddr, FileOff: p.offset, FileSize: p.filesz, MemSize: p.memsz}, i})
		case ptNote:
			data, ok := fileRange(image, p.offset, p.filesz)
			if !ok {
				return nil, fmt.Errorf("%w: program header %d (PT_NOTE) extends past end of file (offset %#x + %#x > %#x)",
					ErrTruncated, i, p.offset, p.filesz, len(image))
			}
			e, ok, err := scanNotes(data, p.align, &budget)
			if err != nil {
				return nil, fmt.Errorf("program header %d (PT_NOTE): %w", i, err)
			}
			if ok {
				if found && e != entry {
					return nil, fmt.Errorf("%w: program header %d (PT_NOTE): PVH entry %#x conflicts with earlier %#x",
						ErrBadNote, i, e, entry)
				}
				entry, found = e, true
			}
		}
	}
	if len(segs) == 0 {
		return nil, fmt.Errorf("%w: no PT_LOAD with p_memsz > 0", ErrNoSegments)
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].PAddr < segs[b].PAddr })
	for i := 1; i < len(segs); i++ {
		prev, cur := segs[i-1], segs[i]
		if cur.PAddr < prev.PAddr+prev.MemSize {
			return nil, fmt.Errorf("%w: program header %d [%#x, %#x) overlaps program header %d [%#x, %#x)",
				ErrSegmentOverlap, cur.idx, cur.PAddr, cur.PAddr+cur.MemSize, prev.idx, prev.PAddr, prev.PAddr+prev.MemSize)
		}
	}

	if !found {
		entry, found, err = scanSectionNotes(image, h, &budget)
		if err != nil {
			return nil, err
		}
	}

	out := &elfInfo{h: h, segs: make([]Segment, len(segs)), pvhEntry: entry, hasPVH: found}
	for i, s := range segs {
		out.segs[i] = s.Segment
	}
	return out, nil
}

func scanSectionNotes(image []byte, h fileHeader, budget *uint64) (uint32, bool, error) {
	if h.shnum == 0 {
		return 0, false, nil
	}
	want := uint64(shdr32Size)
	if h.is64 {
		want = shdr64Size
	}
	if h.shentsize != want {
		return 0, false, fmt.Errorf("%w: e_shentsize %d, want %d", ErrBadHeader, h.shentsize, want)
	}
	if h.shnum > MaxShnum {
		return 0, false, fmt.Errorf("%w: e_shnum %d exceeds the limit %d", ErrTooLarge, h.shnum, MaxShnum)
	}
	shtab, err := table(image, "section header", h.shoff, h.shnum, h.shentsize)
	if err != nil {
		return 0, false, err
	}
	for i := range int(h.shnum) {
		sh := shtab[uint64(i)*h.shentsize:]
		if le.Uint32(sh[4:]) != shtNote {
			continue
		}
		var off, size, align uint64
		if h.is64 {
			off, size, align = le.Uint64(sh[24:]), le.Uint64(sh[32:]), le.Uint64(sh[48:])
		} else {
			off, size, align = uint64(le.Uint32(sh[16:])), uint64(le.Uint32(sh[20:])), uint64(le.Uint32(sh[32:]))
		}
		data, ok := fileRange(image, off, size)
		if !ok {
			return 0, false, fmt.Errorf("%w: section %d (SHT_NOTE) extends past end of file (offset %#x + %#x > %#x)",
				ErrTruncated, i, off, size, len(image))
		}
		e, ok, err := scanNotes(data, align, budget)
		if err != nil {
			return 0, false, fmt.Errorf("section %d (SHT_NOTE): %w", i, err)
		}
		if ok {
			return e, true, nil
		}
	}
	return 0, false, nil
}

// scanNotes walks the notes in data (Elf_Nhdr: namesz, descsz, type, then
// name and desc, each padded to the note alignment) looking for the PVH
// entry. Alignment is 4 unless the containing segment/section says 8 (the
// gABI allows 8 for ELF64; GNU property notes use it). Every note consumes at
// least noteHdrSize bytes, so the walk is bounded by len(data); len(data) is
// charged to *budget first so the sum over all scans is bounded too.
func scanNotes(data []byte, align uint64, budget *uint64) (entry uint32, found bool, err error) {
	if uint64(len(data)) > *budget {
		return 0, false, fmt.Errorf("%w: more than %d bytes of notes", ErrTooLarge, MaxNoteBytes)
	}
	*budget -= uint64(len(data))
	a := uint64(noteAlignStd)
	if align == 8 {
		a = 8
	}
	pad := func(n uint64) uint64 { return (n + a - 1) &^ (a - 1) }
	for off := uint64(0); off < uint64(len(data)); {
		rest := data[off:]
		if len(rest) < noteHdrSize {
			return 0, false, fmt.Errorf("%w: note at offset %#x: %d bytes left, need a %d-byte header",
				ErrBadNote, off, len(rest), noteHdrSize)
		}
		namesz := uint64(le.Uint32(rest[0:]))
		descsz := uint64(le.Uint32(rest[4:]))
		typ := le.Uint32(rest[8:])
		// namesz, descsz < 2^32, so none of these sums can overflow uint64.
		descOff := pad(noteHdrSize + namesz)
		descEnd := descOff + descsz
		if descEnd > uint64(len(rest)) {
			return 0, false, fmt.Errorf("%w: note at offset %#x: namesz %#x descsz %#x exceed the %#x bytes left",
				ErrBadNote, off, namesz, descsz, len(rest))
		}
		name := rest[noteHdrSize : noteHdrSize+namesz]
		desc := rest[descOff:descEnd]
		if string(name) == xenNoteName && typ == xenPhys32 {
			var v uint64
			switch descsz {
			case 4:
				v = uint64(le.Uint32(desc))
			case 8: // Linux emits the entry with _ASM_PTR, 8 bytes in ELF64
				v = le.Uint64(desc)
			default:
				return 0, false, fmt.Errorf("%w: note at offset %#x: XEN_ELFNOTE_PHYS32_ENTRY descsz %d, want 4 or 8",
					ErrBadNote, off, descsz)
			}
			if v >= maxPhysEnd {
				return 0, false, fmt.Errorf("%w: entry %#x does not fit 32 bits", ErrBadEntry, v)
			}
			if found && uint32(v) != entry {
				return 0, false, fmt.Errorf("%w: note at offset %#x: PVH entry %#x conflicts with earlier %#x",
					ErrBadNote, off, v, entry)
			}
			entry, found = uint32(v), true
		}
		// The last note's desc padding may be missing at the end of data.
		off += min(pad(descEnd), uint64(len(rest)))
	}
	return entry, found, nil
}
