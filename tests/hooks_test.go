package tests

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/devices/virtio/blk"
	"github.com/govmm/govmm/vmm"
)

// recordingHooks records what the VMM hands an embedder's sandbox, and
// checks on each thread that it really is the thread it claims to be.
type recordingHooks struct {
	mu       sync.Mutex
	before   []vmm.Thread
	entered  []vmm.Thread
	wrongTID []string
	failWith error
}

func (h *recordingHooks) BeforeGuest(threads []vmm.Thread) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.before = append(h.before, threads...)
	return h.failWith
}

func (h *recordingHooks) EnterThread(t vmm.Thread) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if got := unix.Gettid(); got != t.TID {
		h.wrongTID = append(h.wrongTID, t.Name)
	}
	h.entered = append(h.entered, t)
	return nil
}

// newHookedVM builds an in-process VM (the embedding use of govmm) with two
// vCPUs and one disk, running the given guest program.
func newHookedVM(t *testing.T, guest string, h vmm.ThreadHooks, console *bytes.Buffer) *vmm.VM {
	t.Helper()
	kernel, err := os.ReadFile(Guest(t, guest))
	if err != nil {
		t.Fatal(err)
	}
	vm, err := vmm.New(vmm.Config{
		Kernel: kernel, KernelName: guest, Cmdline: "console=ttyS0",
		Memory: 64 << 20, CPUs: 2, Console: console,
		Disks: []blk.Spec{{Path: makeImage(t, 64)}},
		Hooks: h,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	return vm
}

// TestThreadHooks: the embedder's sandbox sees every guest-facing thread,
// with its real TID, before the guest runs, and each thread enters its
// own hook on itself.
func TestThreadHooks(t *testing.T) {
	RequireKVM(t)
	h := &recordingHooks{}
	var console bytes.Buffer
	vm := newHookedVM(t, "hello", h, &console)
	exit, err := vm.Run()
	if err != nil {
		t.Fatal(err)
	}
	if exit.Reason != vmm.ExitReset || !strings.Contains(console.String(), "PASS hello") {
		t.Fatalf("guest did not run to its end: %s\n%s", exit, console.String())
	}
	want := []string{"vcpu0", "vcpu1", "virtio-blk0"}
	var names []string
	for _, th := range h.before {
		names = append(names, th.Name)
		if th.TID <= 0 {
			t.Errorf("thread %s has TID %d", th.Name, th.TID)
		}
	}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("BeforeGuest saw %v, want %v", names, want)
	}
	if len(h.entered) != len(want) {
		t.Errorf("EnterThread ran %d times, want %d", len(h.entered), len(want))
	}
	if len(h.wrongTID) > 0 {
		t.Errorf("EnterThread ran on the wrong OS thread for %v", h.wrongTID)
	}
	if h.before[2].Class != vmm.ThreadDevice || h.before[0].Class != vmm.ThreadVCPU {
		t.Errorf("classes: %v", h.before)
	}
}

// TestThreadHooksFailureStopsBeforeGuest: if the sandbox cannot confine
// the VM, not one guest instruction runs and the VM ends with an error
// naming the cause.
func TestThreadHooksFailureStopsBeforeGuest(t *testing.T) {
	RequireKVM(t)
	cause := errors.New("no seccomp here")
	h := &recordingHooks{failWith: cause}
	var console bytes.Buffer
	vm := newHookedVM(t, "hello", h, &console)
	exit, err := vm.Run()
	if !errors.Is(err, cause) {
		t.Fatalf("Run error = %v, want it to wrap %v", err, cause)
	}
	if exit.Reason != vmm.ExitError || !strings.Contains(exit.Detail, "no seccomp here") {
		t.Fatalf("exit = %s, want an error naming the cause", exit)
	}
	if console.Len() != 0 {
		t.Fatalf("the guest ran although confinement failed: %q", console.String())
	}
	if len(h.entered) != 0 {
		t.Fatalf("threads entered their hooks after BeforeGuest failed: %v", h.entered)
	}
}
