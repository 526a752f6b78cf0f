/*
 * vblk_hostile: break the virtio rules against the FIRST virtio-blk device on
 * the command line, then show that the SECOND one still works and that the
 * first recovers after a reset.  The attack is chosen by "vblk.attack=NAME":
 *
 *   loop                  descriptor whose next points back at itself
 *   outside-ram           data buffer at the first address above RAM
 *   wrap                  data buffer addr 0xfffffffffffff000 len 0x2000
 *   long-chain            queue_size+1 descriptors (indirect table if
 *                         negotiated, else next pointers cycling the ring)
 *   writable-header       header descriptor flagged WRITE
 *   no-status             chain ends with a device-readable descriptor
 *   indirect-in-indirect  an indirect descriptor inside an indirect table
 *   rings-in-hole         QueueDesc = the device's own MMIO window
 *   bad-queue-size        QueueNum = 3
 *   reset-mid-io          Status=0 right after the notify, then re-init
 *   notify-data           a normal read notified with QueueNotify 0x10000
 *                         (data bits without VIRTIO_F_NOTIFICATION_DATA):
 *                         no ioeventfd matches it, so it reaches the VMM on
 *                         the vCPU thread; it must be served (or refused),
 *                         never kill the VMM
 *
 * "vblk.no_indirect=1" / "vblk.no_event_idx=1" decline those features
 * (long-chain then cycles next pointers; indirect-in-indirect FAILs).
 *
 * Both disks must hold the image pattern (README.md); the attacks write
 * nothing (every malformed request is a read, or a write of the pattern
 * that is already there).
 */
#include "virtio.h"

#define NAME "vblk-hostile"

static struct vdev devs[VIRTIO_MAX_DEVS];
static uint64_t want;           /* features to accept if offered */
static struct hvm_memmap_table_entry map[MEMMAP_MAX];
static uint64_t ram_top;        /* end of the highest type-1 memmap entry */

static bool strcmp_eq(const char *a, const char *b)
{
	size_t n = strlen(b);
	return strlen(a) == n && memcmp(a, b, n) == 0;
}

/* out = p + s, truncated to n-1 bytes. */
static void strcpy_cat(char *out, size_t n, const char *p, const char *s)
{
	size_t k = 0;
	for (; *p && k + 1 < n; p++)
		out[k++] = *p;
	for (; *s && k + 1 < n; s++)
		out[k++] = *s;
	out[k] = 0;
}

enum outcome_kind { O_DONE, O_REFUSED, O_WAIT_ERR, O_SKIP, O_SERVED };

struct outcome {
	enum outcome_kind kind;
	int r;                  /* O_DONE: status byte; O_WAIT_ERR: VQ_*; O_REFUSED: QueueReady */
};

static void hdr(struct vdev *d, uint32_t type, uint64_t sector)
{
	struct virtio_blk_req_hdr *h = (struct virtio_blk_req_hdr *)d->mem->s.hdr;
	h->type = type;
	h->reserved = 0;
	h->sector = sector;
	d->mem->s.status[0] = VBLK_STATUS_UNTOUCHED;
}

static void desc(volatile struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len,
		 uint16_t flags, uint16_t next)
{
	t[i].addr = addr;
	t[i].len = len;
	t[i].flags = flags;
	t[i].next = next;
}

#define HDR(d)    ((uintptr_t)(d)->mem->s.hdr)
#define STATUS(d) ((uintptr_t)(d)->mem->s.status)
#define DATA(d)   ((uintptr_t)(d)->mem->data)
#define F_N  VIRTQ_DESC_F_NEXT
#define F_W  VIRTQ_DESC_F_WRITE
#define F_I  VIRTQ_DESC_F_INDIRECT

/* Publishes head 0 and waits (bounded). */
static struct outcome submit(struct vdev *d)
{
	uint32_t id, len;
	vq_publish(d, 0);
	int r = vq_wait(d, &id, &len);
	if (r < 0)
		return (struct outcome){ O_WAIT_ERR, r };
	printf("vblk: completion id %u len %u\n", id, len);
	vbarrier();
	return (struct outcome){ O_DONE, d->mem->s.status[0] };
}

