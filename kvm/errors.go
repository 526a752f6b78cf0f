package kvm

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these or the
// unix.Errno returned by the kernel, and name the ioctl that failed.
var (
	// ErrUnavailable means the host has no usable KVM device: the device
	// node is missing (ENOENT), or the node is there but no driver answers
	// it (ENODEV, ENXIO: the kvm module is not loaded, or virtualization
	// is off in the firmware or the host VM). It wraps the open's errno.
	ErrUnavailable = errors.New("kvm: KVM is not available on this host")
	// ErrBadAPIVersion means KVM_GET_API_VERSION did not report 12, the only
	// stable KVM API version; nothing else about the ABI can be trusted then.
	ErrBadAPIVersion = errors.New("kvm: unsupported KVM API version")
	// ErrInterrupted means KVM_RUN returned EINTR (a signal or immediate_exit).
	ErrInterrupted = errors.New("kvm: KVM_RUN interrupted")
	// ErrClosed means the System, VM or VCPU was already closed.
	ErrClosed = errors.New("kvm: file descriptor already closed")
	// ErrInvalidArgument means an argument was rejected before the ioctl.
	ErrInvalidArgument = errors.New("kvm: invalid argument")
	// ErrBadExit means kvm_run held values that do not describe a valid exit
	// inside the mapping (bad size, count, offset or length).
	ErrBadExit = errors.New("kvm: malformed exit data in kvm_run")
	// ErrMSRNotProcessed means KVM_GET_MSRS/KVM_SET_MSRS stopped before the
	// end of the list; the error names the first MSR it did not process.
	ErrMSRNotProcessed = errors.New("kvm: MSR not processed")
	// ErrTooLarge means a kernel list did not fit in the largest buffer this
	// package is willing to allocate.
	ErrTooLarge = errors.New("kvm: list too large")
	// ErrUnexpectedReply means the kernel answered with values that break
	// the ioctl's documented contract (e.g. more entries than the buffer held).
	ErrUnexpectedReply = errors.New("kvm: unexpected reply from the kernel")
)
