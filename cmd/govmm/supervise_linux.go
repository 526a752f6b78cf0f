package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/govmm/govmm/sandbox/cgroup"
	"github.com/govmm/govmm/sandbox/jail"
	"github.com/govmm/govmm/vmm"
)

// supervise runs the VM in a child process that it jails (--jail) and/or
// places in a per-VM cgroup, forwards SIGINT/SIGTERM to it, and removes
// the jail root and the cgroup after it ended. The child's exit code is
// ours; a child killed by a signal (SIGSYS from a seccomp filter, say) is
// reported and gives 128+signal, as a shell would.
func supervise(o *runOptions, cfg vmm.Config, stdout, stderr io.Writer, log *slog.Logger) int {
	if os.Geteuid() != 0 {
		return fail(stderr, vmm.CodeUsage, errors.New("--jail and per-VM cgroups need root (without root, run with --cgroup=off and no --jail)"))
	}
	var group *cgroup.Group
	if o.wantCgroup() {
		r := cgroup.Resources{CPUWeight: o.cpuWeight, MemoryMax: int64(cfg.Memory) + cgroupMemoryOverhead, PidsMax: o.pidsMax}
		if o.cpuMax != "" {
			r.CPUQuota, r.CPUPeriod, _ = cgroup.ParseCPUMax(o.cpuMax)
		}
		g, err := cgroup.New("govmm/"+o.id, r)
		if err != nil {
			return fail(stderr, vmm.CodeError, fmt.Errorf("cgroup for VM %s: %w", o.id, err))
		}
		group = g
		defer func() {
			if err := group.Remove(); err != nil {
				log.Error("removing the VM's cgroup", "err", err)
			}
		}()
	}
	spec := jail.Spec{
		ID: o.id, Isolate: o.jail, BaseDir: o.jailBase, UID: o.uid, GID: o.gid, NetNS: o.netns,
		KVM: true, Stdout: stdout, Stderr: stderr,
	}
	child := *o
	if o.cons.kind == "file" {
		// The supervisor opens the console file (the jailed child could
		// not reach it) and gives it to the child as its stdout.
		f, err := openConsole(o.cons.path)
		if err != nil {
			return fail(stderr, vmm.CodeUsage, err)
		}
		defer f.Close()
		spec.Stdout = f
		child.console = "stdout"
	}
	if o.jail {
		// Inside the jail the files have fixed names; only these exist.
		if o.kernel != "" {
			spec.Binds = append(spec.Binds, jail.Bind{Host: o.kernel, Jail: "/kernel", ReadOnly: true})
			child.kernel = "/kernel"
		}
		if o.initrd != "" {
			spec.Binds = append(spec.Binds, jail.Bind{Host: o.initrd, Jail: "/initrd", ReadOnly: true})
			child.initrd = "/initrd"
		}
		child.disks = nil
		for i, d := range o.disks {
			in := "/disk" + strconv.Itoa(i)
			spec.Binds = append(spec.Binds, jail.Bind{Host: d.Path, Jail: in, ReadOnly: d.ReadOnly})
			d.Path = in
			child.disks = append(child.disks, d)
		}
	}
	jailRoot := ""
	if o.jail {
		jailRoot = filepath.Join(o.jailBase, o.id, "root")
	}
	beforeExec, cleanup, err := o.execLabel(log, jailRoot)
	if err != nil {
		return fail(stderr, vmm.CodeUsage, err)
	}
	if cleanup != nil {
		defer cleanup()
		// The label is the VM's MAC; the child must not try Landlock.
		child.mac = "off"
	}
	spec.BeforeExec = beforeExec
	if o.jail {
		if o.mac == "landlock" {
			return fail(stderr, vmm.CodeUsage, errors.New("--mac=landlock cannot be combined with --jail: the jail's root is the file-system restriction (use --mac=auto)"))
		}
		child.mac = "off"
	}
	spec.Args = child.childArgs()
	if group != nil {
		spec.OnStart = group.AddProcess
		spec.OnVCPUThreads = group.AddVCPUThreads
	}

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	j, err := jail.Start(spec)
	if err != nil {
		return fail(stderr, vmm.CodeError, err)
	}
	go func() {
		for sig := range sigs {
			_ = j.Signal(sig)
		}
	}()
	st, err := j.Wait()
	if err != nil {
		return fail(stderr, vmm.CodeError, err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		fmt.Fprintf(stderr, "govmm: VM process %d killed by signal %d (%s)\n", st.Pid(), int(ws.Signal()), ws.Signal())
		return 128 + int(ws.Signal())
	}
	return st.ExitCode()
}

// childArgs is the `govmm run` command line that reproduces o in the
// child. Supervisor-only flags (--jail, --cgroup limits) are left out: the
// child is the VM, not its keeper.
func (o *runOptions) childArgs() []string {
	a := []string{"run",
		"--id", o.id,
		"--cpu-model", o.cpuModel,
		"--memory", o.memory,
		"--cpus", strconv.Itoa(o.cpus),
		"--console", o.console,
		"--irqchip", o.irqchip,
		"--log-level", o.logLevel,
		"--seccomp", o.seccomp,
		"--mac", o.mac,
		"--cgroup", "off",
	}
	if o.cmdlineSet {
		a = append(a, "--cmdline", o.cmdline)
	}
	if o.kernel != "" {
		a = append(a, "--kernel", o.kernel)
	}
	if o.initrd != "" {
		a = append(a, "--initrd", o.initrd)
	}
	if o.hugepages {
		a = append(a, "--hugepages")
	}
	if o.prefault {
		a = append(a, "--prefault")
	}
	for _, d := range o.disks {
		a = append(a, "--disk", d.String())
	}
	return append(a, o.testHookArgs()...)
}
