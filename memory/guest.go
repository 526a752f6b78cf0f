package memory

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Sentinel errors.
var (
	// ErrOutOfRange: the access is not entirely inside one RAM region (it
	// wraps past 2^64, touches the MMIO hole, or crosses out of RAM).
	ErrOutOfRange = errors.New("guest address out of range")
	// ErrMisaligned: an atomic access is not naturally aligned.
	ErrMisaligned = errors.New("misaligned guest access")
	// ErrContended: an atomic read-modify-write lost to concurrent writers
	// too many times in a row (a guest hammering the neighbouring bytes).
	ErrContended = errors.New("guest memory word contended")
	// ErrBadRegions: FromSlices was given an unusable region set.
	ErrBadRegions = errors.New("invalid guest memory regions")
)

// Region is one contiguous piece of guest RAM.
// Invariants: Size == len(Host) == cap(Host) > 0 and GPA+Size does not
// overflow. Host aliases guest RAM: the guest may change it at any moment,
// so code must copy out and validate before use (no double fetches).
type Region struct {
	GPA, Size uint64
	Host      []byte
}

// Range returns the guest-physical range of r.
func (r Region) Range() Range { return Range{Start: r.GPA, Size: r.Size} }

// Guest is guest RAM. Every read/write of guest memory in govmm goes through it.
//
// Locking: the region table is immutable after construction, so every access
// method is safe for concurrent use without locks (which keeps the data path
// allocation- and lock-free). Close is the exception: it unmaps RAM and must
// only be called once every user (vCPUs, device workers) has stopped. Accesses
// after Close fail with ErrOutOfRange; they are never a use-after-unmap as long
// as that rule is kept.
type Guest struct {
	regions []Region // sorted by GPA, non-overlapping; nil after Close
	size    uint64

	closeMu sync.Mutex
	closed  bool
	unmap   func() error // releases host mappings; nil for FromSlices
	memfd   int          // -1 when RAM is not memfd-backed
}

// FromSlices builds a Guest backed by Go slices, keyed by guest-physical
// address, for tests and fuzzing: no mmap, no guard pages. The slices are
// used, not copied. Regions must be non-empty, must not wrap past 2^64 and
// must not overlap.
func FromSlices(regions map[uint64][]byte) (*Guest, error) {
	if len(regions) == 0 {
		return nil, fmt.Errorf("%w: no regions", ErrBadRegions)
	}
	g := &Guest{memfd: -1}
	for gpa, b := range regions {
		n := uint64(len(b))
		if n == 0 {
			return nil, fmt.Errorf("%w: region at %#x is empty", ErrBadRegions, gpa)
		}
		if gpa+n < gpa || gpa+n == 0 {
			return nil, fmt.Errorf("%w: region at %#x len %#x wraps past 2^64", ErrBadRegions, gpa, n)
		}
		g.regions = append(g.regions, Region{GPA: gpa, Size: n, Host: b[:n:n]})
		g.size += n
	}
	sort.Slice(g.regions, func(i, j int) bool { return g.regions[i].GPA < g.regions[j].GPA })
	for i := 1; i < len(g.regions); i++ {
		prev, cur := g.regions[i-1], g.regions[i]
		if cur.GPA < prev.GPA+prev.Size {
			return nil, fmt.Errorf("%w: region at %#x overlaps region at %#x", ErrBadRegions, cur.GPA, prev.GPA)
		}
	}
	return g, nil
}

// Size returns the total RAM in bytes.
func (g *Guest) Size() uint64 { return g.size }

// Regions returns a copy of the region table, sorted by GPA.
func (g *Guest) Regions() []Region { return append([]Region(nil), g.regions...) }

// Memfd returns the memfd backing RAM, or -1 if RAM is anonymous memory or a
// FromSlices guest. The Guest owns the descriptor; Close closes it.
func (g *Guest) Memfd() int { return g.memfd }

// Close releases the host mappings. It is idempotent.
func (g *Guest) Close() error {
	g.closeMu.Lock()
	defer g.closeMu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	g.regions = nil
	if g.unmap != nil {
		return g.unmap()
	}
	return nil
}

func outOfRange(gpa, n uint64) error {
	return fmt.Errorf("%w: gpa %#x len %#x", ErrOutOfRange, gpa, n)
}

