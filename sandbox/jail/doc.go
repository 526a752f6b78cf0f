// Package jail runs a govmm VMM process in a jail, the way Firecracker's
// jailer does: the unjailed supervisor (root) calls Start, which
// re-executes the running binary (/proc/self/exe) as the child; the
// child's main sees IsChild and calls Enter before anything else, and from
// then on holds only the files of its VM, under their in-jail names.
//
// The jailed process ends up (tests check all of it from outside, in
// /proc/PID):
//
//   - uid and gid UID:GID (default 65534), no supplementary groups;
//   - CapInh = CapPrm = CapEff = CapBnd = CapAmb = 0 and NoNewPrivs = 1 on
//     every thread;
//   - in its own mount, pid (it is PID 1 there), IPC and UTS namespaces,
//     and in Spec.NetNS if given;
//   - with a root that is a small read-only tmpfs holding only the bound
//     files and /dev/kvm, /dev/net/tun; no /proc, no /etc, nothing else;
//   - RLIMIT_NOFILE, RLIMIT_FSIZE and RLIMIT_NPROC set;
//   - with fds 0-2 (stdio), 3 (the control socket, closed after
//     ReportThreads) and 4.. (Spec.ExtraFiles, in order), and nothing else
//     but its Go runtime's epoll and eventfd;
//   - with no controlling terminal (setsid), so it cannot push keystrokes
//     into the user's shell with TIOCSTI, and ^C reaches only the
//     supervisor, which forwards what it wants.
//
// # Threads: why the supervisor does the per-thread work
//
// Capability sets, the bounding set, no_new_privs and namespace membership
// (setns) belong to a thread, not to a process. A Go program has many
// threads the program does not control, and a cgo binary (govmm links
// libseccomp) cannot reach them all: syscall.AllThreadsSyscall refuses to
// run with cgo, and the C library broadcasts only the set*id calls to all
// threads. So whatever must hold on every thread of the child is arranged
// before the child has threads, by inheritance:
//
// Start runs a goroutine that calls runtime.LockOSThread and never
// unlocks. On that one thread it
//
//  1. joins Spec.NetNS (setns CLONE_NEWNET);
//  2. adds the capabilities the child needs for its setup (see childCaps)
//     to the thread's inheritable set. This must come before step 3:
//     capset may only raise an inheritable bit that is still in the
//     bounding set;
//  3. drops every capability 0..cap_last_cap from the bounding set
//     (PR_CAPBSET_DROP), and checks it is empty;
//  4. sets no_new_privs;
//  5. forks and execs the child with exec.Cmd.Start from that same
//     goroutine. Go forks on the calling thread, so the child starts with
//     that thread's netns, empty bounding set and no_new_privs. Clone flags
//     CLONE_NEWNS|CLONE_NEWPID|CLONE_NEWIPC|CLONE_NEWUTS give it its new
//     namespaces; AmbientCaps the needed capabilities; Pdeathsig SIGKILL;
//     Setsid.
//  6. waits for the child (cmd.Wait) on the same goroutine, and returns
//     still locked, so the runtime ends the thread. Pdeathsig fires when
//     the thread that forked the child exits, not the process, so that
//     thread must live exactly as long as the child; and it is changed for
//     good (no_new_privs cannot be unset, nor the bounding set refilled),
//     so it must not go back to the runtime's pool.
//
// The goroutine must not run on the main thread: the runtime cannot end
// that one and wedges it instead, and it would stay changed (and a signal
// handler or cgo callback could still run on it). goLockedOffMain sees to
// that.
//
// Why the child keeps the capabilities it needs across the exec, despite
// an empty bounding set and no_new_privs (capabilities(7),
// security/commoncap.c cap_bprm_creds_from_file): the binary has no file
// capabilities and is not set-uid, so the exec is not privilege-gaining
// and no_new_privs has nothing to veto; the ambient set survives such an
// exec; as the euid is 0, pP' = (bounding set | pI) | pA' = pI | pA, and
// pE' = pP'. The bounding set only limits what file capabilities and the
// "root is all-powerful" rule could add; both are now nothing. So the
// child starts with exactly the needed capabilities, whether the kernel
// applies the root rule (pI) or not (SECBIT_NOROOT: pA), and can never
// regain others: exec adds nothing with an empty bounding set, and
// no_new_privs turns off set-uid and file capabilities for good. (Measured
// here: after the exec the child has CapEff = CapPrm = CapInh = CapAmb =
// the needed set, CapBnd = 0, NoNewPrivs = 1.)
//
// # The inheritable set: a flaw in the plain design, and the fix
//
// The inheritable set, like the bounding set, is left alone by setuid. If
// the child keeps the inheritable bits it was born with, every thread of
// the jailed VMM ends with CapInh != 0 (harmless, as nothing can be
// gained from it with an empty bounding set and no_new_privs, but not the
// "no capabilities" state we promise, and one kernel change away from
// mattering). Clearing it needs capset on every thread; in Go that is
// impossible with cgo (see above), and by the time main runs the runtime
// has started several threads. So the package carries a C constructor
// (ctor_linux.c): the dynamic loader runs it before the Go runtime
// starts, while the process has exactly one thread. In a process whose
// environment holds the jail marker it clears the inheritable set (and so
// the ambient set), keeping the permitted and effective sets Enter still
// needs. Every thread the runtime creates afterwards copies that thread.
// Enter checks that the constructor ran. Built without cgo, Enter uses
// AllThreadsSyscall instead. Lowering the inheritable set needs no
// privilege, so the constructor in an ordinary process that happens to
// see the marker can only lose capabilities.
//
// Leaving uid 0 then empties the permitted, effective and ambient sets:
// syscall.Setgroups, Setresgid and Setresuid go through the C library,
// which runs them on every thread (x/sys/unix's Setgroups is one raw
// syscall on one thread: never use it here), and the kernel clears those
// sets on each thread as all of its uids become non-zero. Enter then
// checks every thread's status.
//
// # Order of the steps, and where it departs from the list
//
// The issue lists: validate the id; close inherited fds; clear the
// environment; create the per-VM root; bind-mount the files; make the
// device nodes; new namespaces and the netns; private mounts, pivot_root,
// detach the old root; rlimits; drop uid/gid; drop capabilities;
// no_new_privs. Here:
//
//   - Supervisor, before the fork: validate the spec (id, paths, that each
//     bind source exists and is a regular file or block device, rlimits);
//     create and flock BaseDir/ID and an empty BaseDir/ID/root; mark all
//     fds >= 3 close-on-exec (closing them would pull fds from under the
//     Go runtime); netns, capabilities, bounding set, no_new_privs on the
//     forking thread (above); the namespaces come with the clone. So
//     namespaces, the bounding-set drop and no_new_privs come first, not
//     last: they are per-thread and must be inherited (see above).
//   - Child, in Enter: wait for the go-ahead (the spec, sent after
//     OnStart); check it is PID 1; check the constructor cleared the
//     inheritable set; check no unexpected fd is open; clear the
//     environment; mount --make-rprivate /; mount a tmpfs (nosuid, noexec,
//     mode 0755, 1 MiB) on BaseDir/ID/root; bind-mount each file onto an
//     empty file there and remount it nosuid,noexec (nodev unless a block
//     device, ro if ReadOnly); mknod /dev/kvm and /dev/net/tun (0600,
//     UID:GID); set the hostname to the id; pivot_root and detach the old
//     root; remount / read-only; set the rlimits; setgroups([]),
//     setresgid, setresuid; no_new_privs (again, on this thread); verify
//     this thread and, through /proc/self/task opened before the pivot and
//     closed right after, every thread; open each file as UID:GID once.
//
// The bind mounts and device nodes are made after the namespaces, not
// before, and only after the mounts were made private: that is what keeps
// the host clean. Every jail mount lives only in the child's mount
// namespace, on a tmpfs that exists only there; nothing propagates to the
// host (whose / is typically shared), and all of it vanishes with the
// namespace when the child dies, even by SIGKILL, without anyone
// unmounting anything. On the host, BaseDir/ID/root is just an empty
// directory; the supervisor removes BaseDir/ID after the child is reaped.
// pivot_root uses runc's pivot_root(".", ".") so that no put_old
// directory is left in the jail.
//
// # Per-VM directory, and a supervisor that died
//
// BaseDir (0700, root-owned, not group/world-writable) holds one
// directory per running VM, BaseDir/ID, with a lock file flock'ed by the
// supervisor for the VM's whole life. A second Start with the same id
// fails ("in use") while the lock is held. If a supervisor was SIGKILLed,
// its child died with it (Pdeathsig) and its lock went with its fds: the
// next Start with that id finds the directory, gets the lock, and reclaims
// it (Jail.Reclaimed), removing only "lock" and the empty "root" with
// rmdir, never recursively.
//
// # Hooks and the control protocol
//
// OnStart(pid) runs after the child exists and before it proceeds past
// the start of Enter (it blocks reading the spec, which Start sends only
// after OnStart returned nil): put it into its cgroup there. Its Go
// runtime has started by then; nothing of the VM has. The child reports
// its vCPU threads with Child.ReportThreads (TIDs in its pid namespace);
// the supervisor maps them to host TIDs through the NSpid lines of
// /proc/PID/task/*/status, calls OnVCPUThreads with those, and sends back
// its verdict. The child is the sandboxed side: the protocol (proto.go)
// is one bounded datagram per message, parsed strictly, sanitised before
// it appears in an error, one report only, and a TID is accepted only if
// it is a thread of that child, whose pid namespace is checked before and
// after the scan against pid reuse.
//
// # Signals
//
// As PID 1 of its pid namespace the child receives from outside only
// SIGKILL, SIGSTOP and signals it has a handler for; a signal arriving
// before its Go runtime installed its handlers is dropped. The supervisor
// should forward SIGTERM/SIGINT with Jail.Signal and, if the child does
// not end in a grace period, send SIGKILL.
package jail
