package memory

import (
	"bytes"
	"errors"
	"math/bits"
	"testing"
)

// FuzzAccess throws arbitrary address arithmetic at a FromSlices guest and
// checks every outcome against an independent 128-bit reference model.
func FuzzAccess(f *testing.F) {
	f.Add(uint64(0), uint64(1), uint8(0))
	f.Add(uint64(0x2fff), uint64(2), uint8(1))
	f.Add(uint64(HighRAMStart-1), uint64(2), uint8(2))
	f.Add(uint64(MMIOHoleStart), uint64(0), uint8(3))
	f.Add(^uint64(0), ^uint64(0), uint8(4))
	f.Add(^uint64(0)-0x1fff, uint64(0x2000), uint8(5))
	f.Fuzz(func(t *testing.T, gpa, n uint64, op uint8) {
		g, m := twoRegions(t)
		// Reference: inside iff some region r has r.gpa <= gpa and
		// gpa+n <= r.gpa+len, computed without wrapping.
		model := func(gpa, n uint64) (inside bool, region []byte, off uint64) {
			for base, b := range m {
				endLo, endHi := bits.Add64(gpa, n, 0)
				if gpa >= base && endHi == 0 && endLo <= base+uint64(len(b)) {
					return true, b, gpa - base
				}
			}
			return false, nil, 0
		}
		want, _, _ := model(gpa, n)
		if got := g.Contains(gpa, n); got != want {
			t.Fatalf("Contains(%#x, %#x) = %v, model says %v", gpa, n, got, want)
		}
		var err error
		switch op % 6 {
		case 0:
			var s []byte
			s, err = g.Slice(gpa, n)
			if err == nil && (uint64(len(s)) != n || uint64(cap(s)) != n) {
				t.Fatalf("Slice len/cap %d/%d, want %d", len(s), cap(s), n)
			}
		case 1:
			err = g.Zero(gpa, n)
		case 2, 3:
			// Bound the buffer, not the address: the interesting part is
			// the arithmetic, and huge n is covered by Slice/Zero.
			l := n % (1 << 14)
			var region []byte
			var off uint64
			want, region, off = model(gpa, l)
			src := bytes.Repeat([]byte{0xA5}, int(l))
			err = g.Write(gpa, src)
			if err == nil {
				dst := make([]byte, l)
				if rerr := g.Read(gpa, dst); rerr != nil || !bytes.Equal(dst, src) {
					t.Fatalf("read back after write: %v", rerr)
				}
				if want && l > 0 && region[off] != 0xA5 {
					t.Fatalf("write to %#x did not land at offset %#x of its region", gpa, off)
				}
			}
		case 4:
			_, err = g.ReadU64(gpa)
			want, _, _ = model(gpa, 8)
		case 5:
			_, err = g.LoadU16Acquire(gpa)
			if in, _, _ := model(gpa, 2); err == nil && (gpa%2 != 0 || !in) {
				t.Fatalf("atomic load at %#x succeeded outside the rules", gpa)
			}
			return
		}
		if want != (err == nil) {
			t.Fatalf("op %d gpa %#x n %#x: err %v, model inside=%v", op%6, gpa, n, err, want)
		}
		if err != nil && !errors.Is(err, ErrOutOfRange) {
			t.Fatalf("error %v does not wrap ErrOutOfRange", err)
		}
	})
}
