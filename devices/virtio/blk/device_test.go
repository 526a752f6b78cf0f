package blk

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
)

const imgSize = 1 << 20 // 2048 sectors

func TestReadPatterned(t *testing.T) {
	img := pattern(imgSize)
	for _, tc := range []struct {
		name     string
		indirect bool
		segs     []uint32 // data segment lengths
		sector   uint64
	}{
		{"one segment", false, []uint32{4096}, 0},
		{"scattered", false, []uint32{512, 1024, 3584, 512}, 17},
		{"indirect", true, []uint32{4096, 4096, 8192}, 100},
		{"last sectors", false, []uint32{1024}, imgSize/SectorSize - 2},
		{"zero length", false, nil, imgSize / SectorSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t, writeImage(t, t.TempDir(), img), Options{}, rigOpts{indirect: true})
			bufs := []virtiotest.Buf{r.header(TypeIn, tc.sector)}
			total := uint32(0)
			for _, n := range tc.segs {
				bufs = append(bufs, r.buf(n, true))
				total += n
			}
			bufs = append(bufs, r.status())
			st, used := r.mustRun(bufs, tc.indirect)
			if st != StatusOK || used != total+1 {
				t.Fatalf("status %d used %d, want OK and %d", st, used, total+1)
			}
			var got []byte
			for _, b := range bufs[1 : len(bufs)-1] {
				got = append(got, r.bytes(b)...)
			}
			off := tc.sector * SectorSize
			if !bytes.Equal(got, img[off:off+uint64(total)]) {
				t.Fatal("read data differs from the image")
			}
			if s := r.disk.Stats(); s.Reads != 1 || s.BytesRead != uint64(total) || s.IOErrors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

// TestHeaderAndStatusShapes: the header may span descriptors and share one
// with data; the status may share the last buffer with data.
func TestHeaderAndStatusShapes(t *testing.T) {
	img := pattern(imgSize)
	r := newRig(t, writeImage(t, t.TempDir(), img), Options{}, rigOpts{})
	// Header split 5+11, then 512 bytes of data + status in one buffer.
	h := r.header(TypeIn, 3)
	tail := r.buf(513, true)
	st, used := r.mustRun([]virtiotest.Buf{
		{Addr: h.Addr, Len: 5}, {Addr: h.Addr + 5, Len: 11}, tail,
	}, false)
	if st != StatusOK || used != 513 {
		t.Fatalf("status %d used %d", st, used)
	}
	if !bytes.Equal(r.bytes(tail)[:512], img[3*512:4*512]) {
		t.Fatal("data differs")
	}
	// A write whose header buffer also carries the data.
	wb := r.alloc(16 + 512)
	var hdr [16]byte
	binary.LittleEndian.PutUint32(hdr[0:], TypeOut)
	binary.LittleEndian.PutUint64(hdr[8:], 9)
	copy(r.ram[wb:], hdr[:])
	for i := range 512 {
		r.ram[wb+16+uint64(i)] = byte(i * 7)
	}
	st, used = r.mustRun([]virtiotest.Buf{{Addr: wb, Len: 16 + 512}, r.status()}, false)
	if st != StatusOK || used != 1 {
		t.Fatalf("write: status %d used %d", st, used)
	}
	got, _ := os.ReadFile(r.disk.Path())
	if !bytes.Equal(got[9*512:10*512], r.ram[wb+16:wb+16+512]) {
		t.Fatal("write with header-sharing data not on disk")
	}
}

func TestWriteFlushReadBack(t *testing.T) {
	path := writeImage(t, t.TempDir(), make([]byte, imgSize))
	r := newRig(t, path, Options{}, rigOpts{eventIdx: true, indirect: true})
	data := r.buf(8192, false)
	for i := range r.bytes(data) {
		r.bytes(data)[i] = byte(i*31 + 1)
	}
	want := append([]byte(nil), r.bytes(data)...)
	if st, used := r.mustRun([]virtiotest.Buf{r.header(TypeOut, 64), data, r.status()}, false); st != StatusOK || used != 1 {
		t.Fatalf("write: status %d used %d", st, used)
	}
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false); st != StatusOK {
		t.Fatalf("flush: status %d", st)
	}
	// On the host, through a different file description.
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[64*512:64*512+8192], want) {
		t.Fatal("written data not in the image file")
	}
	// And back through the device.
	rd := r.buf(8192, true)
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, 64), rd, r.status()}, true); st != StatusOK {
		t.Fatalf("read back: status %d", st)
	}
	if !bytes.Equal(r.bytes(rd), want) {
		t.Fatal("read back differs")
	}
	s := r.disk.Stats()
	if s.Writes != 1 || s.Flushes != 1 || s.Reads != 1 || s.BytesWritten != 8192 || s.BytesRead != 8192 {
		t.Fatalf("stats %+v", s)
	}
}

