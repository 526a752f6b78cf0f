package vmm

import (
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sys/unix"
)

// setThreadName sets the calling thread's comm.
func setThreadName(name string) error {
	b := make([]byte, 16)
	copy(b[:15], name)
	return unix.Prctl(unix.PR_SET_NAME, uintptr(unsafePointer(b)), 0, 0, 0)
}

// ThreadClass says what a VMM thread does, and so which confinement (the
// sandbox's seccomp filter class) it gets.
type ThreadClass int

const (
	// ThreadVCPU runs KVM_RUN and handles exits for one vCPU.
	ThreadVCPU ThreadClass = iota
	// ThreadDevice serves one virtio device's queues (its worker).
	ThreadDevice
)

func (c ThreadClass) String() string {
	switch c {
	case ThreadVCPU:
		return "vcpu"
	case ThreadDevice:
		return "device"
	}
	return fmt.Sprintf("ThreadClass(%d)", int(c))
}

// Thread is one guest-facing VMM thread, locked to its OS thread for its
// whole life.
type Thread struct {
	Class ThreadClass
	// Index is the vCPU id or the virtio device index.
	Index int
	// Name is "vcpu0", "virtio-blk1", ...: what logs and reports call it.
	Name string
	// TID is the OS thread id as the VMM itself sees it (in its own PID
	// namespace when jailed).
	TID int
}

// ThreadHooks let the embedder confine the VM's threads before the guest
// runs a single instruction or a device serves a single request. Package
// vmm knows nothing of seccomp, cgroups or namespaces; cmd/govmm
// implements these hooks with package sandbox.
type ThreadHooks interface {
	// BeforeGuest runs once, on the goroutine that called Start, when
	// every vCPU and device thread exists, is locked to its OS thread and
	// is parked before its first KVM_RUN or device request. Process-wide
	// confinement (a seccomp baseline synchronised to all threads, cgroup
	// placement of the vCPU threads) goes here. An error ends the VM
	// before any guest code runs.
	BeforeGuest(threads []Thread) error
	// EnterThread runs on each parked thread itself, after BeforeGuest
	// succeeded and before the thread does any work: per-thread
	// confinement (that thread's seccomp filter) goes here. An error
	// ends the VM; the thread never runs guest-facing code.
	EnterThread(t Thread) error
}

// startGate parks every guest-facing thread between "locked to its OS
// thread" and "first work", so that BeforeGuest sees all of them at once
// and nothing guest-controlled runs unconfined.
type startGate struct {
	arrived sync.WaitGroup
	mu      sync.Mutex
	threads []Thread // guarded by mu until open is closed
	open    chan struct{}
	// err is written once before open is closed and only read after.
	err error
}

func newStartGate(n int) *startGate {
	g := &startGate{open: make(chan struct{})}
	g.arrived.Add(n)
	return g
}

// park is called by a thread once it is locked. It blocks until the gate
// opens and then runs the thread's own hook. A false result means the
// thread must return without doing any work.
func (g *startGate) park(v *VM, t Thread) bool {
	// Name the thread (comm, at most 15 bytes) so that ps, top and
	// /proc/PID/task/*/comm show which vCPU or device burns the CPU.
	// Best effort: a name is not worth failing a VM for.
	_ = setThreadName(t.Name)
	g.mu.Lock()
	g.threads = append(g.threads, t)
	g.mu.Unlock()
	g.arrived.Done()
	<-g.open
	if g.err != nil {
		return false
	}
	if v.cfg.Hooks == nil {
		return true
	}
	if err := v.cfg.Hooks.EnterThread(t); err != nil {
		v.end(Exit{Reason: ExitError, VCPU: -1, Detail: fmt.Sprintf("confining thread %s: %v", t.Name, err), Err: err})
		return false
	}
	return true
}

// release waits for every thread to park, runs BeforeGuest and opens the
// gate.
func (g *startGate) release(v *VM) error {
	g.arrived.Wait()
	g.mu.Lock()
	threads := append([]Thread(nil), g.threads...)
	g.mu.Unlock()
	sort.Slice(threads, func(i, j int) bool {
		if threads[i].Class != threads[j].Class {
			return threads[i].Class < threads[j].Class
		}
		return threads[i].Index < threads[j].Index
	})
	var err error
	if v.cfg.Hooks != nil {
		if err = v.cfg.Hooks.BeforeGuest(threads); err != nil {
			err = fmt.Errorf("vmm: confining the VM before the guest runs: %w", err)
		}
	}
	g.err = err
	close(g.open)
	if err != nil {
		v.end(Exit{Reason: ExitError, VCPU: -1, Detail: err.Error(), Err: err})
	}
	return err
}
