package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"path/filepath"
	"runtime"

	"github.com/govmm/govmm/devices/virtio/blk"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/sandbox/audit"
	"github.com/govmm/govmm/sandbox/cgroup"
	"github.com/govmm/govmm/sandbox/jail"
	"github.com/govmm/govmm/sandbox/mac"
	"github.com/govmm/govmm/sandbox/seccomp"
	"github.com/govmm/govmm/vmm"
)

// cgroupMemoryOverhead is what the VMM process may use beyond guest RAM
// before the memory cgroup stops it: the Go heap and stacks, the kernel
// and initrd images read into memory (up to maxImageSize each is allowed,
// but real ones are far smaller), device buffers and KVM's own
// per-VM/per-vCPU allocations charged to the process. 256 MiB is well
// above what a VM with a 100 MiB initrd needs, and small next to the RAM
// a real guest gets.
const cgroupMemoryOverhead = 256 << 20

// defaultPidsMax bounds the tasks (threads count) of one VM: the vCPU and
// device threads plus the Go runtime's, with room to spare. It is a fork
// bomb stop, not a tuning knob.
const defaultPidsMax = 512

func registerSandboxFlags(fs *flag.FlagSet, o *runOptions) {
	fs.StringVar(&o.id, "id", "", "VM `ID` ([a-zA-Z0-9-]{1,64}) naming its cgroup and jail; generated when empty")
	fs.StringVar(&o.seccomp, "seccomp", "kill", "seccomp filters: kill (a forbidden syscall kills the VMM), log (allowed but logged, for debugging) or off")
	fs.StringVar(&o.mac, "mac", "auto", "mandatory access control: auto, selinux, apparmor, landlock, off or required")
	fs.StringVar(&o.cgroup, "cgroup", "auto", "per-VM cgroup: auto (with --jail or a cgroup flag), on or off")
	fs.Uint64Var(&o.cpuWeight, "cpu-weight", 100, "proportional CPU share `N` (1..10000; cpu.weight, or cpu.shares on cgroup v1)")
	fs.StringVar(&o.cpuMax, "cpu-max", "", "CPU cap `QUOTA_US[/PERIOD_US]` (e.g. 50000/100000 for half a CPU)")
	fs.Int64Var(&o.pidsMax, "pids-max", defaultPidsMax, "task limit `N` of the VM's cgroup")
	fs.BoolVar(&o.jail, "jail", false, "run the VM jailed: namespaces, pivot_root, unprivileged uid, no capabilities")
	fs.StringVar(&o.jailBase, "jail-base", "/srv/govmm", "`DIR` under which each jailed VM gets its root, DIR/ID/root")
	fs.IntVar(&o.uid, "uid", 65534, "`UID` the jailed VMM runs as")
	fs.IntVar(&o.gid, "gid", 65534, "`GID` the jailed VMM runs as")
	fs.StringVar(&o.netns, "netns", "", "network namespace `PATH` (e.g. /run/netns/NAME) the jailed VMM joins")
	registerTestHookFlags(fs, o)
}

// validateSandbox checks the confinement flags before anything happens.
func (o *runOptions) validateSandbox() error {
	if o.id == "" {
		var b [4]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("generating a VM id: %w", err)
		}
		o.id = "vm-" + hex.EncodeToString(b[:])
	}
	if err := jail.ValidateID(o.id); err != nil {
		return fmt.Errorf("--id: %w", err)
	}
	if _, err := seccomp.ParseMode(o.seccomp); err != nil {
		return fmt.Errorf("--seccomp: %w", err)
	}
	if err := mac.ValidateMode(o.mac); err != nil {
		return err // names --mac
	}
	switch o.cgroup {
	case "auto", "on", "off":
	default:
		return fmt.Errorf("--cgroup %q: want auto, on or off", o.cgroup)
	}
	if err := cgroup.ValidateWeight(o.cpuWeight); err != nil {
		return fmt.Errorf("--cpu-weight: %w", err)
	}
	if o.cpuMax != "" {
		if _, _, err := cgroup.ParseCPUMax(o.cpuMax); err != nil {
			return fmt.Errorf("--cpu-max: %w", err)
		}
	}
	if o.pidsMax < 16 {
		return fmt.Errorf("--pids-max %d: a VMM needs at least 16 tasks", o.pidsMax)
	}
	if o.uid < 0 || o.gid < 0 || (o.jail && (o.uid == 0 || o.gid == 0)) {
		return fmt.Errorf("--uid %d --gid %d: a jailed VMM needs a non-root uid and gid", o.uid, o.gid)
	}
	if o.cgroup == "off" && o.cgroupFlagsSet {
		return errors.New("--cgroup=off contradicts --cpu-weight/--cpu-max/--pids-max")
	}
	if !o.jail && o.netns != "" {
		return errors.New("--netns needs --jail")
	}
	return nil
}

