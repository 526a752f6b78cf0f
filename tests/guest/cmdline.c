/* cmdline: echo the PVH command line. */
#include "lib.h"

void main(struct hvm_start_info *si)
{
	puts("govmm cmdline test");
	if (!start_info_ok(si, "cmdline"))
		return;
	const char *s = cmdline_get(si);
	if (!s) {
		fail("cmdline", "cmdline_paddr 0x%llx unusable", si->cmdline_paddr);
		return;
	}
	cmdline_print(s);
	pass("cmdline");
}