// TestBadRequests: requests the device answers with IOERR or UNSUPP and
// keeps working.
func TestBadRequests(t *testing.T) {
	const sectors = imgSize / SectorSize
	for _, tc := range []struct {
		name   string
		ro     bool
		typ    uint32
		sector uint64
		segs   []virtioSeg
		want   byte
	}{
		{"read past end", false, TypeIn, sectors - 1, []virtioSeg{{1024, true}}, StatusIOErr},
		{"read starts past end", false, TypeIn, sectors + 1, []virtioSeg{{512, true}}, StatusIOErr},
		{"sector overflow", false, TypeIn, ^uint64(0), []virtioSeg{{512, true}}, StatusIOErr},
		{"sector*512 overflow", false, TypeOut, 1 << 56, []virtioSeg{{512, false}}, StatusIOErr},
		{"misaligned length", false, TypeIn, 0, []virtioSeg{{500, true}}, StatusIOErr},
		{"misaligned across segments", false, TypeOut, 0, []virtioSeg{{256, false}, {300, false}}, StatusIOErr},
		{"read into readable buffer", false, TypeIn, 0, []virtioSeg{{512, false}}, StatusIOErr},
		{"write from writable buffer", false, TypeOut, 0, []virtioSeg{{512, true}}, StatusIOErr},
		{"write on read-only", true, TypeOut, 0, []virtioSeg{{512, false}}, StatusIOErr},
		{"discard on read-only", true, TypeDiscard, 0, []virtioSeg{{16, false}}, StatusUnsupp},
		{"unknown type", false, 0x1234, 0, nil, StatusUnsupp},
		{"get lifetime", false, TypeGetLifetime, 0, []virtioSeg{{16, true}}, StatusUnsupp},
		{"secure erase", false, TypeSecureErase, 0, []virtioSeg{{16, false}}, StatusUnsupp},
		{"get id readable", false, TypeGetID, 0, []virtioSeg{{20, false}}, StatusIOErr},
		{"get id no buffer", false, TypeGetID, 0, nil, StatusIOErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := pattern(imgSize)
			path := writeImage(t, t.TempDir(), img)
			r := newRig(t, path, Options{ReadOnly: tc.ro}, rigOpts{})
			bufs := []virtiotest.Buf{r.header(tc.typ, tc.sector)}
			for _, s := range tc.segs {
				b := r.buf(s.n, s.write)
				copy(r.bytes(b), bytes.Repeat([]byte{0xee}, int(s.n)))
				bufs = append(bufs, b)
			}
			bufs = append(bufs, r.status())
			st, used := r.mustRun(bufs, false)
			if st != tc.want || used != 1 {
				t.Fatalf("status %d used %d, want %d and 1", st, used, tc.want)
			}
			if len(r.resets) != 0 {
				t.Fatalf("NeedsReset for a bad request: %v", r.resets)
			}
			// Nothing was written or read into guest buffers.
			for _, b := range bufs[1 : len(bufs)-1] {
				if !bytes.Equal(r.bytes(b), bytes.Repeat([]byte{0xee}, int(b.Len))) {
					t.Fatal("guest buffer modified by a failed request")
				}
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, img) {
				t.Fatal("image modified by a failed request")
			}
			// The device keeps working.
			if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, 0), r.buf(512, true), r.status()}, false); st != StatusOK {
				t.Fatalf("follow-up read: status %d", st)
			}
			s := r.disk.Stats()
			if tc.want == StatusIOErr && s.IOErrors != 1 || tc.want == StatusUnsupp && s.UnsuppErrors != 1 || s.HostIOErrors != 0 {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

type virtioSeg struct {
	n     uint32
	write bool
}

// TestProtocolViolations: malformed chains put the device in NEEDS_RESET;
// after a reset it works again.
func TestProtocolViolations(t *testing.T) {
	for _, tc := range []struct {
		name  string
		chain func(r *rig) []virtiotest.Buf
		want  error
	}{
		{"header writable", func(r *rig) []virtiotest.Buf {
			h := r.header(TypeIn, 0)
			h.Write = true
			return []virtiotest.Buf{h, r.buf(512, true), r.status()}
		}, ErrHeaderWritable},
		{"only a status buffer", func(r *rig) []virtiotest.Buf {
			return []virtiotest.Buf{r.status()}
		}, ErrHeaderWritable},
		{"missing status", func(r *rig) []virtiotest.Buf {
			return []virtiotest.Buf{r.header(TypeOut, 0), r.buf(512, false)}
		}, ErrNoStatus},
		{"status readable", func(r *rig) []virtiotest.Buf {
			s := r.status()
			s.Write = false
			return []virtiotest.Buf{r.header(TypeFlush, 0), s}
		}, ErrNoStatus},
		{"status zero length", func(r *rig) []virtiotest.Buf {
			s := r.status()
			s.Len = 0
			return []virtiotest.Buf{r.header(TypeIn, 0), r.buf(512, true), s}
		}, ErrNoStatus},
		{"short header", func(r *rig) []virtiotest.Buf {
			h := r.header(TypeIn, 0)
			h.Len = 12
			return []virtiotest.Buf{h, r.status()}
		}, ErrShortHeader},
		{"header spills into writable", func(r *rig) []virtiotest.Buf {
			h := r.header(TypeIn, 0)
			return []virtiotest.Buf{{Addr: h.Addr, Len: 8}, {Addr: h.Addr + 8, Len: 8, Write: true}, r.status()}
		}, ErrHeaderWritable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeImage(t, t.TempDir(), pattern(imgSize))
			r := newRig(t, path, Options{}, rigOpts{})
			if _, _, ok := r.run(tc.chain(r), false); ok {
				t.Fatal("device completed a malformed chain")
			}
			if len(r.resets) != 1 || !errors.Is(r.resets[0], tc.want) {
				t.Fatalf("NeedsReset calls %v, want one with %v", r.resets, tc.want)
			}
			// Broken: further kicks are ignored, not processed.
			r.submit([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false)
			r.disk.Notify(0)
			if _, ok, _ := r.drv.PopUsed(); ok || len(r.resets) != 1 {
				t.Fatal("broken device kept processing")
			}
			if s := r.disk.Stats(); s.ProtocolErrors != 1 {
				t.Fatalf("stats %+v", s)
			}
			// The driver resets and starts again: the device works.
			r.disk.Reset()
			r.activate(rigOpts{})
			if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, 0), r.buf(512, true), r.status()}, false); st != StatusOK {
				t.Fatalf("after reset: status %d", st)
			}
		})
	}
}

