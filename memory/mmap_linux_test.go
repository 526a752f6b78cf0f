package memory

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// vma is one line of /proc/self/maps plus, from smaps, its VmFlags and Rss.
type vma struct {
	start, end uint64
	perms      string
	flags      []string
	rssKB      uint64
}

func readSmaps(t *testing.T) []vma {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []vma
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && len(fields) >= 2 && !strings.HasSuffix(fields[0], ":") {
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				out = append(out, vma{start: s, end: e, perms: fields[1]})
				continue
			}
		}
		if len(out) == 0 {
			continue
		}
		cur := &out[len(out)-1]
		switch fields[0] {
		case "VmFlags:":
			cur.flags = fields[1:]
		case "Rss:":
			cur.rssKB, _ = strconv.ParseUint(fields[1], 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// covering returns the VMA containing addr.
func covering(vmas []vma, addr uint64) (vma, bool) {
	for _, v := range vmas {
		if v.start <= addr && addr < v.end {
			return v, true
		}
	}
	return vma{}, false
}

func hasFlag(v vma, f string) bool {
	for _, x := range v.flags {
		if x == f {
			return true
		}
	}
	return false
}

func newGuest(t *testing.T, opts Options) *Guest {
	t.Helper()
	g, err := New(opts)
	if err != nil {
		t.Fatalf("New(%+v): %v", opts, err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestNewMappings(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		perm string // RAM permissions in maps
	}{
		{"anonymous", Options{Size: 4 << 20}, "rw-p"},
		{"memfd", Options{Size: 4 << 20, Memfd: true}, "rw-s"},
		{"prefault+mlock", Options{Size: 2 << 20, Prefault: true, Mlock: true}, "rw-p"},
		{"memfd prefault", Options{Size: 2 << 20, Memfd: true, Prefault: true}, "rw-s"},
		{"unaligned to 2 MiB", Options{Size: 5 * PageSize}, "rw-p"},
		{"split around hole", Options{Size: MMIOHoleStart + 2<<20}, "rw-p"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGuest(t, tc.opts)
			if g.Size() != tc.opts.Size {
				t.Fatalf("Size %#x, want %#x", g.Size(), tc.opts.Size)
			}
			want, _ := RAMRanges(tc.opts.Size)
			regs := g.Regions()
			if len(regs) != len(want) {
				t.Fatalf("%d regions, want %d", len(regs), len(want))
			}
			if (g.Memfd() >= 0) != tc.opts.Memfd {
				t.Fatalf("Memfd() = %d", g.Memfd())
			}
			vmas := readSmaps(t)
			for i, r := range regs {
				if r.GPA != want[i].Start || r.Size != want[i].Size || uint64(len(r.Host)) != r.Size || uint64(cap(r.Host)) != r.Size {
					t.Fatalf("region %d = {%#x %#x len %d cap %d}, want %v", i, r.GPA, r.Size, len(r.Host), cap(r.Host), want[i])
				}
				start := uint64(r.HostAddr())
				end := start + r.Size
				if start%HugePageSize != 0 {
					t.Errorf("region %d host address %#x not 2 MiB aligned", i, start)
				}
				ram, ok := covering(vmas, start)
				if !ok || ram.start != start || ram.end != end {
					t.Fatalf("region %d: RAM VMA %+v, want exactly [%#x,%#x)", i, ram, start, end)
				}
				if ram.perms != tc.perm {
					t.Errorf("RAM perms %q, want %q", ram.perms, tc.perm)
				}
				if !hasFlag(ram, "dd") {
					t.Errorf("RAM lacks VmFlags dd (MADV_DONTDUMP): %v", ram.flags)
				}
				if hasFlag(ram, "mg") {
					t.Errorf("RAM is KSM-mergeable: %v", ram.flags)
				}
				if tc.opts.Mlock && !hasFlag(ram, "lo") {
					t.Errorf("RAM not locked: %v", ram.flags)
				}
				if tc.opts.Prefault && ram.rssKB*1024 != r.Size {
					t.Errorf("prefaulted RAM has Rss %d kB, want %d", ram.rssKB, r.Size/1024)
				}
				for _, guard := range []uint64{start - PageSize, end} {
					v, ok := covering(vmas, guard)
					if !ok || v.perms[:3] != "---" || v.start > guard || v.end < guard+PageSize {
						t.Errorf("no PROT_NONE guard page at %#x: %+v (found %v)", guard, v, ok)
					}
				}
			}
			// RAM is usable end to end through the Guest.
			last := regs[len(regs)-1]
			if err := g.WriteU64(last.GPA+last.Size-8, 0x1122334455667788); err != nil {
				t.Fatal(err)
			}
			if v, err := g.ReadU64(last.GPA + last.Size - 8); err != nil || v != 0x1122334455667788 {
				t.Fatalf("ReadU64 = %#x, %v", v, err)
			}
			if _, err := g.ReadU8(MMIOHoleStart); !errors.Is(err, ErrOutOfRange) {
				t.Fatalf("read in hole: %v", err)
			}
		})
	}
}

func TestMemfdSealed(t *testing.T) {
	g := newGuest(t, Options{Size: 2 << 20, Memfd: true})
	seals, err := unix.FcntlInt(uintptr(g.Memfd()), unix.F_GET_SEALS, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := unix.F_SEAL_SHRINK | unix.F_SEAL_GROW; seals&want != want {
		t.Fatalf("seals %#x, want %#x set", seals, want)
	}
	if err := unix.Ftruncate(g.Memfd(), 4096); !errors.Is(err, unix.EPERM) {
		t.Fatalf("shrinking the sealed memfd: %v, want EPERM", err)
	}
	// The memfd and the mapping are the same memory.
	if err := g.WriteU32(0x1000, 0xCAFEBABE); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := unix.Pread(g.Memfd(), buf, 0x1000); err != nil {
		t.Fatal(err)
	}
	if buf[0] != 0xBE || buf[3] != 0xCA {
		t.Fatalf("memfd contents % x", buf)
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want error
	}{
		{"zero", Options{}, ErrBadSize},
		{"unaligned", Options{Size: 100}, ErrBadSize},
		{"absurd", Options{Size: MaxRAM * 2}, ErrBadSize},
		{"huge not 2M multiple", Options{Size: 3 << 20, HugePages: true}, ErrHugePageSize},
		{"huge one page", Options{Size: PageSize, HugePages: true}, ErrHugePageSize},
		{"huge memfd not 2M multiple", Options{Size: 1 << 20, HugePages: true, Memfd: true}, ErrHugePageSize},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g, err := New(tc.opts)
			if !errors.Is(err, tc.want) {
				if g != nil {
					g.Close()
				}
				t.Fatalf("New(%+v) err = %v, want %v", tc.opts, err, tc.want)
			}
		})
	}
}

func freeHugePages(t *testing.T) int {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "HugePages_Free:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

func TestHugePages(t *testing.T) {
	if n := freeHugePages(t); n < 2 {
		t.Skipf("needs 2 free 2 MiB huge pages, host has %d (echo N > /proc/sys/vm/nr_hugepages)", n)
	}
	for _, memfd := range []bool{false, true} {
		t.Run(fmt.Sprintf("memfd=%v", memfd), func(t *testing.T) {
			g := newGuest(t, Options{Size: 2 << 20, HugePages: true, Memfd: memfd})
			r := g.Regions()[0]
			v, ok := covering(readSmaps(t), uint64(r.HostAddr()))
			if !ok || !hasFlag(v, "ht") {
				t.Fatalf("RAM VMA %+v is not hugetlb", v)
			}
			if err := g.WriteU64(0x1ff000, 42); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestCloseUnmaps(t *testing.T) {
	g, err := New(Options{Size: 2 << 20})
	if err != nil {
		t.Fatal(err)
	}
	start := uint64(g.Regions()[0].HostAddr())
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for _, addr := range []uint64{start - PageSize, start, start + 2<<20} {
		if v, ok := covering(readSmaps(t), addr); ok && v.start >= start-PageSize && v.end <= start+2<<20+PageSize {
			t.Errorf("mapping %+v still present after Close", v)
		}
	}
	if _, err := g.ReadU8(0); !errors.Is(err, ErrOutOfRange) {
		t.Fatalf("read after Close: %v", err)
	}
}
