/*
 * vblk_irq: interrupt-driven virtio-blk.  Shows that a virtio-mmio device's
 * interrupt travels the whole way: device -> irqfd -> in-kernel I/O APIC ->
 * local APIC -> this program's IDT, and that the device honours used-buffer
 * notification suppression (§2.7.7, §2.7.10).
 *
 * The first virtio-blk device named on the command line
 * (virtio_mmio.device=<size>@<base>:<gsi>) is used.  Set-up:
 *
 *   - an IDT: exceptions 0-31 print FAIL and reset; vector 0x30 is the
 *     device, 0x31 the local APIC timer (our watchdog), 0xFF the spurious
 *     vector; every other vector counts as a stray interrupt (and must not
 *     happen);
 *   - the 8259 pair masked (KVM's PIC would otherwise also see the GSI, as
 *     ISA IRQ <gsi>, and deliver it through LINT0/ExtINT), LINT0 masked;
 *   - the local APIC software-enabled (SVR bit 8), TPR 0;
 *   - I/O APIC redirection entry <gsi>: vector 0x30, fixed delivery,
 *     physical destination = our APIC ID (0), active high, EDGE: govmm
 *     signals the device through a KVM irqfd without a resample fd, which
 *     pulses the GSI (kvm_set_irq 1, then 0), i.e. an edge.  A level entry
 *     would lose a pulse that comes while the previous one is unacknowledged
 *     (remote IRR set): the line is low again by the EOI;
 *   - the local APIC timer, one-shot, as the watchdog that bounds every
 *     `hlt` wait (KVM's APIC timer counts a 1 GHz bus clock; divide by 16).
 *     If the timer does not fire, waits fall back to bounded busy loops;
 *   - handlers return with POPF + RET, not IRET (see irq_return: this
 *     host's instruction emulator cannot execute a protected-mode IRET).
 *
 * Checks (PASS/FAIL lines as in vblk.c):
 *
 *   vblk-irq-setup      IDT, PIC, LAPIC, I/O APIC programmed and read back
 *   vblk-irq-acpi       the VMM's ACPI DSDT describes this device (LNRO0005,
 *                       its window, this GSI, edge, active high); required
 *                       with vblk.expect_acpi=1, else only reported
 *   vblk-irq-read       read sectors 0-7, completion waited for with
 *                       `sti; hlt` until the handler ran; in the handler
 *                       InterruptStatus had bit 0 and was acknowledged; the
 *                       used idx had already moved when the interrupt came;
 *                       used id/len and the data are checked
 *   vblk-irq-more       5 more requests (read, write 16-23, FLUSH, read back,
 *                       indirect read if negotiated), one interrupt each
 *   vblk-irq-suppress   with EVENT_IDX: used_event far ahead -> no interrupt;
 *                       used_event = used_idx+1 -> no interrupt for the next
 *                       request, one for the one after; used_event re-armed
 *                       -> one interrupt.  Without EVENT_IDX
 *                       (vblk.no_event_idx=1): avail flags NO_INTERRUPT -> no
 *                       interrupt, flags 0 -> one.  "No interrupt" means:
 *                       the request completes (polled), then a quiet window
 *                       of QUIET_MS (timer-bounded hlt) passes without one,
 *                       and InterruptStatus reads 0
 *   vblk-irq-config     a descriptor loop makes the device set
 *                       DEVICE_NEEDS_RESET; the configuration-change
 *                       interrupt (InterruptStatus bit 1) must arrive
 *   vblk-irq-recover    reset + re-init, one more read by interrupt
 *   vblk-irq-count      interrupts counted == interrupts expected; no stray,
 *                       spurious or empty (InterruptStatus 0) interrupt
 *   vblk-irq            everything above passed
 *
 * Under EVENT_IDX the avail ring's NO_INTERRUPT flag is left SET (as
 * virtio_queue_setup leaves it): §2.7.7.2 says the device must then ignore
 * it and go by used_event alone, so every interrupt here also proves that.
 */
#include "virtio.h"

#define NAME "vblk-irq"

/* ---- Local APIC and I/O APIC (Intel SDM 3A ch. 11; 82093AA datasheet) ---- */

#define IOAPIC_BASE     0xfec00000u     /* memory.IOAPICBase */
#define IOAPIC_REGSEL   0x00
#define IOAPIC_WIN      0x10
#define IOAPIC_REG_ID   0x00
#define IOAPIC_REG_VER  0x01
#define IOAPIC_REDTBL(n) (0x10 + 2 * (n))

#define LAPIC_BASE      0xfee00000u     /* memory.LAPICBase */
#define LAPIC_ID        0x020
#define LAPIC_VER       0x030
#define LAPIC_TPR       0x080
#define LAPIC_EOI       0x0b0
#define LAPIC_SVR       0x0f0
#define LAPIC_ESR       0x280
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT0      0x350
#define LAPIC_LVT_ERR   0x370
#define LAPIC_TMICT     0x380
#define LAPIC_TMCCT     0x390
#define LAPIC_TDCR      0x3e0

#define LAPIC_SVR_ENABLE 0x100
#define LVT_MASKED       (1u << 16)
#define TDCR_DIV16       0x3
/* KVM's APIC timer: 1 ns per bus cycle (APIC_BUS_CYCLE_NS), / 16. */
#define TIMER_TICKS_PER_MS 62500u