// TestQueueViolation: a violation found by the queue (a descriptor loop)
// reaches NeedsReset through the device too.
func TestQueueViolation(t *testing.T) {
	r := newRig(t, writeImage(t, t.TempDir(), pattern(imgSize)), Options{}, rigOpts{})
	if err := r.drv.Loop(0, 3, r.buf(16, false)); err != nil {
		t.Fatal(err)
	}
	r.disk.Notify(0)
	if len(r.resets) != 1 {
		t.Fatalf("NeedsReset calls %v, want 1", r.resets)
	}
}

func TestGetID(t *testing.T) {
	for _, tc := range []struct {
		serial string
		buf    uint32
		want   []byte
	}{
		{"vol-123", 20, append([]byte("vol-123"), make([]byte, 13)...)},
		{"abcdefghijklmnopqrst", 20, []byte("abcdefghijklmnopqrst")}, // exactly 20: no NUL
		{"", 20, make([]byte, 20)},
		{"vol-123", 4, []byte("vol-")},                                  // truncated to the buffer
		{"vol-123", 32, append([]byte("vol-123"), make([]byte, 13)...)}, // only 20 written
	} {
		t.Run(tc.serial, func(t *testing.T) {
			r := newRig(t, writeImage(t, t.TempDir(), make([]byte, 4096)), Options{Serial: tc.serial}, rigOpts{})
			b := r.buf(tc.buf, true)
			for i := range r.bytes(b) {
				r.bytes(b)[i] = 0xee
			}
			st, used := r.mustRun([]virtiotest.Buf{r.header(TypeGetID, 0), b, r.status()}, false)
			if st != StatusOK || used != uint32(len(tc.want))+1 {
				t.Fatalf("status %d used %d", st, used)
			}
			if got := r.bytes(b)[:len(tc.want)]; !bytes.Equal(got, tc.want) {
				t.Fatalf("id %q, want %q", got, tc.want)
			}
			for _, c := range r.bytes(b)[len(tc.want):] {
				if c != 0xee {
					t.Fatal("wrote past the 20 ID bytes")
				}
			}
		})
	}
}

