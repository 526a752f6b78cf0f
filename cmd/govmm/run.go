package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/govmm/govmm/cmd/govmm/demo"
	"github.com/govmm/govmm/devices/virtio/blk"
	"github.com/govmm/govmm/sandbox/jail"
	"github.com/govmm/govmm/sandbox/mac"
	"github.com/govmm/govmm/vmm"
)

// runOptions is the parsed `govmm run` command line. The supervisor (jail or
// cgroup parent) re-creates a child's command line from it with
// childArgs, so every flag here must round-trip; the derived fields (cons,
// the --mac resolution) are recomputed by the child.
type runOptions struct {
	kernel, initrd, cmdline, cpuModel, memory, console, irqchip, logLevel string
	cmdlineSet                                                            bool
	cpus                                                                  int
	hugepages, prefault                                                   bool
	disks                                                                 []blk.Spec
	cons                                                                  consoleSpec // --console, parsed

	// Confinement (sandbox_linux.go).
	id                   string
	seccomp, mac, cgroup string
	cpuWeight            uint64
	cpuMax               string
	pidsMax              int64
	jail                 bool
	jailBase             string
	uid, gid             int
	netns                string
	cgroupFlagsSet       bool // --cpu-weight, --cpu-max or --pids-max given
	testHookOpts              // empty except in test-hooks builds (testhook_on.go)

	// The --mac resolution, made once by macBackend (mac_linux.go).
	macResolved bool
	macB        mac.Backend
	macErr      error
}

// parseRunFlags parses args. ok is false when the command is finished
// (help printed, or a usage error reported) and code is its exit code.
func parseRunFlags(args []string, stdout, stderr io.Writer) (o *runOptions, code int, ok bool) {
	o = &runOptions{}
	fs := flag.NewFlagSet("govmm run", flag.ContinueOnError)
	fs.StringVar(&o.kernel, "kernel", "", "guest kernel `FILE` (PVH ELF, bzImage or vmlinux); the embedded demo guest when empty")
	fs.StringVar(&o.initrd, "initrd", "", "initial ramdisk `FILE` for a Linux kernel (see govmm mkinitrd)")
	fs.StringVar(&o.cmdline, "cmdline", vmm.DefaultCmdline, "guest command line")
	fs.StringVar(&o.cpuModel, "cpu-model", "govmm", "CPU identity shown to the guest: govmm (host brand and model hidden) or host")
	fs.StringVar(&o.memory, "memory", "128M", "guest RAM `SIZE` (K, M, G suffixes; multiple of 4K)")
	fs.IntVar(&o.cpus, "cpus", 1, "number of vCPUs")
	fs.StringVar(&o.console, "console", "stdout", "serial console: stdout, off or file:PATH")
	fs.StringVar(&o.irqchip, "irqchip", "on", "in-kernel interrupt controllers: on, or off (1 vCPU; HLT ends the VM)")
	fs.StringVar(&o.logLevel, "log-level", "warn", "VMM log level on stderr: debug, info, warn or error")
	fs.BoolVar(&o.hugepages, "hugepages", false, "back guest RAM with 2 MiB huge pages")
	fs.BoolVar(&o.prefault, "prefault", false, "fault in and lock all guest RAM at start (no overcommit)")
	fs.Func("disk", "virtio-blk disk `path=FILE[,readonly=on][,serial=ID][,direct=on][,bps=N][,iops=N]` (repeatable)", func(s string) error {
		d, err := blk.ParseDiskSpec(s)
		if err != nil {
			return err
		}
		o.disks = append(o.disks, d)
		return nil
	})
	registerSandboxFlags(fs, o)
	// The flag package would print its whole usage on any error; a user's
	// mistake gets one line instead, and -h the full list.
	fs.SetOutput(io.Discard)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: govmm run [flags]")
			fs.PrintDefaults()
			return nil, 0, false
		}
		return nil, fail(stderr, vmm.CodeUsage, err), false
	}
	if fs.NArg() > 0 {
		return nil, fail(stderr, vmm.CodeUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0))), false
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "cmdline":
			o.cmdlineSet = true
		case "cpu-weight", "cpu-max", "pids-max":
			o.cgroupFlagsSet = true
		}
	})
	cons, err := parseConsole(o.console)
	if err != nil {
		return nil, fail(stderr, vmm.CodeUsage, err), false
	}
	o.cons = cons
	if err := o.validateSandbox(); err != nil {
		return nil, fail(stderr, vmm.CodeUsage, err), false
	}
	return o, 0, true
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	o, code, ok := parseRunFlags(args, stdout, stderr)
	if !ok {
		return code
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", o.logLevel))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	// Three roles share this command: the VM process itself (plain, or
	// as the child of a supervisor), and the supervisor that jails it
	// and/or owns its cgroup. A child enters its jail before it opens a
	// single file: its paths (/kernel, /disk0) exist only in there.
	var child *jail.Child
	if isConfinedChild() {
		c, err := jail.Enter()
		if err != nil {
			return fail(stderr, vmm.CodeError, err)
		}
		child = c
	}
	cfg, err := o.vmConfig()
	if err != nil {
		return fail(stderr, vmm.CodeUsage, err)
	}
	if child == nil {
		if err := probeKVM(cfg.KVMPath); err != nil {
			return fail(stderr, vmm.CodeError, err)
		}
	}
	if child == nil && o.needsSupervisor() {
		return supervise(o, cfg, stdout, stderr, log)
	}
	return runVM(o, cfg, child, stdout, stderr, log)
}