#define RTE_MASKED      (1u << 16)
#define RTE_LEVEL       (1u << 15)
#define RTE_REMOTE_IRR  (1u << 14)
#define RTE_ACTIVE_LOW  (1u << 13)
#define RTE_LOGICAL     (1u << 11)

#define VEC_VIRTIO      0x30
#define VEC_TIMER       0x31
#define VEC_SPURIOUS    0xff

#define IA32_APIC_BASE  0x1b

#define VIRTIO_MMIO_WINDOW 0x1000  /* the VMM's 4 KiB windows (memory.VirtioMMIOSize) */

#define IRQ_TIMEOUT_MS  10000   /* an expected interrupt: µs-ms in practice */
#define QUIET_MS        200     /* window in which no interrupt may come */
#define MAX_WAKEUPS     100000  /* hlt wake-ups per wait (bounds a storm) */
#define FALLBACK_SPINS  2000000 /* busy-wait bound if the timer is dead */

static inline uint32_t lapic_read(uint32_t reg)
{
	return *(volatile uint32_t *)(LAPIC_BASE + reg);
}
static inline void lapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(LAPIC_BASE + reg) = v;
}
static uint32_t ioapic_read(uint32_t reg)
{
	*(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_REGSEL) = reg;
	return *(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_WIN);
}
static void ioapic_write(uint32_t reg, uint32_t v)
{
	*(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_REGSEL) = reg;
	*(volatile uint32_t *)(IOAPIC_BASE + IOAPIC_WIN) = v;
}
static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((uint64_t)hi << 32) | lo;
}

/* ---- IDT ------------------------------------------------------------------- */

struct iframe {
	uint32_t eip, cs, eflags;
};

struct idt_gate {
	uint16_t off_lo, sel;
	uint8_t zero, type;
	uint16_t off_hi;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(8)));

static void set_gate(int v, void (*handler)(void))
{
	uint32_t a = (uint32_t)(uintptr_t)handler;
	idt[v].off_lo = (uint16_t)a;
	idt[v].sel = 0x08;              /* start.S's flat code segment */
	idt[v].zero = 0;
	idt[v].type = 0x8e;             /* present, DPL 0, 32-bit interrupt gate */
	idt[v].off_hi = (uint16_t)(a >> 16);
}

static struct vdev devs[VIRTIO_MAX_DEVS];
static struct vdev *idev;               /* the device the handler serves */

/* Written by the handlers (IF=0 elsewhere except in the waits). */
static volatile uint32_t n_irq;         /* device interrupts */
static volatile uint32_t n_used;        /* ... with InterruptStatus bit 0 */
static volatile uint32_t n_config;      /* ... with bit 1 */
static volatile uint32_t n_empty;       /* ... with InterruptStatus 0 */
static volatile uint32_t last_isr;      /* InterruptStatus in the last one */
static volatile uint16_t used_at_irq;   /* used idx the handler saw */
static volatile uint32_t n_timer, n_stray, n_spurious;
static volatile bool timer_fired;
static bool timer_ok;

static uint32_t expected_irqs;          /* interrupts the checks asked for */
static bool all_ok = true;

/* ---- Interrupt entry and return ---------------------------------------------
 *
 * The handlers are assembly stubs around C functions, not gcc's
 * __attribute__((interrupt)), because of how they return.  On this
 * development host guest code runs under KVM's instruction emulator, which
 * implements IRET only in real mode (em_iret: "iret from protected mode
 * unimplemented yet"; a 32-bit IRET ends the VM with KVM_EXIT_INTERNAL_ERROR,
 * emulation failure).  Every interrupt here is taken at CPL 0 in the one
 * code segment, without a stack switch, so IRET's only effects are
 * EIP <- frame.eip, EFLAGS <- frame.eflags, ESP += 12, and POPF + near RET
 * do exactly that.  (IRET would also end NMI blocking; no NMI is expected.)
 * After POPF sets IF=1 an interrupt may be taken before the RET: it nests
 * on the same stack and returns to the RET, which is harmless.
 *
 * irq_return, entered with the CPU's frame on the stack [eip][cs][eflags]:
 * rewrite it in place to [eflags][eip], then popfl; ret.
 */
