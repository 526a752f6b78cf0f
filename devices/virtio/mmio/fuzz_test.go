package mmio_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/devices/virtio"
	"github.com/govmm/govmm/devices/virtio/mmio"
	"github.com/govmm/govmm/devices/virtio/virtiotest"
)

// A fuzz program is a sequence of 6-byte ops:
//
//	op[0] bits 0-1: 0 read, 1 write, 2 guest adds a chain to the prepared
//	                queue and kicks (op[1] bit 0: indirect, bit 1: writable
//	                tail, bit 2: corrupt it into a loop), 3 worker-side
//	                Transport.Notify(op[1]%4)
//	op[0] bits 2-3: access width 1, 2, 4, 8
//	op[0] bits 4-5: added to the offset (misalignment)
//	op[1]:          offset/4 (0 .. 0x3fc)
//	op[2:6]:        value, little endian
//
// Rings for queue 0 (size 8) are laid out at q0Base before the program
// runs, so programs that write those addresses reach DRIVER_OK and I/O.
const opLen = 6

type op struct {
	kind, width, mis, off8 byte
	val                    uint32
}

func (o op) bytes() []byte {
	w := map[byte]byte{1: 0, 2: 1, 4: 2, 8: 3}[o.width]
	b := []byte{o.kind | w<<2 | o.mis<<4, o.off8, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(b[2:], o.val)
	return b
}

func FuzzMMIO(f *testing.F) {
	f.Add(program(linuxOps()...))
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 600*opLen {
			return
		}
		runProgram(t, prog)
	})
}

// TestLinuxSeedDoesIO keeps the main seed honest: it must get the device
// live and complete requests, or the fuzzer starts from nothing.
func TestLinuxSeedDoesIO(t *testing.T) {
	r := runProgram(t, program(linuxOps()...))
	if r.dev.activates != 1 || r.dev.completed != 2 || r.tr.Status() != 0xf {
		t.Fatalf("activates %d completed %d status %#x", r.dev.activates, r.dev.completed, r.tr.Status())
	}
}

// runProgram executes a fuzz program (see op) and checks the transport's
// invariants after every op.
func runProgram(t *testing.T, prog []byte) *rig {
	r := newRig(t, newFake())
	desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
	d, err := virtiotest.New(r.mem, 8, desc, avail, used)
	if err != nil {
		t.Fatal(err)
	}
	d.IndirectAddr = indBase
	offered := r.dev.features
	var data [8]byte
	for len(prog) >= opLen {
		b := prog[:opLen]
		prog = prog[opLen:]
		width := 1 << ((b[0] >> 2) & 3)
		off := uint64(b[1])*4 + uint64(b[0]>>4&3)
		buf := data[:width]
		binary.LittleEndian.PutUint32(data[:4], binary.LittleEndian.Uint32(b[2:]))
		switch b[0] & 3 {
		case 0:
			err := r.tr.Read(off, buf)
			if errors.Is(err, devices.ErrBadAccess) {
				for _, x := range buf {
					if x != 0xff {
						t.Fatalf("failed read at %#x did not fill 0xff", off)
					}
				}
			} else if err != nil {
				t.Fatalf("read %#x: unexpected error %v", off, err)
			}
		case 1:
			if err := r.tr.Write(off, buf); err != nil && !errors.Is(err, devices.ErrBadAccess) {
				t.Fatalf("write %#x: unexpected error %v", off, err)
			}
			if off == mmio.RegStatus && width == 4 && binary.LittleEndian.Uint32(buf) == 0 {
				if r.tr.Status() != 0 || r.tr.InterruptStatus() != 0 {
					t.Fatal("reset left state behind")
				}
				d, _ = virtiotest.New(r.mem, 8, desc, avail, used)
				d.IndirectAddr = indBase
			}
		case 2:
			bufs := []virtiotest.Buf{{Addr: dataAddr, Len: 16}}
			if b[1]&2 != 0 {
				bufs = append(bufs, virtiotest.Buf{Addr: dataAddr + 0x100, Len: 512, Write: true})
			}
			if b[1]&4 != 0 {
				d.Loop(uint16(b[2])%8, uint16(b[3])%8+1, bufs[0])
			} else if _, err := d.AddChain(bufs, b[1]&1 != 0); err == nil {
				d.Kick()
			}
			d.ReadUsed()
		case 3:
			r.tr.Notify(int(b[1] % 4))
		}
		st := r.tr.Status()
		if st&virtio.StatusDriverOK != 0 && st&virtio.StatusFeaturesOK == 0 {
			t.Fatalf("DRIVER_OK without FEATURES_OK: %#x", st)
		}
		if nf := r.tr.Features(); nf&^offered != 0 || (nf != 0 && nf&(1<<virtio.FeatureVersion1) == 0) {
			t.Fatalf("negotiated %#x, offered %#x", nf, offered)
		}
		if r.dev.activates > 0 && r.dev.activeCtx() != nil && st&virtio.StatusDriverOK == 0 {
			t.Fatalf("device active but status %#x", st)
		}
	}
	return r
}