func TestReadOnly(t *testing.T) {
	img := pattern(imgSize)
	path := writeImage(t, t.TempDir(), img)
	r := newRig(t, path, Options{ReadOnly: true}, rigOpts{})
	if r.disk.Features()&(1<<FeatureRO) == 0 || r.disk.Features()&(1<<FeatureDiscard) != 0 {
		t.Fatalf("features %#x: want RO, no DISCARD", r.disk.Features())
	}
	w := r.buf(512, false)
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeOut, 0), w, r.status()}, false); st != StatusIOErr {
		t.Fatalf("write on read-only: status %d", st)
	}
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false); st != StatusOK {
		t.Fatalf("flush on read-only: status %d", st)
	}
	rd := r.buf(512, true)
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, 1), rd, r.status()}, false); st != StatusOK || !bytes.Equal(r.bytes(rd), img[512:1024]) {
		t.Fatalf("read on read-only: status %d", st)
	}
	// The file descriptor itself is read-only.
	if _, err := unix.Pwrite(r.disk.fd, []byte{1}, 0); err == nil {
		t.Fatal("read-only disk's fd is writable")
	}
}

// dwzSegBytes encodes struct virtio_blk_discard_write_zeroes.
func dwzSegBytes(sector uint64, n, flags uint32) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint64(b[0:], sector)
	binary.LittleEndian.PutUint32(b[8:], n)
	binary.LittleEndian.PutUint32(b[12:], flags)
	return b
}

