package blk

import (
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/govmm/govmm/memory"
)

// TestParseChain: the parser takes the chain a buffer at a time and does
// not know which is the last until finish. Every shape of header, data and
// status buffers must give the segments a straightforward reading of
// §5.2.6 gives, and each malformed shape its own error.
func TestParseChain(t *testing.T) {
	ram := make([]byte, 1<<16)
	mem, err := memory.FromSlices(map[uint64][]byte{0: ram})
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint32(ram[0x100:], TypeIn)
	binary.LittleEndian.PutUint64(ram[0x108:], 7)
	r := func(a uint64, n uint32) desc { return desc{Addr: a, Len: n} }
	w := func(a uint64, n uint32) desc { return desc{Addr: a, Len: n, Write: true} }
	for _, tc := range []struct {
		name   string
		chain  []desc
		data   []desc
		status uint64
		err    error
	}{
		{"header, data, status", []desc{r(0x100, 16), w(0x1000, 512), w(0x2000, 1)},
			[]desc{w(0x1000, 512)}, 0x2000, nil},
		{"header split 5+11", []desc{r(0x100, 5), r(0x105, 11), w(0x1000, 512), w(0x2000, 1)},
			[]desc{w(0x1000, 512)}, 0x2000, nil},
		{"header shares its buffer with data", []desc{r(0x100, 16+512), w(0x2000, 1)},
			[]desc{r(0x110, 512)}, 0x2000, nil},
		{"header tail after a split", []desc{r(0x100, 8), r(0x108, 8+512), w(0x2000, 1)},
			[]desc{r(0x110, 512)}, 0x2000, nil},
		{"status shares its buffer with data", []desc{r(0x100, 16), w(0x1000, 513)},
			[]desc{w(0x1000, 512)}, 0x1200, nil},
		{"empty buffers dropped", []desc{r(0x100, 16), w(0x1000, 0), w(0x1000, 512), w(0x3000, 0), w(0x2000, 1)},
			[]desc{w(0x1000, 512)}, 0x2000, nil},
		{"many data buffers", []desc{r(0x100, 16), w(0x1000, 512), w(0x1200, 512), w(0x3000, 512), w(0x2000, 1)},
			[]desc{w(0x1000, 512), w(0x1200, 512), w(0x3000, 512)}, 0x2000, nil},
		{"no data", []desc{r(0x100, 16), w(0x2000, 1)}, nil, 0x2000, nil},
		{"empty chain", nil, nil, 0, ErrNoStatus},
		{"status not writable", []desc{r(0x100, 16), r(0x2000, 1)}, nil, 0, ErrNoStatus},
		{"status empty", []desc{r(0x100, 16), w(0x2000, 0)}, nil, 0, ErrNoStatus},
		{"header writable", []desc{w(0x100, 16), w(0x2000, 1)}, nil, 0, ErrHeaderWritable},
		{"header spills into writable", []desc{r(0x100, 8), w(0x108, 8), w(0x2000, 1)}, nil, 0, ErrHeaderWritable},
		{"only a status", []desc{w(0x2000, 1)}, nil, 0, ErrHeaderWritable},
		{"header too short", []desc{r(0x100, 8), w(0x2000, 1)}, nil, 0, ErrShortHeader},
		{"header short, status buffer larger", []desc{r(0x100, 8), w(0x2000, 9)}, nil, 0, ErrShortHeader},
		{"header cut by writable data", []desc{r(0x100, 8), w(0x1000, 512), r(0x108, 8), w(0x2000, 1)}, nil, 0, ErrHeaderWritable},
		{"readable last buffer after data", []desc{r(0x100, 16), w(0x1000, 512), r(0x2000, 1)}, nil, 0, ErrNoStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := reqParser{mem: mem}
			var last desc
			for _, b := range tc.chain {
				p.add(b)
				last = b
			}
			var req request
			err := p.finish(&req, last, len(tc.chain))
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.typ != TypeIn || req.sector != 7 || req.status != tc.status {
				t.Fatalf("type %d sector %d status %#x", req.typ, req.sector, req.status)
			}
			if !slices.Equal(req.data, tc.data) {
				t.Fatalf("data %v, want %v", req.data, tc.data)
			}
			var n uint64
			anyR, anyW := false, false
			for _, d := range tc.data {
				n += uint64(d.Len)
				anyR, anyW = anyR || !d.Write, anyW || d.Write
			}
			if gotR, gotW := req.directions(); req.dataLen != n || gotR != anyR || gotW != anyW {
				t.Fatalf("dataLen %d anyRead %v anyWrite %v, want %d %v %v", req.dataLen, gotR, gotW, n, anyR, anyW)
			}
		})
	}
}
