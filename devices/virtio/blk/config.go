package blk

import (
	"encoding/binary"
	"fmt"

	"github.com/govmm/govmm/devices/virtio"
)

// Features returns the offered feature bits, all of them decided here.
//
// Always: VERSION_1, EVENT_IDX and INDIRECT_DESC (the queue implements
// both), SEG_MAX (seg_max tells Linux how many data descriptors fit in one
// chain), BLK_SIZE, and FLUSH (the file is used through the host page cache
// unless direct=on, so the guest must be able to ask for durability). RO
// only for a read-only disk. DISCARD and WRITE_ZEROES only if the file
// system punched a probe hole at Open. Not offered: SIZE_MAX (any segment
// length is fine), GEOMETRY and TOPOLOGY (meaningless for a file), MQ (one
// queue), CONFIG_WCE (the cache mode is fixed, so config space is
// read-only), SECURE_ERASE, LIFETIME, ZONED.
func (d *Disk) Features() uint64 {
	f := uint64(1)<<virtio.FeatureVersion1 |
		1<<virtio.FeatureEventIdx |
		1<<virtio.FeatureIndirectDesc |
		1<<FeatureSegMax |
		1<<FeatureBlkSize |
		1<<FeatureFlush
	if d.readOnly {
		f |= 1 << FeatureRO
	}
	if d.discard {
		f |= 1<<FeatureDiscard | 1<<FeatureWriteZeroes
	}
	return f
}

// DeviceID is 2, a block device (virtio 1.2 §5).
func (d *Disk) DeviceID() uint32 { return virtio.DeviceIDBlock }

// QueueMaxSizes: one request queue of up to QueueSize entries.
func (d *Disk) QueueMaxSizes() []uint16 { return []uint16{QueueSize} }

// buildConfig fills struct virtio_blk_config (virtio 1.2 §5.2.4) once at
// Open; nothing in it changes while the device lives (no resize, no
// CONFIG_WCE), so ConfigGeneration never needs to move for blk.
func (d *Disk) buildConfig() {
	c := d.config[:]
	clear(c)
	le := binary.LittleEndian
	le.PutUint64(c[cfgCapacity:], d.sectors)
	// size_max is only meaningful with VIRTIO_BLK_F_SIZE_MAX (not offered).
	le.PutUint32(c[cfgSegMax:], SegMax)
	// geometry and topology stay zero (features not offered).
	le.PutUint32(c[cfgBlkSize:], d.blkSize)
	// writeback stays 0: without CONFIG_WCE the driver infers writeback
	// from FLUSH, which is what the page cache gives it.
	if d.discard {
		le.PutUint32(c[cfgMaxDiscardSectors:], MaxDiscardSectors)
		le.PutUint32(c[cfgMaxDiscardSeg:], MaxDiscardSeg)
		le.PutUint32(c[cfgDiscardSectorAlign:], discardSectorAlignment)
		le.PutUint32(c[cfgMaxWriteZeroesSector:], MaxWriteZeroesSectors)
		le.PutUint32(c[cfgMaxWriteZeroesSeg:], MaxWriteZeroesSeg)
		// With unmap set, write zeroes punches a hole (see writeZeroes).
		c[cfgWriteZeroesMayUnmap] = 1
	}
}

// ReadConfig copies config space at offset into data. Any width and
// alignment is allowed (the transport enforces its own rules). Bytes outside
// the config structure read as zero, and the access then fails with
// ErrBadConfigRange; the offset+len arithmetic cannot overflow.
func (d *Disk) ReadConfig(offset uint64, data []byte) error {
	clear(data)
	if offset >= configSize {
		if len(data) == 0 && offset == configSize {
			return nil
		}
		return fmt.Errorf("%w: offset %#x len %d (config is %d bytes)", ErrBadConfigRange, offset, len(data), configSize)
	}
	n := copy(data, d.config[offset:])
	if n < len(data) {
		return fmt.Errorf("%w: offset %#x len %d (config is %d bytes)", ErrBadConfigRange, offset, len(data), configSize)
	}
	return nil
}

// WriteConfig ignores writes: every field of the blk config is read-only
// for the driver unless CONFIG_WCE (writeback) is negotiated, which is not
// offered. Writes outside the structure fail like reads do.
func (d *Disk) WriteConfig(offset uint64, data []byte) error {
	if offset > configSize || uint64(len(data)) > configSize-offset {
		return fmt.Errorf("%w: write at offset %#x len %d (config is %d bytes)", ErrBadConfigRange, offset, len(data), configSize)
	}
	return nil
}
