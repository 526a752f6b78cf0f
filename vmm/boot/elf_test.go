package boot

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// Field offsets inside an Elf64_Phdr, for mutations.
const (
	ph64Type   = 0
	ph64Offset = 8
	ph64Paddr  = 24
	ph64Filesz = 32
	ph64Memsz  = 40
	ph64Align  = 48
	ph32Paddr  = 12
	ph32Memsz  = 20
)

func put16(b []byte, off uint64, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
func put32(b []byte, off uint64, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off uint64, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

func ph(l synthLayout, i int, field uint64) uint64 { return l.phoff + uint64(i)*l.phentsize + field }

func TestParsePVHGood(t *testing.T) {
	tests := []struct {
		name string
		opts synthOpts
	}{
		{"elf64", goodOpts(true, 4)},
		{"elf32", goodOpts(false, 4)},
		{"elf64 8-byte desc", goodOpts(true, 8)},
		{"elf64 note in section", func() synthOpts { o := goodOpts(true, 4); o.noteInSection = true; return o }()},
		{"elf32 note in section", func() synthOpts { o := goodOpts(false, 4); o.noteInSection = true; return o }()},
		{"segments out of order", func() synthOpts {
			o := goodOpts(true, 4)
			o.segs[0], o.segs[1] = o.segs[1], o.segs[0]
			return o
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			image, l := synth(tc.opts)
			img, err := ParsePVH(image)
			if err != nil {
				t.Fatal(err)
			}
			if img.Entry != goodEntry {
				t.Errorf("Entry %#x, want %#x", img.Entry, goodEntry)
			}
			if len(img.Segments) != len(tc.opts.segs) {
				t.Fatalf("%d segments, want %d", len(img.Segments), len(tc.opts.segs))
			}
			for i, s := range img.Segments {
				if i > 0 && s.PAddr <= img.Segments[i-1].PAddr {
					t.Errorf("segments not sorted: %+v", img.Segments)
				}
				// Find the synthesised segment it came from.
				j := -1
				for k, w := range tc.opts.segs {
					if w.paddr == s.PAddr {
						j = k
					}
				}
				if j < 0 {
					t.Fatalf("segment %+v not in the image", s)
				}
				w := tc.opts.segs[j]
				if s.FileOff != l.segOff[j] || s.FileSize != uint64(len(w.data)) || s.MemSize != w.memsz {
					t.Errorf("segment %+v, want off %#x filesz %#x memsz %#x", s, l.segOff[j], len(w.data), w.memsz)
				}
			}
		})
	}
}

func TestParsePVHMalformed(t *testing.T) {
	type mut func(b []byte, l synthLayout) []byte
	tests := []struct {
		name string
		is64 bool
		opts *synthOpts // nil: goodOpts(is64, 4)
		mut  mut
		want error
		msg  string // substring the message must contain
	}{
		{name: "empty", is64: true, mut: func(b []byte, _ synthLayout) []byte { return nil }, want: ErrTruncated},
		{name: "truncated ident", is64: true, mut: func(b []byte, _ synthLayout) []byte { return b[:10] }, want: ErrTruncated},
		{name: "truncated header 64", is64: true, mut: func(b []byte, _ synthLayout) []byte { return b[:60] }, want: ErrTruncated},
		{name: "truncated header 32", mut: func(b []byte, _ synthLayout) []byte { return b[:51] }, want: ErrTruncated},
		{name: "bad magic", is64: true, mut: func(b []byte, _ synthLayout) []byte { b[1] = 'X'; return b }, want: ErrNotELF},
		{name: "class 0", is64: true, mut: func(b []byte, _ synthLayout) []byte { b[4] = 0; return b }, want: ErrBadClass},
		{name: "class 3", is64: true, mut: func(b []byte, _ synthLayout) []byte { b[4] = 3; return b }, want: ErrBadClass},
		{name: "big-endian", is64: true, mut: func(b []byte, _ synthLayout) []byte { b[5] = 2; return b }, want: ErrBadEndian},
		{name: "ident version", is64: true, mut: func(b []byte, _ synthLayout) []byte { b[6] = 0; return b }, want: ErrBadVersion},
		{name: "e_version", is64: true, mut: func(b []byte, _ synthLayout) []byte { put32(b, 20, 2); return b }, want: ErrBadVersion},
		{name: "ET_DYN", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 16, 3); return b }, want: ErrBadType},
		{name: "ELF64 EM_386", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 18, 3); return b }, want: ErrBadMachine},
		{name: "ELF32 EM_X86_64 (x32)", mut: func(b []byte, _ synthLayout) []byte { put16(b, 18, 62); return b }, want: ErrBadMachine},
		{name: "aarch64", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 18, 183); return b }, want: ErrBadMachine},
		{name: "e_ehsize", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 52, 52); return b }, want: ErrBadHeader},
		{name: "e_phentsize", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 54, 32); return b }, want: ErrBadHeader},
		{name: "e_phnum 0", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 56, 0); return b }, want: ErrNoSegments},
		{name: "e_phnum 65", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 56, 65); return b }, want: ErrTooLarge},
		{name: "e_phnum PN_XNUM", is64: true, mut: func(b []byte, _ synthLayout) []byte { put16(b, 56, 0xffff); return b }, want: ErrTooLarge},
		{name: "phdrs past EOF", is64: true, mut: func(b []byte, _ synthLayout) []byte { put64(b, 32, uint64(len(b))-8); return b },
			want: ErrTruncated, msg: "program header table"},
		{name: "phoff wraps", is64: true, mut: func(b []byte, _ synthLayout) []byte { put64(b, 32, ^uint64(0)-16); return b }, want: ErrTruncated},
		{name: "phdrs past EOF 32", mut: func(b []byte, _ synthLayout) []byte { put32(b, 28, 0xffffffff); return b }, want: ErrTruncated},
		{name: "segment past EOF", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 1, ph64Offset), uint64(len(b))-0x10)
			return b
		}, want: ErrTruncated, msg: "program header 1 (PT_LOAD) extends past end of file"},
		{name: "segment offset wraps", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 0, ph64Offset), ^uint64(0)-0x100)
			return b
		}, want: ErrTruncated},
		{name: "filesz > memsz", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 1, ph64Memsz), 0x7f)
			return b
		}, want: ErrBadSegment, msg: "p_filesz 0x80 > p_memsz 0x7f"},
		{name: "overlapping segments", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 1, ph64Paddr), goodText+0xfff) // text's bss ends at goodText+0x1000
			return b
		}, want: ErrSegmentOverlap},
		{name: "overlapping segments 32", mut: func(b []byte, l synthLayout) []byte {
			put32(b, ph(l, 0, ph32Paddr), goodData-0x10)
			return b
		}, want: ErrSegmentOverlap},
		{name: "identical paddr", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 1, ph64Paddr), goodText)
			return b
		}, want: ErrSegmentOverlap},
		{name: "above 4 GiB", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 1, ph64Paddr), 0xffff_ffc0)
			return b
		}, want: ErrBadSegment, msg: "above 4 GiB"},
		{name: "paddr+memsz wraps", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 1, ph64Paddr), ^uint64(0)-0x10)
			return b
		}, want: ErrBadSegment},
		{name: "absurd memsz", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 0, ph64Memsz), 2<<30)
			return b
		}, want: ErrTooLarge},
		{name: "absurd total memsz", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, 0, ph64Memsz), 600<<20)
			put64(b, ph(l, 1, ph64Paddr), 0x4000_0000)
			put64(b, ph(l, 1, ph64Memsz), 600<<20)
			return b
		}, want: ErrTooLarge, msg: "in total"},
		{name: "absurd memsz 32", mut: func(b []byte, l synthLayout) []byte {
			put32(b, ph(l, 0, ph32Memsz), 0xf000_0000)
			return b
		}, want: ErrTooLarge},
		{name: "no PT_LOAD", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put32(b, ph(l, 0, ph64Type), 6)
			put32(b, ph(l, 1, ph64Type), 6)
			return b
		}, want: ErrNoSegments},
		{name: "only empty PT_LOADs", is64: true, mut: func(b []byte, l synthLayout) []byte {
			for i := range 2 {
				put64(b, ph(l, i, ph64Filesz), 0)
				put64(b, ph(l, i, ph64Memsz), 0)
			}
			return b
		}, want: ErrNoSegments},
		{name: "no notes at all", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs}, want: ErrNoPVHNote},
		{name: "wrong note type", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: note("Xen\x00", 17, []byte{0x10, 0, 0x10, 0})}, want: ErrNoPVHNote},
		{name: "wrong note name", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: note("Xex\x00", 18, []byte{0x10, 0, 0x10, 0})}, want: ErrNoPVHNote},
		{name: "name without NUL", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: note("Xen", 18, []byte{0x10, 0, 0x10, 0})}, want: ErrNoPVHNote},
		{name: "note descsz 2", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: note("Xen\x00", 18, []byte{0x10, 0})}, want: ErrBadNote, msg: "descsz 2"},
		{name: "note namesz huge", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put32(b, l.noteOff, 0xffff_fff0)
			return b
		}, want: ErrBadNote},
		{name: "note descsz huge", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put32(b, l.noteOff+4, 0xffff_ffff)
			return b
		}, want: ErrBadNote},
		{name: "note header truncated", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, l.notePhdr, ph64Filesz), 5)
			return b
		}, want: ErrBadNote},
		{name: "PT_NOTE past EOF", is64: true, mut: func(b []byte, l synthLayout) []byte {
			put64(b, ph(l, l.notePhdr, ph64Filesz), uint64(len(b)))
			return b
		}, want: ErrTruncated, msg: "PT_NOTE"},
		{name: "note scan budget", is64: true, mut: func(b []byte, l synthLayout) []byte {
			// 63 PT_NOTEs each covering the same run of empty notes
			// (12 zero bytes each: valid, just useless) exceed MaxNoteBytes.
			n := (MaxNoteBytes/(MaxPhnum-1) + 12) / 12 * 12
			notesAt := uint64(len(b))
			b = append(b, make([]byte, n)...)
			put64(b, ph(l, l.notePhdr, ph64Offset), notesAt)
			put64(b, ph(l, l.notePhdr, ph64Filesz), uint64(n))
			// Repoint the headers: MaxPhnum copies of the PT_NOTE header.
			phoff := uint64(len(b))
			note := append([]byte(nil), b[ph(l, l.notePhdr, 0):ph(l, l.notePhdr, 0)+56]...)
			load := append([]byte(nil), b[ph(l, 0, 0):ph(l, 0, 0)+56]...)
			b = append(b, load...)
			for range MaxPhnum - 1 {
				b = append(b, note...)
			}
			put64(b, 32, phoff)
			put16(b, 56, MaxPhnum)
			put64(b, phoff+ph64Filesz, 0) // the load: zero-size file part so only the notes count
			return b
		}, want: ErrTooLarge, msg: "notes"},
		{name: "conflicting PVH notes", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: append(pvhNote(goodEntry, 4), pvhNote(goodEntry+4, 4)...)}, want: ErrBadNote, msg: "conflicts"},
		{name: "entry outside segments", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: pvhNote(0x30_0000, 4)}, want: ErrBadEntry},
		{name: "entry in bss", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: pvhNote(goodText+0x800, 4)}, want: ErrBadEntry},
		{name: "entry above 32 bits", is64: true, opts: &synthOpts{is64: true, segs: goodOpts(true, 4).segs,
			notes: pvhNote(0x1_0010_0010, 8)}, want: ErrBadEntry},
		{name: "section table past EOF", is64: true,
			opts: func() *synthOpts { o := goodOpts(true, 4); o.noteInSection = true; return &o }(),
			mut:  func(b []byte, l synthLayout) []byte { return b[:len(b)-1] }, want: ErrTruncated, msg: "section header table"},
		{name: "bad shentsize", is64: true,
			opts: func() *synthOpts { o := goodOpts(true, 4); o.noteInSection = true; return &o }(),
			mut:  func(b []byte, l synthLayout) []byte { put16(b, 58, 40); return b }, want: ErrBadHeader},
		{name: "too many sections", is64: true,
			opts: func() *synthOpts { o := goodOpts(true, 4); o.noteInSection = true; return &o }(),
			mut:  func(b []byte, l synthLayout) []byte { put16(b, 60, MaxShnum+1); return b }, want: ErrTooLarge},
		{name: "SHT_NOTE past EOF", is64: true,
			opts: func() *synthOpts { o := goodOpts(true, 4); o.noteInSection = true; return &o }(),
			mut:  func(b []byte, l synthLayout) []byte { put64(b, l.shoff+64+24, uint64(len(b))); return b }, want: ErrTruncated},
		{name: "section note bad sizes", is64: true,
			opts: func() *synthOpts { o := goodOpts(true, 4); o.noteInSection = true; return &o }(),
			mut:  func(b []byte, l synthLayout) []byte { put32(b, l.noteOff, 0x1000); return b }, want: ErrBadNote},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := goodOpts(tc.is64, 4)
			if tc.opts != nil {
				o = *tc.opts
			}
			b, l := synth(o)
			if _, err := ParsePVH(b); err != nil {
				// Guard against a test whose mutation is what fails, not the base.
				if tc.mut != nil {
					t.Fatalf("unmutated base image does not parse: %v", err)
				}
			}
			if tc.mut != nil {
				b = tc.mut(b, l)
			}
			img, err := ParsePVH(b)
			if !errors.Is(err, tc.want) {
				t.Fatalf("ParsePVH err = %v (img %+v), want %v", err, img, tc.want)
			}
			if img != nil {
				t.Fatalf("image returned alongside error")
			}
			if tc.msg != "" && !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q", err, tc.msg)
			}
		})
	}
}
