/* hello: the smallest end-to-end check (entry, serial, reset). */
#include "lib.h"

void main(struct hvm_start_info *si)
{
	(void)si;
	puts("Hello from govmm guest");
	pass("hello");
}
