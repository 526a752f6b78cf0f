/*
 * govmm guest runtime: freestanding helpers for 32-bit PVH test guests.
 *
 * Everything here runs in 32-bit flat protected mode with paging off, under
 * KVM's instruction emulator on the development host (about 1 M instructions
 * per second, every port access is a VM exit).  Keep loops bounded and short.
 */
#ifndef GOVMM_GUEST_LIB_H
#define GOVMM_GUEST_LIB_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- PVH boot ABI (Xen public/arch-x86/hvm/start_info.h) ---------------- */

#define XEN_HVM_START_MAGIC_VALUE 0x336ec578u

struct hvm_start_info {
	uint32_t magic;          /* XEN_HVM_START_MAGIC_VALUE */
	uint32_t version;        /* 0 or 1 */
	uint32_t flags;          /* SIF_xxx */
	uint32_t nr_modules;
	uint64_t modlist_paddr;  /* struct hvm_modlist_entry[nr_modules] */
	uint64_t cmdline_paddr;  /* NUL-terminated ASCII */
	uint64_t rsdp_paddr;     /* 0 if none */
	/* version 1 and later */
	uint64_t memmap_paddr;   /* struct hvm_memmap_table_entry[memmap_entries] */
	uint32_t memmap_entries;
	uint32_t reserved;
};

struct hvm_memmap_table_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;           /* E820-style, see below */
	uint32_t reserved;
};

#define XEN_HVM_MEMMAP_TYPE_RAM       1
#define XEN_HVM_MEMMAP_TYPE_RESERVED  2
#define XEN_HVM_MEMMAP_TYPE_ACPI      3
#define XEN_HVM_MEMMAP_TYPE_NVS       4
#define XEN_HVM_MEMMAP_TYPE_UNUSABLE  5
#define XEN_HVM_MEMMAP_TYPE_DISABLED  6
#define XEN_HVM_MEMMAP_TYPE_PMEM      7

/* The layout must match the Xen header exactly, also under -m32 where
 * uint64_t is only 4-byte aligned. */
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info size");
_Static_assert(offsetof(struct hvm_start_info, modlist_paddr) == 16, "modlist");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 24, "cmdline");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "rsdp");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "entries");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "memmap entry size");
_Static_assert(offsetof(struct hvm_memmap_table_entry, type) == 16, "type");

#define MEMMAP_MAX     128      /* matches the VMM's MemmapMax */
#define CMDLINE_BOUND  4096     /* how much of the command line we read */

/* ---- Linker-provided symbols (guest.ld) ---------------------------------- */

extern char __image_start[];    /* first byte loaded (0x100000) */
extern char __text_end[];       /* end of text + rodata + note (read-only part) */
extern char __image_end[];      /* end of bss and stack, page aligned */

/* ---- Port I/O -------------------------------------------------------------- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
	return v;
}

/* ---- Devices --------------------------------------------------------------- */

#define COM1_BASE       0x3f8
#define UART_THR        0       /* transmit holding (DLAB=0) */
#define UART_DLL        0       /* divisor low (DLAB=1) */
#define UART_IER        1
#define UART_DLM        1
#define UART_FCR        2
#define UART_LCR        3
#define UART_MCR        4
#define UART_LSR        5
#define UART_SCR        7
#define UART_LSR_THRE   0x20

#define I8042_DATA      0x60
#define I8042_STATUS    0x64    /* read: status, write: command */
#define I8042_CMD_RESET 0xfe    /* pulse the CPU reset line */

void serial_init(void);
void serial_putc(char c);       /* bounded wait for THRE; '\n' is sent as-is */

/* ---- Output ---------------------------------------------------------------- */

void print(const char *s);      /* no newline */
void puts(const char *s);       /* appends '\n' */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int vprintf(const char *fmt, va_list ap);

/* Result lines for the Go tests: "PASS <name>" / "FAIL <name>: <reason>". */
void pass(const char *name);
void fail(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- Strings / memory ------------------------------------------------------ */

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
size_t strnlen(const char *s, size_t max);

/* u64 / 10 without libgcc (the 32-bit libgcc is not installed here). */
uint64_t udivmod10_64(uint64_t n, uint32_t *rem);

/* ---- start_info helpers ---------------------------------------------------- */

/* Checks magic/version and that pointers are 32-bit addressable.  On error
 * prints "FAIL <name>: ..." and returns false. */
bool start_info_ok(const struct hvm_start_info *si, const char *name);

/* Copies at most MEMMAP_MAX memmap entries into out; returns the count or -1
 * (after printing a FAIL line). */
int memmap_copy(const struct hvm_start_info *si, struct hvm_memmap_table_entry *out,
		const char *name);

/* Prints "memmap: <start>-<end> <type>" (16 hex digits each, end exclusive). */
void memmap_print(const struct hvm_memmap_table_entry *e, int n);

/* Returns the command line (NULL if absent or above 4 GiB). */
const char *cmdline_get(const struct hvm_start_info *si);

/* Prints "cmdline: <text>" with non-printable bytes as \xNN, bounded by
 * CMDLINE_BOUND. Returns the number of bytes before the NUL (or the bound). */
size_t cmdline_print(const char *s);

/* ---- Ending the run -------------------------------------------------------- */

__attribute__((noreturn)) void reset(void);   /* i8042 0xFE, then halt() */
__attribute__((noreturn)) void halt(void);    /* cli; hlt forever */
__attribute__((noreturn)) void crash(void);   /* triple fault: null IDT + ud2 */

/* The program's entry point, called by the runtime after serial_init(). */
void main(struct hvm_start_info *si);

/* ---- Memory testing (mem.c) ------------------------------------------------- */

/* A page-aligned, 32-bit addressable span of RAM. */
struct ram_range {
	uint32_t start;
	uint32_t pages;
};

/* Checks no entry wraps and no two non-empty entries overlap (the map need
 * not be sorted).  On error prints "FAIL <name>: ..." and returns false. */
bool memmap_sane(const struct hvm_memmap_table_entry *e, int n, const char *name);

/* Usable (type 1) RAM in [1 MiB, 4 GiB) minus this program's image, page
 * aligned.  Returns the number of ranges written to out (at most max). */
int usable_ranges(const struct hvm_memmap_table_entry *e, int n, struct ram_range *out,
		  int max);

struct mem_error {
	uint32_t addr, got, want;
};

/* Per-page pattern: an address-derived word at the start, middle and last
 * word of every page.  Write all ranges first, then verify all ranges (so
 * aliasing between pages is caught).  limit_pages (0 = no limit) caps the
 * total pages used. Returns pages checked, or -1 with *err set. */
int32_t page_pattern_test(const struct ram_range *r, int n, uint32_t limit_pages,
			  uint32_t seed, struct mem_error *err);

/* Dense walking-ones then inverse pattern over [base, base+bytes). */
bool window_test(uint32_t base, uint32_t bytes, struct mem_error *err);

#endif