static bool need(struct vdev *d, int feature, const char *what)
{
	if (d->features & VBIT(feature))
		return true;
	fail(NAME, "%s needs %s, not negotiated (offered 0x%llx, accepted 0x%llx)", what,
	     feature == VIRTIO_F_INDIRECT_DESC ? "INDIRECT_DESC" : "?", d->dev_features,
	     d->features);
	return false;
}

/* A normal read of sectors 0..7 into t[first..first+2]. */
static void normal_read(struct vdev *d, volatile struct virtq_desc *t, unsigned first)
{
	hdr(d, VIRTIO_BLK_T_IN, 0);
	desc(t, first, HDR(d), 16, F_N, (uint16_t)(first + 1));
	desc(t, first + 1, DATA(d), 4096, F_W | F_N, (uint16_t)(first + 2));
	desc(t, first + 2, STATUS(d), 1, F_W, 0);
}

static struct outcome attack(struct vdev *d, const char *a)
{
	volatile struct virtq_desc *t;
	volatile struct virtq_desc *ind = d->mem->s.ind, *ind2 = d->mem->s.ind2;
	uint16_t q;

	if (!strcmp_eq(a, "rings-in-hole") && !strcmp_eq(a, "bad-queue-size")) {
		if (!virtio_init(d, want, NAME))
			return (struct outcome){ O_SKIP, 0 };
	} else if (!virtio_negotiate(d, want, NAME)) {
		return (struct outcome){ O_SKIP, 0 };
	}
	t = d->desc;            /* set by the queue set-up above */
	q = d->qsize;

