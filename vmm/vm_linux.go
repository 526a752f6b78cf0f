package vmm

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/memory"
	"github.com/govmm/govmm/vmm/boot"
	"github.com/govmm/govmm/vmm/x86"
)

// VM is one virtual machine: KVM handles, guest RAM, the device buses and
// the vCPU threads. It is the only place that knows all the pieces.
//
// Life cycle: New builds everything and loads the kernel; Start launches
// one locked OS thread per vCPU; Wait blocks until the VM has ended and
// every vCPU thread has left KVM_RUN; Close releases the resources. Stop
// may be called from any goroutine at any time.
type VM struct {
	cfg Config
	log *slog.Logger

	// Set once by New, read-only afterwards.
	sys    *kvm.System
	vm     *kvm.VM
	mem    *memory.Guest
	pio    *devices.Bus
	mmio   *devices.Bus
	serial *devices.Serial
	i8042  *devices.I8042
	cmos   *devices.CMOS
	vcpus  []*vcpu
	virtio []*virtioMMIO
	kind   boot.KernelKind
	entry  *boot.PVHBoot   // set for PVH kernels
	linux  *boot.LinuxBoot // set for bzImage and ELF64 kernels

	// stopping is set exactly once, before any vCPU is kicked. A vCPU
	// thread checks it before every KVM_RUN.
	stopping atomic.Bool
	// exitOnce guards exit: the first ending wins, later ones (a second
	// vCPU crashing while the first is being stopped) are only logged.
	exitOnce sync.Once
	exit     Exit
	// done is closed when every vCPU thread has returned.
	done    chan struct{}
	started atomic.Bool
	closeMu sync.Mutex
	closed  bool
}

// New creates the VM described by cfg and loads its kernel. Nothing runs
// until Start. On error every resource acquired so far is released.
func New(cfg Config, log *slog.Logger) (_ *VM, err error) {
	kind, pvh, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := &VM{cfg: cfg, log: log, done: make(chan struct{}), kind: kind}
	defer func() {
		if err != nil {
			v.Close()
		}
	}()
	path := cfg.KVMPath
	if path == "" {
		path = "/dev/kvm"
	}
	if v.sys, err = kvm.Open(path); err != nil {
		return nil, err
	}
	if err := v.checkCaps(); err != nil {
		return nil, err
	}
	if v.vm, err = v.sys.CreateVM(); err != nil {
		return nil, err
	}
	if err := v.setupMemory(); err != nil {
		return nil, err
	}
	if err := v.setupIRQChip(); err != nil {
		return nil, err
	}
	if err := v.setupDevices(); err != nil {
		return nil, err
	}
	if err := v.setupVirtio(); err != nil {
		return nil, err
	}
	if err := v.loadKernel(pvh); err != nil {
		return nil, err
	}
	if err := v.setupVCPUs(); err != nil {
		return nil, err
	}
	return v, nil
}

// checkCaps refuses hosts that lack what govmm relies on, with a message
// naming the capability rather than a later obscure ioctl failure.
func (v *VM) checkCaps() error {
	need := []struct {
		c    kvm.Cap
		name string
	}{
		{kvm.CapUserMemory, "KVM_CAP_USER_MEMORY"},
		{kvm.CapImmediateExit, "KVM_CAP_IMMEDIATE_EXIT"},
		{kvm.CapSetTSSAddr, "KVM_CAP_SET_TSS_ADDR"},
	}
	if !v.cfg.NoIRQChip {
		need = append(need, struct {
			c    kvm.Cap
			name string
		}{kvm.CapIRQChip, "KVM_CAP_IRQCHIP"}, struct {
			c    kvm.Cap
			name string
		}{kvm.CapPIT2, "KVM_CAP_PIT2"})
	}
	for _, n := range need {
		if ok, err := v.sys.CheckExtension(n.c); err != nil {
			return err
		} else if ok <= 0 {
			return fmt.Errorf("host KVM lacks %s", n.name)
		}
	}
	max, err := v.sys.CheckExtension(kvm.CapMaxVCPUs)
	if err != nil {
		return err
	}
	if max > 0 && v.cfg.CPUs > max {
		return fmt.Errorf("%w: cpus %d exceeds this host's KVM_CAP_MAX_VCPUS (%d)", ErrConfig, v.cfg.CPUs, max)
	}
	return nil
}

