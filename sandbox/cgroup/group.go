package cgroup

import "sync"

// VCPUChild is the name of the child group that holds the vCPU threads:
// <group>/vcpu in the hierarchy of the cpu controller (and, on v1, of
// cpuacct). On v2 it is a threaded cgroup.
const VCPUChild = "vcpu"

// groupDir is a group's directory in one hierarchy.
type groupDir struct {
	h   *hierarchy
	dir string // <h.point>/<name>
}

// Group is one VM's cgroup, in every hierarchy that carries a managed
// controller. Its methods are safe for concurrent use.
type Group struct {
	// name is the group's path below each hierarchy's mount point, such as
	// "govmm/vm1". Immutable.
	name string
	// dirs are the group's directories, one per hierarchy, in the order
	// of the managed controllers (cpu's hierarchy first). Immutable after
	// New or Open returns; the directories exist from New until Remove
	// succeeds (someone else removing them makes methods fail with the
	// kernel's ENOENT).
	dirs []groupDir
	// ctl maps each managed controller the group has to its entry in
	// dirs. Immutable.
	ctl map[string]*groupDir
	// cpu is the entry of dirs that carries the cpu controller (weight,
	// quota). New never returns a group without it; Open may (then
	// Version is 0). Immutable.
	cpu *groupDir
	// acct is the entry of dirs whose files give CPU usage: cpu's on v2
	// (cpu.stat), cpuacct's on v1 (cpuacct.usage); nil if neither is
	// present. Immutable.
	acct *groupDir
	// vcpuDirs are the entries of dirs that get the vcpu child: cpu's
	// and, on v1, cpuacct's when that is a separate hierarchy.
	// Immutable.
	vcpuDirs []*groupDir

	// mu serialises AddProcess, AddVCPUThreads and Remove, which write
	// several files that must agree, and guards the fields below.
	mu sync.Mutex
	// vcpuReady is true once the vcpu child exists and is set up (on v2:
	// threaded, cpu enabled for it) in every vcpuDirs entry. Guarded by mu.
	vcpuReady bool
	// origin maps a hierarchy to the directory this process was in before
	// AddProcess(os.Getpid()) moved it into the group, so that Remove can
	// move it back. Nil until then. Guarded by mu.
	origin map[*hierarchy]string
	// removed is set when Remove has succeeded; AddProcess,
	// AddVCPUThreads and CPUUsage then fail with ErrRemoved, Remove
	// returns nil. Guarded by mu.
	removed bool
}

// Name returns the group's name as given to New or Open.
func (g *Group) Name() string { return g.name }

// Paths returns the group's directory for each controller it has
// ("cpu", "cpuacct" on v1, "memory", "pids"); controllers on one
// hierarchy share a directory. The vcpu child is <Paths()["cpu"]>/vcpu.
// The map is a copy.
func (g *Group) Paths() map[string]string {
	m := make(map[string]string, len(g.ctl))
	for c, d := range g.ctl {
		m[c] = d.dir
	}
	return m
}

// Version returns the cgroup version (1 or 2) of the hierarchy that
// carries the cpu controller, or 0 for a group Open found without one.
func (g *Group) Version() int {
	if g.cpu == nil {
		return 0
	}
	return g.cpu.h.version
}