__asm__(
	"	.text\n"
	"irq_return:\n"
	"	pushl %eax\n"                   /* [eax][eip][cs][eflags]      */
	"	movl 12(%esp), %eax\n"
	"	movl %eax, 8(%esp)\n"           /* [eax][eip][eflags][eflags]  */
	"	movl 4(%esp), %eax\n"
	"	movl %eax, 12(%esp)\n"          /* [eax][eip][eflags][eip]     */
	"	popl %eax\n"
	"	addl $4, %esp\n"                /* [eflags][eip]               */
	"	popfl\n"
	"	ret\n"
	/* An interrupt stub: save the caller-saved registers, call the C
	 * body (cdecl: it preserves the rest), restore, return. */
	"	.macro ISR name, body\n"
	"	.globl \\name\n"
	"\\name:\n"
	"	pushl %eax\n"
	"	pushl %ecx\n"
	"	pushl %edx\n"
	"	cld\n"
	"	call \\body\n"
	"	popl %edx\n"
	"	popl %ecx\n"
	"	popl %eax\n"
	"	jmp irq_return\n"
	"	.endm\n"
	"	ISR virtio_entry, virtio_isr\n"
	"	ISR timer_entry, timer_isr\n"
	"	ISR stray_entry, stray_isr\n"
	"	ISR spurious_entry, spurious_isr\n"
	/* Exceptions never return: exception(vector, &frame.eip).  With an
	 * error code (8, 10-14, 17, 21, 29, 30) the CPU pushed it below EIP. */
	"	.macro EXC n, code\n"
	"	.globl exc_entry\\n\n"
	"exc_entry\\n:\n"
	"	cld\n"
	"	leal 4*\\code(%esp), %eax\n"
	"	pushl %eax\n"
	"	pushl $\\n\n"
	"	call exception\n"
	"	.endm\n"
	"	.irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31\n"
	"	EXC \\n, 0\n"
	"	.endr\n"
	"	.irp n, 8,10,11,12,13,14,17,21,29,30\n"
	"	EXC \\n, 1\n"
	"	.endr\n");

void virtio_entry(void), timer_entry(void), stray_entry(void), spurious_entry(void);
void exc_entry0(void), exc_entry1(void), exc_entry2(void), exc_entry3(void),
	exc_entry4(void), exc_entry5(void), exc_entry6(void), exc_entry7(void),
	exc_entry8(void), exc_entry9(void), exc_entry10(void), exc_entry11(void),
	exc_entry12(void), exc_entry13(void), exc_entry14(void), exc_entry15(void),
	exc_entry16(void), exc_entry17(void), exc_entry18(void), exc_entry19(void),
	exc_entry20(void), exc_entry21(void), exc_entry22(void), exc_entry23(void),
	exc_entry24(void), exc_entry25(void), exc_entry26(void), exc_entry27(void),
	exc_entry28(void), exc_entry29(void), exc_entry30(void), exc_entry31(void);

static void (*const exc_entries[32])(void) = {
	exc_entry0, exc_entry1, exc_entry2, exc_entry3, exc_entry4, exc_entry5, exc_entry6,
	exc_entry7, exc_entry8, exc_entry9, exc_entry10, exc_entry11, exc_entry12, exc_entry13,
	exc_entry14, exc_entry15, exc_entry16, exc_entry17, exc_entry18, exc_entry19,
	exc_entry20, exc_entry21, exc_entry22, exc_entry23, exc_entry24, exc_entry25,
	exc_entry26, exc_entry27, exc_entry28, exc_entry29, exc_entry30, exc_entry31,
};

/* Called from the stubs above; not static so the assembler can name them. */
__attribute__((noreturn, used)) void exception(unsigned v, const struct iframe *f);
__attribute__((used)) void virtio_isr(void);
__attribute__((used)) void timer_isr(void);
__attribute__((used)) void stray_isr(void);
__attribute__((used)) void spurious_isr(void);

void exception(unsigned v, const struct iframe *f)
{
	fail(NAME, "exception %u at eip 0x%08x", v, f->eip);
	reset();
}

/* The device's handler: what a driver's ISR does for virtio-mmio (§4.2.2,
 * InterruptStatus/InterruptACK): read the cause, acknowledge exactly it,
 * then EOI the local APIC (edge: the I/O APIC needs no EOI). */
void virtio_isr(void)
{
	uint32_t isr = vio_read(idev, VIRTIO_MMIO_INTERRUPT_STATUS);
	if (isr)
		vio_write(idev, VIRTIO_MMIO_INTERRUPT_ACK, isr);
	last_isr = isr;
	used_at_irq = idev->used ? idev->used->idx : 0;
	n_irq++;
	if (isr & 1)
		n_used++;
	if (isr & 2)
		n_config++;
	if (!isr)
		n_empty++;
	lapic_write(LAPIC_EOI, 0);
}

void timer_isr(void)
{
	timer_fired = true;
	n_timer++;
	lapic_write(LAPIC_EOI, 0);
}

void stray_isr(void)
{
	n_stray++;
	lapic_write(LAPIC_EOI, 0);
}

/* The spurious vector gets no EOI (SDM 11.9). */
void spurious_isr(void)
{
	n_spurious++;
}

static void idt_setup(void)
{
	static struct __attribute__((packed)) {
		uint16_t limit;
		uint32_t base;
	} desc;

	for (int v = 0; v < 32; v++)
		set_gate(v, exc_entries[v]);
	for (int v = 32; v < 256; v++)
		set_gate(v, stray_entry);
	set_gate(VEC_VIRTIO, virtio_entry);
	set_gate(VEC_TIMER, timer_entry);
	set_gate(VEC_SPURIOUS, spurious_entry);
	desc.limit = sizeof(idt) - 1;
	desc.base = (uint32_t)(uintptr_t)idt;
	__asm__ volatile("lidt %0" : : "m"(desc) : "memory");
}

static inline void irq_on(void)
{
	__asm__ volatile("sti" ::: "memory");
}
static inline void irq_off(void)
{
	__asm__ volatile("cli" ::: "memory");
}

