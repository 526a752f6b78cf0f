package mac

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// DefaultMCSDir holds one reservation file per category pair in use. It is
// on tmpfs on purpose: after a host reboot no VM runs, so no reservation
// should survive either.
const DefaultMCSDir = "/run/govmm/mcs"

// randomTries bounds the random draws before the deterministic scan. With
// few pairs in use a draw almost always succeeds first time; the scan is
// there so a nearly full host still finds the last free pair and so
// exhaustion is a definite answer rather than bad luck.
const randomTries = 32

// Allocator hands out MCS category pairs that are unique among all VMMs
// running on the host, coordinated only through files in Dir.
//
// Ownership of a pair is holding flock(LOCK_EX) on the file named after it,
// on the inode currently at that name. The kernel drops the lock when the
// holder dies, however it dies, so a crashed VMM's pair becomes free
// without anyone cleaning up: a file we can lock is stale and we take it
// over. O_CREAT|O_EXCL is only the fast path for a pair nobody ever used;
// it does not by itself confer ownership, because a reclaimer may lock a
// just-created file before its creator does, and then the creator loses.
type Allocator struct {
	// Dir is the reservation directory; empty means DefaultMCSDir.
	Dir string
	// Categories is how many categories (c0..c<Categories-1>) to use;
	// 0 means MaxCategories. Small values exist for tests of exhaustion.
	Categories int
}

// Reservation is one held category pair. Keep it for the life of the VM
// and Release it when the VM stops.
type Reservation struct {
	// A and B are the categories, A < B.
	A, B int
	// Level is the MCS level, "s0:c<A>,c<B>".
	Level string

	mu   sync.Mutex
	path string
	f    *os.File
}

func (al *Allocator) params() (dir string, n int, err error) {
	dir, n = al.Dir, al.Categories
	if dir == "" {
		dir = DefaultMCSDir
	}
	if n == 0 {
		n = MaxCategories
	}
	if n < 2 || n > MaxCategories {
		return "", 0, fmt.Errorf("mcs: category count %d out of range [2, %d]", n, MaxCategories)
	}
	return dir, n, nil
}

// pairFile names the reservation file after the pair it reserves, so an
// operator can see which VM holds what with ls and cat.
func pairFile(a, b int) string { return fmt.Sprintf("c%d,c%d", a, b) }

// Allocate reserves a category pair for vmID that no other running VM
// holds. It returns ErrCategoriesExhausted when every pair is held.
func (al *Allocator) Allocate(vmID string) (*Reservation, error) {
	if err := validateVMID(vmID); err != nil {
		return nil, err
	}
	dir, n, err := al.params()
	if err != nil {
		return nil, err
	}
	// 0700: the reservation files are the host's isolation bookkeeping; an
	// unprivileged user who could create them could starve VMs of pairs.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mcs: reservation directory: %w", err)
	}
	total := pairCount(n)
	limit := big.NewInt(int64(total))
	for range randomTries {
		r, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("mcs: random pair: %w", err)
		}
		a, b := pairAt(n, int(r.Int64()))
		res, err := tryPair(dir, a, b, vmID)
		if res != nil || err != nil {
			return res, err
		}
	}
	// Scan the pairs nobody has a file for first: claiming one of those is
	// one syscall, while each existing file costs an open and a lock.
	existing := map[string]bool{}
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			existing[e.Name()] = true
		}
	}
	for pass := range 2 {
		for i := range total {
			a, b := pairAt(n, i)
			if existing[pairFile(a, b)] != (pass == 1) {
				continue
			}
			res, err := tryPair(dir, a, b, vmID)
			if res != nil || err != nil {
				return res, err
			}
		}
	}
	return nil, fmt.Errorf("%w (%d pairs of %d categories, all held; reservations in %s)",
		ErrCategoriesExhausted, total, n, dir)
}

// tryPair claims (a, b) or reports (nil, nil) if someone else holds it.
// Only unexpected failures are errors.
func tryPair(dir string, a, b int, vmID string) (*Reservation, error) {
	path := filepath.Join(dir, pairFile(a, b))
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			f, err = os.OpenFile(path, os.O_RDWR, 0)
			if errors.Is(err, os.ErrNotExist) {
				continue // released between our two opens: try to create it
			}
		}
		if err != nil {
			return nil, fmt.Errorf("mcs: reservation %s: %w", path, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil // a live VMM holds it
			}
			return nil, fmt.Errorf("mcs: lock %s: %w", path, err)
		}
		// We hold a lock, but maybe on an inode its owner unlinked on
		// Release after we opened it; a lock on an orphan reserves nothing.
		same, err := sameFile(f, path)
		if err != nil {
			f.Close()
			return nil, err
		}
		if !same {
			f.Close()
			continue
		}
		// The content is only for operators; ownership is the lock.
		if err := f.Truncate(0); err == nil {
			_, _ = f.WriteAt([]byte(vmID+"\n"), 0)
		}
		return &Reservation{A: a, B: b, Level: FormatLevel(a, b), path: path, f: f}, nil
	}
}

func sameFile(f *os.File, path string) (bool, error) {
	var fst, pst unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &fst); err != nil {
		return false, fmt.Errorf("mcs: fstat %s: %w", path, err)
	}
	if err := unix.Stat(path, &pst); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, fmt.Errorf("mcs: stat %s: %w", path, err)
	}
	return fst.Dev == pst.Dev && fst.Ino == pst.Ino, nil
}

// Release frees the pair. It unlinks the file before unlocking it: the
// other order would let a new owner lock the file and then have it deleted
// under them. Release is idempotent.
func (r *Reservation) Release() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := os.Remove(r.path)
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f = nil
	if err != nil {
		return fmt.Errorf("mcs: release %s: %w", r.Level, err)
	}
	return nil
}