func program(ops ...op) []byte {
	var out []byte
	for _, o := range ops {
		out = append(out, o.bytes()...)
	}
	return out
}

func rd4(off uint64) op           { return op{kind: 0, width: 4, off8: byte(off / 4)} }
func wr4(off uint64, v uint32) op { return op{kind: 1, width: 4, off8: byte(off / 4), val: v} }
func chainOp(flags byte) op       { return op{kind: 2, off8: flags} }
func notifyOp(q byte) op          { return op{kind: 3, off8: q} }
func widthOp(kind, w byte, off uint64) op {
	return op{kind: kind, width: w, off8: byte(off / 4), mis: byte(off % 4)}
}

// linuxOps is vm_probe + virtio_dev_probe + vm_setup_vq + DRIVER_OK + I/O.
func linuxOps() []op {
	desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
	return []op{
		rd4(mmio.RegMagicValue), rd4(mmio.RegVersion), rd4(mmio.RegDeviceID), rd4(mmio.RegVendorID),
		wr4(mmio.RegStatus, 0),
		wr4(mmio.RegStatus, 1), wr4(mmio.RegStatus, 3),
		wr4(mmio.RegDeviceFeaturesSel, 1), rd4(mmio.RegDeviceFeatures),
		wr4(mmio.RegDeviceFeaturesSel, 0), rd4(mmio.RegDeviceFeatures),
		wr4(mmio.RegDriverFeaturesSel, 1), wr4(mmio.RegDriverFeatures, 1),
		wr4(mmio.RegDriverFeaturesSel, 0), wr4(mmio.RegDriverFeatures, 1<<28|1<<29),
		wr4(mmio.RegStatus, 0xb), rd4(mmio.RegStatus),
		wr4(mmio.RegQueueSel, 0), rd4(mmio.RegQueueReady), rd4(mmio.RegQueueNumMax),
		wr4(mmio.RegQueueNum, 8),
		wr4(mmio.RegQueueDescLow, uint32(desc)), wr4(mmio.RegQueueDescHigh, 0),
		wr4(mmio.RegQueueDriverLow, uint32(avail)), wr4(mmio.RegQueueDriverHigh, 0),
		wr4(mmio.RegQueueDeviceLow, uint32(used)), wr4(mmio.RegQueueDeviceHigh, 0),
		wr4(mmio.RegQueueReady, 1),
		wr4(mmio.RegStatus, 0xf),
		chainOp(2), wr4(mmio.RegQueueNotify, 0), rd4(mmio.RegInterruptStatus), wr4(mmio.RegInterruptACK, 1),
		chainOp(3), notifyOp(0), rd4(mmio.RegConfigGeneration),
		widthOp(0, 1, mmio.RegConfig), widthOp(0, 2, mmio.RegConfig+2), widthOp(0, 4, mmio.RegConfig+4),
	}
}

