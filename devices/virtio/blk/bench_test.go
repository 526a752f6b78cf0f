package blk

import (
	"encoding/binary"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/devices/virtio/virtiotest"
)

// The benchmarks run the whole device path (virtiotest driver publishes a
// chain, Notify pops, validates and does the I/O, the driver reaps the used
// element) against raw pread/pwrite of the same sizes at the same offsets on
// the same file, so the ratio is the device's cost. The image lives in
// /var/tmp (a disk-backed file system on most hosts, unlike /tmp, which may
// be tmpfs); after the first pass it is in the host page cache for both
// paths, so this measures VMM overhead, not the disk.

const benchImage = 64 << 20

func benchFile(b *testing.B) string {
	b.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "govmm-blk-bench-")
	if err != nil {
		b.Skip("no /var/tmp:", err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	path := writeImage(b, dir, pattern(benchImage))
	// Write it back now, so background writeback of 64 MiB of dirty pages
	// does not run during (and skew) whichever benchmark comes first.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return path
}

func benchOffsets(sectorsPerIO uint64, random bool) []uint64 {
	n := benchImage / SectorSize / sectorsPerIO
	offs := make([]uint64, 4096)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range offs {
		if random {
			offs[i] = r.Uint64N(n) * sectorsPerIO
		} else {
			offs[i] = (uint64(i) % n) * sectorsPerIO
		}
	}
	return offs
}

type benchCase struct {
	name   string
	typ    uint32
	size   uint32 // bytes per request
	segs   int    // data descriptors per request (Linux hands 4 KiB pages)
	random bool
	// indirect: the chain is one descriptor pointing at an indirect
	// table, as Linux's virtio_ring builds every chain of more than one
	// buffer once VIRTIO_F_INDIRECT_DESC is negotiated.
	indirect bool
	// scattered: the data pages are not adjacent in guest memory (a page
	// gap after each), so the device cannot merge them and must hand the
	// host kernel one segment per page. Otherwise the rig allocates them
	// back to back and they merge into one host range.
	scattered bool
}

var benchCases = []benchCase{
	{"randread-4k", TypeIn, 4096, 1, true, false, false},
	{"randwrite-4k", TypeOut, 4096, 1, true, false, false},
	{"seqread-64k", TypeIn, 65536, 16, false, false, false},
	{"seqread-64k-indirect", TypeIn, 65536, 16, false, true, false},
	{"seqread-64k-scattered", TypeIn, 65536, 16, false, true, true},
	{"seqread-64k-1seg", TypeIn, 65536, 1, false, false, false},
}

// BenchmarkBlk runs each case through the device and raw on one shared
// image file.
func BenchmarkBlk(b *testing.B) {
	path := benchFile(b)
	for _, bc := range benchCases {
		b.Run(bc.name+"/device", func(b *testing.B) { benchDevice(b, path, bc) })
		b.Run(bc.name+"/raw", func(b *testing.B) { benchRaw(b, path, bc) })
		if bc.segs > 1 {
			b.Run(bc.name+"/raw-vectored", func(b *testing.B) { benchRawVectored(b, path, bc) })
			b.Run(bc.name+"/device-reused-chain", func(b *testing.B) { benchDeviceReusedChain(b, path, bc) })
		}
	}
}

// benchDeviceReusedChain is benchDevice with the guest side reduced to
// what a guest that reuses its buffers does per request: the descriptors
// are written once, and each request only puts the same head in the avail
// ring and bumps avail->idx. The device still pops, walks and validates
// every descriptor, checks every buffer and does the I/O each time, so
// this is the VMM's own cost; benchDevice adds the test driver's
// descriptor writes and free-list work, which a real guest does on its
// own vCPU.
func benchDeviceReusedChain(b *testing.B, path string, bc benchCase) {
	r := newRig(b, path, Options{}, rigOpts{eventIdx: true, indirect: true})
	offs := benchOffsets(uint64(bc.size)/SectorSize, bc.random)
	hdr, bufs, st := benchRequest(r, bc)
	head, used := reusedChain(b, r, bufs, bc.indirect)
	b.SetBytes(int64(bc.size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		binary.LittleEndian.PutUint64(r.ram[hdr.Addr+8:], offs[i%len(offs)])
		i++
		r.ram[st.Addr] = 0xff
		if err := r.drv.PushHead(head); err != nil {
			b.Fatal(err)
		}
		r.disk.Notify(0)
		used++
		if got, _ := r.drv.UsedIdx(); got != used || r.ram[st.Addr] != StatusOK {
			b.Fatalf("request failed: used idx %d want %d, status %d", got, used, r.ram[st.Addr])
		}
	}
}

// benchRawVectored is the raw baseline with the request's shape: one
// preadv/pwritev of bc.segs page-aligned segments, as the device issues
// for a chain of bc.segs guest pages. Against benchRaw (one contiguous
// buffer) it shows what the segmentation itself costs in the host kernel,
// apart from the VMM.
func benchRawVectored(b *testing.B, path string, bc benchCase) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	// An mmap'd buffer is page-aligned, as the rig's guest buffers are.
	mem, err := unix.Mmap(-1, 0, int(bc.size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mem)
	seg := int(bc.size) / bc.segs
	iov := make([]iovec, bc.segs)
	for i := range iov {
		iov[i] = iovOf(mem[i*seg:][:seg])
	}
	offs := benchOffsets(uint64(bc.size)/SectorSize, bc.random)
	b.SetBytes(int64(bc.size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		off := int64(offs[i%len(offs)] * SectorSize)
		i++
		var n int
		if bc.typ == TypeIn {
			n, err = preadv(fd, iov, off)
		} else {
			n, err = pwritev(fd, iov, off)
		}
		if err != nil || n != int(bc.size) {
			b.Fatal(n, err)
		}
	}
}

// reusedChain adds bufs as a chain and completes it once through the
// normal path; afterwards a benchmark only re-publishes head (the driver's
// free list is never used again). It returns the head and the used index
// after that first completion.
func reusedChain(b *testing.B, r *rig, bufs []virtiotest.Buf, indirect bool) (head, used uint16) {
	b.Helper()
	head, err := r.drv.AddChain(bufs, indirect)
	if err != nil {
		b.Fatal(err)
	}
	r.drv.Kick()
	r.disk.Notify(0)
	if _, ok, _ := r.drv.PopUsed(); !ok {
		b.Fatal("first request did not complete")
	}
	if used, err = r.drv.UsedIdx(); err != nil {
		b.Fatal(err)
	}
	return head, used
}

// benchRequest lays out one request of bc's shape in the rig's RAM: the
// header, bc.segs data buffers and the status byte.
func benchRequest(r *rig, bc benchCase) (hdr virtiotest.Buf, bufs []virtiotest.Buf, st virtiotest.Buf) {
	hdr = r.header(bc.typ, 0)
	bufs = []virtiotest.Buf{hdr}
	for range bc.segs {
		bufs = append(bufs, r.buf(bc.size/uint32(bc.segs), bc.typ == TypeIn))
		if bc.scattered {
			r.buf(4096, false) // the gap
		}
	}
	st = r.status()
	return hdr, append(bufs, st), st
}

func benchDevice(b *testing.B, path string, bc benchCase) {
	r := newRig(b, path, Options{}, rigOpts{eventIdx: true, indirect: true})
	offs := benchOffsets(uint64(bc.size)/SectorSize, bc.random)
	hdr, bufs, st := benchRequest(r, bc)
	b.SetBytes(int64(bc.size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		binary.LittleEndian.PutUint64(r.ram[hdr.Addr+8:], offs[i%len(offs)])
		i++
		if _, err := r.drv.AddChain(bufs, bc.indirect); err != nil {
			b.Fatal(err)
		}
		r.drv.Kick()
		r.disk.Notify(0)
		if _, ok, _ := r.drv.PopUsed(); !ok || r.ram[st.Addr] != StatusOK {
			b.Fatalf("request failed: status %d", r.ram[st.Addr])
		}
	}
}

func benchRaw(b *testing.B, path string, bc benchCase) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	offs := benchOffsets(uint64(bc.size)/SectorSize, bc.random)
	buf := make([]byte, bc.size)
	b.SetBytes(int64(bc.size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rawIO(b, fd, bc.typ, buf, int64(offs[i%len(offs)]*SectorSize))
		i++
	}
}

// rawIO is the raw baseline's one request: a pread or pwrite of buf.
func rawIO(b *testing.B, fd int, typ uint32, buf []byte, off int64) {
	var n int
	var err error
	if typ == TypeIn {
		n, err = unix.Pread(fd, buf, off)
	} else {
		n, err = unix.Pwrite(fd, buf, off)
	}
	if err != nil || n != len(buf) {
		b.Fatal(n, err)
	}
}

// BenchmarkBlkGetID is a request with no file I/O: what is left is the
// per-request cost of the queue walk, validation, status and used ring, plus
// the in-process test driver's own work on the guest side.
func BenchmarkBlkGetID(b *testing.B) {
	r := newRig(b, benchFile(b), Options{Serial: "bench"}, rigOpts{eventIdx: true, indirect: true})
	bufs := []virtiotest.Buf{r.header(TypeGetID, 0), r.buf(IDBytes, true), r.status()}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.drv.AddChain(bufs, false); err != nil {
			b.Fatal(err)
		}
		r.drv.Kick()
		r.disk.Notify(0)
		if _, ok, _ := r.drv.PopUsed(); !ok {
			b.Fatal("not completed")
		}
	}
}

// BenchmarkBlkRequestPath is the device's whole request path without the
// file I/O: each case's chain, re-published as in benchDeviceReusedChain,
// asks for a sector past the end of the disk, so the device pops, walks
// and checks every descriptor, parses and validates the request and
// answers IOERR through the used ring. With everything in cache and no
// syscall it is the CPU cost of the path alone, steadier than the paired
// benchmark for comparing two versions of the code. ns/op includes the
// test driver re-publishing the head, and no clock read (one costs tens of
// nanoseconds on some hypervisors).
func BenchmarkBlkRequestPath(b *testing.B) {
	path := benchFile(b)
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) { benchRequestPath(b, path, bc, nil) })
	}
}

