package memory

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ErrHugePageSize reports a HugePages request whose size is not a multiple
// of HugePageSize.
var ErrHugePageSize = errors.New("guest RAM size is not a multiple of the 2 MiB huge page size")

// Options for mapping guest RAM.
type Options struct {
	Size      uint64 // bytes, multiple of PageSize (of HugePageSize if HugePages)
	Memfd     bool   // back RAM with a memfd (sealed against resize, shareable with a helper) instead of anonymous memory
	HugePages bool   // MAP_HUGETLB (memfd: MFD_HUGETLB), 2 MiB pages; needs free pages in /proc/sys/vm/nr_hugepages
	Prefault  bool   // MAP_POPULATE: fault every page now ("no overcommit")
	Mlock     bool   // mlock the RAM so it is never swapped
}

// New maps guest RAM as laid out by RAMRanges(opts.Size).
//
// Each RAM range gets its own PROT_NONE reservation of RAM plus one guard page
// on each side, and RAM is then mapped read-write with MAP_FIXED inside it, so
// a host bug that runs off either end of a region faults instead of silently
// touching neighbouring host memory. RAM starts on a 2 MiB boundary in the
// host (required for hugetlb, and it lets THP and KVM use 2 MiB mappings,
// since guest regions are 2 MiB aligned too).
//
// RAM is madvised MADV_DONTDUMP (guest secrets stay out of core dumps) and
// MADV_UNMERGEABLE (no KSM merging: cross-VM page deduplication is a timing
// side channel). Kernels built without CONFIG_KSM reject MADV_UNMERGEABLE with
// EINVAL; nothing can be merged there, so that error is ignored.
func New(opts Options) (*Guest, error) {
	ranges, err := RAMRanges(opts.Size)
	if err != nil {
		return nil, err
	}
	if opts.HugePages && opts.Size%HugePageSize != 0 {
		return nil, fmt.Errorf("%w: size %#x", ErrHugePageSize, opts.Size)
	}

	g := &Guest{memfd: -1}
	var spans [][]byte // guard+RAM+guard of each range
	cleanup := func() error {
		var errs []error
		for _, s := range spans {
			if err := munmapBytes(s); err != nil {
				errs = append(errs, err)
			}
		}
		spans = nil
		if g.memfd >= 0 {
			if err := unix.Close(g.memfd); err != nil {
				errs = append(errs, fmt.Errorf("close memfd: %w", err))
			}
			g.memfd = -1
		}
		return errors.Join(errs...)
	}

	if opts.Memfd {
		fd, err := createMemfd(opts)
		if err != nil {
			return nil, err
		}
		g.memfd = fd
	}

	var fileOff uint64
	for _, r := range ranges {
		s, host, err := mapRange(r.Size, fileOff, g.memfd, opts)
		if err != nil {
			cleanup()
			return nil, fmt.Errorf("mapping guest RAM [%#x, %#x): %w", r.Start, r.End(), err)
		}
		spans = append(spans, s)
		fileOff += r.Size
		g.regions = append(g.regions, Region{GPA: r.Start, Size: r.Size, Host: host})
		g.size += r.Size
	}
	g.unmap = cleanup
	return g, nil
}

// createMemfd makes the memfd backing all of RAM (ranges at consecutive
// offsets) and seals its size: a shrink by anyone holding the fd would turn
// host accesses to guest RAM into SIGBUS.
func createMemfd(opts Options) (int, error) {
	flags := unix.MFD_CLOEXEC | unix.MFD_ALLOW_SEALING
	if opts.HugePages {
		flags |= unix.MFD_HUGETLB | unix.MFD_HUGE_2MB
	}
	fd, err := unix.MemfdCreate("govmm-guest-ram", flags)
	if err != nil {
		return -1, fmt.Errorf("memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(opts.Size)); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("ftruncate memfd to %#x: %w", opts.Size, err)
	}
	// F_SEAL_SEAL is deliberately not set so a later sharing step can still
	// add F_SEAL_FUTURE_WRITE for a read-only consumer.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("fcntl(F_ADD_SEALS) on memfd: %w", err)
	}
	return fd, nil
}

// mapRange reserves guard+RAM+guard and maps size bytes of RAM inside. It
// returns the whole span (for munmap) and the RAM.
func mapRange(size, fileOff uint64, memfd int, opts Options) (span, ram []byte, err error) {
	const align = HugePageSize
	// Worst case the first 2 MiB boundary after base+PageSize is align bytes
	// past base; one more page follows RAM for the trailing guard.
	resLen := uintptr(size) + align + PageSize
	res, err := mmapReserve(resLen)
	if err != nil {
		return nil, nil, err
	}
	base := addrOf(res)
	ramOff := (base+PageSize+align-1)&^(align-1) - base
	lo, hi := ramOff-PageSize, ramOff+uintptr(size)+PageSize
	// Give back the alignment slack so exactly one guard page borders each
	// side. Nothing else can be mapped in between: we still own [lo, hi).
	if err := munmapBytes(res[:lo]); err != nil {
		munmapBytes(res)
		return nil, nil, err
	}
	if err := munmapBytes(res[hi:]); err != nil {
		munmapBytes(res[lo:])
		return nil, nil, err
	}
	span = res[lo:hi:hi]
	ram = res[ramOff : ramOff+uintptr(size) : ramOff+uintptr(size)]
	fail := func(err error) ([]byte, []byte, error) {
		munmapBytes(span)
		return nil, nil, err
	}

	flags := 0
	fd := -1
	if memfd >= 0 {
		flags |= unix.MAP_SHARED
		fd = memfd
	} else {
		flags |= unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
		if opts.HugePages {
			flags |= unix.MAP_HUGETLB | unix.MAP_HUGE_2MB
		}
	}
	if opts.Prefault {
		flags |= unix.MAP_POPULATE
	}
	if err := mmapFixed(ram, unix.PROT_READ|unix.PROT_WRITE, flags, fd, int64(fileOff)); err != nil {
		if opts.HugePages && errors.Is(err, unix.ENOMEM) {
			err = fmt.Errorf("%w (not enough free huge pages? see /proc/sys/vm/nr_hugepages)", err)
		}
		return fail(err)
	}
	if err := unix.Madvise(ram, unix.MADV_DONTDUMP); err != nil {
		return fail(fmt.Errorf("madvise(MADV_DONTDUMP): %w", err))
	}
	if err := unix.Madvise(ram, unix.MADV_UNMERGEABLE); err != nil && !errors.Is(err, unix.EINVAL) {
		return fail(fmt.Errorf("madvise(MADV_UNMERGEABLE): %w", err))
	}
	if opts.Mlock {
		if err := unix.Mlock(ram); err != nil {
			return fail(fmt.Errorf("mlock %#x bytes: %w", size, err))
		}
	}
	return span, ram, nil
}