func (v *VM) setupMemory() error {
	opts := v.cfg.MemoryOptions
	opts.Size = v.cfg.Memory
	mem, err := memory.New(opts)
	if err != nil {
		return err
	}
	v.mem = mem
	for slot, r := range mem.Regions() {
		if err := v.vm.SetUserMemoryRegion(uint32(slot), 0, r.GPA, r.Size, r.HostAddr()); err != nil {
			return err
		}
	}
	return nil
}

// setupIRQChip gives the guest the in-kernel PIC, IOAPIC, LAPICs and PIT.
// The TSS and identity-map pages are needed by KVM on Intel hosts for
// real-mode emulation; they live in the MMIO hole so they never shadow RAM.
func (v *VM) setupIRQChip() error {
	if err := v.vm.SetIdentityMapAddr(memory.IdentityMapAddr); err != nil {
		return err
	}
	if err := v.vm.SetTSSAddr(memory.TSSAddr); err != nil {
		return err
	}
	if v.cfg.NoIRQChip {
		return nil
	}
	if err := v.vm.CreateIRQChip(); err != nil {
		return err
	}
	return v.vm.CreatePIT2()
}

// irqLine drives one ISA interrupt line of the in-kernel irqchip.
type irqLine struct {
	vm  *kvm.VM
	irq uint32
}

func (l irqLine) SetLevel(high bool) error { return l.vm.IRQLine(l.irq, high) }

func (v *VM) setupDevices() error {
	v.pio = devices.NewBus("pio")
	v.mmio = devices.NewBus("mmio")
	var irq devices.IRQ = devices.NoIRQ{}
	if !v.cfg.NoIRQChip {
		irq = irqLine{vm: v.vm, irq: devices.SerialCOM1IRQ}
	}
	out := v.cfg.Console
	if out == nil {
		out = io.Discard
	}
	v.serial = devices.NewSerial(out, irq)
	if err := v.pio.Register(devices.SerialCOM1Port, devices.SerialPorts, "serial0", v.serial); err != nil {
		return err
	}
	v.i8042 = devices.NewI8042(func() {
		v.end(Exit{Reason: ExitReset, VCPU: -1, Detail: "i8042 reset"})
	})
	if err := v.pio.RegisterRanges(v.i8042.Ranges()); err != nil {
		return err
	}
	// Linux reads the wall clock from the CMOS RTC at boot; without it the
	// ports float to 0xff, which reads as "update in progress" forever.
	v.cmos = devices.NewCMOS(nil)
	v.cmos.SetMemorySize(v.cfg.Memory)
	return v.pio.RegisterRanges(v.cmos.Ranges())
}

// loadKernel writes the kernel and its boot structures into RAM. The MP
// table and the ACPI MADT describe the vCPUs and the IOAPIC to any kernel
// that looks for them; without the irqchip there is no IOAPIC or LAPIC to
// describe, so neither is written.
func (v *VM) loadKernel(pvh *boot.PVHImage) error {
	if !v.cfg.NoIRQChip {
		if err := x86.WriteMPTable(v.mem, v.cfg.CPUs); err != nil {
			return err
		}
		// The same machine as ACPI tables: kernels built without
		// CONFIG_X86_MPPARSE (Debian's cloud kernel among them) learn
		// their CPUs only from the MADT, and their virtio-mmio devices
		// only from the DSDT (see virtioCmdline). Linux finds the RSDP by
		// scanning the BIOS area, so neither boot path needs to pass its
		// address.
		if _, err := x86.WriteACPITables(v.mem, v.cfg.CPUs, v.virtioACPI()); err != nil {
			return err
		}
	}
	var err error
	if v.kind == boot.KindPVH {
		v.entry, err = boot.LoadPVH(v.mem, pvh, v.cfg.Kernel, v.cfg.Cmdline+v.virtioCmdline())
	} else {
		v.linux, err = boot.LoadLinux(v.mem, v.cfg.Kernel, v.cfg.Initrd, v.cfg.Cmdline+v.virtioCmdline())
	}
	if err != nil {
		return fmt.Errorf("%w: kernel %s: %w", ErrConfig, v.cfg.KernelName, err)
	}
	return nil
}

