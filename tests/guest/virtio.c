/*
 * govmm guest runtime: polled virtio-mmio v2 driver and virtio-blk helpers.
 * See virtio.h.  Written from the virtio 1.2 specification.
 */
#include "virtio.h"

#define FOUR_GIB 0x100000000ull

static struct vdev_mem vmem[VIRTIO_MAX_DEVS];

/* ---- Command line -------------------------------------------------------- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Bytes of the command line we may read: CMDLINE_BOUND, never past 4 GiB. */
static size_t cmdline_len(const char *s)
{
	size_t bound = CMDLINE_BOUND;
	if ((uint64_t)(uintptr_t)s + bound > FOUR_GIB)
		bound = (size_t)(FOUR_GIB - (uintptr_t)s);
	return strnlen(s, bound);
}

/* Calls fn(word, len, arg) for every blank-separated word; stops early if
 * fn returns false. */
static void for_each_word(const char *s, bool (*fn)(const char *, size_t, void *), void *arg)
{
	size_t n = cmdline_len(s), i = 0;
	while (i < n) {
		while (i < n && is_space(s[i]))
			i++;
		size_t start = i;
		while (i < n && !is_space(s[i]))
			i++;
		if (i > start && !fn(s + start, i - start, arg))
			return;
	}
}

static bool has_prefix(const char *w, size_t len, const char *p)
{
	size_t pl = strlen(p);
	return len >= pl && memcmp(w, p, pl) == 0;
}

/* Parses a decimal or 0x-hex number from [*p, end).  At most 2^60-1. */
static bool parse_num(const char **p, const char *end, uint64_t *out, bool allow_hex)
{
	const char *q = *p;
	uint64_t v = 0;
	int digits = 0;
	unsigned base = 10;

	if (allow_hex && end - q > 2 && q[0] == '0' && (q[1] == 'x' || q[1] == 'X')) {
		base = 16;
		q += 2;
	}
	for (; q < end; q++) {
		unsigned dv;
		char c = *q;
		if (c >= '0' && c <= '9')
			dv = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			dv = (unsigned)(c - 'a' + 10);
		else if (base == 16 && c >= 'A' && c <= 'F')
			dv = (unsigned)(c - 'A' + 10);
		else
			break;
		if (v >> 56)
			return false;           /* would overflow 2^60 */
		v = v * base + dv;
		digits++;
	}
	if (digits == 0)
		return false;
	*out = v;
	*p = q;
	return true;
}

struct parse_ctx {
	struct virtio_mmio_loc *out;
	int max, n;
};

static void bad_entry(const char *w, size_t len, const char *why)
{
	print("virtio: bad virtio_mmio.device entry '");
	for (size_t i = 0; i < len && i < 80; i++) {
		char c = w[i];
		serial_putc(c >= 0x20 && c < 0x7f ? c : '?');
	}
	printf("': %s\n", why);
}

static bool parse_word(const char *w, size_t len, void *arg)
{
	static const char key[] = "virtio_mmio.device=";
	struct parse_ctx *c = arg;
	const char *p = w + sizeof(key) - 1, *end = w + len;
	uint64_t size, base, irq;

	if (!has_prefix(w, len, key))
		return true;
	if (!parse_num(&p, end, &size, true)) {
		bad_entry(w, len, "size");
		return true;
	}
	if (p < end && (*p == 'K' || *p == 'k' || *p == 'M' || *p == 'm' || *p == 'G' ||
			*p == 'g')) {
		unsigned sh = (*p == 'K' || *p == 'k') ? 10 : (*p == 'M' || *p == 'm') ? 20 : 30;
		if (size >> (64 - sh)) {
			bad_entry(w, len, "size overflows");
			return true;
		}
		size <<= sh;
		p++;
	}
	if (p >= end || *p++ != '@' || !parse_num(&p, end, &base, true)) {
		bad_entry(w, len, "base");
		return true;
	}
	if (p >= end || *p++ != ':' || !parse_num(&p, end, &irq, false) || irq > 0xffffffffu) {
		bad_entry(w, len, "irq");
		return true;
	}
	if (p < end && *p != ':') {     /* an optional ":<first id>" may follow */
		bad_entry(w, len, "trailing characters");
		return true;
	}
	if (size < 0x100 + 8 || base >= FOUR_GIB || size > FOUR_GIB - base || (base & 3)) {
		bad_entry(w, len, "window unusable by a 32-bit guest");
		return true;
	}
	if (c->n < c->max) {
		c->out[c->n].size = size;
		c->out[c->n].base = base;
		c->out[c->n].irq = (uint32_t)irq;
		c->n++;
	}
	return c->n < c->max;
}

