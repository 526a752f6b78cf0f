// Package seccomp builds and installs govmm's seccomp filters: one
// baseline program for the whole process and one program per thread class
// (vCPU, device worker, API), each an allowlist with argument filters.
//
// The programs are compiled by libseccomp (through libseccomp-golang) and
// exported as classic BPF; this package loads them itself with seccomp(2),
// so that it decides which threads get which program. libseccomp's own
// Load would filter whatever OS thread the calling goroutine happens to run
// on, or every thread at once with TSYNC, and neither is what a per-thread
// policy needs.
//
// Wiring, in this order (see docs/seccomp.md):
//
//  1. Build once, early, with the mode from the command line.
//  2. Finish every set-up step that opens files, creates KVM objects, maps
//     memory with new protections or spawns helper processes.
//  3. InstallProcess: no_new_privs, then the baseline on every thread.
//  4. In each vCPU, device-worker and API goroutine, before it does its
//     first piece of untrusted work: InstallThread with its class. The
//     goroutine is then locked to its OS thread for good.
//
// Stacked filters intersect: a thread with the baseline and a class program
// can make only the calls both allow. The baseline is therefore the union
// of everything any thread of the VMM needs, and a class program narrows it
// for the thread that loads it.
package seccomp

import (
	"fmt"
)

// Mode says what a filter does with a call it does not allow.
type Mode int

const (
	// ModeKill kills the whole process (SECCOMP_RET_KILL_PROCESS): a
	// thread that tries something outside its allowlist has been taken
	// over, and a VMM with one hijacked thread must not keep running.
	ModeKill Mode = iota
	// ModeLog allows the call and has the kernel log it (SECCOMP_RET_LOG),
	// for finding out what a new code path needs without losing the VM.
	ModeLog
	// ModeOff installs nothing.
	ModeOff
)

var modeNames = [...]string{ModeKill: "kill", ModeLog: "log", ModeOff: "off"}

func (m Mode) String() string {
	if m >= 0 && int(m) < len(modeNames) {
		return modeNames[m]
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// ParseMode parses a --seccomp value: "kill", "log" or "off".
func ParseMode(s string) (Mode, error) {
	for m, n := range modeNames {
		if s == n {
			return Mode(m), nil
		}
	}
	return 0, fmt.Errorf("seccomp mode %q: want kill, log or off", s)
}

// Class is the kind of thread a class program is made for.
type Class int

const (
	// ClassVCPU runs KVM_RUN and handles exits (vmm vcpu.loop): the
	// thread a guest that escapes KVM's emulation lands in first.
	ClassVCPU Class = iota
	// ClassDevice serves a device's data path (vmm deviceWorker.loop):
	// epoll on ioeventfds, image I/O, irqfd writes.
	ClassDevice
	// ClassAPI is the main/API thread: waits for the VM, logs, talks to
	// the parent jailer over a pipe and (later) serves the management
	// socket, and tears the VM down.
	ClassAPI

	numClasses = iota
)

var classNames = [...]string{ClassVCPU: "vcpu", ClassDevice: "device", ClassAPI: "api"}

func (c Class) String() string {
	if c.valid() {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

func (c Class) valid() bool { return c >= 0 && c < numClasses }

// Options select the filters' action and optional device support.
type Options struct {
	Mode Mode
	// Net allows, in the device class (and so the baseline), the TUN
	// ioctls and readv/writev a virtio-net worker needs on its tap fd.
	Net bool
}
