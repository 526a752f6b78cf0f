/*
 * ioctls.c prints the ioctl request numbers the seccomp programs filter
 * on, as the C compiler sees them with this machine's kernel headers
 * (linux-libc-dev). TestKVMIoctlNumbers compiles and runs it when gcc is
 * installed, and compares its output with the Go constants. It is not
 * compiled by go build (testdata/).
 */
#include <stdio.h>
#include <linux/kvm.h>
#include <linux/if_tun.h>
#define P(x) printf("%s 0x%lx\n", #x, (unsigned long)(x))
int main(void)
{
	P(KVM_RUN);
	P(KVM_GET_REGS);
	P(KVM_GET_SREGS);
	P(KVM_IRQ_LINE);
	P(TUNSETIFF);
	P(TUNSETOFFLOAD);
	P(TUNSETVNETHDRSZ);
	return 0;
}