// find returns the host bytes backing [gpa, gpa+n) or an error. A
// zero-length range is accepted when gpa is inside a region or exactly at its
// end, so that "empty slice at the end of a buffer" behaves like Go slicing.
func (g *Guest) find(gpa, n uint64) ([]byte, error) {
	i := g.regionOf(gpa, n)
	if i < 0 {
		return nil, outOfRange(gpa, n)
	}
	r := &g.regions[i]
	off := gpa - r.GPA
	return r.Host[off : off+n : off+n], nil
}

// findRegion returns the region holding all of [gpa, gpa+n) and the offset of
// gpa in it.
func (g *Guest) findRegion(gpa, n uint64) (*Region, uint64, error) {
	i := g.regionOf(gpa, n)
	if i < 0 {
		return nil, 0, outOfRange(gpa, n)
	}
	r := &g.regions[i]
	return r, gpa - r.GPA, nil
}

// regionOf is the bounds check under every access: the index of the region
// holding all of [gpa, gpa+n), or -1, including when gpa+n wraps past
// 2^64. It builds no error, so that Contains, which a virtqueue calls for
// every descriptor, costs only the comparisons.
func (g *Guest) regionOf(gpa, n uint64) int {
	end := gpa + n
	if end < gpa {
		return -1
	}
	// Few regions (at most two for New): a linear scan beats a binary search.
	for i := range g.regions {
		if r := &g.regions[i]; gpa >= r.GPA && end <= r.GPA+r.Size {
			return i
		}
	}
	return -1
}

// Contains reports whether [gpa, gpa+n) lies entirely inside one RAM region.
func (g *Guest) Contains(gpa, n uint64) bool { return g.regionOf(gpa, n) >= 0 }

// Slice returns the host bytes backing [gpa, gpa+n). The slice aliases guest
// RAM and has cap n, so appending to it can never reach past the range.
func (g *Guest) Slice(gpa, n uint64) ([]byte, error) { return g.find(gpa, n) }

// Read copies len(dst) bytes from guest RAM at gpa into dst.
func (g *Guest) Read(gpa uint64, dst []byte) error {
	b, err := g.find(gpa, uint64(len(dst)))
	if err != nil {
		return err
	}
	copy(dst, b)
	return nil
}

// Write copies src into guest RAM at gpa.
func (g *Guest) Write(gpa uint64, src []byte) error {
	b, err := g.find(gpa, uint64(len(src)))
	if err != nil {
		return err
	}
	copy(b, src)
	return nil
}

// Zero clears [gpa, gpa+n).
func (g *Guest) Zero(gpa, n uint64) error {
	b, err := g.find(gpa, n)
	if err != nil {
		return err
	}
	clear(b)
	return nil
}

// ReadU8 reads one byte at gpa.
func (g *Guest) ReadU8(gpa uint64) (uint8, error) {
	b, err := g.find(gpa, 1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// WriteU8 writes one byte at gpa.
func (g *Guest) WriteU8(gpa uint64, v uint8) error {
	b, err := g.find(gpa, 1)
	if err != nil {
		return err
	}
	b[0] = v
	return nil
}

// ReadU16 reads a little-endian uint16 at gpa (any alignment, not atomic).
func (g *Guest) ReadU16(gpa uint64) (uint16, error) {
	b, err := g.find(gpa, 2)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint16(b), nil
}

// WriteU16 writes a little-endian uint16 at gpa (any alignment, not atomic).
func (g *Guest) WriteU16(gpa uint64, v uint16) error {
	b, err := g.find(gpa, 2)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint16(b, v)
	return nil
}

// ReadU32 reads a little-endian uint32 at gpa (any alignment, not atomic).
func (g *Guest) ReadU32(gpa uint64) (uint32, error) {
	b, err := g.find(gpa, 4)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(b), nil
}

// WriteU32 writes a little-endian uint32 at gpa (any alignment, not atomic).
func (g *Guest) WriteU32(gpa uint64, v uint32) error {
	b, err := g.find(gpa, 4)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b, v)
	return nil
}

// ReadU64 reads a little-endian uint64 at gpa (any alignment, not atomic).
func (g *Guest) ReadU64(gpa uint64) (uint64, error) {
	b, err := g.find(gpa, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// WriteU64 writes a little-endian uint64 at gpa (any alignment, not atomic).
func (g *Guest) WriteU64(gpa uint64, v uint64) error {
	b, err := g.find(gpa, 8)
	if err != nil {
		return err
	}
	binary.LittleEndian.PutUint64(b, v)
	return nil
}
