/*
 * spin: prints "spin: start", then computes forever in integer registers.
 *
 * No hlt, no port or MMIO access and no memory traffic in the loop, so the
 * vCPU never leaves KVM_RUN (on a host without VT-x/AMD-V the loop runs
 * inside KVM's instruction emulator, accounted as the vCPU thread's system
 * time) and uses all the CPU the host scheduler gives it. The fair-share
 * test (tests/fairshare_test.go) compares two of these under different
 * cgroup CPU weights. Interrupts stay off (start.S did cli), so nothing
 * ever interrupts the loop; the VM ends only when the VMM is stopped.
 */
#include "lib.h"

void main(struct hvm_start_info *si)
{
	(void)si;
	puts("spin: start");
	uint32_t x = 0x2545f491u;
	for (;;) {
		/* xorshift32: shifts and xors only, which the emulator handles. */
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		__asm__ volatile("" : "+r"(x)); /* keep the loop: x is "used" */
	}
}
