/*
 * vblk: drive the first virtio-blk device named on the command line
 * (virtio_mmio.device=...) and check reads, writes + FLUSH, out-of-range
 * reads, GET_ID, unsupported requests, and (by command-line word) a
 * read-only disk or a durability run.  See README.md for the image patterns.
 *
 *   vblk.expect_ro=1    the disk is read-only: skip the write test, expect RO
 *                       offered and writes answered with IOERR
 *   vblk.durable=1      after the checks, write sectors 32..39, FLUSH, print
 *                       "vblk: durable-flushed" and spin (the host kills us)
 *   vblk.expect_id=S    GET_ID must return exactly S
 *   vblk.no_indirect=1, vblk.no_event_idx=1   do not accept those features
 */
#include "virtio.h"

#define NAME "vblk"

static struct vdev devs[VIRTIO_MAX_DEVS];
static uint64_t want;           /* features to accept if offered */

/* One request with a FAIL line on anything but want. */
static bool req(struct vdev *d, const char *name, const char *what, uint32_t type,
		uint64_t sector, void *buf, uint32_t len, bool dev_writes, bool indirect,
		int want)
{
	int r = vblk_request(d, type, sector, buf, len, dev_writes, indirect, NULL);
	if (r == want)
		return true;
	if (r < 0)
		fail(name, "%s (type %u sector %llu len %u): %s (Status 0x%x)", what, type, sector,
		     len, vq_strerror(r), vio_status(d));
	else
		fail(name, "%s (type %u sector %llu len %u): status %d, want %d", what, type,
		     sector, len, r, want);
	return false;
}

static void test_read(struct vdev *d)
{
	uint8_t *buf = d->mem->data;
	memset(buf, 0xcc, 4096);
	if (!req(d, "vblk-read", "read sectors 0-7", VIRTIO_BLK_T_IN, 0, buf, 4096, true,
		 false, VIRTIO_BLK_S_OK))
		return;
	if (vblk_check(buf, 0, 8, vblk_image_byte, "vblk-read"))
		pass("vblk-read");
}

static void test_write_flush(struct vdev *d)
{
	const char *n = "vblk-write-flush";
	uint8_t *buf = d->mem->data;
	bool ind = (d->features & VBIT(VIRTIO_F_INDIRECT_DESC)) != 0;

	if (!(d->features & VBIT(VIRTIO_BLK_F_FLUSH))) {
		fail(n, "VIRTIO_BLK_F_FLUSH not offered (features 0x%llx)", d->dev_features);
		return;
	}
	vblk_fill(buf, 16, 8, vblk_write_byte);
	/* The write and the read-back go through an indirect table when
	 * INDIRECT_DESC is negotiated, the other requests use direct chains. */
	if (!req(d, n, "write sectors 16-23", VIRTIO_BLK_T_OUT, 16, buf, 4096, false, ind,
		 VIRTIO_BLK_S_OK))
		return;
	if (!req(d, n, "flush", VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false, false, VIRTIO_BLK_S_OK))
		return;
	memset(buf, 0xcc, 4096);
	if (!req(d, n, "read back sectors 16-23", VIRTIO_BLK_T_IN, 16, buf, 4096, true, ind,
		 VIRTIO_BLK_S_OK))
		return;
	if (!vblk_check(buf, 16, 8, vblk_write_byte, n))
		return;
	pass(n);
	puts("vblk: wrote sectors 16-23");
}

static void test_past_end(struct vdev *d, uint64_t cap)
{
	const char *n = "vblk-read-past-end";
	uint8_t *buf = d->mem->data;

	if (!req(d, n, "read 1 sector at capacity", VIRTIO_BLK_T_IN, cap, buf, 512, true, false,
		 VIRTIO_BLK_S_IOERR))
		return;
	if (!req(d, n, "read 2 sectors at capacity-1", VIRTIO_BLK_T_IN, cap - 1, buf, 1024, true,
		 false, VIRTIO_BLK_S_IOERR))
		return;
	/* sector * 512 and sector + count both wrap 2^64. */
	if (!req(d, n, "read 1 sector at 2^64-1", VIRTIO_BLK_T_IN, ~0ull, buf, 512, true, false,
		 VIRTIO_BLK_S_IOERR))
		return;
	if (!req(d, n, "read 1 sector at 2^55", VIRTIO_BLK_T_IN, 1ull << 55, buf, 512, true,
		 false, VIRTIO_BLK_S_IOERR))
		return;
	pass(n);
}

