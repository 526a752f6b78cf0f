//go:build linux && amd64

package seccomp

import "github.com/govmm/govmm/kvm"

// KVM ioctl request numbers for the vCPU program, from package kvm, which
// builds them from the sizes of its <linux/kvm.h> struct mirrors.
// TestKVMIoctlNumbers checks them against the values the C preprocessor
// produces from the kernel headers.
const (
	kvmRun      = kvm.RequestRun
	kvmGetRegs  = kvm.RequestGetRegs
	kvmGetSregs = kvm.RequestGetSregs
	kvmIRQLine  = kvm.RequestIRQLine
)
