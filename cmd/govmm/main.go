// Command govmm is a hardened, minimal virtual machine monitor.
//
//	govmm run [flags]     boot a microVM (the embedded demo guest without --kernel)
//	govmm mkinitrd        pack a static binary into an initramfs as /init
//	govmm check [--json]  audit this host against NIST SP 800-125A / BSI SYS.1.5
//	govmm version         print the version
//
// Exit codes of `govmm run` are documented in docs/design.md and pinned in
// package vmm: 0 guest reset, 1 VMM error, 2 usage error, 3 guest halt,
// 4 guest power-off, 5 guest crash, 6 stopped by the user.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/govmm/govmm/cmd/govmm/demo"
	"github.com/govmm/govmm/devices/virtio/blk"
	"github.com/govmm/govmm/vmm"
)

const usageLine = "usage: govmm run [flags] | govmm mkinitrd -o FILE --init BIN | govmm check [--json] | govmm version   (govmm run -h for flags)"

// version is set at link time by the Makefile (-X main.version=...).
var version = "dev"

func main() {
	os.Exit(realMain(os.Args[1:], os.Stdout, os.Stderr))
}

func realMain(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageLine)
		return vmm.CodeUsage
	}
	switch args[0] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "govmm %s (%s)\n", version, buildInfo())
		return 0
	case "run":
		return cmdRun(args[1:], stdout, stderr)
	case "mkinitrd":
		return cmdMkinitrd(args[1:], stdout, stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usageLine)
		return 0
	}
	fmt.Fprintf(stderr, "govmm: unknown command %q (want run, mkinitrd, check or version)\n", args[0])
	return vmm.CodeUsage
}

func buildInfo() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "no build info"
	}
	return bi.GoVersion
}

// fail prints one line, the error, and returns the exit code for it. No
// stack traces: a user's mistake deserves a sentence, not a dump.
func fail(stderr io.Writer, code int, err error) int {
	fmt.Fprintf(stderr, "govmm: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
	return code
}

func cmdRun(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("govmm run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kernel := fs.String("kernel", "", "guest kernel `FILE` (PVH ELF, bzImage or vmlinux); the embedded demo guest when empty")
	initrdFlag := fs.String("initrd", "", "initial ramdisk `FILE` for a Linux kernel (see govmm mkinitrd)")
	cmdline := fs.String("cmdline", vmm.DefaultCmdline, "guest command line")
	cpuModel := fs.String("cpu-model", "govmm", "CPU identity shown to the guest: govmm (host brand and model hidden) or host")
	memFlag := fs.String("memory", "128M", "guest RAM `SIZE` (K, M, G suffixes; multiple of 4K)")
	cpus := fs.Int("cpus", 1, "number of vCPUs")
	console := fs.String("console", "stdout", "serial console: stdout, off or file:PATH")
	irqchip := fs.String("irqchip", "on", "in-kernel interrupt controllers: on, or off (1 vCPU; HLT ends the VM)")
	logLevel := fs.String("log-level", "warn", "VMM log level on stderr: debug, info, warn or error")
	hugepages := fs.Bool("hugepages", false, "back guest RAM with 2 MiB huge pages")
	prefault := fs.Bool("prefault", false, "fault in and lock all guest RAM at start (no overcommit)")
	// The flag package would print its whole usage on any error; a user's
	// mistake gets one line instead, and -h the full list.
	fs.SetOutput(io.Discard)
	var disks []blk.Spec
	fs.Func("disk", "virtio-blk disk `path=FILE[,readonly=on][,serial=ID][,direct=on][,bps=N][,iops=N]` (repeatable)", func(s string) error {
		d, err := blk.ParseDiskSpec(s)
		if err != nil {
			return err
		}
		disks = append(disks, d)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprintln(stdout, "usage: govmm run [flags]")
			fs.PrintDefaults()
			return 0
		}
		return fail(stderr, vmm.CodeUsage, err)
	}
	if fs.NArg() > 0 {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	memSize, err := parseSize(*memFlag)
	if err != nil {
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("--memory: %w", err))
	}
	cons, err := parseConsole(*console)
	if err != nil {
		return fail(stderr, vmm.CodeUsage, err)
	}
	cfg := vmm.Config{
		Disks:   disks,
		Cmdline: *cmdline,
		Memory:  memSize,
		CPUs:    *cpus,
	}
	cfg.MemoryOptions.HugePages = *hugepages
	cfg.MemoryOptions.Prefault = *prefault
	cfg.MemoryOptions.Mlock = *prefault
	switch *irqchip {
	case "on":
	case "off":
		cfg.NoIRQChip = true
	default:
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("--irqchip %q: want on or off", *irqchip))
	}
	switch *cpuModel {
	case "govmm":
	case "host":
		cfg.HostCPUModel = true
	default:
		return fail(stderr, vmm.CodeUsage, fmt.Errorf("--cpu-model %q: want govmm or host", *cpuModel))
	}
	cmdlineSet := false
	fs.Visit(func(f *flag.Flag) { cmdlineSet = cmdlineSet || f.Name == "cmdline" })
	if *kernel == "" {
		cfg.Kernel, cfg.KernelName = demo.ELF, "(embedded demo guest)"
		if !cmdlineSet {
			cfg.Cmdline = vmm.DefaultCmdline + " govmm.demo=1"
		}
	} else {
		b, err := readFile("--kernel", *kernel)
		if err != nil {
			return fail(stderr, vmm.CodeUsage, err)
		}
		cfg.Kernel, cfg.KernelName = b, *kernel
	}
	if *initrdFlag != "" {
		b, err := readFile("--initrd", *initrdFlag)
		if err != nil {
			return fail(stderr, vmm.CodeUsage, err)
		}
		cfg.Initrd = b
	}
	// Validate before opening anything, so bad flags never create files.
	if err := cfg.Validate(); err != nil {
		return fail(stderr, vmm.CodeUsage, err)
	}
	switch cons.kind {
	case "stdout":
		cfg.Console = stdout
	case "file":
		f, err := os.OpenFile(cons.path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o640)
		if err != nil {
			return fail(stderr, vmm.CodeUsage, fmt.Errorf("--console: %w", err))
		}
		defer f.Close()
		cfg.Console = f
	}

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
	switch exit.Reason {
	case vmm.ExitReset, vmm.ExitHalt, vmm.ExitShutdown, vmm.ExitStopped:
		fmt.Fprintf(stderr, "govmm: guest %s\n", exit)
	default:
		fmt.Fprintf(stderr, "govmm: guest %s\n", exit)
		if exit.Registers != "" {
			fmt.Fprintln(stderr, exit.Registers)
		}
	}
	return exit.Reason.ExitCode()
}

// maxImageSize bounds how much of a kernel file we read into memory: far
// above any real kernel, far below what could exhaust the host.
const maxImageSize = 512 << 20

// readFile reads a kernel or initrd named by flag, bounded by maxImageSize.
func readFile(flag, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s: not a regular file", flag, path)
	}
	if st.Size() > maxImageSize {
		return nil, fmt.Errorf("%s %s: %d bytes is larger than the %d MiB limit", flag, path, st.Size(), maxImageSize>>20)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImageSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, path, err)
	}
	if len(b) == 0 {
		return nil, fmt.Errorf("%s %s: file is empty", flag, path)
	}
	return b, nil
}