static void test_get_id(struct vdev *d, const char *cmdline)
{
	const char *n = "vblk-get-id";
	uint8_t *id = d->mem->s.id;
	char expect[VIRTIO_BLK_ID_BYTES + 2];

	memset(id, 0, 64);
	if (!req(d, n, "GET_ID", VIRTIO_BLK_T_GET_ID, 0, id, VIRTIO_BLK_ID_BYTES, true, false,
		 VIRTIO_BLK_S_OK))
		return;
	for (int i = VIRTIO_BLK_ID_BYTES; i < 64; i++) {
		if (id[i]) {
			fail(n, "device wrote byte %d of the id buffer (only 20 are writable)", i);
			return;
		}
	}
	/* The id is NUL-padded and need not be NUL-terminated when 20 long. */
	size_t len = strnlen((const char *)id, VIRTIO_BLK_ID_BYTES);
	print("vblk: id ");
	for (size_t i = 0; i < len; i++) {
		char c = (char)id[i];
		if (c >= 0x21 && c < 0x7f && c != '\\')
			serial_putc(c);
		else
			printf("\\x%02x", (unsigned)(uint8_t)c);
	}
	serial_putc('\n');
	if (cmdline_value(cmdline, "vblk.expect_id=", expect, sizeof(expect))) {
		if (strlen(expect) != len || memcmp(expect, id, len) != 0) {
			fail(n, "id is not '%s'", expect);
			return;
		}
	}
	pass(n);
}

static void test_unsupp(struct vdev *d)
{
	if (req(d, "vblk-unsupp", "request type 0x7f", 0x7f, 0, NULL, 0, false, false,
		VIRTIO_BLK_S_UNSUPP))
		pass("vblk-unsupp");
}

static void test_readonly(struct vdev *d)
{
	const char *n = "vblk-readonly";
	uint8_t *buf = d->mem->data;

	if (!(d->dev_features & VBIT(VIRTIO_BLK_F_RO))) {
		fail(n, "VIRTIO_BLK_F_RO not offered (features 0x%llx)", d->dev_features);
		return;
	}
	vblk_fill(buf, 16, 1, vblk_write_byte);
	if (!req(d, n, "write sector 16 on a read-only disk", VIRTIO_BLK_T_OUT, 16, buf, 512,
		 false, false, VIRTIO_BLK_S_IOERR))
		return;
	memset(buf, 0xcc, 512);
	if (!req(d, n, "read sector 16", VIRTIO_BLK_T_IN, 16, buf, 512, true, false,
		 VIRTIO_BLK_S_OK))
		return;
	if (vblk_check(buf, 16, 1, vblk_image_byte, n))
		pass(n);
}

static void durable(struct vdev *d)
{
	const char *n = "vblk-durable";
	uint8_t *buf = d->mem->data;

	vblk_fill(buf, 32, 8, vblk_durable_byte);
	if (!req(d, n, "write sectors 32-39", VIRTIO_BLK_T_OUT, 32, buf, 4096, false, false,
		 VIRTIO_BLK_S_OK))
		return;
	if (!req(d, n, "flush", VIRTIO_BLK_T_FLUSH, 0, NULL, 0, false, false, VIRTIO_BLK_S_OK))
		return;
	puts("vblk: durable-flushed");
	/* Spin (not hlt: a VMM may end the run on a halted vCPU). */
	for (;;)
		__asm__ volatile("" ::: "memory");
}

static void test_bad_len(struct vdev *d)
{
	/* A data length that is not a multiple of 512: IOERR, not a crash. */
	if (req(d, "vblk-bad-len", "read with 100 data bytes", VIRTIO_BLK_T_IN, 0,
		d->mem->data, 100, true, false, VIRTIO_BLK_S_IOERR))
		pass("vblk-bad-len");
}

void main(struct hvm_start_info *si)
{
	puts("govmm vblk test");
	if (!start_info_ok(si, NAME))
		return;
	const char *cmdline = cmdline_get(si);
	if (!cmdline) {
		fail(NAME, "no command line");
		return;
	}
	int n = virtio_find(cmdline, VIRTIO_ID_BLOCK, devs, VIRTIO_MAX_DEVS);
	if (n == 0) {
		fail(NAME, "no virtio-blk device on the command line");
		return;
	}
	struct vdev *d = &devs[0];
	want = vblk_want(cmdline);
	if (!virtio_init(d, want, NAME))
		return;
	uint64_t cap = vblk_capacity(d);
	printf("vblk: device at 0x%08x irq %u: capacity %llu sectors, features offered "
	       "0x%llx negotiated 0x%llx, queue size %u\n", (unsigned)d->base, d->irq, cap,
	       d->dev_features, d->features, d->qsize);
	if (d->features & VBIT(VIRTIO_BLK_F_BLK_SIZE))
		printf("vblk: blk_size %u\n", vio_cfg32(d, 20));
	if (d->features & VBIT(VIRTIO_BLK_F_SEG_MAX))
		printf("vblk: seg_max %u\n", vio_cfg32(d, 12));
	if (cap < 40) {
		fail(NAME, "capacity %llu sectors, need at least 40", cap);
		return;
	}
	bool ro = cmdline_has_word(cmdline, "vblk.expect_ro=1");

	test_read(d);
	if (!ro)
		test_write_flush(d);
	test_past_end(d, cap);
	test_get_id(d, cmdline);
	test_unsupp(d);
	if (ro)
		test_readonly(d);
	else if (d->dev_features & VBIT(VIRTIO_BLK_F_RO))
		fail(NAME, "VIRTIO_BLK_F_RO offered without vblk.expect_ro=1");
	if (!ro && cmdline_has_word(cmdline, "vblk.durable=1"))
		durable(d);             /* does not return on success */
	test_bad_len(d);
	printf("vblk: done, Status 0x%x\n", vio_status(d));
}