func allocatedBytes(t *testing.T, path string) int64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestDiscardWriteZeroes(t *testing.T) {
	img := pattern(imgSize)
	for _, tc := range []struct {
		name    string
		typ     uint32
		segs    [][]byte
		want    byte
		zeroed  [][2]uint64 // sector ranges that must read as zero afterwards
		dealloc bool        // blocks must be freed
	}{
		{"discard", TypeDiscard, [][]byte{dwzSegBytes(0, 256, 0)}, StatusOK, [][2]uint64{{0, 256}}, true},
		{"discard two segments", TypeDiscard, [][]byte{dwzSegBytes(8, 8, 0), dwzSegBytes(1000, 24, 0)}, StatusOK, [][2]uint64{{8, 8}, {1000, 24}}, true},
		{"write zeroes", TypeWriteZeroes, [][]byte{dwzSegBytes(16, 256, 0)}, StatusOK, [][2]uint64{{16, 256}}, false},
		{"write zeroes unmap", TypeWriteZeroes, [][]byte{dwzSegBytes(512, 512, 1)}, StatusOK, [][2]uint64{{512, 512}}, true},
		{"partial block", TypeWriteZeroes, [][]byte{dwzSegBytes(3, 1, 0)}, StatusOK, [][2]uint64{{3, 1}}, false},
		{"zero sectors", TypeDiscard, [][]byte{dwzSegBytes(5, 0, 0)}, StatusOK, nil, false},
		{"discard with unmap", TypeDiscard, [][]byte{dwzSegBytes(0, 8, 1)}, StatusUnsupp, nil, false},
		{"unknown flag", TypeWriteZeroes, [][]byte{dwzSegBytes(0, 8, 2)}, StatusUnsupp, nil, false},
		{"out of range", TypeDiscard, [][]byte{dwzSegBytes(2040, 9, 0)}, StatusIOErr, nil, false},
		{"second segment bad: nothing done", TypeWriteZeroes, [][]byte{dwzSegBytes(0, 8, 0), dwzSegBytes(^uint64(0), 8, 0)}, StatusIOErr, nil, false},
		{"too many sectors", TypeDiscard, [][]byte{dwzSegBytes(0, MaxDiscardSectors+1, 0)}, StatusIOErr, nil, false},
		{"too many segments", TypeDiscard, bytes17Segs(), StatusIOErr, nil, false},
		{"torn segment", TypeDiscard, [][]byte{dwzSegBytes(0, 8, 0)[:12]}, StatusIOErr, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeImage(t, t.TempDir(), img)
			r := newRig(t, path, Options{}, rigOpts{})
			if r.disk.Features()&(1<<FeatureDiscard) == 0 {
				t.Skip("file system does not punch holes")
			}
			if err := unix.Fsync(r.disk.fd); err != nil { // make block counts stable
				t.Fatal(err)
			}
			before := allocatedBytes(t, path)
			bufs := []virtiotest.Buf{r.header(tc.typ, 0)}
			for _, s := range tc.segs {
				b := r.buf(uint32(len(s)), false)
				copy(r.bytes(b), s)
				bufs = append(bufs, b)
			}
			bufs = append(bufs, r.status())
			st, _ := r.mustRun(bufs, false)
			if st != tc.want {
				t.Fatalf("status %d, want %d", st, tc.want)
			}
			got, _ := os.ReadFile(path)
			want := append([]byte(nil), img...)
			for _, z := range tc.zeroed {
				clear(want[z[0]*512 : (z[0]+z[1])*512])
			}
			if len(got) != len(img) {
				t.Fatalf("image size changed: %d", len(got))
			}
			if !bytes.Equal(got, want) {
				t.Fatal("image content wrong after the request")
			}
			after := allocatedBytes(t, path)
			if tc.dealloc && after >= before {
				t.Fatalf("no blocks freed: %d -> %d bytes", before, after)
			}
			if !tc.dealloc && after < before {
				t.Fatalf("blocks freed without unmap: %d -> %d bytes", before, after)
			}
		})
	}
}

func bytes17Segs() [][]byte {
	var s [][]byte
	for i := range MaxDiscardSeg + 1 {
		s = append(s, dwzSegBytes(uint64(i*8), 8, 0))
	}
	return s
}

// TestDiscardNotNegotiated: offered but not accepted by the driver -> UNSUPP.
func TestDiscardNotNegotiated(t *testing.T) {
	path := writeImage(t, t.TempDir(), pattern(imgSize))
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r := newRigDisk(t, d, rigOpts{features: d.Features() &^ (1<<FeatureDiscard | 1<<FeatureWriteZeroes)})
	seg := r.buf(16, false)
	copy(r.bytes(seg), dwzSegBytes(0, 8, 0))
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeDiscard, 0), seg, r.status()}, false); st != StatusUnsupp {
		t.Fatalf("status %d, want UNSUPP", st)
	}
}

