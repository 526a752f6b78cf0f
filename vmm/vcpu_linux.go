package vmm

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/govmm/govmm/devices"
	"github.com/govmm/govmm/kvm"
	"github.com/govmm/govmm/memory"
	"github.com/govmm/govmm/vmm/boot"
	"github.com/govmm/govmm/vmm/x86"
)

// vcpu is one virtual CPU and the OS thread that runs it.
type vcpu struct {
	id int
	k  *kvm.VCPU
	// tid is the OS thread running KVM_RUN for this vCPU, 0 until the
	// thread has locked itself. Written once by that thread, read by
	// kick from any goroutine.
	tid atomic.Int32
}

// kickSignal interrupts a vCPU thread inside KVM_RUN. SIGURG is the signal
// the Go runtime already uses to preempt threads, so its handler is always
// installed (a signal with no handler would not interrupt the ioctl, and
// one whose default action is to terminate would kill us), it is harmless
// to deliver at any time, and sending it does not steal a signal that an
// embedding program may want for itself. KVM_RUN returns EINTR for any
// pending signal, and because KVM returns EINTR rather than ERESTARTSYS,
// SA_RESTART does not resume it.
const kickSignal = unix.SIGURG

// kick makes the vCPU leave KVM_RUN promptly and not re-enter it. Setting
// immediate_exit first closes the race with a thread that has checked
// VM.stopping but not yet entered KVM_RUN: KVM checks immediate_exit on
// entry and returns EINTR at once. The signal covers a thread already
// inside the guest (or parked in the in-kernel HLT/wait-for-SIPI state).
func (c *vcpu) kick() {
	c.k.RunData().SetImmediateExit(true)
	if tid := c.tid.Load(); tid != 0 {
		// ESRCH means the thread already exited: nothing left to kick.
		_ = unix.Tgkill(unix.Getpid(), int(tid), kickSignal)
	}
}

func (v *VM) setupVCPUs() error {
	supported, err := v.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	msrIndex, err := v.sys.MSRIndexList()
	if err != nil {
		return err
	}
	msrs := x86.FilterMSRs(x86.BootMSRs(), msrIndex)
	for i := 0; i < v.cfg.CPUs; i++ {
		k, err := v.vm.CreateVCPU(i)
		if err != nil {
			return err
		}
		c := &vcpu{id: i, k: k}
		v.vcpus = append(v.vcpus, c)
		cpuid, err := x86.BuildCPUID(supported, x86.CPUIDOptions{VCPUID: i, NumVCPUs: v.cfg.CPUs, HostModel: v.cfg.HostCPUModel})
		if err != nil {
			return fmt.Errorf("vcpu %d: %w", i, err)
		}
		if err := k.SetCPUID2(cpuid); err != nil {
			return fmt.Errorf("vcpu %d: %w", i, err)
		}
		// Every vCPU gets the same MSR start values, TSC included: KVM
		// treats TSC writes of one value close together as a request to
		// synchronise the vCPUs' TSCs, which is what a guest expects of
		// a freshly reset machine.
		if err := k.SetMSRs(msrs); err != nil {
			return fmt.Errorf("vcpu %d: %w", i, err)
		}
		if !v.cfg.NoIRQChip {
			if err := setVirtualWire(k); err != nil {
				return fmt.Errorf("vcpu %d: %w", i, err)
			}
		}
		// Only the bootstrap processor gets boot state. With the in-kernel
		// irqchip the others stay in wait-for-SIPI until the guest's LAPIC
		// starts them.
		if i == 0 {
			if err := v.setupBootCPU(k); err != nil {
				return fmt.Errorf("vcpu 0: %w", err)
			}
		}
	}
	return nil
}

// Local APIC LVT registers and delivery modes (Intel SDM vol. 3A, 11.5.1).
const (
	apicLVT0        = 0x350
	apicLVT1        = 0x360
	apicModeMask    = 0x700
	apicModeNMI     = 0x400
	apicModeExtINT  = 0x700
	apicLVTMaskFlag = 1 << 16
)

