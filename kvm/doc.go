// Package kvm is a typed, minimal wrapper around the /dev/kvm ioctl
// interface: the system, VM and vCPU file descriptors, the kernel structs a
// VMM exchanges with them, and a bounds-checked view of the mmap'd
// struct kvm_run.
//
// # Trust model
//
// Everything KVM reports about the guest (exit reasons, port numbers,
// lengths, offsets) is ultimately chosen by guest code, and the kvm_run page
// is shared memory. RunData therefore never trusts an offset or length it
// reads from kvm_run: data_offset/size/count and mmio.len are validated
// against the actual mapping before a slice is produced, and malformed values
// produce ErrBadExit instead of a panic or an out-of-bounds access.
//
// Arguments passed in by the VMM itself (slot addresses, fds, vector
// numbers) are checked before the ioctl where the check is cheap and the
// kernel's own answer (EINVAL) would be less descriptive.
//
// # EINTR and stopping a vCPU
//
// KVM_RUN returns EINTR whenever a signal is delivered to the thread running
// it. Go's runtime sends SIGURG to threads to preempt goroutines, so this is
// part of normal operation, not an error: VCPU.Run returns an error matching
// both ErrInterrupted and unix.EINTR, and the caller's run loop decides
// whether to re-enter the guest or stop. To stop a vCPU from another thread,
// set RunData.SetImmediateExit(true) and then send a signal (tgkill) to the
// vCPU's OS thread: if the thread is inside KVM_RUN the signal kicks it out;
// if it is about to enter, immediate_exit makes KVM_RUN return EINTR at once,
// so the stop request cannot be lost between the check and the entry.
//
// All other ioctls are retried internally on EINTR. That is safe because the
// KVM ioctls used here only return EINTR before doing any work (for example
// when mutex_lock_killable on the vcpu/vm mutex is interrupted), so repeating
// the call cannot apply an effect twice.
//
// # Concurrency
//
// System, VM and VCPU are safe for concurrent use. Close waits for ioctls in
// flight on the same object to return (notably a blocking KVM_RUN: stop the
// vCPU first, see above), and every method after Close returns ErrClosed.
// KVM allows vCPU ioctls from any thread, but a VMM should issue Run and the
// register accessors from the vCPU's own locked OS thread
// (runtime.LockOSThread), which is also the thread a stop signal targets.
package kvm
