package boot

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/govmm/govmm/memory"
)

// fuzzRAM is reused across iterations (the fuzz body runs sequentially in
// each worker process) so each run does not allocate 4 MiB.
var fuzzRAM = make([]byte, 4<<20)

func FuzzParsePVH(f *testing.F) {
	for _, o := range []synthOpts{goodOpts(true, 4), goodOpts(false, 4), goodOpts(true, 8)} {
		b, _ := synth(o)
		f.Add(b)
	}
	mem, err := memory.FromSlices(map[uint64][]byte{0: fuzzRAM})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, image []byte) {
		img, err := ParsePVH(image)
		if err != nil {
			if img != nil {
				t.Fatal("image returned alongside error")
			}
			return
		}
		// Everything ParsePVH promises about a successful parse.
		inFile := false
		for i, s := range img.Segments {
			if s.FileSize > s.MemSize || s.MemSize == 0 {
				t.Fatalf("segment %d sizes %+v", i, s)
			}
			if end := s.FileOff + s.FileSize; end < s.FileOff || end > uint64(len(image)) {
				t.Fatalf("segment %d outside the file: %+v", i, s)
			}
			if end := s.PAddr + s.MemSize; end < s.PAddr || end > 1<<32 {
				t.Fatalf("segment %d above 4 GiB: %+v", i, s)
			}
			if i > 0 && s.PAddr < img.Segments[i-1].PAddr+img.Segments[i-1].MemSize {
				t.Fatalf("segments %d and %d overlap or are unsorted", i-1, i)
			}
			if e := uint64(img.Entry); e >= s.PAddr && e-s.PAddr < s.FileSize {
				inFile = true
			}
		}
		if !inFile {
			t.Fatalf("entry %#x outside all file data", img.Entry)
		}

		fits := true
		for _, s := range img.Segments {
			fits = fits && s.PAddr >= memory.HighMemStart && s.PAddr+s.MemSize <= uint64(len(fuzzRAM))
		}
		boot, err := LoadPVH(mem, img, image, "console=ttyS0")
		if fits != (err == nil) {
			t.Fatalf("LoadPVH err = %v, but segments fit = %v", err, fits)
		}
		if err != nil {
			if !errors.Is(err, ErrSegmentOutsideRAM) && !errors.Is(err, ErrSegmentLowMem) {
				t.Fatalf("unexpected LoadPVH error %v", err)
			}
			return
		}
		for _, s := range img.Segments {
			got, _ := mem.Slice(s.PAddr, s.MemSize)
			if !bytes.Equal(got[:s.FileSize], image[s.FileOff:s.FileOff+s.FileSize]) ||
				!bytes.Equal(got[s.FileSize:], make([]byte, s.MemSize-s.FileSize)) {
				t.Fatalf("segment at %#x not loaded correctly", s.PAddr)
			}
		}
		if v, _ := mem.ReadU32(boot.StartInfo); v != StartInfoMagic {
			t.Fatalf("start_info magic %#x", v)
		}
	})
}

// TestFuzzCorpusHasGoodImages keeps the committed seed corpus honest: it
// must contain images that parse and load, so the fuzzer starts from the
// interesting side of the parser.
func TestFuzzCorpusHasGoodImages(t *testing.T) {
	files, err := filepath.Glob("testdata/fuzz/FuzzParsePVH/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no seed corpus: %v", err)
	}
	good := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		image, ok := decodeCorpusBytes(b)
		if !ok {
			t.Fatalf("%s: not a go test fuzz v1 []byte file", f)
		}
		if _, err := ParsePVH(image); err == nil {
			good++
		}
	}
	if good < 3 {
		t.Fatalf("only %d of %d seed files parse", good, len(files))
	}
}