int virtio_parse_cmdline(const char *cmdline, struct virtio_mmio_loc *out, int max)
{
	struct parse_ctx c = { out, max, 0 };
	if (cmdline && max > 0)
		for_each_word(cmdline, parse_word, &c);
	return c.n;
}

struct word_ctx {
	const char *key;
	bool exact, found;
	char *buf;
	size_t n;
};

static bool match_word(const char *w, size_t len, void *arg)
{
	struct word_ctx *c = arg;
	size_t kl = strlen(c->key);
	if (c->exact ? (len != kl || memcmp(w, c->key, kl) != 0) : !has_prefix(w, len, c->key))
		return true;
	c->found = true;
	if (c->buf && c->n) {
		size_t vl = len - kl;
		if (vl > c->n - 1)
			vl = c->n - 1;
		memcpy(c->buf, w + kl, vl);
		c->buf[vl] = 0;
	}
	return false;
}

bool cmdline_has_word(const char *cmdline, const char *w)
{
	struct word_ctx c = { w, true, false, NULL, 0 };
	if (cmdline)
		for_each_word(cmdline, match_word, &c);
	return c.found;
}

bool cmdline_value(const char *cmdline, const char *key, char *buf, size_t n)
{
	struct word_ctx c = { key, false, false, buf, n };
	if (cmdline)
		for_each_word(cmdline, match_word, &c);
	return c.found;
}

/* ---- Discovery ------------------------------------------------------------- */

int virtio_find(const char *cmdline, uint32_t devid, struct vdev *out, int max)
{
	struct virtio_mmio_loc loc[VIRTIO_MAX_DEVS];
	int n = virtio_parse_cmdline(cmdline, loc, VIRTIO_MAX_DEVS), k = 0;

	printf("virtio: %d virtio_mmio.device entries\n", n);
	for (int i = 0; i < n && k < max && k < VIRTIO_MAX_DEVS; i++) {
		struct vdev *d = &out[k];
		memset(d, 0, sizeof(*d));
		d->base = (uintptr_t)loc[i].base;
		d->irq = loc[i].irq;
		d->slot = i;
		uint32_t magic = vio_read(d, VIRTIO_MMIO_MAGIC);
		uint32_t ver = vio_read(d, VIRTIO_MMIO_VERSION);
		d->device_id = vio_read(d, VIRTIO_MMIO_DEVICE_ID);
		d->vendor_id = vio_read(d, VIRTIO_MMIO_VENDOR_ID);
		printf("virtio: slot %d at 0x%08x irq %u: magic 0x%08x version %u device %u "
		       "vendor 0x%08x\n", i, (unsigned)d->base, d->irq, magic, ver, d->device_id,
		       d->vendor_id);
		if (magic != VIRTIO_MMIO_MAGIC_VALUE || ver != 2 || d->device_id != devid)
			continue;
		d->mem = &vmem[k];
		k++;
	}
	return k;
}

/* ---- Registers ----------------------------------------------------------- */

uint64_t vio_cfg64(const struct vdev *d, uint32_t off)
{
	uint32_t lo = 0, hi = 0;
	for (int tries = 0; tries < 16; tries++) {
		uint32_t g = vio_read(d, VIRTIO_MMIO_CONFIG_GEN);
		lo = vio_cfg32(d, off);
		hi = vio_cfg32(d, off + 4);
		if (vio_read(d, VIRTIO_MMIO_CONFIG_GEN) == g)
			break;
	}
	return ((uint64_t)hi << 32) | lo;
}

