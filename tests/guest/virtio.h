/*
 * govmm guest runtime: a tiny polled virtio-mmio (version 2) driver with split
 * virtqueues, plus virtio-blk request helpers.  Written from the virtio 1.2
 * specification (§2.7 split virtqueues, §3.1.1 driver initialization, §4.2
 * virtio over MMIO, §5.2 block device).
 *
 * Synchronous and interrupt-free: one request in flight per device, completion
 * found by polling the used ring with a bounded loop.  Everything is 32-bit
 * addressable (rings and buffers live in this program's .bss, below 4 GiB), so
 * the High halves of the ring address registers are written as 0 unless a
 * test deliberately passes a 64-bit address.
 */
#ifndef GOVMM_GUEST_VIRTIO_H
#define GOVMM_GUEST_VIRTIO_H

#include "lib.h"

/* ---- virtio-mmio registers (§4.2.2) ---------------------------------------- */

#define VIRTIO_MMIO_MAGIC            0x000   /* 0x74726976 "virt" */
#define VIRTIO_MMIO_VERSION          0x004   /* 2 */
#define VIRTIO_MMIO_DEVICE_ID        0x008
#define VIRTIO_MMIO_VENDOR_ID        0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES  0x010
#define VIRTIO_MMIO_DEVICE_FEAT_SEL  0x014
#define VIRTIO_MMIO_DRIVER_FEATURES  0x020
#define VIRTIO_MMIO_DRIVER_FEAT_SEL  0x024
#define VIRTIO_MMIO_QUEUE_SEL        0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM        0x038
#define VIRTIO_MMIO_QUEUE_READY      0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK    0x064
#define VIRTIO_MMIO_STATUS           0x070
#define VIRTIO_MMIO_QUEUE_DESC_LO    0x080
#define VIRTIO_MMIO_QUEUE_DESC_HI    0x084
#define VIRTIO_MMIO_QUEUE_DRIVER_LO  0x090
#define VIRTIO_MMIO_QUEUE_DRIVER_HI  0x094
#define VIRTIO_MMIO_QUEUE_DEVICE_LO  0x0a0
#define VIRTIO_MMIO_QUEUE_DEVICE_HI  0x0a4
#define VIRTIO_MMIO_CONFIG_GEN       0x0fc
#define VIRTIO_MMIO_CONFIG           0x100

#define VIRTIO_MMIO_MAGIC_VALUE      0x74726976u

/* Device status bits (§2.1). */
#define VIRTIO_S_ACKNOWLEDGE   0x01
#define VIRTIO_S_DRIVER        0x02
#define VIRTIO_S_DRIVER_OK     0x04
#define VIRTIO_S_FEATURES_OK   0x08
#define VIRTIO_S_NEEDS_RESET   0x40
#define VIRTIO_S_FAILED        0x80

#define VIRTIO_ID_BLOCK        2

/* Feature bits (§6, §5.2.3). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX     29
#define VIRTIO_F_VERSION_1     32
#define VIRTIO_BLK_F_SIZE_MAX  1
#define VIRTIO_BLK_F_SEG_MAX   2
#define VIRTIO_BLK_F_RO        5
#define VIRTIO_BLK_F_BLK_SIZE  6
#define VIRTIO_BLK_F_FLUSH     9
#define VBIT(n)                (1ull << (n))

/* ---- Split virtqueue (§2.7) ------------------------------------------------ */

#define VIRTQ_DESC_F_NEXT      1
#define VIRTQ_DESC_F_WRITE     2
#define VIRTQ_DESC_F_INDIRECT  4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[];        /* [size], then used_event (EVENT_IDX) */
};

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[];  /* [size], then avail_event (EVENT_IDX) */
};

_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc");
_Static_assert(sizeof(struct virtq_used_elem) == 8, "virtq_used_elem");

#define VQ_MAX_SIZE 16          /* we use min(QueueNumMax, 16), power of two */

/* Per-device memory, page aligned, in .bss. */
#define VQ_RING_DESC_OFF   0x000        /* 16 * 16 = 256 bytes max */
#define VQ_RING_AVAIL_OFF  0x200        /* 6 + 2 * 16 = 38 bytes max */
#define VQ_RING_USED_OFF   0x400        /* 6 + 8 * 16 = 134 bytes max */
#define VDEV_DATA_BYTES    8192

struct vdev_mem {
	uint8_t ring[4096];
	struct {                        /* 4096 bytes of request scratch */
		uint8_t hdr[64];        /* struct virtio_blk_req header(s) */
		uint8_t status[64];     /* status byte(s) */
		uint8_t id[128];        /* GET_ID buffer */
		uint8_t pad[768];
		struct virtq_desc ind[64];      /* indirect table 1 (0x400) */
		struct virtq_desc ind2[64];     /* indirect table 2 (0x800) */
		uint8_t pad2[1024];
	} s;
	uint8_t data[VDEV_DATA_BYTES];
} __attribute__((aligned(4096)));

