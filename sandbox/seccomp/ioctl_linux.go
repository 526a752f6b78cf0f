//go:build linux && amd64

package seccomp

// KVM ioctl request numbers for the vCPU program. Package kvm keeps its
// numbers unexported (they are built from the sizes of its Go struct
// mirrors in kvm/ioctl_linux.go), so they are computed here the same way,
// with the <asm-generic/ioctl.h> encoding dir(2) | size(14) | type(8) |
// nr(8) and the struct sizes of <linux/kvm.h> on x86_64.
// TestKVMIoctlNumbers checks them against the values the C preprocessor
// produces from the kernel headers, and the values kvm's own
// TestIoctlNumbers pins.
const (
	iocNone  = 0
	iocWrite = 1
	iocRead  = 2

	iocNRShift   = 0
	iocTypeShift = 8
	iocSizeShift = 16
	iocDirShift  = 30

	kvmio = 0xAE

	sizeofKVMRegs     = 18 * 8 // struct kvm_regs: rax..r15, rip, rflags
	sizeofKVMSregs    = 312    // struct kvm_sregs: 8 segments, 2 dtables, control registers, interrupt bitmap
	sizeofKVMIRQLevel = 8      // struct kvm_irq_level: u32 irq, u32 level
)

func ioc(dir, nr, size uint64) uint64 {
	return dir<<iocDirShift | size<<iocSizeShift | kvmio<<iocTypeShift | nr<<iocNRShift
}

var (
	kvmRun      = ioc(iocNone, 0x80, 0)
	kvmGetRegs  = ioc(iocRead, 0x81, sizeofKVMRegs)
	kvmGetSregs = ioc(iocRead, 0x83, sizeofKVMSregs)
	kvmIRQLine  = ioc(iocWrite, 0x61, sizeofKVMIRQLevel)
)