// Memory returns the guest's RAM (for tests and embedders).
func (v *VM) Memory() *memory.Guest { return v.mem }

// ErrAlreadyStarted is returned by a second Start.
var ErrAlreadyStarted = errors.New("vmm: VM already started")

// Start launches the device worker and vCPU threads, parks them before
// their first work, runs Config.Hooks.BeforeGuest and lets them go (each
// through Config.Hooks.EnterThread). It may be called once. An error from
// the hooks ends the VM before the guest runs; Wait still reports it.
func (v *VM) Start() error {
	if !v.started.CompareAndSwap(false, true) {
		return ErrAlreadyStarted
	}
	if v.cfg.ConsoleInput != nil {
		go v.pumpInput(v.cfg.ConsoleInput)
	}
	gate := newStartGate(len(v.vcpus) + len(v.virtio))
	v.startVirtio(gate)
	var wg sync.WaitGroup
	for _, c := range v.vcpus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(v, gate)
		}()
	}
	go func() {
		wg.Wait()
		close(v.done)
	}()
	// Returns only once every thread is confined (or the VM has ended
	// because confinement failed, which Wait then reports).
	return gate.release(v)
}

// pumpInput copies host input to the UART. It ends with the reader; it
// must not keep the VM alive, so it is a plain goroutine the VM never
// waits for.
func (v *VM) pumpInput(r io.Reader) {
	buf := make([]byte, 256)
	for !v.stopping.Load() {
		n, err := r.Read(buf)
		if n > 0 {
			v.serial.Input(buf[:n])
		}
		if err != nil {
			return
		}
	}
}

// Stop ends the VM with ExitStopped unless it has already ended.
func (v *VM) Stop() {
	v.end(Exit{Reason: ExitStopped, VCPU: -1, Detail: "stopped by the user"})
}

// end records the first ending and kicks every vCPU out of KVM_RUN.
func (v *VM) end(e Exit) {
	first := false
	v.exitOnce.Do(func() {
		v.exit = e
		first = true
	})
	if !first {
		v.log.Debug("vm already ending", "ignored", e.String())
		return
	}
	v.stopping.Store(true)
	for _, c := range v.vcpus {
		c.kick()
	}
}

// Wait blocks until every vCPU thread has returned, and reports how the
// VM ended. It returns immediately with ExitError if Start was never called.
func (v *VM) Wait() Exit {
	if !v.started.Load() {
		return Exit{Reason: ExitError, VCPU: -1, Detail: "VM was never started"}
	}
	<-v.done
	return v.exit
}

// Run starts the VM and waits for it.
// If confinement fails, the error is returned with the VM's ending.
func (v *VM) Run() (Exit, error) {
	if err := v.Start(); err != nil {
		if errors.Is(err, ErrAlreadyStarted) {
			return Exit{}, err
		}
		return v.Wait(), err
	}
	return v.Wait(), nil
}

// Close releases KVM handles and guest RAM. It must not be called while
// vCPU threads still run: it stops them and waits first.
func (v *VM) Close() error {
	v.closeMu.Lock()
	defer v.closeMu.Unlock()
	if v.closed {
		return nil
	}
	v.closed = true
	if v.started.Load() {
		v.Stop()
		<-v.done
	}
	var errs []error
	errs = append(errs, v.closeVirtio())
	for _, c := range v.vcpus {
		errs = append(errs, c.k.Close())
	}
	if v.vm != nil {
		errs = append(errs, v.vm.Close())
	}
	if v.sys != nil {
		errs = append(errs, v.sys.Close())
	}
	// RAM goes last: KVM must drop its mappings (VM fd closed) before the
	// host memory behind them is unmapped.
	if v.mem != nil {
		errs = append(errs, v.mem.Close())
	}
	return errors.Join(errs...)
}
