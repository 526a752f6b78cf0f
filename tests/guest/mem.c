/* govmm guest runtime: memory map checks and RAM pattern tests. */
#include "lib.h"

#define ONE_MIB   0x100000ull
#define FOUR_GIB  0x100000000ull
#define PAGE      4096u

bool memmap_sane(const struct hvm_memmap_table_entry *e, int n, const char *name)
{
	/* Real maps need not be sorted (QEMU's qboot appends entries and a
	 * trailing empty one), so only reject wrapping and overlaps between
	 * non-empty entries. */
	for (int i = 0; i < n; i++) {
		if (e[i].addr + e[i].size < e[i].addr) {
			fail(name, "memmap entry %d wraps", i);
			return false;
		}
	}
	for (int i = 0; i < n; i++) {
		if (e[i].size == 0)
			continue;
		for (int j = i + 1; j < n; j++) {
			if (e[j].size == 0)
				continue;
			if (e[i].addr < e[j].addr + e[j].size && e[j].addr < e[i].addr + e[i].size) {
				fail(name, "memmap entries %d and %d overlap", i, j);
				return false;
			}
		}
	}
	return true;
}

static int add_range(struct ram_range *out, int k, int max, uint64_t lo, uint64_t hi)
{
	lo = (lo + PAGE - 1) & ~(uint64_t)(PAGE - 1);
	hi &= ~(uint64_t)(PAGE - 1);
	if (k < max && hi > lo) {
		out[k].start = (uint32_t)lo;
		out[k].pages = (uint32_t)((hi - lo) >> 12);
		k++;
	}
	return k;
}

int usable_ranges(const struct hvm_memmap_table_entry *e, int n, struct ram_range *out,
		  int max)
{
	uint64_t img_lo = (uintptr_t)__image_start, img_hi = (uintptr_t)__image_end;
	int k = 0;

	for (int i = 0; i < n; i++) {
		if (e[i].type != XEN_HVM_MEMMAP_TYPE_RAM)
			continue;
		uint64_t lo = e[i].addr, hi = e[i].addr + e[i].size;
		if (hi < lo)
			continue;
		if (lo < ONE_MIB)
			lo = ONE_MIB;
		if (hi > FOUR_GIB)
			hi = FOUR_GIB;
		if (hi <= lo)
			continue;
		if (lo < img_hi && hi > img_lo) {       /* split around the image */
			k = add_range(out, k, max, lo, img_lo);
			k = add_range(out, k, max, img_hi, hi);
		} else {
			k = add_range(out, k, max, lo, hi);
		}
	}
	return k;
}

static inline uint32_t pattern(uint32_t addr, uint32_t seed)
{
	return (addr * 0x9e3779b1u) ^ seed;     /* odd multiplier: a bijection */
}

#define MID  (PAGE / 2)
#define LAST (PAGE - 4)

int32_t page_pattern_test(const struct ram_range *r, int n, uint32_t limit_pages,
			  uint32_t seed, struct mem_error *err)
{
	uint32_t left = limit_pages ? limit_pages : 0xffffffffu;
	uint32_t total = 0;

	for (int i = 0; i < n && left; i++) {
		uint32_t cnt = r[i].pages < left ? r[i].pages : left;
		for (uint32_t j = 0, p = r[i].start; j < cnt; j++, p += PAGE) {
			*(volatile uint32_t *)p = pattern(p, seed);
			*(volatile uint32_t *)(p + MID) = pattern(p + MID, seed);
			*(volatile uint32_t *)(p + LAST) = pattern(p + LAST, seed);
		}
		left -= cnt;
	}

	left = limit_pages ? limit_pages : 0xffffffffu;
	for (int i = 0; i < n && left; i++) {
		uint32_t cnt = r[i].pages < left ? r[i].pages : left;
		for (uint32_t j = 0, p = r[i].start; j < cnt; j++, p += PAGE) {
			static const uint32_t offs[3] = { 0, MID, LAST };
			for (int o = 0; o < 3; o++) {
				uint32_t a = p + offs[o];
				uint32_t got = *(volatile uint32_t *)a, want = pattern(a, seed);
				if (got != want) {
					err->addr = a;
					err->got = got;
					err->want = want;
					return -1;
				}
			}
		}
		left -= cnt;
		total += cnt;
	}
	return (int32_t)total;
}

static bool window_pass(volatile uint32_t *w, uint32_t words, uint32_t invert,
			struct mem_error *err)
{
	for (uint32_t i = 0; i < words; i++)
		w[i] = (1u << (i & 31)) ^ invert;
	for (uint32_t i = 0; i < words; i++) {
		uint32_t want = (1u << (i & 31)) ^ invert, got = w[i];
		if (got != want) {
			err->addr = (uint32_t)(uintptr_t)&w[i];
			err->got = got;
			err->want = want;
			return false;
		}
	}
	return true;
}

bool window_test(uint32_t base, uint32_t bytes, struct mem_error *err)
{
	volatile uint32_t *w = (volatile uint32_t *)(uintptr_t)base;
	return window_pass(w, bytes / 4, 0, err) && window_pass(w, bytes / 4, 0xffffffffu, err);
}