// setVirtualWire programs LINT0 as ExtINT and LINT1 as NMI, as PC firmware
// leaves them ("virtual wire mode", MP spec 3.6.2.2). Until the guest
// switches to the IOAPIC, the 8259 PIC's interrupts (the PIT timer among
// them) reach the BSP only through LINT0.
func setVirtualWire(k *kvm.VCPU) error {
	l, err := k.GetLAPIC()
	if err != nil {
		return err
	}
	for _, r := range []struct{ off, mode uint32 }{{apicLVT0, apicModeExtINT}, {apicLVT1, apicModeNMI}} {
		cur, err := l.Reg(r.off)
		if err != nil {
			return err
		}
		if err := l.SetReg(r.off, cur&^(apicModeMask|apicLVTMaskFlag)|r.mode); err != nil {
			return err
		}
	}
	return k.SetLAPIC(l)
}

// setupBootCPU puts the bootstrap processor in the start state of the
// kernel's boot protocol.
func (v *VM) setupBootCPU(k *kvm.VCPU) error {
	if v.linux != nil {
		return v.setupLinuxCPU(k)
	}
	return v.setupPVHCPU(k)
}

// kvmSegment converts a descriptor decoded from our boot GDT.
func kvmSegment(gdt []uint64, sel uint16) kvm.Segment {
	d := boot.SegmentFromGDT(gdt[sel>>3], sel)
	return kvm.Segment{
		Base: d.Base, Limit: d.Limit, Selector: d.Selector, Type: d.Type,
		Present: d.Present, DPL: d.DPL, DB: d.DB, S: d.S, L: d.L, G: d.G, AVL: d.AVL,
	}
}

// Control register bits (Intel SDM vol. 3A, 2.5) and EFER bits.
const (
	cr0PE    = 1 << 0
	cr0ET    = 1 << 4
	cr0PG    = 1 << 31
	cr4PAE   = 1 << 5
	eferLME  = 1 << 8
	eferLMA  = 1 << 10
	rflagsR1 = 1 << 1 // reserved bit 1 is always set
)

// setupPVHCPU enters the PVH ABI's start state: 32-bit flat protected
// mode, paging off, EBX = start_info, segment registers matching the GDT
// LoadPVH wrote (so a guest that reloads them sees the same values).
func (v *VM) setupPVHCPU(k *kvm.VCPU) error {
	s, err := k.GetSregs()
	if err != nil {
		return err
	}
	gdt := boot.GDTEntries()
	s.CS = kvmSegment(gdt, boot.SelectorCode32)
	s.DS = kvmSegment(gdt, boot.SelectorData32)
	s.ES, s.FS, s.GS, s.SS = s.DS, s.DS, s.DS, s.DS
	s.TR = kvmSegment(gdt, boot.SelectorTSS)
	s.GDT = kvm.DTable{Base: memory.GDTAddr, Limit: boot.GDTLimit}
	s.IDT = kvm.DTable{}
	s.CR0 = cr0PE | cr0ET
	s.CR3, s.CR4, s.EFER = 0, 0, 0
	if err := k.SetSregs(s); err != nil {
		return err
	}
	return k.SetRegs(kvm.Regs{
		RIP:    uint64(v.entry.Entry),
		RBX:    v.entry.StartInfo,
		RFLAGS: rflagsR1, // IF clear per the PVH ABI
	})
}

// setupLinuxCPU enters the Linux 64-bit boot protocol's start state
// (boot.rst, "64-bit Boot Protocol"): long mode with the identity page
// tables LoadLinux wrote, CS = __BOOT_CS, data segments = __BOOT_DS,
// interrupts off, RSI = the zero page.
func (v *VM) setupLinuxCPU(k *kvm.VCPU) error {
	s, err := k.GetSregs()
	if err != nil {
		return err
	}
	lb := v.linux
	s.CS = kvmSegment(lb.GDT, boot.SelectorCode64)
	s.DS = kvmSegment(lb.GDT, boot.SelectorData64)
	s.ES, s.FS, s.GS, s.SS = s.DS, s.DS, s.DS, s.DS
	s.TR = kvmSegment(lb.GDT, boot.SelectorTSS64)
	s.GDT = kvm.DTable{Base: lb.GDTBase, Limit: lb.GDTLimit}
	s.IDT = kvm.DTable{}
	s.CR0 = cr0PE | cr0ET | cr0PG
	s.CR3 = lb.PML4
	s.CR4 = cr4PAE
	s.EFER = eferLME | eferLMA
	if err := k.SetSregs(s); err != nil {
		return err
	}
	return k.SetRegs(kvm.Regs{RIP: lb.Entry, RSI: lb.ZeroPage, RFLAGS: rflagsR1})
}

