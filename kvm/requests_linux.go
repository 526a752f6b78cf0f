//go:build linux && amd64

package kvm

// Request numbers of the ioctls a running vCPU thread issues, exported so
// that a seccomp filter can allow exactly these (sandbox/seccomp) without
// a second copy of the encoding and the struct sizes behind it.
const (
	// RequestRun is KVM_RUN.
	RequestRun = uint64(ioctlRun)
	// RequestGetRegs is KVM_GET_REGS (register dumps of a crash).
	RequestGetRegs = uint64(ioctlGetRegs)
	// RequestGetSregs is KVM_GET_SREGS (register dumps of a crash).
	RequestGetSregs = uint64(ioctlGetSregs)
	// RequestIRQLine is KVM_IRQ_LINE (the serial port's interrupt, raised
	// on the vCPU thread that wrote the UART).
	RequestIRQLine = uint64(ioctlIRQLine)
)