	if (strcmp_eq(a, "loop")) {
		hdr(d, VIRTIO_BLK_T_IN, 0);
		desc(t, 0, HDR(d), 16, F_N, 1);
		desc(t, 1, DATA(d), 512, F_W | F_N, 1);         /* next = itself */
		return submit(d);
	}
	if (strcmp_eq(a, "outside-ram")) {
		printf("vblk: data buffer at 0x%llx (top of RAM)\n", ram_top);
		hdr(d, VIRTIO_BLK_T_IN, 0);
		desc(t, 0, HDR(d), 16, F_N, 1);
		desc(t, 1, ram_top, 4096, F_W | F_N, 2);
		desc(t, 2, STATUS(d), 1, F_W, 0);
		return submit(d);
	}
	if (strcmp_eq(a, "wrap")) {
		hdr(d, VIRTIO_BLK_T_IN, 0);
		desc(t, 0, HDR(d), 16, F_N, 1);
		desc(t, 1, 0xfffffffffffff000ull, 0x2000, F_W | F_N, 2);
		desc(t, 2, STATUS(d), 1, F_W, 0);
		return submit(d);
	}
	if (strcmp_eq(a, "long-chain")) {
		hdr(d, VIRTIO_BLK_T_IN, 0);
		if (d->features & VBIT(VIRTIO_F_INDIRECT_DESC)) {
			/* header, q-1 data descriptors of 512 bytes, status: q+1. */
			printf("vblk: long-chain: indirect table of %u descriptors (queue size %u)\n",
			       q + 1, q);
			desc(ind, 0, HDR(d), 16, F_N, 1);
			for (unsigned i = 1; i < q; i++)
				desc(ind, i, DATA(d) + (i - 1) * 512u, 512, F_W | F_N, (uint16_t)(i + 1));
			desc(ind, q, STATUS(d), 1, F_W, 0);
			desc(t, 0, (uintptr_t)ind, (q + 1u) * 16u, F_I, 0);
		} else {
			/* 0 -> 1 -> ... -> q-1 -> 1 -> ...: longer than the queue
			 * without breaking the readable-before-writable order. */
			printf("vblk: long-chain: next pointers cycling %u descriptors\n", q);
			desc(t, 0, HDR(d), 16, F_N, 1);
			for (unsigned i = 1; i < q; i++)
				desc(t, i, DATA(d) + (i - 1) * 512u, 512, F_W | F_N,
				     (uint16_t)(i + 1 < q ? i + 1 : 1));
		}
		return submit(d);
	}
	if (strcmp_eq(a, "writable-header")) {
		normal_read(d, t, 0);
		t[0].flags = F_W | F_N;
		return submit(d);
	}
	if (strcmp_eq(a, "no-status")) {
		/* A write of sector 0's own pattern: harmless if it were done. */
		vblk_fill(d->mem->data, 0, 1, vblk_image_byte);
		hdr(d, VIRTIO_BLK_T_OUT, 0);
		desc(t, 0, HDR(d), 16, F_N, 1);
		desc(t, 1, DATA(d), 512, 0, 0);                 /* readable, last */
		return submit(d);
	}
	if (strcmp_eq(a, "indirect-in-indirect")) {
		if (!need(d, VIRTIO_F_INDIRECT_DESC, a))
			return (struct outcome){ O_SKIP, 0 };
		normal_read(d, ind2, 0);
		desc(ind, 0, (uintptr_t)ind2, 3 * 16, F_I, 0);
		desc(t, 0, (uintptr_t)ind, 16, F_I, 0);
		return submit(d);
	}
	if (strcmp_eq(a, "rings-in-hole") || strcmp_eq(a, "bad-queue-size")) {
		bool hole = strcmp_eq(a, "rings-in-hole");
		uint32_t ready = hole ? virtio_queue_setup(d, 0, d->base, 0, 0, NAME)
				      : virtio_queue_setup(d, 3, 0, 0, 0, NAME);
		uint32_t st = vio_status(d);
		printf("vblk: %s: QueueReady reads %u, Status 0x%x\n", a, ready, st);
		if (ready != 1 || (st & VIRTIO_S_NEEDS_RESET))
			return (struct outcome){ O_REFUSED, (int)ready };
		/* Accepted: go on and use it. */
		virtio_driver_ok(d);
		normal_read(d, d->desc, 0);
		return submit(d);
	}
	if (strcmp_eq(a, "notify-data")) {
		normal_read(d, d->desc, 0);
		uint16_t old = d->avail_idx;
		d->avail->ring[old % d->qsize] = 0;
		vbarrier();
		d->avail->idx = (uint16_t)(old + 1);
		d->avail_idx = (uint16_t)(old + 1);
		vfence();
		vio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0x10000);
		uint32_t id, len;
		int r = vq_wait(d, &id, &len);
		if (r < 0)
			return (struct outcome){ O_WAIT_ERR, r };
		printf("vblk: completion id %u len %u\n", id, len);
		vbarrier();
		return (struct outcome){ O_SERVED, d->mem->s.status[0] };
	}
	fail(NAME, "unknown vblk.attack '%s'", a);
	return (struct outcome){ O_SKIP, 0 };
}

/* Reads sectors 0..7 on a working device and checks the pattern. */
static bool good_read(struct vdev *d, const char *name)
{
	memset(d->mem->data, 0xcc, 4096);
	int r = vblk_request(d, VIRTIO_BLK_T_IN, 0, d->mem->data, 4096, true, false, NULL);
	if (r != VIRTIO_BLK_S_OK) {
		if (r < 0)
			fail(name, "read sectors 0-7: %s (Status 0x%x)", vq_strerror(r),
			     vio_status(d));
		else
			fail(name, "read sectors 0-7: status %d", r);
		return false;
	}
	return vblk_check(d->mem->data, 0, 8, vblk_image_byte, name);
}