// loop is the vCPU thread. It is locked to its OS thread because KVM ties a
// vCPU to the thread that runs it (and kick needs a stable tid).
func (c *vcpu) loop(v *VM, gate *startGate) {
	runtime.LockOSThread()
	// Deliberately never unlocked: if this goroutine exits with the
	// thread still locked, the runtime kills the thread instead of
	// reusing it, so no other goroutine inherits vCPU-specific state
	// or the vCPU seccomp filter.
	tid := unix.Gettid()
	c.tid.Store(int32(tid))
	if !gate.park(v, Thread{Class: ThreadVCPU, Index: c.id, Name: fmt.Sprintf("vcpu%d", c.id), TID: tid}) {
		return
	}
	defer func() {
		if r := recover(); r != nil {
			v.end(Exit{Reason: ExitError, VCPU: c.id,
				Detail:    fmt.Sprintf("VMM panic: %v", r),
				Registers: c.dump() + "\n" + string(debug.Stack())})
		}
	}()
	rd := c.k.RunData()
	for !v.stopping.Load() {
		err := c.k.Run()
		if err != nil {
			if errors.Is(err, kvm.ErrInterrupted) {
				// A signal: our kick, or the Go runtime's preemption
				// SIGURG. The loop condition decides which.
				continue
			}
			v.end(Exit{Reason: ExitError, VCPU: c.id, Detail: err.Error(), Err: err, Registers: c.dump()})
			return
		}
		if done := c.handleExit(v, rd); done {
			return
		}
	}
}

// handleExit handles one KVM exit; it reports whether the vCPU must stop.
func (c *vcpu) handleExit(v *VM, rd *kvm.RunData) bool {
	switch reason := rd.ExitReason(); reason {
	case kvm.ExitIO:
		io, err := rd.IO()
		if err != nil {
			v.end(Exit{Reason: ExitError, VCPU: c.id, Detail: err.Error(), Err: err, Registers: c.dump()})
			return true
		}
		c.handleIO(v, io)
	case kvm.ExitMMIO:
		m := rd.MMIO()
		if m.IsWrite {
			if err := v.mmio.Write(m.Addr, m.Data); err != nil {
				v.logBadAccess("mmio write", m.Addr, len(m.Data), err)
			}
		} else if err := v.mmio.Read(m.Addr, m.Data); err != nil {
			fillOnes(m.Data)
			v.logBadAccess("mmio read", m.Addr, len(m.Data), err)
		}
	case kvm.ExitHLT:
		v.end(Exit{Reason: ExitHalt, VCPU: c.id, Detail: "guest executed HLT"})
		return true
	case kvm.ExitShutdown:
		v.end(Exit{Reason: ExitCrash, VCPU: c.id, Detail: "triple fault (KVM_EXIT_SHUTDOWN)", Registers: c.dump()})
		return true
	case kvm.ExitFailEntry:
		hw, cpu := rd.FailEntry()
		v.end(Exit{Reason: ExitCrash, VCPU: c.id,
			Detail:    fmt.Sprintf("VM entry failed: hardware reason %#x on host cpu %d", hw, cpu),
			Registers: c.dump()})
		return true
	case kvm.ExitInternalError:
		sub, data := rd.InternalError()
		v.end(Exit{Reason: ExitCrash, VCPU: c.id,
			Detail:    fmt.Sprintf("KVM internal error: %s, data %#x", internalErrorName(sub), data),
			Registers: c.dump()})
		return true
	case kvm.ExitSystemEvent:
		typ, _ := rd.SystemEvent()
		switch typ {
		case kvm.SystemEventReset:
			v.end(Exit{Reason: ExitReset, VCPU: c.id, Detail: "system event reset"})
		case kvm.SystemEventShutdown:
			v.end(Exit{Reason: ExitShutdown, VCPU: c.id, Detail: "system event shutdown"})
		default:
			v.end(Exit{Reason: ExitCrash, VCPU: c.id, Detail: fmt.Sprintf("system event %d", typ), Registers: c.dump()})
		}
		return true
	case kvm.ExitIntr:
		// Interrupted before or during entry: the loop re-checks stopping.
	default:
		v.end(Exit{Reason: ExitError, VCPU: c.id, Detail: fmt.Sprintf("unhandled KVM exit %v", reason), Registers: c.dump()})
		return true
	}
	return false
}

