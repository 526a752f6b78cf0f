package blk

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/govmm/govmm/devices/virtio"
)

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeImage(t, dir, make([]byte, 4096))
	odd := filepath.Join(dir, "odd.img")
	if err := os.WriteFile(odd, make([]byte, 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		path    string
		opts    Options
		is      error
		message string
	}{
		{"missing file", filepath.Join(dir, "nope.img"), Options{}, os.ErrNotExist, "nope.img: open"},
		{"bad size", odd, Options{}, ErrBadSize, "size 1000 is not a multiple of 512"},
		{"serial too long", good, Options{Serial: strings.Repeat("x", 21)}, ErrSerialTooLong, "21 bytes"},
		{"directory", dir, Options{ReadOnly: true}, ErrNotDisk, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := Open(tc.path, tc.opts)
			if err == nil {
				d.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.message) || !strings.Contains(err.Error(), "disk ") {
				t.Fatalf("error %q, want %v containing %q", err, tc.is, tc.message)
			}
		})
	}
}

// TestLocking: one writer excludes everyone; readers share.
func TestLocking(t *testing.T) {
	for _, tc := range []struct {
		name          string
		first, second bool // ReadOnly
		conflict      bool
	}{
		{"rw then rw", false, false, true},
		{"rw then ro", false, true, true},
		{"ro then rw", true, false, true},
		{"ro then ro", true, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeImage(t, t.TempDir(), make([]byte, 4096))
			a, err := Open(path, Options{ReadOnly: tc.first})
			if err != nil {
				t.Fatal(err)
			}
			b, err := Open(path, Options{ReadOnly: tc.second})
			if !tc.conflict {
				if err != nil {
					t.Fatalf("second open: %v", err)
				}
				b.Close()
				a.Close()
				return
			}
			if err == nil {
				b.Close()
				t.Fatal("second open succeeded")
			}
			want := "disk " + path + " is in use by another VM (flock: "
			if !errors.Is(err, ErrInUse) || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error %q, want ErrInUse starting %q", err, want)
			}
			// Closing the first releases the lock.
			a.Close()
			b, err = Open(path, Options{ReadOnly: tc.second})
			if err != nil {
				t.Fatalf("open after close: %v", err)
			}
			b.Close()
		})
	}
}

func TestConfigSpace(t *testing.T) {
	path := writeImage(t, t.TempDir(), make([]byte, 3<<20))
	d, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	le := binary.LittleEndian
	read := func(off uint64, n int) []byte {
		b := make([]byte, n)
		if err := d.ReadConfig(off, b); err != nil {
			t.Fatalf("ReadConfig(%d, %d): %v", off, n, err)
		}
		return b
	}
	if got := le.Uint64(read(cfgCapacity, 8)); got != 3<<20/512 {
		t.Fatalf("capacity %d", got)
	}
	if got := le.Uint32(read(cfgSegMax, 4)); got != SegMax {
		t.Fatalf("seg_max %d", got)
	}
	if got := le.Uint32(read(cfgBlkSize, 4)); got != 512 {
		t.Fatalf("blk_size %d", got)
	}
	// Byte-wise reads of a field agree with the wide read.
	var c [8]byte
	for i := range 8 {
		c[i] = read(uint64(i), 1)[0]
	}
	if le.Uint64(c[:]) != 3<<20/512 {
		t.Fatal("byte-wise capacity differs")
	}
	if d.discard {
		if le.Uint32(read(cfgMaxDiscardSeg, 4)) != MaxDiscardSeg || read(cfgWriteZeroesMayUnmap, 1)[0] != 1 ||
			le.Uint32(read(cfgMaxWriteZeroesSector, 4)) != MaxWriteZeroesSectors {
			t.Fatal("discard limits missing")
		}
	}
	if f := d.Features(); f&(1<<virtio.FeatureVersion1) == 0 || f&(1<<FeatureFlush) == 0 || f&(1<<FeatureRO) != 0 ||
		f&(1<<virtio.FeatureEventIdx) == 0 || f&(1<<virtio.FeatureIndirectDesc) == 0 || f&(1<<FeatureConfigWCE) != 0 {
		t.Fatalf("features %#x", f)
	}
	for _, tc := range []struct {
		off uint64
		n   int
		ok  bool
	}{
		{0, configSize, true},
		{configSize - 1, 1, true},
		{configSize, 0, true},
		{configSize - 2, 4, false},
		{configSize, 1, false},
		{1 << 40, 4, false},
		{^uint64(0), 8, false},
		{^uint64(0) - 3, 8, false},
	} {
		b := make([]byte, tc.n)
		for i := range b {
			b[i] = 0xee
		}
		err := d.ReadConfig(tc.off, b)
		if (err == nil) != tc.ok {
			t.Fatalf("ReadConfig(%#x, %d): %v", tc.off, tc.n, err)
		}
		if !tc.ok && !errors.Is(err, ErrBadConfigRange) {
			t.Fatalf("error %v", err)
		}
		if tc.off >= configSize {
			for _, x := range b {
				if x != 0 {
					t.Fatal("out-of-range bytes not zeroed")
				}
			}
		}
		if err := d.WriteConfig(tc.off, b); (err == nil) != tc.ok {
			t.Fatalf("WriteConfig(%#x, %d): %v", tc.off, tc.n, err)
		}
	}
	// Writes are ignored.
	if err := d.WriteConfig(cfgCapacity, []byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	if le.Uint64(read(cfgCapacity, 8)) != 3<<20/512 {
		t.Fatal("config write changed capacity")
	}
	if d.DeviceID() != 2 || len(d.QueueMaxSizes()) != 1 || d.QueueMaxSizes()[0] != 256 {
		t.Fatal("identity")
	}
}