/* ---- Timer and waits ------------------------------------------------------- */

static void timer_arm(uint32_t ms)
{
	timer_fired = false;
	lapic_write(LAPIC_TDCR, TDCR_DIV16);
	lapic_write(LAPIC_LVT_TIMER, VEC_TIMER);        /* one-shot, unmasked */
	lapic_write(LAPIC_TMICT, ms * TIMER_TICKS_PER_MS);
}

static void timer_stop(void)
{
	lapic_write(LAPIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	lapic_write(LAPIC_TMICT, 0);
}

/* Waits until *counter differs from before, or ms have passed.  Halted in
 * `sti; hlt` (the STI shadow covers the HLT, so an interrupt that is
 * already pending wakes it: no lost wake-up), woken by the device or the
 * watchdog timer.  Returns whether the counter moved.  Leaves IF=0. */
static bool wait_change(volatile uint32_t *counter, uint32_t before, uint32_t ms)
{
	irq_off();
	if (!timer_ok) {
		irq_on();
		for (uint32_t i = 0; i < FALLBACK_SPINS && *counter == before; i++)
			__asm__ volatile("nop" ::: "memory");
		irq_off();
		return *counter != before;
	}
	timer_arm(ms);
	for (uint32_t i = 0; i < MAX_WAKEUPS && *counter == before && !timer_fired; i++)
		__asm__ volatile("sti; hlt; cli" ::: "memory");
	bool moved = *counter != before;
	timer_stop();
	return moved;
}

/* Polls the used ring (interrupts enabled, so an unwanted interrupt is
 * taken and counted) until it moves or ms have passed. */
static bool poll_used(struct vdev *d, uint32_t ms)
{
	bool moved = false;
	irq_off();
	if (timer_ok)
		timer_arm(ms);
	irq_on();
	for (uint32_t i = 0; i < FALLBACK_SPINS; i++) {
		if (d->used->idx != d->used_idx) {
			moved = true;
			break;
		}
		if (timer_ok && timer_fired)
			break;
	}
	irq_off();
	if (timer_ok)
		timer_stop();
	return moved || d->used->idx != d->used_idx;
}

/* Sanity of the watchdog itself: a 10 ms one-shot must fire while we poll
 * with interrupts on. */
static void timer_check(void)
{
	uint32_t polls = 0;
	timer_ok = false;
	timer_arm(10);
	uint32_t c0 = lapic_read(LAPIC_TMCCT);
	irq_on();
	for (; polls < 300000 && !timer_fired; polls++)
		(void)lapic_read(LAPIC_TMCCT);
	irq_off();
	timer_stop();
	if (timer_fired) {
		timer_ok = true;
		printf("vblk-irq: LAPIC timer: 10 ms one-shot fired (count started at %u, %u polls)\n",
		       c0, polls);
	} else {
		printf("vblk-irq: LAPIC timer did not fire (count %u -> %u); waits are busy loops\n",
		       c0, lapic_read(LAPIC_TMCCT));
	}
}

/* ---- Set-up ---------------------------------------------------------------- */

static bool lapic_setup(uint32_t *apic_id)
{
	uint64_t base = rdmsr(IA32_APIC_BASE);
	printf("vblk-irq: IA32_APIC_BASE 0x%llx\n", base);
	if ((base & ~0xfffull) != LAPIC_BASE || !(base & (1u << 11)) || (base & (1u << 10))) {
		fail(NAME, "IA32_APIC_BASE 0x%llx: want xAPIC enabled at 0x%x", base, LAPIC_BASE);
		return false;
	}
	/* The 8259s: mask every line (OCW1).  KVM's default routing sends a
	 * GSI below 16 to the PIC as well, and LINT0 is ExtINT (virtual wire),
	 * so an unmasked, never-initialised PIC would deliver it as vector
	 * 0+<irq>, an exception vector. */
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
	lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | VEC_SPURIOUS);
	lapic_write(LAPIC_TPR, 0);
	lapic_write(LAPIC_LVT0, LVT_MASKED);                    /* no ExtINT */
	lapic_write(LAPIC_LVT_ERR, LVT_MASKED | 0xfe);
	lapic_write(LAPIC_ESR, 0);
	*apic_id = lapic_read(LAPIC_ID) >> 24;
	uint32_t svr = lapic_read(LAPIC_SVR);
	printf("vblk-irq: LAPIC id %u version 0x%x SVR 0x%x\n", *apic_id, lapic_read(LAPIC_VER),
	       svr);
	if (!(svr & LAPIC_SVR_ENABLE) || (svr & 0xff) != VEC_SPURIOUS) {
		fail(NAME, "LAPIC SVR reads 0x%x after writing 0x%x", svr,
		     LAPIC_SVR_ENABLE | VEC_SPURIOUS);
		return false;
	}
	return true;
}