// handleIO dispatches a port I/O exit. A string instruction (rep outsb)
// arrives as Count back-to-back elements of Size bytes each.
func (c *vcpu) handleIO(v *VM, io kvm.IOExit) {
	size := int(io.Size)
	for i := 0; i < int(io.Count); i++ {
		d := io.Data[i*size : (i+1)*size]
		if io.Direction == kvm.IOOut {
			if err := v.pio.Write(uint64(io.Port), d); err != nil {
				v.logBadAccess("pio write", uint64(io.Port), size, err)
			}
		} else if err := v.pio.Read(uint64(io.Port), d); err != nil {
			// Unclaimed ports float high on a PC, and drivers probing for
			// absent hardware expect exactly that.
			fillOnes(d)
			v.logBadAccess("pio read", uint64(io.Port), size, err)
		}
	}
}

func fillOnes(b []byte) {
	for i := range b {
		b[i] = 0xff
	}
}

// logBadAccess reports accesses nobody claims. Guests probe absent ports as
// a matter of course, so this is debug-level; it must never be able to
// flood the host log at a higher level.
func (v *VM) logBadAccess(kind string, addr uint64, size int, err error) {
	if errors.Is(err, devices.ErrNoDevice) {
		v.log.Debug("unclaimed access", "kind", kind, "addr", fmt.Sprintf("%#x", addr), "size", size)
		return
	}
	v.log.Debug("rejected access", "kind", kind, "addr", fmt.Sprintf("%#x", addr), "size", size, "err", err)
}

func internalErrorName(sub uint32) string {
	switch sub {
	case 1:
		return "emulation failure"
	case 2:
		return "simultaneous exception"
	case 3:
		return "delivery event"
	case 4:
		return "unexpected exit reason"
	}
	return fmt.Sprintf("suberror %d", sub)
}

// dump formats the vCPU's registers for a crash report. It runs on the
// vCPU's own thread (KVM requires vCPU ioctls from it on some hosts), and
// reports, rather than hides, a failure to read them.
func (c *vcpu) dump() string {
	var b strings.Builder
	r, err := c.k.GetRegs()
	if err != nil {
		fmt.Fprintf(&b, "registers unavailable: %v\n", err)
	} else {
		fmt.Fprintf(&b, "rip=0x%016x rsp=0x%016x rflags=0x%08x\n", r.RIP, r.RSP, r.RFLAGS)
		fmt.Fprintf(&b, "rax=0x%016x rbx=0x%016x rcx=0x%016x rdx=0x%016x\n", r.RAX, r.RBX, r.RCX, r.RDX)
		fmt.Fprintf(&b, "rsi=0x%016x rdi=0x%016x rbp=0x%016x\n", r.RSI, r.RDI, r.RBP)
		fmt.Fprintf(&b, "r8 =0x%016x r9 =0x%016x r10=0x%016x r11=0x%016x\n", r.R8, r.R9, r.R10, r.R11)
		fmt.Fprintf(&b, "r12=0x%016x r13=0x%016x r14=0x%016x r15=0x%016x\n", r.R12, r.R13, r.R14, r.R15)
	}
	s, err := c.k.GetSregs()
	if err != nil {
		fmt.Fprintf(&b, "system registers unavailable: %v\n", err)
		return b.String()
	}
	fmt.Fprintf(&b, "cr0=%#x cr2=%#x cr3=%#x cr4=%#x efer=%#x\n", s.CR0, s.CR2, s.CR3, s.CR4, s.EFER)
	for _, sg := range []struct {
		n string
		s kvm.Segment
	}{{"cs", s.CS}, {"ds", s.DS}, {"es", s.ES}, {"fs", s.FS}, {"gs", s.GS}, {"ss", s.SS}, {"tr", s.TR}} {
		fmt.Fprintf(&b, "%s=%#06x base=%#x limit=%#x type=%#x dpl=%d db=%d l=%d\n",
			sg.n, sg.s.Selector, sg.s.Base, sg.s.Limit, sg.s.Type, sg.s.DPL, sg.s.DB, sg.s.L)
	}
	fmt.Fprintf(&b, "gdt=%#x/%#x idt=%#x/%#x", s.GDT.Base, s.GDT.Limit, s.IDT.Base, s.IDT.Limit)
	return b.String()
}
