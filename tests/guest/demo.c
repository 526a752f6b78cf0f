/*
 * The govmm demo guest (embedded in the govmm binary as demo.elf): reports
 * what the VMM gave it, probes its devices, runs a short self-test, resets.
 * Budget: well under 2 s at ~1 M instructions/s and < 2 KB of serial output.
 */
#include "lib.h"

#define DEMO_TEST_PAGES 1024u           /* 4 MiB of per-page patterns */
#define DEMO_WINDOW     (16u * 1024)    /* dense pattern window */

static struct hvm_memmap_table_entry map[MEMMAP_MAX];
static struct ram_range ranges[2 * MEMMAP_MAX];

/* Adler-32 of the read-only part of the image (code, rodata, note). */
static uint32_t image_checksum(void)
{
	const unsigned char *p = (const unsigned char *)__image_start;
	uint32_t a = 1, b = 0, n = (uint32_t)(__text_end - __image_start);
	while (n) {
		uint32_t chunk = n < 3800 ? n : 3800;   /* no overflow before the mod */
		n -= chunk;
		while (chunk--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	return (b << 16) | a;
}

static uint32_t crc32(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	uint32_t c = 0xffffffffu;
	while (len--) {
		c ^= *p++;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
	}
	return ~c;
}

static bool arithmetic_ok(void)
{
	/* volatile inputs so the compiler cannot fold the checks away */
	volatile uint32_t a = 0xffffffffu, n = 1000, d = 7;
	volatile uint64_t big = 0xfedcba9876543210ull;
	uint32_t sum = 0, r;

	for (uint32_t i = 1; i <= n; i++)
		sum += i;
	if (sum != 500500)
		return false;
	if ((uint64_t)a * a != 0xfffffffe00000001ull)
		return false;
	if (n / d != 142 || n % d != 6)
		return false;
	if (udivmod10_64(big, &r) != 0x197c790f3f086b68ull || r != 0)
		return false;
	if ((big >> 36) != 0xfedcba9ull || (big << 20) != 0xa987654321000000ull)
		return false;
	return crc32("123456789", 9) == 0xcbf43926u;    /* the standard check value */
}

static void probe_devices(void)
{
	/* COM1: the scratch register must hold what we write, LSR must not float. */
	outb(COM1_BASE + UART_SCR, 0x5a);
	uint8_t s1 = inb(COM1_BASE + UART_SCR);
	outb(COM1_BASE + UART_SCR, 0xa5);
	uint8_t s2 = inb(COM1_BASE + UART_SCR);
	uint8_t lsr = inb(COM1_BASE + UART_LSR);
	bool com1 = s1 == 0x5a && s2 == 0xa5 && lsr != 0xff && (lsr & UART_LSR_THRE);
	printf("device: com1 16550 at 0x3f8: %s (scratch %02x/%02x, lsr %02x)\n",
	       com1 ? "ok" : "bad", s1, s2, lsr);

	uint8_t st = inb(I8042_STATUS);
	printf("device: i8042 at 0x64: %s (status %02x)\n", st != 0xff ? "present" : "absent",
	       st);
}

static bool self_test(uint32_t sum_before, int n)
{
	struct mem_error err;

	int nr = usable_ranges(map, n, ranges, 2 * MEMMAP_MAX);
	if (nr == 0) {
		puts("self-test: FAIL no usable RAM above the image");
		return false;
	}
	int32_t pages = page_pattern_test(ranges, nr, DEMO_TEST_PAGES, 0x600d600du, &err);
	if (pages < 0) {
		printf("self-test: FAIL memory at 0x%08x: got 0x%08x want 0x%08x\n", err.addr,
		       err.got, err.want);
		return false;
	}
	if (ranges[0].pages * 4096ull >= DEMO_WINDOW &&
	    !window_test(ranges[0].start, DEMO_WINDOW, &err)) {
		printf("self-test: FAIL memory at 0x%08x: got 0x%08x want 0x%08x\n", err.addr,
		       err.got, err.want);
		return false;
	}
	printf("self-test: memory %d KiB ok\n", (int)pages * 4);

	uint32_t sum_after = image_checksum();
	if (sum_after != sum_before) {
		printf("self-test: FAIL code checksum %08x, was %08x\n", sum_after, sum_before);
		return false;
	}
	printf("self-test: code checksum %08x ok\n", sum_after);

	if (!arithmetic_ok()) {
		puts("self-test: FAIL arithmetic");
		return false;
	}
	puts("self-test: arithmetic ok");
	return true;
}

void main(struct hvm_start_info *si)
{
	uint32_t sum = image_checksum();
	int n = -1;

	puts("govmm demo guest");
	if (start_info_ok(si, "demo")) {
		printf("start_info: at %p version %u flags %x modules %u\n", (void *)si,
		       si->version, si->flags, si->nr_modules);
		n = memmap_copy(si, map, "demo");
		if (n > 0)
			memmap_print(map, n);
		const char *cl = cmdline_get(si);
		if (cl)
			cmdline_print(cl);
		else
			puts("cmdline: (none)");
	}
	probe_devices();

	if (n > 0 && memmap_sane(map, n, "demo") && self_test(sum, n))
		puts("self-test: PASS");
	else if (n <= 0)
		puts("self-test: FAIL no memory map");
	else
		puts("self-test: FAIL");    /* the reason is on the line before */
	puts("resetting");
}