static bool ioapic_setup(uint32_t gsi, uint32_t apic_id)
{
	uint32_t ver = ioapic_read(IOAPIC_REG_VER);
	uint32_t pins = ((ver >> 16) & 0xff) + 1;
	printf("vblk-irq: IOAPIC id %u version 0x%x, %u pins\n",
	       (ioapic_read(IOAPIC_REG_ID) >> 24) & 0xf, ver & 0xff, pins);
	if (gsi >= pins) {
		fail(NAME, "GSI %u is not an IOAPIC pin (0..%u)", gsi, pins - 1);
		return false;
	}
	uint32_t lo = VEC_VIRTIO;       /* fixed, physical, active high, edge, unmasked */
	ioapic_write(IOAPIC_REDTBL(gsi) + 1, apic_id << 24);
	ioapic_write(IOAPIC_REDTBL(gsi), lo);
	uint32_t rlo = ioapic_read(IOAPIC_REDTBL(gsi));
	uint32_t rhi = ioapic_read(IOAPIC_REDTBL(gsi) + 1);
	printf("vblk-irq: GSI %u -> vector 0x%x, fixed, physical dest %u, edge, active high "
	       "(RTE 0x%08x%08x)\n", gsi, VEC_VIRTIO, apic_id, rhi, rlo);
	/* Bit 12 (delivery status) and 14 (remote IRR) are read-only state. */
	if ((rlo & ~((1u << 12) | RTE_REMOTE_IRR)) != lo || (rhi >> 24) != apic_id) {
		fail(NAME, "redirection entry %u reads 0x%08x%08x", gsi, rhi, rlo);
		return false;
	}
	return true;
}

/* ---- ACPI cross-check -------------------------------------------------------
 *
 * The VMM also describes the device in its ACPI DSDT, for kernels that find
 * virtio-mmio devices there (_HID "LNRO0005").  Check that the description
 * names the same window and the same GSI this program just used, with the
 * trigger it really has: find the RSDP as ACPICA does (hvm_start_info's
 * rsdp_paddr, else a 16-byte-step scan of [0xE0000, 0x100000)), follow the
 * XSDT (or RSDT) to the FADT and its DSDT, check every checksum, and look
 * in the DSDT for the _CRS contents
 *     Memory32Fixed (ReadWrite, base, 0x1000)                86 09 00 01 ...
 *     Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive) { gsi }
 *                                                            89 06 00 03 01 ...
 * and for the string "LNRO0005". */

static bool acpi_sum_ok(const uint8_t *p, uint32_t n)
{
	uint8_t sum = 0;
	for (uint32_t i = 0; i < n; i++)
		sum = (uint8_t)(sum + p[i]);
	return sum == 0;
}

/* A table at a (below 4 GiB, inside the legacy area or RAM we can read),
 * with a plausible length and a valid checksum, or NULL. */
static const uint8_t *acpi_table(uint64_t a, const char *sig)
{
	if (a == 0 || a >= 0x100000000ull - 36)
		return NULL;
	const uint8_t *t = (const uint8_t *)(uintptr_t)a;
	uint32_t len = *(const uint32_t *)(t + 4);
	if (len < 36 || len > 0x10000 || memcmp(t, sig, 4) != 0 || !acpi_sum_ok(t, len))
		return NULL;
	return t;
}

static const uint8_t *find_rsdp(const struct hvm_start_info *si)
{
	if (si->rsdp_paddr && si->rsdp_paddr < 0x100000)
		return (const uint8_t *)(uintptr_t)si->rsdp_paddr;
	for (uint32_t a = 0xe0000; a < 0x100000; a += 16) {
		const uint8_t *p = (const uint8_t *)(uintptr_t)a;
		if (memcmp(p, "RSD PTR ", 8) == 0 && acpi_sum_ok(p, 20) &&
		    (p[15] < 2 || acpi_sum_ok(p, 36)))
			return p;
	}
	return NULL;
}

static const uint8_t *find_dsdt(const struct hvm_start_info *si)
{
	const uint8_t *rsdp = find_rsdp(si);
	if (!rsdp)
		return NULL;
	const uint8_t *root = NULL;
	unsigned esz = 4;
	if (rsdp[15] >= 2)
		root = acpi_table(*(const uint64_t *)(rsdp + 24), "XSDT"), esz = 8;
	if (!root)
		root = acpi_table(*(const uint32_t *)(rsdp + 16), "RSDT"), esz = 4;
	if (!root)
		return NULL;
	uint32_t len = *(const uint32_t *)(root + 4);
	for (uint32_t off = 36; off + esz <= len; off += esz) {
		uint64_t a = esz == 8 ? *(const uint64_t *)(root + off) : *(const uint32_t *)(root + off);
		const uint8_t *fadt = acpi_table(a, "FACP");
		if (!fadt)
			continue;
		uint32_t flen = *(const uint32_t *)(fadt + 4);
		uint64_t d = flen >= 148 ? *(const uint64_t *)(fadt + 140) : 0;
		if (!d)
			d = *(const uint32_t *)(fadt + 40);
		return acpi_table(d, "DSDT");
	}
	return NULL;
}