_Static_assert(sizeof(((struct vdev_mem *)0)->s) == 4096, "scratch page");

/* ---- Devices ----------------------------------------------------------------- */

#define VIRTIO_MAX_DEVS 8

/* One "virtio_mmio.device=<size>@<base>:<irq>[:<id>]" entry. */
struct virtio_mmio_loc {
	uint64_t size;
	uint64_t base;
	uint32_t irq;
};

struct vdev {
	uintptr_t base;
	uint32_t irq;
	int slot;                       /* index of its entry on the command line */
	uint32_t device_id, vendor_id;
	uint64_t dev_features;          /* offered */
	uint64_t features;              /* negotiated */
	uint16_t qsize;
	volatile struct virtq_desc *desc;
	volatile struct virtq_avail *avail;
	volatile struct virtq_used *used;
	uint16_t avail_idx;             /* next avail idx the driver will publish */
	uint16_t used_idx;              /* used idx consumed so far */
	struct vdev_mem *mem;
};

/* Parses every "virtio_mmio.device=" word (bounded by CMDLINE_BOUND).  Size
 * takes K/M/G suffixes; numbers are decimal or 0x-hex.  Malformed entries are
 * reported ("virtio: bad virtio_mmio.device entry ...") and skipped.  Returns
 * the number written to out (at most max). */
int virtio_parse_cmdline(const char *cmdline, struct virtio_mmio_loc *out, int max);

/* True if the command line has the exact word w (e.g. "vblk.durable=1"). */
bool cmdline_has_word(const char *cmdline, const char *w);
/* Copies the value of the word "<key><value>" (key includes the '=') into
 * buf (NUL-terminated, truncated to n-1). Returns false if absent. */
bool cmdline_value(const char *cmdline, const char *key, char *buf, size_t n);

/* Probes every command-line entry; fills out[] with the devices whose
 * DeviceID is devid, in command-line order (entries with a bad magic or
 * version are reported and skipped; DeviceID 0 = empty slot, skipped).
 * Each device gets its own static vdev_mem.  Returns the count. */
int virtio_find(const char *cmdline, uint32_t devid, struct vdev *out, int max);

/* Register access: one 32-bit access per call; config space 8/32-bit. */
static inline uint32_t vio_read(const struct vdev *d, uint32_t off)
{
	return *(volatile uint32_t *)(d->base + off);
}
static inline void vio_write(const struct vdev *d, uint32_t off, uint32_t v)
{
	*(volatile uint32_t *)(d->base + off) = v;
}
static inline uint8_t vio_cfg8(const struct vdev *d, uint32_t off)
{
	return *(volatile uint8_t *)(d->base + VIRTIO_MMIO_CONFIG + off);
}
static inline uint32_t vio_cfg32(const struct vdev *d, uint32_t off)
{
	return *(volatile uint32_t *)(d->base + VIRTIO_MMIO_CONFIG + off);
}
/* A 64-bit config field read as two 32-bit halves under ConfigGeneration. */
uint64_t vio_cfg64(const struct vdev *d, uint32_t off);

static inline uint32_t vio_status(const struct vdev *d)
{
	return vio_read(d, VIRTIO_MMIO_STATUS);
}

/* Compiler barrier and full fence (x86 is TSO: stores are ordered among
 * themselves; the fence orders the avail idx store before the notify and
 * before later loads of the used ring). */
static inline void vbarrier(void)
{
	__asm__ volatile("" ::: "memory");
}
static inline void vfence(void)
{
	__asm__ volatile("lock; addl $0,(%%esp)" ::: "memory", "cc");
}

/* Writes 0 to Status and waits (bounded) for it to read back 0. */
bool virtio_reset(struct vdev *d);

/* §3.1.1 steps 1-8 up to FEATURES_OK: reset, ACKNOWLEDGE, DRIVER, read
 * both feature halves, accept want & offered (VERSION_1 required), write
 * both halves, FEATURES_OK, re-read.  On error prints FAIL <name>: ... and
 * sets FAILED. */
bool virtio_negotiate(struct vdev *d, uint64_t want, const char *name);

/* Queue 0 set-up.  qsize 0 = min(QueueNumMax, 16) rounded down to a power
 * of two; desc/drv/dev 0 = this device's own ring page.  Writes QueueNum
 * and the ring addresses (both halves), then QueueReady=1; returns the
 * value QueueReady reads back (1 = accepted).  The driver-side ring state
 * is reset.  Prints FAIL <name> for QueueReady already set / QueueNumMax 0
 * (returns 0 then). */
uint32_t virtio_queue_setup(struct vdev *d, uint16_t qsize, uint64_t desc, uint64_t drv,
			    uint64_t dev, const char *name);

/* Sets DRIVER_OK. */
void virtio_driver_ok(struct vdev *d);

/* negotiate + default queue + DRIVER_OK, checking QueueReady reads 1 and
 * that Status has no NEEDS_RESET/FAILED afterwards. */