// wantCgroup reports whether this VM gets its own cgroup. auto means:
// when jailed, or when a cgroup limit was asked for. A plain `govmm run`
// stays one process, as fast to start as an embedded VM.
func (o *runOptions) wantCgroup() bool {
	switch o.cgroup {
	case "on":
		return true
	case "off":
		return false
	}
	return o.jail || o.cgroupFlagsSet
}

// needsSupervisor: a jail must be set up from outside, and a cgroup must
// be removed by someone outside it after the VM ends, because the VMM
// itself, under its seccomp filters, can neither open cgroup files nor
// rmdir (and cannot rmdir a cgroup it is still in).
func (o *runOptions) needsSupervisor() bool {
	return o.jail || o.wantCgroup() || o.wantsExecLabel()
}

func isConfinedChild() bool { return jail.IsChild() }

// vmSandbox implements vmm.ThreadHooks with seccomp filters and, in a
// supervised child, the report of vCPU thread ids to the supervisor.
type vmSandbox struct {
	filters *seccomp.Set // nil with --seccomp=off
	child   *jail.Child  // set when a supervisor started us
	hook    testHook
	log     *slog.Logger
}

// newVMSandbox prepares this process's confinement (the jail, if any, is
// already entered): applies MAC, and builds the seccomp filters
// (installed later, by the hooks, just before the guest runs).
func newVMSandbox(o *runOptions, cfg *vmm.Config, child *jail.Child, log *slog.Logger) (*vmSandbox, int, error) {
	sb := &vmSandbox{log: log, hook: o.testHook(), child: child}
	if err := applyMAC(o, cfg, child != nil, log); err != nil {
		return nil, vmm.CodeUsage, err
	}
	mode, _ := seccomp.ParseMode(o.seccomp) // validated
	if mode != seccomp.ModeOff {
		set, err := seccomp.Build(seccomp.Options{Mode: mode})
		if err != nil {
			return nil, vmm.CodeError, err
		}
		sb.filters = set
	}
	return sb, 0, nil
}

// probeKVM opens and closes the KVM device once, before any confinement.
// Landlock (which opens the device to grant it), the jail (which checks
// that the VM's uid can open it) and vmm.New would each fail on a host
// without KVM too, but each in its own terms ("--mac=auto: landlock:
// open /dev/kvm"), which sends a user looking at MAC or the jail; this
// names the actual problem and what fixes it.
func probeKVM(path string) error {
	if path == "" {
		path = kvm.DevicePath
	}
	s, err := kvm.Open(path)
	if errors.Is(err, kvm.ErrUnavailable) {
		return fmt.Errorf("%w; fix: %s; govmm check lists what else the host lacks", err, audit.FixNoKVM)
	}
	if err != nil {
		return err
	}
	return s.Close()
}