static bool mem_find(const uint8_t *h, uint32_t hn, const uint8_t *n, uint32_t nn)
{
	for (uint32_t i = 0; i + nn <= hn; i++)
		if (memcmp(h + i, n, nn) == 0)
			return true;
	return false;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* Returns true when the check passed or was not asked for. */
static bool test_acpi(const struct hvm_start_info *si, const struct vdev *d, bool expect)
{
	const char *n = "vblk-irq-acpi";
	const uint8_t *dsdt = find_dsdt(si);
	if (!dsdt) {
		puts("vblk-irq: no ACPI DSDT found");
		if (expect)
			fail(n, "no valid RSDP -> XSDT/RSDT -> FADT -> DSDT chain");
		return !expect;
	}
	uint32_t len = *(const uint32_t *)(dsdt + 4);
	uint8_t crs[9 + 12] = { 0x86, 0x09, 0x00, 0x01 };
	put32(crs + 4, (uint32_t)d->base);
	put32(crs + 8, VIRTIO_MMIO_WINDOW);
	crs[12] = 0x89, crs[13] = 0x06, crs[14] = 0x00, crs[15] = 0x03, crs[16] = 0x01;
	put32(crs + 17, d->irq);
	bool hid = mem_find(dsdt, len, (const uint8_t *)"\x0dLNRO0005", 10);
	bool res = mem_find(dsdt, len, crs, sizeof(crs));
	printf("vblk-irq: ACPI DSDT at 0x%08x, %u bytes: LNRO0005 %s, window 0x%08x+0x%x with "
	       "edge active-high GSI %u %s\n", (unsigned)(uintptr_t)dsdt, len,
	       hid ? "present" : "absent", (unsigned)d->base, VIRTIO_MMIO_WINDOW, d->irq,
	       res ? "present" : "absent");
	if (!hid || !res) {
		if (expect)
			fail(n, "the DSDT does not describe the device as used (LNRO0005 %d, _CRS %d)",
			     hid, res);
		return !expect;
	}
	pass(n);
	return true;
}

/* ---- Requests -------------------------------------------------------------- */

static bool event_idx(const struct vdev *d)
{
	return (d->features & VBIT(VIRTIO_F_EVENT_IDX)) != 0;
}

/* Ask for an interrupt on the next completion (Linux's virtqueue_enable_cb):
 * used_event = the used idx consumed so far, or avail flags 0. */
static void arm(struct vdev *d)
{
	if (event_idx(d))
		*vq_used_event(d) = d->used_idx;
	else
		d->avail->flags = 0;
	vbarrier();
}

enum { IRQ_NONE = 0, IRQ_ONE = 1 };

/* One request on descriptor 0, completion found by interrupt (expect ==
 * IRQ_ONE: hlt until the handler ran) or by polling followed by a quiet
 * window (IRQ_NONE).  The caller sets up suppression first.  Checks the
 * interrupt cause, that used idx moved before the interrupt, the used
 * element and the status byte.  FAILs (and returns false) on any error. */
static bool irq_request(struct vdev *d, const char *name, const char *what, uint32_t type,
			uint64_t sector, void *buf, uint32_t len, bool dev_writes, bool indirect,
			int want_status, int expect)
{
	uint32_t before = n_irq, before_used = n_used;
	uint16_t next = (uint16_t)(d->used_idx + 1);

	uint32_t writable = vblk_submit(d, type, sector, buf, len, dev_writes, indirect);
	if (expect == IRQ_ONE) {
		if (!wait_change(&n_irq, before, IRQ_TIMEOUT_MS)) {
			fail(name, "%s: no interrupt within %u ms (used idx %u, want %u; "
			     "InterruptStatus 0x%x, Status 0x%x)", what, IRQ_TIMEOUT_MS,
			     d->used->idx, next, vio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS),
			     vio_status(d));
			return false;
		}
		expected_irqs++;
		if (!(last_isr & 1) || n_used != before_used + 1) {
			fail(name, "%s: InterruptStatus 0x%x in the handler, want bit 0 (used buffer)",
			     what, last_isr);
			return false;
		}
		if (used_at_irq != next) {
			fail(name, "%s: interrupt came with used idx %u, want %u (used ring updated "
			     "after the notification)", what, used_at_irq, next);
			return false;
		}
	} else {
		if (!poll_used(d, IRQ_TIMEOUT_MS)) {
			fail(name, "%s: no completion within %u ms (Status 0x%x)", what,
			     IRQ_TIMEOUT_MS, vio_status(d));
			return false;
		}
		/* The device publishes used idx and only then decides whether
		 * to interrupt: give a suppressed-but-wrongly-sent interrupt
		 * the time to arrive. */
		if (wait_change(&n_irq, before, QUIET_MS) || n_irq != before) {
			fail(name, "%s: interrupt (InterruptStatus 0x%x) although suppressed "
			     "(used_event %u, avail flags 0x%x, used idx %u)", what, last_isr,
			     *vq_used_event(d), d->avail->flags, d->used->idx);
			return false;
		}
		uint32_t isr = vio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
		if (isr) {
			fail(name, "%s: InterruptStatus 0x%x after a suppressed completion", what,
			     isr);
			return false;
		}
	}
	uint16_t u = d->used->idx;
	if (u != next) {
		fail(name, "%s: used idx %u, want %u", what, u, next);
		return false;
	}
	vbarrier();
	volatile struct virtq_used_elem *e = &d->used->ring[d->used_idx % d->qsize];
	uint32_t id = e->id, ulen = e->len;
	d->used_idx = next;
	if (id != 0 || ulen != writable) {
		fail(name, "%s: used element id %u len %u, want id 0 len %u", what, id, ulen,
		     writable);
		return false;
	}
	int st = d->mem->s.status[0];
	if (st != want_status) {
		fail(name, "%s: status %d, want %d", what, st, want_status);
		return false;
	}
	return true;
}

