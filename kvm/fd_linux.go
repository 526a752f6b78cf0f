//go:build linux && amd64

package kvm

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// fdRef guards a KVM file descriptor against use after Close and against
// the fd number being reused by an unrelated open while an ioctl is in
// flight: ioctls hold the read lock for their duration, Close takes the
// write lock. fd is -1 once closed.
type fdRef struct {
	mu sync.RWMutex
	fd int
}

func newFDRef(fd int) fdRef { return fdRef{fd: fd} }

// acquire returns the fd with the read lock held; call release when done.
func (f *fdRef) acquire() (int, error) {
	f.mu.RLock()
	if f.fd < 0 {
		f.mu.RUnlock()
		return -1, ErrClosed
	}
	return f.fd, nil
}

func (f *fdRef) release() { f.mu.RUnlock() }

// close runs before (if not nil) and closes the fd, once. It waits for
// in-flight ioctls. A second close returns ErrClosed.
func (f *fdRef) close(name string, before func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fd < 0 {
		return ErrClosed
	}
	var err error
	if before != nil {
		err = before()
	}
	if cerr := unix.Close(f.fd); cerr != nil && err == nil {
		err = fmt.Errorf("close %s fd: %w", name, cerr)
	}
	f.fd = -1
	return err
}