// applyMAC confines the process with the MAC mechanism --mac selects, when
// that is Landlock (SELinux and AppArmor are applied at exec by the
// supervisor, see execLabel).
// Landlock is self-applied here, before vmm.New opens the disks and
// /dev/kvm. Landlock domains are per thread; a cgo binary (govmm links
// libseccomp) reaches all its threads only through the kernel's
// LANDLOCK_RESTRICT_SELF_TSYNC, so on older kernels a plain `govmm run`
// re-executes itself restricted from its first instruction
// (mac.ExecRestricted). A jailed child gets --mac=off from its
// supervisor: its pivot_root'ed root holds nothing but the VM's files.
// SELinux and AppArmor labels are generated by package mac but not yet
// applied at exec by govmm run.
func applyMAC(o *runOptions, cfg *vmm.Config, supervised bool, log *slog.Logger) error {
	restricted, err := mac.RestrictedAtStart()
	if err != nil {
		return err
	}
	if restricted {
		log.Info("landlock: file system restricted to the VM's files (at exec)")
		return nil
	}
	b, err := o.macBackend()
	if err != nil {
		return err
	}
	if b.Warning != "" {
		log.Warn(b.Warning)
	}
	if b.Kind != mac.KindLandlock {
		return nil
	}
	ro, rw, err := landlockPaths(o, cfg)
	if err != nil {
		return fmt.Errorf("--mac=%s: %w", o.mac, err)
	}
	err = mac.RestrictPaths(ro, rw)
	if err == nil {
		log.Info("landlock: file system restricted to the VM's files", "ro", ro, "rw", rw)
		return nil
	}
	if !errors.Is(err, mac.ErrNotAvailable) {
		return fmt.Errorf("--mac=%s: %w", o.mac, err)
	}
	// The kernel cannot restrict every thread of a running cgo process:
	// start over as a process that is restricted from its first
	// instruction. A supervised child cannot (its control socket would
	// not survive the exec), so there it is a warning or an error.
	if !supervised {
		return fmt.Errorf("--mac=%s: %w", o.mac, mac.ExecRestricted(ro, rw))
	}
	if o.mac == "auto" {
		log.Warn("--mac=auto: Landlock cannot confine every thread of a supervised VMM on this kernel; running without MAC", "err", err)
		return nil
	}
	return fmt.Errorf("--mac=%s: %w", o.mac, err)
}

// landlockPaths lists the files the VM process opens after MAC is
// applied (or again after ExecRestricted): the kernel and initrd (read),
// the disks, the console file and /dev/kvm.
func landlockPaths(o *runOptions, cfg *vmm.Config) (ro, rw []string, err error) {
	f, err := o.vmFiles()
	if err != nil {
		return nil, nil, err
	}
	kvmPath := cfg.KVMPath
	if kvmPath == "" {
		kvmPath = "/dev/kvm"
	}
	ro = f.images()
	rw = []string{kvmPath}
	for _, d := range f.disks {
		if d.ReadOnly {
			ro = append(ro, d.Path)
		} else {
			rw = append(rw, d.Path)
		}
	}
	if o.cons.kind == "file" {
		c, err := filepath.Abs(o.cons.path)
		if err != nil {
			return nil, nil, err
		}
		rw = append(rw, c)
	}
	return ro, rw, nil
}

// vmFiles are the host files a VM uses, with absolute paths, as MAC rules
// and labels need them.
type vmFiles struct {
	kernel, initrd string // "" when not given
	disks          []blk.Spec
}

// images are the kernel and initrd that were given.
func (f vmFiles) images() []string {
	var out []string
	for _, p := range []string{f.kernel, f.initrd} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (o *runOptions) vmFiles() (vmFiles, error) {
	abs := func(p string) (string, error) {
		if p == "" {
			return "", nil
		}
		return filepath.Abs(p)
	}
	var f vmFiles
	var err error
	if f.kernel, err = abs(o.kernel); err != nil {
		return f, err
	}
	if f.initrd, err = abs(o.initrd); err != nil {
		return f, err
	}
	for _, d := range o.disks {
		if d.Path, err = abs(d.Path); err != nil {
			return f, err
		}
		f.disks = append(f.disks, d)
	}
	return f, nil
}

func (s *vmSandbox) BeforeGuest(threads []vmm.Thread) error {
	var vcpus []int
	for _, t := range threads {
		if t.Class == vmm.ThreadVCPU {
			vcpus = append(vcpus, t.TID)
		}
	}
	if s.child != nil {
		if err := s.child.ReportThreads(vcpus); err != nil {
			return fmt.Errorf("reporting vCPU threads to the supervisor: %w", err)
		}
	}
	if s.filters != nil {
		if err := s.filters.InstallProcess(); err != nil {
			return err
		}
		// This goroutine (the one that called vm.Run) becomes the
		// API/main thread: locked for the rest of the process's life, so
		// the API filter stays on exactly this thread.
		runtime.LockOSThread()
		if err := s.filters.InstallThread(seccomp.ClassAPI); err != nil {
			return err
		}
	}
	s.hook.run("api")
	return nil
}

func (s *vmSandbox) EnterThread(t vmm.Thread) error {
	if s.filters != nil {
		class := seccomp.ClassVCPU
		if t.Class == vmm.ThreadDevice {
			class = seccomp.ClassDevice
		}
		if err := s.filters.InstallThread(class); err != nil {
			return err
		}
	}
	s.hook.run(t.Class.String())
	return nil
}
