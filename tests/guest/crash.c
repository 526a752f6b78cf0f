/* crash: triple fault (the VMM reports a shutdown with a register dump). */
#include "lib.h"

void main(struct hvm_start_info *si)
{
	(void)si;
	puts("crashing");
	crash();
}