// TestWriteFuzzSeeds regenerates testdata/fuzz/FuzzMMIO when
// GOVMM_WRITE_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	desc, avail, used, _ := virtiotest.Layout(q0Base, 8)
	linux := linuxOps()
	seeds := map[string][]op{
		"linux_bringup_io": linux,
		"bad_widths": {
			widthOp(0, 1, 0), widthOp(0, 2, mmio.RegStatus), widthOp(0, 8, mmio.RegQueueDescLow),
			widthOp(1, 4, mmio.RegStatus+1), widthOp(0, 4, 0xf8), widthOp(1, 8, mmio.RegConfig),
			widthOp(0, 2, mmio.RegConfig+1), widthOp(1, 1, mmio.RegStatus),
		},
		"reset_mid_io": append(append([]op{}, linux...),
			chainOp(2), wr4(mmio.RegStatus, 0), notifyOp(0), wr4(mmio.RegQueueNotify, 0), rd4(mmio.RegStatus)),
		"loop_needs_reset": append(append([]op{}, linux...),
			chainOp(4), wr4(mmio.RegQueueNotify, 0), rd4(mmio.RegStatus), rd4(mmio.RegInterruptStatus),
			rd4(mmio.RegConfigGeneration), wr4(mmio.RegStatus, 0)),
		"bad_queue_size": {
			wr4(mmio.RegStatus, 1), wr4(mmio.RegStatus, 3),
			wr4(mmio.RegDriverFeaturesSel, 1), wr4(mmio.RegDriverFeatures, 1), wr4(mmio.RegStatus, 0xb),
			wr4(mmio.RegQueueNum, 6), wr4(mmio.RegQueueDescLow, uint32(desc)),
			wr4(mmio.RegQueueDriverLow, uint32(avail)), wr4(mmio.RegQueueDeviceLow, uint32(used)),
			wr4(mmio.RegQueueReady, 1), rd4(mmio.RegQueueReady), wr4(mmio.RegStatus, 0xf), notifyOp(0),
		},
		"rings_over_hole": {
			wr4(mmio.RegStatus, 1), wr4(mmio.RegStatus, 3),
			wr4(mmio.RegDriverFeaturesSel, 1), wr4(mmio.RegDriverFeatures, 1), wr4(mmio.RegStatus, 0xb),
			wr4(mmio.RegQueueNum, 8), wr4(mmio.RegQueueDescLow, 0xbfff_ffc0),
			wr4(mmio.RegQueueDriverLow, uint32(avail)), wr4(mmio.RegQueueDeviceLow, uint32(used)),
			wr4(mmio.RegQueueReady, 1), wr4(mmio.RegStatus, 0xf),
		},
		"unoffered_features": {
			wr4(mmio.RegStatus, 1), wr4(mmio.RegStatus, 3),
			wr4(mmio.RegDriverFeaturesSel, 1), wr4(mmio.RegDriverFeatures, 0xffffffff),
			wr4(mmio.RegDriverFeaturesSel, 7), wr4(mmio.RegDriverFeatures, 1),
			wr4(mmio.RegStatus, 0xb), rd4(mmio.RegStatus), wr4(mmio.RegStatus, 0xf),
		},
		"status_out_of_order": {
			wr4(mmio.RegStatus, 4), wr4(mmio.RegStatus, 8), wr4(mmio.RegStatus, 0x80), wr4(mmio.RegStatus, 0xff),
			wr4(mmio.RegStatus, 0x40), rd4(mmio.RegStatus),
		},
	}
	for name, ops := range seeds {
		if len(ops) == 0 {
			t.Fatalf("%s: empty", name)
		}
	}
	if os.Getenv("GOVMM_WRITE_SEEDS") != "1" {
		return
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzMMIO")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, ops := range seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(program(ops...))))
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
