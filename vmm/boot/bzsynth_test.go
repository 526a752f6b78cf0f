package boot

import "encoding/binary"

// This file synthesises minimal bzImages for the tests and the fuzz seed
// corpus: a boot sector and setup area holding a struct setup_header
// (bootparam.h) filled from bzOpts, then the protected-mode payload.

type bzOpts struct {
	version     uint16
	setupSects  uint8 // as written to the file (0 means 4)
	hdrLen      uint8 // byte at 0x201: header end = 0x202 + hdrLen
	payload     []byte
	syssize     *uint32 // nil: ceil(len(payload)/16)
	loadflags   uint8
	xloadflags  uint16
	pref        uint64
	initSize    uint32
	align       uint32
	reloc       bool
	cmdlineSize uint32
	initrdMax   uint32
	truncate    int // if > 0, cut the file to this many bytes
}

const (
	bzPref     = 0x20_0000 // 2 MiB: fits small test guests
	bzInitSize = 0x10_0000 // 1 MiB
)

// goodBzOpts is a protocol 2.15, relocatable, 64-bit kernel with a
// 0x400-byte payload, loading at 2 MiB with 1 MiB init_size.
func goodBzOpts() bzOpts {
	return bzOpts{
		version: 0x020f, setupSects: 2, hdrLen: 0x6a,
		payload:   pattern(0x400, 0x5a),
		loadflags: LoadedHigh, xloadflags: XLFKernel64 | XLFCanBeLoadedAbove4G,
		pref: bzPref, initSize: bzInitSize, align: 0x20_0000, reloc: true,
		cmdlineSize: 0x7ff, initrdMax: 0x7fff_ffff,
	}
}

func u32p(v uint32) *uint32 { return &v }

func synthBz(o bzOpts) []byte {
	le := binary.LittleEndian
	sects := uint64(o.setupSects)
	if sects == 0 {
		sects = 4
	}
	setup := (sects + 1) * 512
	img := make([]byte, setup+uint64(len(o.payload)))
	// Real-mode code stand-in, so that copying too much is visible.
	for i := range setup {
		img[i] = byte(0x90 + i%7)
	}
	img[0x1ef] = 0xff // header.S's sentinel: must not reach the zero page
	for i := 0x1f1; i < 0x290; i++ {
		img[i] = 0
	}
	img[0x1f1] = o.setupSects
	sys := uint32((len(o.payload) + 15) / 16)
	if o.syssize != nil {
		sys = *o.syssize
	}
	le.PutUint32(img[0x1f4:], sys)
	le.PutUint16(img[0x1fa:], 0xfffd) // vid_mode "ask": the loader overwrites it
	le.PutUint16(img[0x1fe:], 0xaa55)
	img[0x200], img[0x201] = 0xeb, o.hdrLen
	copy(img[0x202:], "HdrS")
	le.PutUint16(img[0x206:], o.version)
	le.PutUint16(img[0x20e:], 0x1234) // kernel_version: copied through
	img[0x210] = 0x00
	img[0x211] = o.loadflags
	le.PutUint32(img[0x214:], 0x100000) // code32_start
	le.PutUint32(img[0x22c:], o.initrdMax)
	le.PutUint32(img[0x230:], o.align)
	if o.reloc {
		img[0x234] = 1
	}
	img[0x235] = 21
	le.PutUint16(img[0x236:], o.xloadflags)
	le.PutUint32(img[0x238:], o.cmdlineSize)
	le.PutUint32(img[0x23c:], 2)           // hardware_subarch Xen: the loader must reset it
	le.PutUint64(img[0x240:], 0xdead_beef) // hardware_subarch_data
	le.PutUint32(img[0x248:], 0x2cc)       // payload_offset: copied through
	le.PutUint64(img[0x250:], 0xbad_5e7d)  // setup_data: must be cleared
	le.PutUint64(img[0x258:], o.pref)
	le.PutUint32(img[0x260:], o.initSize)
	le.PutUint32(img[0x268:], 0x77)
	copy(img[setup:], o.payload)
	if o.truncate > 0 && o.truncate < len(img) {
		img = img[:o.truncate]
	}
	return img
}
