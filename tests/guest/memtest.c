/* memtest: print the PVH memory map, then test all usable RAM below 4 GiB. */
#include "lib.h"

#define WINDOW (64u * 1024)

static struct hvm_memmap_table_entry map[MEMMAP_MAX];
static struct ram_range ranges[2 * MEMMAP_MAX];

void main(struct hvm_start_info *si)
{
	struct mem_error err;

	puts("govmm memtest");
	if (!start_info_ok(si, "memtest"))
		return;
	/* Copy the map first: the RAM test may overwrite wherever it was. */
	int n = memmap_copy(si, map, "memtest");
	if (n < 0)
		return;
	memmap_print(map, n);
	if (!memmap_sane(map, n, "memtest"))
		return;

	int nr = usable_ranges(map, n, ranges, 2 * MEMMAP_MAX);
	if (nr == 0) {
		fail("memtest", "no usable RAM above the image");
		return;
	}

	int32_t pages = page_pattern_test(ranges, nr, 0, 0x5aa5c33cu, &err);
	if (pages < 0) {
		fail("memtest", "page pattern mismatch at 0x%08x: got 0x%08x want 0x%08x",
		     err.addr, err.got, err.want);
		return;
	}

	/* Dense window: the start of the largest range. */
	int big = 0;
	for (int i = 1; i < nr; i++)
		if (ranges[i].pages > ranges[big].pages)
			big = i;
	if (ranges[big].pages * 4096ull >= WINDOW &&
	    !window_test(ranges[big].start, WINDOW, &err)) {
		fail("memtest", "walking-ones mismatch at 0x%08x: got 0x%08x want 0x%08x",
		     err.addr, err.got, err.want);
		return;
	}

	printf("memtest: %d pages ok\n", (int)pages);
	pass("memtest");
}