// vmConfig turns the options into a VM configuration, reading the kernel
// and initrd (bounded) and validating everything before any file is
// created or any device opened.
func (o *runOptions) vmConfig() (vmm.Config, error) {
	memSize, err := parseSize(o.memory)
	if err != nil {
		return vmm.Config{}, fmt.Errorf("--memory: %w", err)
	}
	cfg := vmm.Config{Disks: o.disks, Cmdline: o.cmdline, Memory: memSize, CPUs: o.cpus}
	cfg.MemoryOptions.HugePages = o.hugepages
	cfg.MemoryOptions.Prefault = o.prefault
	cfg.MemoryOptions.Mlock = o.prefault
	switch o.irqchip {
	case "on":
	case "off":
		cfg.NoIRQChip = true
	default:
		return cfg, fmt.Errorf("--irqchip %q: want on or off", o.irqchip)
	}
	switch o.cpuModel {
	case "govmm":
	case "host":
		cfg.HostCPUModel = true
	default:
		return cfg, fmt.Errorf("--cpu-model %q: want govmm or host", o.cpuModel)
	}
	if o.kernel == "" {
		cfg.Kernel, cfg.KernelName = demo.ELF, "(embedded demo guest)"
		if !o.cmdlineSet {
			cfg.Cmdline = vmm.DefaultCmdline + " govmm.demo=1"
		}
	} else {
		b, err := readFile("--kernel", o.kernel)
		if err != nil {
			return cfg, err
		}
		cfg.Kernel, cfg.KernelName = b, o.kernel
	}
	if o.initrd != "" {
		b, err := readFile("--initrd", o.initrd)
		if err != nil {
			return cfg, err
		}
		cfg.Initrd = b
	}
	return cfg, cfg.Validate()
}

// openConsole opens (creating or truncating) the --console file.
func openConsole(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("--console: %w", err)
	}
	return f, nil
}

// runVM runs the VM in this process, confined as the options say.
func runVM(o *runOptions, cfg vmm.Config, child *jail.Child, stdout, stderr io.Writer, log *slog.Logger) int {
	switch o.cons.kind {
	case "stdout":
		cfg.Console = stdout
	case "file":
		f, err := openConsole(o.cons.path)
		if err != nil {
			return fail(stderr, vmm.CodeUsage, err)
		}
		defer f.Close()
		cfg.Console = f
	}
	sb, code, err := newVMSandbox(o, &cfg, child, log)
	if err != nil {
		return fail(stderr, code, err)
	}
	cfg.Hooks = sb

	vm, err := vmm.New(cfg, log)
	if err != nil {
		if errors.Is(err, vmm.ErrConfig) {
			return fail(stderr, vmm.CodeUsage, err)
		}
		return fail(stderr, vmm.CodeError, err)
	}
	defer vm.Close()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		if _, ok := <-sigs; ok {
			vm.Stop()
		}
	}()

	exit, err := vm.Run()
	if err != nil {
		return fail(stderr, vmm.CodeError, err)
	}
	log.Info("vm ended", "reason", exit.Reason.String(), "detail", exit.Detail)
	fmt.Fprintf(stderr, "govmm: guest %s\n", exit)
	switch exit.Reason {
	case vmm.ExitReset, vmm.ExitHalt, vmm.ExitShutdown, vmm.ExitStopped:
	default:
		if exit.Registers != "" {
			fmt.Fprintln(stderr, exit.Registers)
		}
	}
	return exit.Reason.ExitCode()
}
