/* reset: the VMM must stop the guest on the i8042 reset command. */
#include "lib.h"

void main(struct hvm_start_info *si)
{
	(void)si;
	puts("resetting via i8042");
	outb(I8042_STATUS, I8042_CMD_RESET);
	for (volatile int i = 0; i < 2000; i++)
		;
	fail("reset", "still running");
	halt();
}