static void reset_mid_io(struct vdev *a)
{
	const char *n = "vblk-hostile-reset-mid-io";
	if (!virtio_init(a, want, NAME))
		return;
	normal_read(a, a->desc, 0);
	vq_publish(a, 0);
	vio_write(a, VIRTIO_MMIO_STATUS, 0);            /* no wait for the completion */
	bool zero = false;
	for (int i = 0; i < 1000 && !zero; i++)
		zero = vio_status(a) == 0;
	printf("vblk: status after reset-mid-io = 0x%02x\n", vio_status(a));
	if (!zero) {
		fail(n, "Status does not read 0 after the reset");
		return;
	}
	if (!virtio_init(a, want, n))
		return;
	/* A request from before the reset must not complete into the new rings. */
	for (int i = 0; i < 2000; i++) {
		if (a->used->idx != 0) {
			fail(n, "used idx %u after re-init, before any new request", a->used->idx);
			return;
		}
		(void)vio_status(a);
	}
	if (!good_read(a, n))
		return;
	if (a->used->idx != 1) {
		fail(n, "used idx %u after one request on the new queue", a->used->idx);
		return;
	}
	pass(n);
}

void main(struct hvm_start_info *si)
{
	char a[40], pname[96];

	puts("govmm vblk hostile test");
	if (!start_info_ok(si, NAME))
		return;
	const char *cmdline = cmdline_get(si);
	if (!cmdline) {
		fail(NAME, "no command line");
		return;
	}
	if (!cmdline_value(cmdline, "vblk.attack=", a, sizeof(a)) || !a[0]) {
		fail(NAME, "no vblk.attack=NAME on the command line");
		return;
	}
	want = vblk_want(cmdline);
	int nm = memmap_copy(si, map, NAME);
	if (nm < 0)
		return;
	for (int i = 0; i < nm; i++)
		if (map[i].type == XEN_HVM_MEMMAP_TYPE_RAM && map[i].addr + map[i].size > ram_top)
			ram_top = map[i].addr + map[i].size;

	int n = virtio_find(cmdline, VIRTIO_ID_BLOCK, devs, VIRTIO_MAX_DEVS);
	if (n < 2) {
		fail(NAME, "need two virtio-blk devices, found %d", n);
		return;
	}
	struct vdev *bad = &devs[0], *good = &devs[1];
	printf("vblk: attack %s on device at 0x%08x, healthy device at 0x%08x\n", a,
	       (unsigned)bad->base, (unsigned)good->base);
	if (!virtio_init(good, want, NAME))
		return;

	if (strcmp_eq(a, "reset-mid-io")) {
		reset_mid_io(bad);
	} else {
		struct outcome o = attack(bad, a);
		if (o.kind == O_SKIP)
			return;
		uint32_t st = vio_status(bad);
		printf("vblk: status after %s = 0x%02x\n", a, st);
		bool ok = (st & VIRTIO_S_NEEDS_RESET) != 0;
		switch (o.kind) {
		case O_DONE:
			printf("vblk: %s: request completed, status byte %d\n", a, o.r);
			ok = ok || o.r != VIRTIO_BLK_S_OK;
			break;
		case O_REFUSED:
			printf("vblk: %s: queue refused\n", a);
			ok = true;
			break;
		case O_SERVED:
			/* A sloppy notification, not a broken ring: serving the
			 * request correctly is the right answer. */
			printf("vblk: %s: request served, status byte %d\n", a, o.r);
			ok = ok || o.r == VIRTIO_BLK_S_OK;
			break;
		default:
			printf("vblk: %s: %s\n", a, vq_strerror(o.r));
			break;
		}
		strcpy_cat(pname, sizeof(pname), "vblk-hostile-", a);
		if (ok)
			pass(pname);
		else
			fail(pname, "no DEVICE_NEEDS_RESET and no failed request (Status 0x%x)", st);
	}

	strcpy_cat(pname, sizeof(pname), "vblk-healthy-after-", a);
	if (good_read(good, pname))
		pass(pname);

	if (!strcmp_eq(a, "reset-mid-io")) {
		/* The attacked device must work again after a reset. */
		strcpy_cat(pname, sizeof(pname), "vblk-recover-after-", a);
		if (virtio_init(bad, want, pname) && good_read(bad, pname))
			pass(pname);
	}
}