func TestDirect(t *testing.T) {
	dir := t.TempDir()
	img := pattern(4 << 20)
	path := writeImage(t, dir, img)
	d, err := Open(path, Options{Direct: true})
	if err != nil {
		t.Skipf("O_DIRECT not available here: %v", err)
	}
	defer d.Close()
	r := newRigDisk(t, d, rigOpts{})
	align := uint64(d.blkSize)
	// A read larger than the bounce buffer, scattered over odd-sized
	// segments, at an aligned offset.
	segs := []uint32{uint32(align), 700 * 1024, 400 * 1024, uint32(align)} // multiples of any align <= 4096
	total := uint64(0)
	bufs := []virtiotest.Buf{r.header(TypeIn, align/512*3)}
	for _, n := range segs {
		bufs = append(bufs, r.buf(n, true))
		total += uint64(n)
	}
	bufs = append(bufs, r.status())
	st, _ := r.mustRun(bufs, false)
	if st != StatusOK {
		t.Fatalf("direct read: status %d", st)
	}
	var got []byte
	for _, b := range bufs[1 : len(bufs)-1] {
		got = append(got, r.bytes(b)...)
	}
	off := align * 3
	if !bytes.Equal(got, img[off:off+total]) {
		t.Fatal("direct read data differs")
	}
	// Write through the bounce buffer and read it back on the host.
	w := r.buf(uint32(2*align), false)
	for i := range r.bytes(w) {
		r.bytes(w)[i] = byte(i ^ 0x5a)
	}
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeOut, 0), w, r.status()}, false); st != StatusOK {
		t.Fatalf("direct write: status %d", st)
	}
	host, _ := os.ReadFile(path)
	if !bytes.Equal(host[:2*align], r.bytes(w)) {
		t.Fatal("direct write not in the file")
	}
	if align > 512 {
		if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, 1), r.buf(uint32(align), true), r.status()}, false); st != StatusIOErr {
			t.Fatalf("unaligned direct read: status %d", st)
		}
	}
}

// fakeClock is a manually advanced clock for the rate limiter.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestRateLimitIOPS(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	path := writeImage(t, t.TempDir(), pattern(imgSize))
	r := newRig(t, path, Options{IOPS: 10, Clock: clk.now}, rigOpts{eventIdx: true})
	const n = 25
	heads := map[uint16]int{}
	var datas []virtiotest.Buf
	for i := range n {
		d := r.buf(512, true)
		datas = append(datas, d)
		head, err := r.drv.AddChain([]virtiotest.Buf{r.header(TypeIn, uint64(i)), d, r.status()}, false)
		if err != nil {
			t.Fatal(err)
		}
		heads[head] = i
	}
	if _, err := r.drv.Kick(); err != nil {
		t.Fatal(err)
	}
	start := clk.t
	done := map[int]bool{}
	for rounds := 0; len(done) < n; rounds++ {
		if rounds > 100 {
			t.Fatalf("only %d of %d requests completed", len(done), n)
		}
		r.disk.Notify(0)
		for {
			e, ok, err := r.drv.PopUsed()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			i, known := heads[uint16(e.ID)]
			if !known || done[i] {
				t.Fatalf("bogus or duplicate completion %d", e.ID)
			}
			done[i] = true
		}
		w := r.disk.RetryAfter()
		if len(done) < n && w <= 0 {
			t.Fatalf("%d of %d done, nothing pending, RetryAfter %v", len(done), n, w)
		}
		if len(done) == n && w != 0 {
			t.Fatalf("all done but RetryAfter %v", w)
		}
		clk.t = clk.t.Add(w)
	}
	// 10 at once (burst), then 15 more at 10/s.
	if el := clk.t.Sub(start); el != 1500*time.Millisecond {
		t.Fatalf("25 requests took %v of fake time, want 1.5s", el)
	}
	img := pattern(imgSize)
	for i, d := range datas {
		if !bytes.Equal(r.bytes(d), img[i*512:(i+1)*512]) {
			t.Fatalf("request %d read the wrong data", i)
		}
	}
	s := r.disk.Stats()
	if s.Reads != n || s.Throttled != n-10 {
		t.Fatalf("stats %+v: want %d reads, %d throttled", s, n, n-10)
	}
	if r.irqs == 0 {
		t.Fatal("no interrupt raised")
	}
}

