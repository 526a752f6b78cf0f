/*
 * govmm guest runtime: serial console, printf-lite, memory helpers, PVH
 * start_info parsing, and the ways a test program ends (reset/halt/crash).
 */
#include "lib.h"

/* ---- 16550 UART on COM1 ---------------------------------------------------- */

/* Polls of LSR before giving up on one byte.  Each poll is a VM exit
 * (~12 us here), so this bounds one byte to ~25 ms. */
#define THRE_POLL_LIMIT 2000

static bool serial_dead;        /* a byte timed out: stop waiting from now on */

void serial_init(void)
{
	outb(COM1_BASE + UART_IER, 0x00);       /* no interrupts */
	outb(COM1_BASE + UART_LCR, 0x80);       /* DLAB on */
	outb(COM1_BASE + UART_DLL, 0x01);       /* 115200 baud */
	outb(COM1_BASE + UART_DLM, 0x00);
	outb(COM1_BASE + UART_LCR, 0x03);       /* 8N1, DLAB off */
	outb(COM1_BASE + UART_FCR, 0xc7);       /* FIFO on, clear both, 14-byte trigger */
	outb(COM1_BASE + UART_MCR, 0x03);       /* DTR | RTS */
}

void serial_putc(char c)
{
	if (!serial_dead) {
		int i;
		for (i = 0; i < THRE_POLL_LIMIT; i++) {
			if (inb(COM1_BASE + UART_LSR) & UART_LSR_THRE)
				break;
		}
		if (i == THRE_POLL_LIMIT)
			serial_dead = true;
	}
	outb(COM1_BASE + UART_THR, (uint8_t)c);
}

/* ---- Output ---------------------------------------------------------------- */

void print(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

void puts(const char *s)
{
	print(s);
	serial_putc('\n');
}

uint64_t udivmod10_64(uint64_t n, uint32_t *rem)
{
	uint32_t hi = (uint32_t)(n >> 32), lo = (uint32_t)n;
	uint32_t qhi = hi / 10, r = hi % 10;
	/* r < 10, so (r << 16 | 16 bits) < 10 * 2^16 and each quotient < 2^16. */
	uint32_t t = (r << 16) | (lo >> 16);
	uint32_t q1 = t / 10;
	r = t % 10;
	t = (r << 16) | (lo & 0xffff);
	uint32_t q0 = t / 10;
	r = t % 10;
	if (rem)
		*rem = r;
	return ((uint64_t)qhi << 32) | (q1 << 16) | q0;
}

static int emit_padded(const char *digits, int len, int width, bool zero, bool left,
		       bool neg)
{
	int n = 0, total = len + (neg ? 1 : 0);

	if (neg && zero) {
		serial_putc('-');
		n++;
	}
	if (!left) {
		for (; total < width; total++, n++)
			serial_putc(zero ? '0' : ' ');
	}
	if (neg && !zero) {
		serial_putc('-');
		n++;
	}
	for (int i = 0; i < len; i++, n++)
		serial_putc(digits[i]);
	if (left) {
		for (; total < width; total++, n++)
			serial_putc(' ');
	}
	return n;
}

int vprintf(const char *fmt, va_list ap)
{
	static const char hexdig[] = "0123456789abcdef";
	char buf[24];
	int out = 0;

	for (; *fmt; fmt++) {
		if (*fmt != '%') {
			serial_putc(*fmt);
			out++;
			continue;
		}
		fmt++;
		bool zero = false, left = false;
		int width = 0, longs = 0;
		for (;; fmt++) {
			if (*fmt == '0')
				zero = true;
			else if (*fmt == '-')
				left = true;
			else
				break;
		}
		while (*fmt >= '0' && *fmt <= '9' && width < 64)
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' && longs < 2) {
			longs++;
			fmt++;
		}
		if (*fmt == 'z')        /* size_t is 32-bit here */
			fmt++;
		if (left)
			zero = false;

		uint64_t v = 0;
		bool neg = false;
		int len = 0;
		switch (*fmt) {
		case '\0':
			return out;
		case '%':
			serial_putc('%');
			out++;
			continue;
		case 'c':
			buf[0] = (char)va_arg(ap, int);
			out += emit_padded(buf, 1, width, false, left, false);
			continue;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			out += emit_padded(s, (int)strnlen(s, CMDLINE_BOUND), width, false,
					   left, false);
			continue;
		}
		case 'd':
		case 'i': {
			int64_t sv = longs == 2 ? va_arg(ap, int64_t)
				   : longs == 1 ? (int64_t)va_arg(ap, long)
						: (int64_t)va_arg(ap, int);
			neg = sv < 0;
			v = neg ? (uint64_t)0 - (uint64_t)sv : (uint64_t)sv;
			goto decimal;
		}
		case 'u':
			v = longs == 2 ? va_arg(ap, uint64_t)
			  : longs == 1 ? (uint64_t)va_arg(ap, unsigned long)
				       : (uint64_t)va_arg(ap, unsigned int);
		decimal:
			do {
				uint32_t r;
				v = udivmod10_64(v, &r);
				buf[sizeof(buf) - 1 - len++] = (char)('0' + r);
			} while (v);
			out += emit_padded(buf + sizeof(buf) - len, len, width, zero, left, neg);
			continue;
		case 'p':
			v = (uintptr_t)va_arg(ap, void *);
			zero = true;
			width = 8;
			goto hex;
		case 'x':
		case 'X':
			v = longs == 2 ? va_arg(ap, uint64_t)
			  : longs == 1 ? (uint64_t)va_arg(ap, unsigned long)
				       : (uint64_t)va_arg(ap, unsigned int);
		hex:
			do {
				buf[sizeof(buf) - 1 - len++] = hexdig[v & 0xf];
				v >>= 4;
			} while (v);
			out += emit_padded(buf + sizeof(buf) - len, len, width, zero, left, false);
			continue;
		default:                /* unknown conversion: print it verbatim */
			serial_putc('%');
			serial_putc(*fmt);
			out += 2;
			continue;
		}
	}
	return out;
}

int printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vprintf(fmt, ap);
	va_end(ap);
	return n;
}

void pass(const char *name)
{
	printf("PASS %s\n", name);
}

void fail(const char *name, const char *fmt, ...)
{
	va_list ap;
	printf("FAIL %s: ", name);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	serial_putc('\n');
}

/* ---- Strings / memory ------------------------------------------------------ */

void *memset(void *d, int c, size_t n)
{
	unsigned char *p = d;
	while (n--)
		*p++ = (unsigned char)c;
	return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	while (n--)
		*dp++ = *sp++;
	return d;
}

void *memmove(void *d, const void *s, size_t n)
{
	unsigned char *dp = d;
	const unsigned char *sp = s;
	if (dp <= sp || dp >= sp + n) {
		while (n--)
			*dp++ = *sp++;
	} else {
		while (n--)
			dp[n] = sp[n];
	}
	return d;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	for (; n; n--, x++, y++) {
		if (*x != *y)
			return *x < *y ? -1 : 1;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;
	while (s[n])
		n++;
	return n;
}

size_t strnlen(const char *s, size_t max)
{
	size_t n = 0;
	while (n < max && s[n])
		n++;
	return n;
}

/* ---- start_info ------------------------------------------------------------ */

#define FOUR_GIB 0x100000000ull

/* [paddr, paddr+len) lies below 4 GiB and is not the null page's address 0. */
static bool addressable(uint64_t paddr, uint64_t len)
{
	return paddr != 0 && paddr < FOUR_GIB && len <= FOUR_GIB - paddr;
}

bool start_info_ok(const struct hvm_start_info *si, const char *name)
{
	if (!addressable((uintptr_t)si, sizeof(*si))) {
		fail(name, "start_info pointer %p unusable", (const void *)si);
		return false;
	}
	if (si->magic != XEN_HVM_START_MAGIC_VALUE) {
		fail(name, "start_info magic 0x%08x, want 0x%08x", si->magic,
		     XEN_HVM_START_MAGIC_VALUE);
		return false;
	}
	return true;
}

int memmap_copy(const struct hvm_start_info *si, struct hvm_memmap_table_entry *out,
		const char *name)
{
	if (si->version < 1) {
		fail(name, "start_info version %u has no memmap", si->version);
		return -1;
	}
	uint32_t n = si->memmap_entries;
	if (n == 0) {
		fail(name, "memmap has no entries");
		return -1;
	}
	if (n > MEMMAP_MAX) {
		fail(name, "memmap has %u entries, max %u", n, MEMMAP_MAX);
		return -1;
	}
	if (!addressable(si->memmap_paddr, (uint64_t)n * sizeof(*out))) {
		fail(name, "memmap at 0x%llx not addressable", si->memmap_paddr);
		return -1;
	}
	memcpy(out, (const void *)(uintptr_t)si->memmap_paddr, n * sizeof(*out));
	return (int)n;
}

void memmap_print(const struct hvm_memmap_table_entry *e, int n)
{
	for (int i = 0; i < n; i++)
		printf("memmap: %016llx-%016llx %u\n", e[i].addr, e[i].addr + e[i].size,
		       e[i].type);
}

const char *cmdline_get(const struct hvm_start_info *si)
{
	if (!addressable(si->cmdline_paddr, 1))
		return NULL;
	return (const char *)(uintptr_t)si->cmdline_paddr;
}

size_t cmdline_print(const char *s)
{
	static const char hexdig[] = "0123456789abcdef";
	size_t n = 0;

	print("cmdline: ");
	/* Do not read past 4 GiB even if the string is not terminated. */
	size_t bound = CMDLINE_BOUND;
	if ((uint64_t)(uintptr_t)s + bound > FOUR_GIB)
		bound = (size_t)(FOUR_GIB - (uintptr_t)s);
	for (; n < bound && s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (c >= 0x20 && c < 0x7f && c != '\\') {
			serial_putc((char)c);
		} else {
			serial_putc('\\');
			serial_putc('x');
			serial_putc(hexdig[c >> 4]);
			serial_putc(hexdig[c & 0xf]);
		}
	}
	serial_putc('\n');
	return n;
}

/* ---- Ending the run -------------------------------------------------------- */

void halt(void)
{
	for (;;)
		__asm__ volatile("cli; hlt" ::: "memory");
}

void reset(void)
{
	outb(I8042_STATUS, I8042_CMD_RESET);
	/* A VMM may act on the reset a little after the OUT completes: give it
	 * a short, bounded moment before giving up. */
	for (volatile int i = 0; i < 2000; i++)
		;
	halt();
}

void crash(void)
{
	static const struct __attribute__((packed)) {
		uint16_t limit;
		uint32_t base;
	} null_idt = { 0, 0 };

	/* #UD cannot be delivered through a zero-limit IDT: #GP, then #DF, then
	 * shutdown (triple fault).  ud2 rather than int3: the emulator here
	 * cannot run int3. */
	__asm__ volatile("cli; lidt %0; ud2" : : "m"(null_idt) : "memory");
	halt();
}

/* ---- C entry from start.S -------------------------------------------------- */

__attribute__((noreturn)) void cstart(struct hvm_start_info *si);

void cstart(struct hvm_start_info *si)
{
	serial_init();
	main(si);
	reset();
}
