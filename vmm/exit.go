package vmm

import "fmt"

// ExitReason says how a VM ended. Every VM ends in exactly one of these, and
// the CLI maps each to a documented process exit code (see ExitCode and
// docs/design.md), so scripts can tell a clean guest reset from a crash.
type ExitReason int

const (
	// ExitReset: the guest asked for a reset (i8042 0xFE pulse, or a
	// KVM_SYSTEM_EVENT_RESET). This is how a microVM guest ends normally:
	// Linux with reboot=k, as under Firecracker.
	ExitReset ExitReason = iota + 1
	// ExitHalt: the guest executed HLT with nothing left to wake it. Only
	// reachable without the in-kernel irqchip, where KVM reports HLT to
	// userspace; with it, the kernel parks the vCPU instead.
	ExitHalt
	// ExitShutdown: the guest asked to power off (KVM_SYSTEM_EVENT_SHUTDOWN).
	ExitShutdown
	// ExitCrash: the guest can no longer run: triple fault
	// (KVM_EXIT_SHUTDOWN), failed VM entry, or an instruction KVM could not
	// emulate (KVM_EXIT_INTERNAL_ERROR). Detail carries a register dump.
	ExitCrash
	// ExitStopped: the VMM's user stopped it (Stop, SIGINT, SIGTERM).
	ExitStopped
	// ExitError: the VMM itself failed while the guest ran (an ioctl error,
	// an internal bug caught by a recover). Detail carries a register dump.
	ExitError
)

func (r ExitReason) String() string {
	switch r {
	case ExitReset:
		return "reset"
	case ExitHalt:
		return "halt"
	case ExitShutdown:
		return "shutdown"
	case ExitCrash:
		return "crash"
	case ExitStopped:
		return "stopped"
	case ExitError:
		return "error"
	}
	return fmt.Sprintf("ExitReason(%d)", int(r))
}

// Process exit codes of `govmm run`. They are part of the CLI's interface:
// change them only with the documentation in docs/design.md.
const (
	CodeReset    = 0 // guest reset: the normal end of a microVM
	CodeError    = 1 // the VMM failed (set-up or while running)
	CodeUsage    = 2 // bad flags, configuration or image: nothing ran
	CodeHalt     = 3 // guest halted
	CodeShutdown = 4 // guest powered off
	CodeCrash    = 5 // guest crashed (triple fault, emulation failure, failed entry)
	CodeStopped  = 6 // stopped by the user (SIGINT/SIGTERM/API)
	// A VMM killed by SIGKILL cannot report anything; its parent sees the
	// signal (a shell prints 137).
)

// ExitCode maps a reason to the process exit code.
func (r ExitReason) ExitCode() int {
	switch r {
	case ExitReset:
		return CodeReset
	case ExitHalt:
		return CodeHalt
	case ExitShutdown:
		return CodeShutdown
	case ExitCrash:
		return CodeCrash
	case ExitStopped:
		return CodeStopped
	}
	return CodeError
}

// Exit is the result of a VM run.
type Exit struct {
	Reason ExitReason
	// VCPU is the vCPU that ended the VM, or -1 when the VM was stopped
	// from outside.
	VCPU int
	// Detail is a one-line description ("triple fault", "i8042 reset").
	Detail string
	// Registers is a dump of the ending vCPU's registers for crashes and
	// VMM errors; empty otherwise.
	Registers string
	// Err is the underlying error for ExitError and ExitCrash, if any.
	Err error
}

func (e Exit) String() string {
	s := e.Reason.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.VCPU >= 0 {
		s += fmt.Sprintf(" (vcpu %d)", e.VCPU)
	}
	return s
}