/* ---- Initialization (§3.1.1, §4.2.3) ------------------------------------ */

bool virtio_reset(struct vdev *d)
{
	vio_write(d, VIRTIO_MMIO_STATUS, 0);
	for (int i = 0; i < 1000; i++)
		if (vio_status(d) == 0)
			return true;
	return false;
}

static void set_failed(struct vdev *d)
{
	vio_write(d, VIRTIO_MMIO_STATUS, vio_status(d) | VIRTIO_S_FAILED);
}

bool virtio_negotiate(struct vdev *d, uint64_t want, const char *name)
{
	uint32_t s = VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER;

	if (!virtio_reset(d)) {
		fail(name, "device at 0x%08x: Status reads 0x%x after reset, want 0",
		     (unsigned)d->base, vio_status(d));
		return false;
	}
	vio_write(d, VIRTIO_MMIO_STATUS, VIRTIO_S_ACKNOWLEDGE);
	vio_write(d, VIRTIO_MMIO_STATUS, s);

	vio_write(d, VIRTIO_MMIO_DEVICE_FEAT_SEL, 0);
	uint32_t lo = vio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
	vio_write(d, VIRTIO_MMIO_DEVICE_FEAT_SEL, 1);
	uint32_t hi = vio_read(d, VIRTIO_MMIO_DEVICE_FEATURES);
	d->dev_features = ((uint64_t)hi << 32) | lo;
	if (!(d->dev_features & VBIT(VIRTIO_F_VERSION_1))) {
		fail(name, "device at 0x%08x does not offer VERSION_1 (features 0x%llx)",
		     (unsigned)d->base, d->dev_features);
		set_failed(d);
		return false;
	}
	d->features = want & d->dev_features;
	vio_write(d, VIRTIO_MMIO_DRIVER_FEAT_SEL, 0);
	vio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)d->features);
	vio_write(d, VIRTIO_MMIO_DRIVER_FEAT_SEL, 1);
	vio_write(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));

	s |= VIRTIO_S_FEATURES_OK;
	vio_write(d, VIRTIO_MMIO_STATUS, s);
	uint32_t got = vio_status(d);
	if (!(got & VIRTIO_S_FEATURES_OK)) {
		fail(name, "device at 0x%08x refused features 0x%llx (Status 0x%x)",
		     (unsigned)d->base, d->features, got);
		set_failed(d);
		return false;
	}
	return true;
}

uint32_t virtio_queue_setup(struct vdev *d, uint16_t qsize, uint64_t desc, uint64_t drv,
			    uint64_t dev, const char *name)
{
	uint8_t *ring = d->mem->ring;

	vio_write(d, VIRTIO_MMIO_QUEUE_SEL, 0);
	if (vio_read(d, VIRTIO_MMIO_QUEUE_READY) != 0) {
		fail(name, "QueueReady is already set before set-up");
		return 0;
	}
	uint32_t max = vio_read(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
	if (max == 0) {
		fail(name, "queue 0 not available (QueueNumMax 0)");
		return 0;
	}
	if (qsize == 0) {
		qsize = VQ_MAX_SIZE;
		while (qsize > max)
			qsize >>= 1;
	}
	if (qsize > VQ_MAX_SIZE) {
		fail(name, "internal: queue size %u above %u", qsize, VQ_MAX_SIZE);
		return 0;
	}
	memset(ring, 0, sizeof(d->mem->ring));
	d->qsize = qsize;
	d->desc = (volatile struct virtq_desc *)(ring + VQ_RING_DESC_OFF);
	d->avail = (volatile struct virtq_avail *)(ring + VQ_RING_AVAIL_OFF);
	d->used = (volatile struct virtq_used *)(ring + VQ_RING_USED_OFF);
	d->avail_idx = d->used_idx = 0;
	d->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
	if (!desc)
		desc = (uintptr_t)d->desc;
	if (!drv)
		drv = (uintptr_t)d->avail;
	if (!dev)
		dev = (uintptr_t)d->used;
	vbarrier();

	vio_write(d, VIRTIO_MMIO_QUEUE_NUM, qsize);
	vio_write(d, VIRTIO_MMIO_QUEUE_DESC_LO, (uint32_t)desc);
	vio_write(d, VIRTIO_MMIO_QUEUE_DESC_HI, (uint32_t)(desc >> 32));
	vio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_LO, (uint32_t)drv);
	vio_write(d, VIRTIO_MMIO_QUEUE_DRIVER_HI, (uint32_t)(drv >> 32));
	vio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_LO, (uint32_t)dev);
	vio_write(d, VIRTIO_MMIO_QUEUE_DEVICE_HI, (uint32_t)(dev >> 32));
	vio_write(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return vio_read(d, VIRTIO_MMIO_QUEUE_READY);
}

