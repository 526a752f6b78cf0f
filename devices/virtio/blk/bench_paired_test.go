package blk

import (
	"encoding/binary"
	"os"
	"testing"
	"time"
)

// BenchmarkBlkPaired interleaves device requests and raw pread/pwrite at the
// same offsets in one loop, alternating which goes first, and reports the
// ratio raw/device directly. Separate benchmarks run minutes apart on a
// shared host drift by ±10 % (CPU frequency, other tenants, page-cache
// state), which is the size of the effect being measured; pairing each
// device request with a raw one cancels the drift, and alternating the
// order cancels the cache warmth the second of a pair inherits from the
// first. "vmm" re-publishes a reused chain (the VMM's own cost, see
// benchDeviceReusedChain); "driver" also counts the in-process test
// driver's descriptor writes.
func BenchmarkBlkPaired(b *testing.B) {
	path := benchFile(b)
	for _, bc := range benchCases {
		b.Run(bc.name+"/vmm", func(b *testing.B) { benchPaired(b, path, bc, true) })
		b.Run(bc.name+"/driver", func(b *testing.B) { benchPaired(b, path, bc, false) })
	}
}

func benchPaired(b *testing.B, path string, bc benchCase, reuse bool) {
	r := newRig(b, path, Options{}, rigOpts{eventIdx: true, indirect: true})
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	raw := make([]byte, bc.size)
	offs := benchOffsets(uint64(bc.size)/SectorSize, bc.random)
	hdr, bufs, st := benchRequest(r, bc)

	var head uint16
	var used uint16
	if reuse {
		if head, err = r.drv.AddChain(bufs, false); err != nil {
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
	}
	device := func(sector uint64) {
		binary.LittleEndian.PutUint64(r.ram[hdr.Addr+8:], sector)
		r.ram[st.Addr] = 0xff
		if reuse {
			if err := r.drv.PushHead(head); err != nil {
				b.Fatal(err)
			}
			r.disk.Notify(0)
			used++
			if got, _ := r.drv.UsedIdx(); got != used || r.ram[st.Addr] != StatusOK {
				b.Fatalf("request failed: used idx %d want %d, status %d", got, used, r.ram[st.Addr])
			}
			return
		}
		if _, err := r.drv.AddChain(bufs, false); err != nil {
			b.Fatal(err)
		}
		r.drv.Kick()
		r.disk.Notify(0)
		if _, ok, _ := r.drv.PopUsed(); !ok || r.ram[st.Addr] != StatusOK {
			b.Fatalf("request failed: status %d", r.ram[st.Addr])
		}
	}
	host := func(sector uint64) { rawIO(b, fd, bc.typ, raw, int64(sector*SectorSize)) }
	var devNS, rawNS time.Duration
	b.SetBytes(2 * int64(bc.size))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		sector := offs[i%len(offs)]
		t0 := time.Now()
		if i%2 == 0 {
			device(sector)
			t1 := time.Now()
			host(sector)
			t2 := time.Now()
			devNS += t1.Sub(t0)
			rawNS += t2.Sub(t1)
		} else {
			host(sector)
			t1 := time.Now()
			device(sector)
			t2 := time.Now()
			rawNS += t1.Sub(t0)
			devNS += t2.Sub(t1)
		}
		i++
	}
	b.ReportMetric(float64(devNS.Nanoseconds())/float64(i), "device-ns/req")
	b.ReportMetric(float64(rawNS.Nanoseconds())/float64(i), "raw-ns/req")
	b.ReportMetric(float64(devNS-rawNS)/float64(i), "overhead-ns/req")
	b.ReportMetric(float64(rawNS)/float64(devNS), "raw/device")
}