// TestRateLimitBPSLarge: a request larger than the byte burst still passes
// (on a full bucket), it is not starved.
func TestRateLimitBPSLarge(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	path := writeImage(t, t.TempDir(), pattern(imgSize))
	r := newRig(t, path, Options{BPS: 4096, BPSBurst: 4096, Clock: clk.now}, rigOpts{})
	for i := range 3 {
		r.submit([]virtiotest.Buf{r.header(TypeIn, 0), r.buf(16384, true), r.status()}, false)
		for k := 0; ; k++ {
			r.disk.Notify(0)
			if _, ok, _ := r.drv.PopUsed(); ok {
				break
			}
			if k > 10 {
				t.Fatalf("request %d starved", i)
			}
			clk.t = clk.t.Add(r.disk.RetryAfter())
		}
	}
}

// TestResetDropsThrottled: a Reset while a request is held drops it, and
// the next activation starts clean.
func TestResetDropsThrottled(t *testing.T) {
	clk := &fakeClock{t: time.Unix(1000, 0)}
	path := writeImage(t, t.TempDir(), pattern(imgSize))
	r := newRig(t, path, Options{IOPS: 1, Clock: clk.now}, rigOpts{})
	r.mustRun([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false)
	if _, _, ok := r.run([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false); ok {
		t.Fatal("second request not throttled")
	}
	if r.disk.RetryAfter() != time.Second {
		t.Fatalf("RetryAfter %v, want 1s", r.disk.RetryAfter())
	}
	r.disk.Reset()
	if w := r.disk.RetryAfter(); w != 0 {
		t.Fatalf("RetryAfter %v after reset", w)
	}
	r.activate(rigOpts{})
	clk.t = clk.t.Add(time.Second)
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false); st != StatusOK {
		t.Fatal("after reset")
	}
}

// TestEventIdxInterrupts: with EVENT_IDX, interrupts follow used_event.
func TestEventIdxInterrupts(t *testing.T) {
	r := newRig(t, writeImage(t, t.TempDir(), pattern(imgSize)), Options{}, rigOpts{eventIdx: true})
	flush := func() []virtiotest.Buf { return []virtiotest.Buf{r.header(TypeFlush, 0), r.status()} }
	r.mustRun(flush(), false) // first batch always interrupts
	if r.irqs != 1 {
		t.Fatalf("irqs %d", r.irqs)
	}
	// Driver asks to be told only after used idx passes 3.
	if err := r.drv.SetUsedEvent(3); err != nil {
		t.Fatal(err)
	}
	r.mustRun(flush(), false) // used idx 1 -> 2: no interrupt
	if r.irqs != 1 {
		t.Fatalf("interrupt despite used_event: irqs %d", r.irqs)
	}
	r.mustRun(flush(), false) // 2 -> 3: no
	r.mustRun(flush(), false) // 3 -> 4 crosses used_event 3: yes
	if r.irqs != 2 {
		t.Fatalf("irqs %d, want 2", r.irqs)
	}
	// The device re-enabled notifications: avail_event = next to consume.
	if ev, _ := r.drv.AvailEvent(); ev != 4 {
		t.Fatalf("avail_event %d, want 4", ev)
	}
}

// TestNotifyIgnored: kicks for other queues, before Activate, after Reset
// and after Close do nothing.
func TestNotifyIgnored(t *testing.T) {
	path := writeImage(t, t.TempDir(), pattern(imgSize))
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	d.Notify(0)
	r := newRigDisk(t, d, rigOpts{})
	r.submit([]virtiotest.Buf{r.header(TypeFlush, 0), r.status()}, false)
	d.Notify(1)
	d.Notify(-1)
	if _, ok, _ := r.drv.PopUsed(); ok {
		t.Fatal("Notify(1) processed queue 0")
	}
	d.Reset()
	d.Notify(0)
	if _, ok, _ := r.drv.PopUsed(); ok {
		t.Fatal("Notify after Reset processed the queue")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d.Notify(0)
	if err := d.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := d.Activate(virtio.ActivateContext{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Activate after Close: %v", err)
	}
}

func TestActivateErrors(t *testing.T) {
	path := writeImage(t, t.TempDir(), pattern(4096))
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Activate(virtio.ActivateContext{}); !errors.Is(err, ErrActivate) {
		t.Fatalf("empty context: %v", err)
	}
}

// TestSteadyStateNoAllocs: a read, a write and a flush cost no heap
// allocation once the device is warm.
func TestSteadyStateNoAllocs(t *testing.T) {
	r := newRig(t, writeImage(t, t.TempDir(), pattern(imgSize)), Options{}, rigOpts{eventIdx: true, indirect: true})
	hr, hw, hf := r.header(TypeIn, 8), r.header(TypeOut, 16), r.header(TypeFlush, 0)
	segs := make([]virtiotest.Buf, 0, 20)
	for range 16 { // more than unix.Preadv's 8-iovec stack array
		segs = append(segs, r.buf(512, true))
	}
	w, st := r.buf(4096, false), r.status()
	rd := append([]virtiotest.Buf{hr}, append(segs, st)...)
	wr := []virtiotest.Buf{hw, w, st}
	fl := []virtiotest.Buf{hf, st}
	step := func() {
		for _, c := range [][]virtiotest.Buf{rd, wr, fl} {
			if _, err := r.drv.AddChain(c, false); err != nil {
				t.Fatal(err)
			}
		}
		r.drv.Kick()
		r.disk.Notify(0)
		for {
			if _, ok, _ := r.drv.PopUsed(); !ok {
				break
			}
		}
	}
	step()
	if a := testing.AllocsPerRun(50, step); a != 0 {
		t.Fatalf("%v allocations per read+write+flush batch", a)
	}
	if s := r.disk.Stats(); s.IOErrors != 0 || s.Reads != 52 { // 1 + AllocsPerRun's warm-up + 50
		t.Fatalf("stats %+v", s)
	}
}

// TestWriteZeroesFallback: without ZERO_RANGE (tmpfs) write zeroes punches
// and re-allocates, so the range reads as zero and stays allocated.
func TestWriteZeroesFallback(t *testing.T) {
	img := pattern(imgSize)
	path := writeImage(t, t.TempDir(), img)
	r := newRig(t, path, Options{}, rigOpts{})
	if !r.disk.discard {
		t.Skip("file system does not punch holes")
	}
	r.disk.zeroRng = false
	unix.Fsync(r.disk.fd)
	before := allocatedBytes(t, path)
	seg := r.buf(16, false)
	copy(r.bytes(seg), dwzSegBytes(64, 128, 0))
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeWriteZeroes, 0), seg, r.status()}, false); st != StatusOK {
		t.Fatalf("status %d", st)
	}
	got, _ := os.ReadFile(path)
	want := append([]byte(nil), img...)
	clear(want[64*512 : 192*512])
	if !bytes.Equal(got, want) {
		t.Fatal("range not zeroed")
	}
	if after := allocatedBytes(t, path); after < before {
		t.Fatalf("blocks freed: %d -> %d", before, after)
	}
}

// TestHostIOError: the image shrinking under the device (a host problem)
// gives IOERR, counted as a host error, and the device keeps working.
func TestHostIOError(t *testing.T) {
	path := writeImage(t, t.TempDir(), pattern(imgSize))
	r := newRig(t, path, Options{}, rigOpts{})
	if err := os.Truncate(path, imgSize/2); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, imgSize/SectorSize-8), r.buf(4096, true), r.status()}, false); st != StatusIOErr {
		t.Fatalf("read of a vanished range: status %d", st)
	}
	if s := r.disk.Stats(); s.HostIOErrors != 1 || s.IOErrors != 1 {
		t.Fatalf("stats %+v", s)
	}
	if st, _ := r.mustRun([]virtiotest.Buf{r.header(TypeIn, 0), r.buf(4096, true), r.status()}, false); st != StatusOK {
		t.Fatalf("read inside: status %d", st)
	}
	if r.disk.Capacity() != imgSize/SectorSize || r.disk.ReadOnly() {
		t.Fatal("accessors")
	}
}