// BenchmarkBlkRequestPathCold is BenchmarkBlkRequestPath with the CPU
// caches in the state a real request finds them: before each request a
// 128 KiB read of another part of the image (untimed by "notify-ns")
// pushes the rings, descriptors, header and the device's own state out of
// L1 and L2, as the previous request's 64 KiB copy, and the guest writing
// the next one on another CPU, do in a VM. Against the hot figure this is
// the cache-miss share of the overhead that BenchmarkBlkPaired measures:
// the part that grows with the number of cache lines the device must
// touch, not with its instructions.
func BenchmarkBlkRequestPathCold(b *testing.B) {
	path := benchFile(b)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const pollute = 128 << 10
	scratch := make([]byte, pollute)
	evict := func(i int) {
		off := int64(i%(benchImage/pollute)) * pollute
		if k, err := f.ReadAt(scratch, off); err != nil || k != pollute {
			b.Fatal(k, err)
		}
	}
	for _, bc := range benchCases {
		b.Run(bc.name, func(b *testing.B) { benchRequestPath(b, path, bc, evict) })
	}
}

// benchRequestPath runs bc's chain through the IOERR path. With evict set,
// evict runs before each request and Notify alone is timed ("notify-ns",
// which includes one clock read, about 30 ns here: BenchmarkBlkPaired's
// clock-ns).
func benchRequestPath(b *testing.B, path string, bc benchCase, evict func(i int)) {
	r := newRig(b, path, Options{}, rigOpts{eventIdx: true, indirect: true})
	hdr, bufs, st := benchRequest(r, bc)
	head, used := reusedChain(b, r, bufs, bc.indirect)
	binary.LittleEndian.PutUint64(r.ram[hdr.Addr+8:], r.disk.Capacity())
	b.ReportAllocs()
	var notify time.Duration
	n := 0
	for b.Loop() {
		if evict != nil {
			evict(n)
		}
		if err := r.drv.PushHead(head); err != nil {
			b.Fatal(err)
		}
		if evict != nil {
			t0 := time.Now()
			r.disk.Notify(0)
			notify += time.Since(t0)
		} else {
			r.disk.Notify(0)
		}
		used++
		n++
		if got, _ := r.drv.UsedIdx(); got != used || r.ram[st.Addr] != StatusIOErr {
			b.Fatalf("used idx %d want %d, status %d", got, used, r.ram[st.Addr])
		}
	}
	if evict != nil {
		b.ReportMetric(float64(notify.Nanoseconds())/float64(n), "notify-ns")
	}
}
