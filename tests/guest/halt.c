/* halt: cli; hlt with nothing to wake us (a VMM without irqchip reports it). */
#include "lib.h"

void main(struct hvm_start_info *si)
{
	(void)si;
	pass("halt-start");
	halt();
}