static bool check(bool ok, const char *name)
{
	if (ok)
		pass(name);
	else
		all_ok = false;
	return ok;
}

static bool test_read(struct vdev *d)
{
	const char *n = "vblk-irq-read";
	uint8_t *buf = d->mem->data;
	memset(buf, 0xcc, 4096);
	arm(d);
	if (!irq_request(d, n, "read sectors 0-7", VIRTIO_BLK_T_IN, 0, buf, 4096, true, false,
			 VIRTIO_BLK_S_OK, IRQ_ONE))
		return false;
	printf("vblk-irq: interrupt %u: InterruptStatus 0x%x, used idx %u\n", n_irq, last_isr,
	       used_at_irq);
	return vblk_check(buf, 0, 8, vblk_image_byte, n);
}

static bool test_more(struct vdev *d)
{
	const char *n = "vblk-irq-more";
	uint8_t *buf = d->mem->data;
	bool ind = (d->features & VBIT(VIRTIO_F_INDIRECT_DESC)) != 0;
	uint32_t before = n_irq;

	memset(buf, 0xcc, 4096);
	arm(d);
	if (!irq_request(d, n, "read sectors 8-15", VIRTIO_BLK_T_IN, 8, buf, 4096, true, false,
			 VIRTIO_BLK_S_OK, IRQ_ONE) ||
	    !vblk_check(buf, 8, 8, vblk_image_byte, n))
		return false;
	vblk_fill(buf, 16, 8, vblk_write_byte);
	arm(d);
	if (!irq_request(d, n, "write sectors 16-23", VIRTIO_BLK_T_OUT, 16, buf, 4096, false,
			 false, VIRTIO_BLK_S_OK, IRQ_ONE))
		return false;
	arm(d);
	if (!irq_request(d, n, "flush", VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false, false,
			 VIRTIO_BLK_S_OK, IRQ_ONE))
		return false;
	memset(buf, 0xcc, 4096);
	arm(d);
	if (!irq_request(d, n, "read back sectors 16-23", VIRTIO_BLK_T_IN, 16, buf, 4096, true,
			 false, VIRTIO_BLK_S_OK, IRQ_ONE) ||
	    !vblk_check(buf, 16, 8, vblk_write_byte, n))
		return false;
	puts("vblk-irq: wrote sectors 16-23");
	memset(buf, 0xcc, 4096);
	arm(d);
	if (!irq_request(d, n, ind ? "read sectors 24-31 (indirect)" : "read sectors 24-31",
			 VIRTIO_BLK_T_IN, 24, buf, 4096, true, ind, VIRTIO_BLK_S_OK, IRQ_ONE) ||
	    !vblk_check(buf, 24, 8, vblk_image_byte, n))
		return false;
	if (n_irq - before != 5) {
		fail(n, "%u interrupts for 5 requests", n_irq - before);
		return false;
	}
	return true;
}

static bool rd(struct vdev *d, const char *n, const char *what, uint32_t sector, int expect)
{
	uint8_t *buf = d->mem->data;
	memset(buf, 0xcc, 512);
	return irq_request(d, n, what, VIRTIO_BLK_T_IN, sector, buf, 512, true, false,
			   VIRTIO_BLK_S_OK, expect) &&
	       vblk_check(buf, sector, 1, vblk_image_byte, n);
}

static bool test_suppress(struct vdev *d)
{
	const char *n = "vblk-irq-suppress";

	if (event_idx(d)) {
		puts("vblk-irq: suppression by used_event (EVENT_IDX)");
		*vq_used_event(d) = (uint16_t)(d->used_idx + 0x8000);
		if (!rd(d, n, "read with used_event far ahead", 32, IRQ_NONE))
			return false;
		*vq_used_event(d) = (uint16_t)(d->used_idx + 1);
		if (!rd(d, n, "read before used_event", 33, IRQ_NONE))
			return false;
		/* used_event unchanged: this completion crosses it. */
		if (!rd(d, n, "read crossing used_event", 34, IRQ_ONE))
			return false;
		*vq_used_event(d) = (uint16_t)(d->used_idx + 0x8000);
		if (!rd(d, n, "read suppressed again", 35, IRQ_NONE))
			return false;
		arm(d);
		if (!rd(d, n, "read after re-arming used_event", 36, IRQ_ONE))
			return false;
	} else {
		puts("vblk-irq: suppression by VIRTQ_AVAIL_F_NO_INTERRUPT (no EVENT_IDX)");
		d->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
		if (!rd(d, n, "read with NO_INTERRUPT", 32, IRQ_NONE))
			return false;
		if (!rd(d, n, "second read with NO_INTERRUPT", 33, IRQ_NONE))
			return false;
		arm(d);
		if (!rd(d, n, "read with avail flags 0", 34, IRQ_ONE))
			return false;
	}
	return true;
}

