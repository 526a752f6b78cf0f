// Package cgroup puts one VM into its own control group: a CPU weight and
// an optional CPU cap, a memory limit, a pids limit, CPU accounting, and a
// child group "vcpu" that holds only the vCPU threads, so guest time and
// device-model time are accounted apart.
//
// # Hierarchies
//
// cgroup v2 is preferred, v1 is supported, and both may be present at once
// (a "hybrid" host: v1 controllers under /sys/fs/cgroup/<controller>, an
// empty cgroup2 at /sys/fs/cgroup/unified). Which hierarchy serves which
// controller is decided per controller from /proc/self/mountinfo: a
// controller is on v2 only if the cgroup2 root lists it in
// cgroup.controllers (the kernel lists there exactly the controllers no v1
// hierarchy has claimed), otherwise on the v1 hierarchy whose mount options
// name it. The controllers managed are cpu, cpuacct (v1 only: v2's cpu.stat
// replaces it), memory and pids; a group lives in each hierarchy that
// carries one of them, at <mount point>/<name>.
//
// # Why no library
//
// The two maintained Go libraries were evaluated on this shape and not
// used:
//
//   - github.com/opencontainers/cgroups v0.1.0: its root package's
//     Resources type embeds go-systemd D-Bus properties, so importing even
//     the fs/fs2 managers links github.com/godbus/dbus/v5,
//     github.com/coreos/go-systemd/v22/dbus and logrus into the VMM. Its v1
//     manager joins every mounted hierarchy (cpuset, devices, freezer,
//     blkio, name=systemd and, on a hybrid host, the unified one), resolves
//     relative paths against pid 1's cgroup, and it picks v1 or v2 for the
//     whole host rather than per controller. It has no threaded child.
//   - github.com/containerd/cgroups/v3 v3.1.3: additionally links
//     cilium/ebpf, protobuf and the OCI runtime-spec; same global v1/v2
//     choice, no threaded child.
//
// What govmm needs is a few dozen writes to files whose formats the kernel
// documents (Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/), so it
// is written here by hand, small enough to review with the rest of the
// sandbox, with no dependency beyond golang.org/x/sys.
//
// # Lifecycle
//
//	g, err := cgroup.New("govmm/"+id, res) // dirs + limits; fails on an existing group
//	err = g.AddProcess(pid)                // the whole VMM process
//	err = g.AddVCPUThreads(tids)           // then the vCPU threads (after AddProcess!)
//	total, vcpu, err := g.CPUUsage()
//	err = g.Remove()                       // when the VMM's processes have ended
//
// AddProcess moves every thread of the process into the group, so calling
// it after AddVCPUThreads would undo the vCPU placement; on v2 a thread can
// only enter the threaded child when its process is already in the group.
// The parent directories ("govmm") are created on demand and left in place.
//
// Pure parts (names, resources, parsing) are portable; everything that
// touches the kernel lives in _linux.go files.
package cgroup
