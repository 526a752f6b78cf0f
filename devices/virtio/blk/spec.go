// Package blk is virtio-blk (virtio 1.2 §5.2) with a raw-file backend.
//
// A Disk is both the backend (an open image file, locked against a second
// writer) and the virtio.Device the transport drives. Requests are parsed
// from the descriptor chain into a fixed-size, device-owned request record
// and fully validated before any I/O; data moves with preadv/pwritev
// directly between the file and guest RAM (memory.Guest.Slice), or through
// one aligned bounce buffer when the file is opened O_DIRECT.
//
// Guest input is hostile. A request the device can answer (out of range,
// misaligned, unknown type, a write to a read-only disk) gets an IOERR or
// UNSUPP status and the device carries on; a chain that breaks the virtio
// rules (a writable header, no writable status byte) is a protocol
// violation: the device calls ActivateContext.NeedsReset and stops using
// the queue until the driver resets it.
package blk

// Device-specific feature bits (virtio 1.2 §5.2.3). Only the ones the
// device may offer are listed; Features() decides which it does offer, in
// one place.
const (
	FeatureSizeMax     = 1  // VIRTIO_BLK_F_SIZE_MAX (not offered)
	FeatureSegMax      = 2  // VIRTIO_BLK_F_SEG_MAX
	FeatureGeometry    = 4  // VIRTIO_BLK_F_GEOMETRY (not offered)
	FeatureRO          = 5  // VIRTIO_BLK_F_RO
	FeatureBlkSize     = 6  // VIRTIO_BLK_F_BLK_SIZE
	FeatureFlush       = 9  // VIRTIO_BLK_F_FLUSH
	FeatureTopology    = 10 // VIRTIO_BLK_F_TOPOLOGY (not offered)
	FeatureConfigWCE   = 11 // VIRTIO_BLK_F_CONFIG_WCE (not offered: the cache mode is fixed)
	FeatureMQ          = 12 // VIRTIO_BLK_F_MQ (not offered: one queue)
	FeatureDiscard     = 13 // VIRTIO_BLK_F_DISCARD
	FeatureWriteZeroes = 14 // VIRTIO_BLK_F_WRITE_ZEROES
)

// Request types (virtio 1.2 §5.2.6).
const (
	TypeIn          = 0  // VIRTIO_BLK_T_IN: read
	TypeOut         = 1  // VIRTIO_BLK_T_OUT: write
	TypeFlush       = 4  // VIRTIO_BLK_T_FLUSH
	TypeGetID       = 8  // VIRTIO_BLK_T_GET_ID
	TypeGetLifetime = 10 // VIRTIO_BLK_T_GET_LIFETIME (unsupported)
	TypeDiscard     = 11 // VIRTIO_BLK_T_DISCARD
	TypeWriteZeroes = 13 // VIRTIO_BLK_T_WRITE_ZEROES
	TypeSecureErase = 14 // VIRTIO_BLK_T_SECURE_ERASE (unsupported)
)

// Status values, the last byte of every request (virtio 1.2 §5.2.6).
const (
	StatusOK     = 0 // VIRTIO_BLK_S_OK
	StatusIOErr  = 1 // VIRTIO_BLK_S_IOERR
	StatusUnsupp = 2 // VIRTIO_BLK_S_UNSUPP
)

const (
	// SectorSize is the unit of sector numbers and of capacity, whatever
	// blk_size says (virtio 1.2 §5.2.4: "capacity ... in 512-byte sectors").
	SectorSize  = 512
	sectorShift = 9

	// IDBytes is VIRTIO_BLK_ID_BYTES, the GET_ID answer length: the serial
	// zero padded, not NUL terminated when it is exactly 20 bytes.
	IDBytes = 20

	// QueueSize is the maximum (and only offered) size of the one request
	// queue.
	QueueSize = 256

	// SegMax is the seg_max the device advertises: a chain is at most
	// QueueSize descriptors (the queue enforces this, also through indirect
	// tables), two of which are the header and the status byte.
	SegMax = QueueSize - 2

	// headerSize is struct virtio_blk_req's fixed part: le32 type, le32
	// reserved, le64 sector (virtio 1.2 §5.2.6).
	headerSize = 16

	// dwzSegSize is struct virtio_blk_discard_write_zeroes: le64 sector,
	// le32 num_sectors, le32 flags (bit 0 unmap) (virtio 1.2 §5.2.6).
	dwzSegSize   = 16
	dwzFlagUnmap = 1

	// Limits advertised for DISCARD and WRITE_ZEROES. A segment count of 16
	// matches what Linux asks for in one request with its default queue
	// limits; the sector limit (4 GiB per segment) bounds how long one
	// fallocate can keep the worker busy.
	MaxDiscardSeg          = 16
	MaxDiscardSectors      = 1 << 23
	MaxWriteZeroesSeg      = 16
	MaxWriteZeroesSectors  = 1 << 23
	discardSectorAlignment = 8 // a hint (4 KiB): punching any range works, partial blocks are zeroed
)

// configSize is the length of struct virtio_blk_config in virtio 1.2
// (§5.2.4), up to and including the secure-erase fields.
const configSize = 72

// Offsets in struct virtio_blk_config (virtio 1.2 §5.2.4), all little-endian.
const (
	cfgCapacity             = 0  // le64, in 512-byte sectors
	cfgSizeMax              = 8  // le32 (VIRTIO_BLK_F_SIZE_MAX)
	cfgSegMax               = 12 // le32 (VIRTIO_BLK_F_SEG_MAX)
	cfgGeometry             = 16 // le16 cylinders, u8 heads, u8 sectors (VIRTIO_BLK_F_GEOMETRY)
	cfgBlkSize              = 20 // le32 (VIRTIO_BLK_F_BLK_SIZE)
	cfgTopology             = 24 // u8 physical_block_exp, u8 alignment_offset, le16 min_io_size, le32 opt_io_size
	cfgWriteback            = 32 // u8 (VIRTIO_BLK_F_CONFIG_WCE)
	cfgNumQueues            = 34 // le16 (VIRTIO_BLK_F_MQ)
	cfgMaxDiscardSectors    = 36 // le32 (VIRTIO_BLK_F_DISCARD)
	cfgMaxDiscardSeg        = 40 // le32
	cfgDiscardSectorAlign   = 44 // le32
	cfgMaxWriteZeroesSector = 48 // le32 (VIRTIO_BLK_F_WRITE_ZEROES)
	cfgMaxWriteZeroesSeg    = 52 // le32
	cfgWriteZeroesMayUnmap  = 56 // u8
	cfgMaxSecureEraseSector = 60 // le32 (VIRTIO_BLK_F_SECURE_ERASE, not offered)
)