/* A descriptor that chains to itself: the device must give up on the
 * queue, set DEVICE_NEEDS_RESET and raise the configuration-change
 * interrupt (§2.1.2, §4.2.2 InterruptStatus bit 1). */
static bool test_config(struct vdev *d)
{
	const char *n = "vblk-irq-config";
	struct virtio_blk_req_hdr *h = (struct virtio_blk_req_hdr *)d->mem->s.hdr;
	uint32_t before = n_irq, before_cfg = n_config;

	h->type = VIRTIO_BLK_T_IN;
	h->reserved = 0;
	h->sector = 0;
	d->desc[0].addr = (uintptr_t)h;
	d->desc[0].len = sizeof(*h);
	d->desc[0].flags = VIRTQ_DESC_F_NEXT;
	d->desc[0].next = 1;
	d->desc[1].addr = (uintptr_t)d->mem->data;
	d->desc[1].len = 512;
	d->desc[1].flags = VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE;
	d->desc[1].next = 1;            /* itself */
	arm(d);                         /* irrelevant for a config interrupt */
	vq_publish(d, 0);
	if (!wait_change(&n_config, before_cfg, IRQ_TIMEOUT_MS)) {
		fail(n, "no configuration-change interrupt within %u ms (interrupts %u -> %u, "
		     "last InterruptStatus 0x%x, Status 0x%x)", IRQ_TIMEOUT_MS, before, n_irq,
		     last_isr, vio_status(d));
		return false;
	}
	expected_irqs++;                        /* exactly one: checked below */
	uint32_t s = vio_status(d);
	printf("vblk-irq: config interrupt: InterruptStatus 0x%x, Status 0x%x\n", last_isr, s);
	if (n_irq - before != 1) {
		fail(n, "%u interrupts for one configuration change", n_irq - before);
		return false;
	}
	if (!(s & VIRTIO_S_NEEDS_RESET)) {
		fail(n, "Status 0x%x without DEVICE_NEEDS_RESET after the interrupt", s);
		return false;
	}
	return true;
}

static bool test_recover(struct vdev *d, uint64_t want)
{
	const char *n = "vblk-irq-recover";
	if (!virtio_init(d, want, n))
		return false;
	uint8_t *buf = d->mem->data;
	memset(buf, 0xcc, 4096);
	arm(d);
	return irq_request(d, n, "read sectors 0-7 after reset", VIRTIO_BLK_T_IN, 0, buf, 4096,
			   true, false, VIRTIO_BLK_S_OK, IRQ_ONE) &&
	       vblk_check(buf, 0, 8, vblk_image_byte, n);
}

void main(struct hvm_start_info *si)
{
	uint32_t apic_id;

	puts("govmm vblk irq test");
	if (!start_info_ok(si, NAME))
		return;
	const char *cmdline = cmdline_get(si);
	if (!cmdline) {
		fail(NAME, "no command line");
		return;
	}
	idt_setup();
	if (!lapic_setup(&apic_id))
		return;
	timer_check();

	int n = virtio_find(cmdline, VIRTIO_ID_BLOCK, devs, VIRTIO_MAX_DEVS);
	if (n == 0) {
		fail(NAME, "no virtio-blk device on the command line");
		return;
	}
	struct vdev *d = &devs[0];
	idev = d;
	uint64_t want = vblk_want(cmdline);
	if (!virtio_init(d, want, NAME))
		return;
	uint64_t cap = vblk_capacity(d);
	printf("vblk-irq: device at 0x%08x gsi %u: capacity %llu sectors, features negotiated "
	       "0x%llx, queue size %u\n", (unsigned)d->base, d->irq, cap, d->features, d->qsize);
	if (cap < 40) {
		fail(NAME, "capacity %llu sectors, need at least 40", cap);
		return;
	}
	if (!ioapic_setup(d->irq, apic_id))
		return;
	if (n_irq || n_stray || n_spurious) {
		fail(NAME, "interrupts before any request: device %u stray %u spurious %u", n_irq,
		     n_stray, n_spurious);
		return;
	}
	pass("vblk-irq-setup");
	if (!test_acpi(si, d, cmdline_has_word(cmdline, "vblk.expect_acpi=1")))
		all_ok = false;

	if (!check(test_read(d), "vblk-irq-read"))
		goto out;
	if (!check(test_more(d), "vblk-irq-more"))
		goto out;
	check(test_suppress(d), "vblk-irq-suppress");
	if (check(test_config(d), "vblk-irq-config"))
		check(test_recover(d, want), "vblk-irq-recover");
out:
	printf("vblk-irq: interrupts %u (used %u, config %u, empty %u), expected %u; timer %u, "
	       "stray %u, spurious %u\n", n_irq, n_used, n_config, n_empty, expected_irqs, n_timer,
	       n_stray, n_spurious);
	if (n_irq != expected_irqs || n_empty || n_stray || n_spurious) {
		fail("vblk-irq-count", "interrupts %u, expected %u; empty %u stray %u spurious %u",
		     n_irq, expected_irqs, n_empty, n_stray, n_spurious);
		all_ok = false;
	} else {
		pass("vblk-irq-count");
	}
	if (all_ok)
		pass(NAME);
	printf("vblk-irq: done, Status 0x%x\n", vio_status(d));
}