bool virtio_init(struct vdev *d, uint64_t want, const char *name);

/* Publishes head in the avail ring (write barrier before the idx store),
 * then notifies queue 0 (honouring avail_event when EVENT_IDX was
 * negotiated). */
void vq_publish(struct vdev *d, uint16_t head);

#define VQ_OK          0
#define VQ_TIMEOUT    -1        /* nothing in the used ring within the bound */
#define VQ_NEEDS_RESET -2       /* Status shows DEVICE_NEEDS_RESET */
#define VQ_BAD_USED   -3        /* used idx moved by more than one */
#define VQ_BAD_ID     -4        /* used element names a head we did not publish */
#define VQ_BAD_LEN    -5        /* used len exceeds the device-writable bytes */

/* Polls the used ring for one completion (bounded: VQ_POLLS iterations,
 * each also reading the Status register: about 5 s under this host's
 * emulator, far less with hardware virtualization).  Returns VQ_*;
 * on VQ_OK fills *id and *len. */
#define VQ_POLLS 400000
int vq_wait(struct vdev *d, uint32_t *id, uint32_t *len);

const char *vq_strerror(int r);

/* ---- virtio-blk (§5.2) ------------------------------------------------------- */

#define VIRTIO_BLK_T_IN     0
#define VIRTIO_BLK_T_OUT    1
#define VIRTIO_BLK_T_FLUSH  4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK     0
#define VIRTIO_BLK_S_IOERR  1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20

struct virtio_blk_req_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
} __attribute__((packed));

_Static_assert(sizeof(struct virtio_blk_req_hdr) == 16, "blk header");

#define VBLK_STATUS_UNTOUCHED 0xee      /* status byte preset before a request */

/* Features the block tests ask for (each only if offered). */
#define VBLK_WANT (VBIT(VIRTIO_F_VERSION_1) | VBIT(VIRTIO_F_INDIRECT_DESC) | \
		   VBIT(VIRTIO_F_EVENT_IDX) | VBIT(VIRTIO_BLK_F_FLUSH) |     \
		   VBIT(VIRTIO_BLK_F_RO) | VBIT(VIRTIO_BLK_F_BLK_SIZE) |     \
		   VBIT(VIRTIO_BLK_F_SEG_MAX))

/* VBLK_WANT minus what the command line turns off: "vblk.no_indirect=1"
 * (INDIRECT_DESC), "vblk.no_event_idx=1" (EVENT_IDX). */
uint64_t vblk_want(const char *cmdline);

/* One synchronous block request: header (readable), optional data of len
 * bytes (device-writable if dev_writes), status (writable).  Uses
 * descriptors 0..2, or one indirect descriptor if indirect is true (and
 * INDIRECT_DESC was negotiated).  data must lie in d->mem (or anywhere in
 * RAM below 4 GiB).  Returns the status byte (0..255) or a VQ_* error
 * (< 0).  *used_len (may be NULL) gets the used element's len. */
int vblk_request(struct vdev *d, uint32_t type, uint64_t sector, void *data, uint32_t len,
		 bool dev_writes, bool indirect, uint32_t *used_len);

/* The first half of vblk_request: builds the same chain and publishes it
 * (vq_publish), without waiting.  Returns the number of device-writable
 * bytes in the chain (the most a correct used len can be).  For drivers
 * that wait for the completion some other way (an interrupt). */
uint32_t vblk_submit(struct vdev *d, uint32_t type, uint64_t sector, void *data, uint32_t len,
		     bool dev_writes, bool indirect);

/* used_event, the driver's "interrupt me when used idx passes this" index
 * behind the avail ring (§2.7.10, meaningful with EVENT_IDX). */
static inline volatile uint16_t *vq_used_event(const struct vdev *d)
{
	return (volatile uint16_t *)((uintptr_t)d->avail + 4 + 2u * d->qsize);
}

/* Convenience: capacity in 512-byte sectors (config offset 0). */
static inline uint64_t vblk_capacity(const struct vdev *d)
{
	return vio_cfg64(d, 0);
}

/* Patterns shared with the Go tests (see README.md). */
static inline uint8_t vblk_image_byte(uint32_t s, uint32_t i)
{
	return (uint8_t)(s * 7 + i);
}
static inline uint8_t vblk_write_byte(uint32_t s, uint32_t i)
{
	return (uint8_t)((s ^ 0x5a) + i);
}
static inline uint8_t vblk_durable_byte(uint32_t s, uint32_t i)
{
	return (uint8_t)(0xd0 + (s - 32) + i);
}

/* Checks sectors [first, first+n) in buf against pattern f; on mismatch
 * prints FAIL <name>: ... with sector/byte/got/want and returns false. */
bool vblk_check(const uint8_t *buf, uint32_t first, uint32_t n,
		uint8_t (*f)(uint32_t, uint32_t), const char *name);
void vblk_fill(uint8_t *buf, uint32_t first, uint32_t n, uint8_t (*f)(uint32_t, uint32_t));

#endif
