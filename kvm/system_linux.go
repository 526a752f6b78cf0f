//go:build linux && amd64

package kvm

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// DevicePath is the usual path of the KVM device.
const DevicePath = "/dev/kvm"

// StableAPIVersion is the only stable KVM API version (KVM_API_VERSION).
const StableAPIVersion = 12

// Limits on lists this package asks the kernel for or passes to it. They are
// far above what KVM accepts (KVM_MAX_CPUID_ENTRIES is 256, MAX_IO_MSRS 256,
// KVM_MAX_IRQ_ROUTES 4096) and exist to bound allocations.
const (
	maxCPUIDEntries   = 4096
	maxMSRs           = 4096
	maxMSRIndexList   = 1 << 16
	maxRoutingEntries = 4096
)

// System is an open /dev/kvm.
type System struct {
	f fdRef
}

// Open opens the KVM device at path (normally DevicePath) and checks that it
// speaks API version 12.
func Open(path string) (*System, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	switch {
	case err == unix.ENOENT || err == unix.ENODEV || err == unix.ENXIO:
		return nil, fmt.Errorf("open %s: %w: %w", path, err, ErrUnavailable)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s := &System{f: newFDRef(fd)}
	v, err := s.APIVersion()
	if err == nil && v != StableAPIVersion {
		err = fmt.Errorf("KVM_GET_API_VERSION: got %d, want %d: %w", v, StableAPIVersion, ErrBadAPIVersion)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Close closes /dev/kvm. VMs created from it stay valid.
func (s *System) Close() error { return s.f.close("/dev/kvm", nil) }

func (s *System) ioctlArg(name string, req, arg uintptr) (int, error) {
	fd, err := s.f.acquire()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", name, err)
	}
	defer s.f.release()
	r, err := ioctl(fd, name, req, arg)
	return int(r), err
}

// APIVersion returns KVM_GET_API_VERSION.
func (s *System) APIVersion() (int, error) {
	return s.ioctlArg("KVM_GET_API_VERSION", ioctlGetAPIVersion, 0)
}

// CheckExtension returns KVM_CHECK_EXTENSION for c: 0 if unsupported,
// otherwise 1 or a capability-specific value (e.g. a vCPU count).
func (s *System) CheckExtension(c Cap) (int, error) {
	if c < 0 {
		return 0, fmt.Errorf("KVM_CHECK_EXTENSION %v: %w", c, ErrInvalidArgument)
	}
	return s.ioctlArg("KVM_CHECK_EXTENSION", ioctlCheckExtension, uintptr(c))
}

// VCPUMmapSize returns KVM_GET_VCPU_MMAP_SIZE, the size of the kvm_run
// mapping of each vCPU fd.
func (s *System) VCPUMmapSize() (int, error) {
	return s.ioctlArg("KVM_GET_VCPU_MMAP_SIZE", ioctlGetVCPUMmapSize, 0)
}

// SupportedCPUID returns KVM_GET_SUPPORTED_CPUID. The kernel does not say
// how many entries it needs, so the buffer doubles on E2BIG.
func (s *System) SupportedCPUID() ([]CPUIDEntry, error) {
	fd, err := s.f.acquire()
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
	}
	defer s.f.release()
	for n := 64; n <= maxCPUIDEntries; n *= 2 {
		f, err := newFlex[cpuid2Header, CPUIDEntry](n)
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: %w", err)
		}
		f.hdr.Nent = uint32(n)
		if _, err := f.ioctl(fd, "KVM_GET_SUPPORTED_CPUID", ioctlGetSupportedCPUID); err != nil {
			if errors.Is(err, unix.E2BIG) {
				continue
			}
			return nil, err
		}
		got := f.hdr.Nent
		if uint64(got) > uint64(n) {
			return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: kernel reported %d entries for a %d-entry buffer: %w", got, n, ErrUnexpectedReply)
		}
		return append([]CPUIDEntry(nil), f.ents[:got]...), nil
	}
	return nil, fmt.Errorf("KVM_GET_SUPPORTED_CPUID: more than %d entries: %w", maxCPUIDEntries, ErrTooLarge)
}

// MSRIndexList returns KVM_GET_MSR_INDEX_LIST, the MSRs KVM can save and
// restore. On E2BIG the kernel writes the needed count back into nmsrs, so
// the buffer is sized from that; a few rounds allow for a racing change.
func (s *System) MSRIndexList() ([]uint32, error) {
	fd, err := s.f.acquire()
	if err != nil {
		return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: %w", err)
	}
	defer s.f.release()
	n := 0
	for round := 0; round < 8; round++ {
		f, err := newFlex[msrListHeader, uint32](n)
		if err != nil {
			return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: %w", err)
		}
		f.hdr.NMSRs = uint32(n)
		_, err = f.ioctl(fd, "KVM_GET_MSR_INDEX_LIST", ioctlGetMSRIndexList)
		got := f.hdr.NMSRs
		if err != nil {
			if !errors.Is(err, unix.E2BIG) {
				return nil, err
			}
			if got > maxMSRIndexList {
				return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: %d entries: %w", got, ErrTooLarge)
			}
			if int(got) <= n {
				// E2BIG without asking for more than we gave: do not loop
				// on a kernel that contradicts itself.
				return nil, err
			}
			n = int(got)
			continue
		}
		if uint64(got) > uint64(n) {
			return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: kernel reported %d entries for a %d-entry buffer: %w", got, n, ErrUnexpectedReply)
		}
		return append([]uint32(nil), f.ents[:got]...), nil
	}
	return nil, fmt.Errorf("KVM_GET_MSR_INDEX_LIST: list kept growing: %w", ErrTooLarge)
}

// CreateVM creates a VM (KVM_CREATE_VM, machine type 0). KVM creates the fd
// with O_CLOEXEC.
func (s *System) CreateVM() (*VM, error) {
	size, err := s.VCPUMmapSize()
	if err != nil {
		return nil, err
	}
	if uint64(size) < uint64(sizeofKVMRun) {
		return nil, fmt.Errorf("KVM_GET_VCPU_MMAP_SIZE: %d is smaller than struct kvm_run (%d): %w", size, sizeofKVMRun, ErrInvalidArgument)
	}
	fd, err := s.ioctlArg("KVM_CREATE_VM", ioctlCreateVM, 0)
	if err != nil {
		return nil, err
	}
	return &VM{f: newFDRef(fd), mmapSize: size}, nil
}