void virtio_driver_ok(struct vdev *d)
{
	vio_write(d, VIRTIO_MMIO_STATUS, vio_status(d) | VIRTIO_S_DRIVER_OK);
}

bool virtio_init(struct vdev *d, uint64_t want, const char *name)
{
	if (!virtio_negotiate(d, want, name))
		return false;
	uint32_t ready = virtio_queue_setup(d, 0, 0, 0, 0, name);
	if (ready != 1) {
		fail(name, "device at 0x%08x: QueueReady reads %u after set-up (Status 0x%x)",
		     (unsigned)d->base, ready, vio_status(d));
		set_failed(d);
		return false;
	}
	virtio_driver_ok(d);
	uint32_t s = vio_status(d);
	if ((s & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)) || !(s & VIRTIO_S_DRIVER_OK)) {
		fail(name, "device at 0x%08x: Status 0x%x after DRIVER_OK", (unsigned)d->base, s);
		return false;
	}
	return true;
}

/* ---- Virtqueue ------------------------------------------------------------- */

void vq_publish(struct vdev *d, uint16_t head)
{
	uint16_t old = d->avail_idx, new = (uint16_t)(old + 1);

	d->avail->ring[old % d->qsize] = head;
	vbarrier();                     /* descriptors + ring entry before idx (TSO) */
	d->avail->idx = new;
	d->avail_idx = new;
	vfence();                       /* idx visible before we read avail_event */
	if (d->features & VBIT(VIRTIO_F_EVENT_IDX)) {
		volatile uint16_t *avail_event =
			(volatile uint16_t *)((uintptr_t)d->used + 4 + 8u * d->qsize);
		uint16_t ev = *avail_event;
		/* §2.7.10: notify iff ev lies in [old, new). */
		if ((uint16_t)(new - ev - 1) >= (uint16_t)(new - old))
			return;
	}
	vio_write(d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
}

int vq_wait(struct vdev *d, uint32_t *id, uint32_t *len)
{
	for (uint32_t i = 0; i < VQ_POLLS; i++) {
		uint16_t u = d->used->idx;
		if (u != d->used_idx) {
			vbarrier();     /* x86 keeps loads ordered; stop the compiler */
			if ((uint16_t)(u - d->used_idx) != 1) {
				d->used_idx = u;
				return VQ_BAD_USED;
			}
			volatile struct virtq_used_elem *e = &d->used->ring[d->used_idx % d->qsize];
			*id = e->id;
			*len = e->len;
			d->used_idx++;
			uint32_t isr = vio_read(d, VIRTIO_MMIO_INTERRUPT_STATUS);
			if (isr)
				vio_write(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
			return VQ_OK;
		}
		if (vio_status(d) & VIRTIO_S_NEEDS_RESET)
			return VQ_NEEDS_RESET;
	}
	return VQ_TIMEOUT;
}

const char *vq_strerror(int r)
{
	switch (r) {
	case VQ_OK: return "ok";
	case VQ_TIMEOUT: return "no completion (timeout)";
	case VQ_NEEDS_RESET: return "device set DEVICE_NEEDS_RESET";
	case VQ_BAD_USED: return "used idx jumped by more than one";
	case VQ_BAD_ID: return "used element id is not the published head";
	case VQ_BAD_LEN: return "used len larger than the writable buffers";
	default: return "?";
	}
}

/* ---- virtio-blk ------------------------------------------------------------ */

static void set_desc(volatile struct virtq_desc *t, unsigned i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	t[i].addr = addr;
	t[i].len = len;
	t[i].flags = flags;
	t[i].next = next;
}

uint32_t vblk_submit(struct vdev *d, uint32_t type, uint64_t sector, void *data, uint32_t len,
		     bool dev_writes, bool indirect)
{
	struct virtio_blk_req_hdr *h = (struct virtio_blk_req_hdr *)d->mem->s.hdr;
	volatile uint8_t *st = d->mem->s.status;
	volatile struct virtq_desc *t = indirect ? d->mem->s.ind : d->desc;
	uint32_t writable = 1;
	unsigned n = 0;

	if (indirect && !(d->features & VBIT(VIRTIO_F_INDIRECT_DESC)))
		indirect = false, t = d->desc;
	h->type = type;
	h->reserved = 0;
	h->sector = sector;
	*st = VBLK_STATUS_UNTOUCHED;

	set_desc(t, n, (uintptr_t)h, sizeof(*h), VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		set_desc(t, n, (uintptr_t)data, len,
			 VIRTQ_DESC_F_NEXT | (dev_writes ? VIRTQ_DESC_F_WRITE : 0), (uint16_t)(n + 1));
		n++;
		if (dev_writes)
			writable += len;
	}
	set_desc(t, n, (uintptr_t)st, 1, VIRTQ_DESC_F_WRITE, 0);
	n++;
	if (indirect)
		set_desc(d->desc, 0, (uintptr_t)t, n * sizeof(struct virtq_desc),
			 VIRTQ_DESC_F_INDIRECT, 0);

	vq_publish(d, 0);
	return writable;
}

int vblk_request(struct vdev *d, uint32_t type, uint64_t sector, void *data, uint32_t len,
		 bool dev_writes, bool indirect, uint32_t *used_len)
{
	volatile uint8_t *st = d->mem->s.status;
	uint32_t id = 0, ulen = 0;
	uint32_t writable = vblk_submit(d, type, sector, data, len, dev_writes, indirect);
	int r = vq_wait(d, &id, &ulen);
	if (used_len)
		*used_len = ulen;
	if (r < 0)
		return r;
	if (id != 0)
		return VQ_BAD_ID;
	if (ulen > writable)
		return VQ_BAD_LEN;
	vbarrier();
	return *st;
}

uint64_t vblk_want(const char *cmdline)
{
	uint64_t w = VBLK_WANT;
	if (cmdline_has_word(cmdline, "vblk.no_indirect=1"))
		w &= ~VBIT(VIRTIO_F_INDIRECT_DESC);
	if (cmdline_has_word(cmdline, "vblk.no_event_idx=1"))
		w &= ~VBIT(VIRTIO_F_EVENT_IDX);
	return w;
}

void vblk_fill(uint8_t *buf, uint32_t first, uint32_t n, uint8_t (*f)(uint32_t, uint32_t))
{
	for (uint32_t s = 0; s < n; s++)
		for (uint32_t i = 0; i < 512; i++)
			buf[s * 512 + i] = f(first + s, i);
}

bool vblk_check(const uint8_t *buf, uint32_t first, uint32_t n,
		uint8_t (*f)(uint32_t, uint32_t), const char *name)
{
	for (uint32_t s = 0; s < n; s++) {
		for (uint32_t i = 0; i < 512; i++) {
			uint8_t got = buf[s * 512 + i], want = f(first + s, i);
			if (got != want) {
				fail(name, "sector %u byte %u: got 0x%02x want 0x%02x", first + s, i,
				     got, want);
				return false;
			}
		}
	}
	return true;
}
