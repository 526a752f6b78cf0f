package devices

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
)

// recDev records the last access it saw and answers reads with its id.
type recDev struct {
	id      byte
	mu      sync.Mutex
	lastOff uint64
	lastLen int
	writes  int
}

func (d *recDev) Read(off uint64, data []byte) error {
	d.mu.Lock()
	d.lastOff, d.lastLen = off, len(data)
	d.mu.Unlock()
	for i := range data {
		data[i] = d.id
	}
	return nil
}

func (d *recDev) Write(off uint64, data []byte) error {
	d.mu.Lock()
	d.lastOff, d.lastLen = off, len(data)
	d.writes++
	d.mu.Unlock()
	return nil
}

func TestBusRegister(t *testing.T) {
	const max = ^uint64(0)
	type reg struct {
		base, size uint64
		name       string
	}
	tests := []struct {
		name    string
		setup   []reg
		r       reg
		wantErr error
		wantIn  []string // substrings the error message must contain
	}{
		{"first", nil, reg{0x3f8, 8, "com1"}, nil, nil},
		{"size zero", nil, reg{0x3f8, 0, "com1"}, ErrInvalidRange, []string{"com1"}},
		{"wraps", nil, reg{max - 3, 8, "wrap"}, ErrInvalidRange, nil},
		{"ends exactly at 2^64", nil, reg{max - 7, 8, "top"}, nil, nil},
		{"whole space", nil, reg{0, 0, "all"}, ErrInvalidRange, nil},
		{"empty name", nil, reg{0x10, 1, ""}, ErrInvalidRange, nil},
		{"adjacent below", []reg{{0x100, 0x10, "a"}}, reg{0xf0, 0x10, "b"}, nil, nil},
		{"adjacent above", []reg{{0x100, 0x10, "a"}}, reg{0x110, 0x10, "b"}, nil, nil},
		{"same base", []reg{{0x100, 0x10, "a"}}, reg{0x100, 1, "b"}, ErrOverlap, []string{`"a"`, `"b"`}},
		{"tail overlap", []reg{{0x100, 0x10, "a"}}, reg{0xf8, 0x9, "b"}, ErrOverlap, []string{`"a"`, `"b"`}},
		{"inside", []reg{{0x100, 0x10, "a"}}, reg{0x108, 1, "b"}, ErrOverlap, []string{`"a"`, `"b"`}},
		{"covers", []reg{{0x100, 0x10, "a"}}, reg{0x0, 0x1000, "b"}, ErrOverlap, []string{`"a"`, `"b"`}},
		{"between two", []reg{{0x100, 0x10, "a"}, {0x120, 0x10, "c"}}, reg{0x110, 0x10, "b"}, nil, nil},
		{"overlaps upper of two", []reg{{0x100, 0x10, "a"}, {0x120, 0x10, "c"}}, reg{0x110, 0x11, "b"}, ErrOverlap, []string{`"c"`, `"b"`}},
		{"top and near top", []reg{{max, 1, "a"}}, reg{max - 1, 2, "b"}, ErrOverlap, []string{`"a"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBus("pio")
			for _, s := range tc.setup {
				if err := b.Register(s.base, s.size, s.name, &recDev{}); err != nil {
					t.Fatalf("setup %q: %v", s.name, err)
				}
			}
			err := b.Register(tc.r.base, tc.r.size, tc.r.name, &recDev{})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Register = %v, want %v", err, tc.wantErr)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not name %s", err, s)
				}
			}
			if got, want := len(*b.table.Load()), len(tc.setup)+btoi(err == nil); got != want {
				t.Errorf("table has %d entries, want %d", got, want)
			}
		})
	}
}

func TestBusRegisterNilDevice(t *testing.T) {
	b := NewBus("pio")
	if err := b.Register(0, 1, "nil", nil); !errors.Is(err, ErrInvalidRange) {
		t.Fatalf("nil device: %v", err)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestBusDispatch(t *testing.T) {
	b := NewBus("pio")
	devs := map[string]*recDev{}
	// Registered out of order on purpose: the table must sort itself.
	for i, r := range []struct {
		base, size uint64
		name       string
	}{{0x3f8, 8, "com1"}, {0x64, 1, "kbd-cmd"}, {0x60, 1, "kbd-data"}, {0x1000, 0x100, "big"}} {
		d := &recDev{id: byte(i + 1)}
		devs[r.name] = d
		if err := b.Register(r.base, r.size, r.name, d); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		addr    uint64
		n       int
		dev     string // "" when no device is expected to see it
		off     uint64
		wantErr error
	}{
		{0x3f8, 1, "com1", 0, nil},
		{0x3ff, 1, "com1", 7, nil},
		{0x3fc, 4, "com1", 4, nil},
		{0x3fd, 4, "", 0, ErrBadAccess}, // crosses the end of com1
		{0x3f7, 1, "", 0, ErrNoDevice},
		{0x400, 1, "", 0, ErrNoDevice},
		{0x60, 1, "kbd-data", 0, nil},
		{0x61, 1, "", 0, ErrNoDevice},
		{0x64, 1, "kbd-cmd", 0, nil},
		{0x64, 2, "", 0, ErrBadAccess},
		{0x10ff, 1, "big", 0xff, nil},
		{0x1080, 0, "", 0, ErrBadAccess},
		{0x0, 1, "", 0, ErrNoDevice},
		{^uint64(0), 8, "", 0, ErrNoDevice},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%#x/%d", tc.addr, tc.n), func(t *testing.T) {
			for _, d := range devs {
				d.lastOff, d.lastLen = ^uint64(0), -1
			}
			data := bytes.Repeat([]byte{0x5a}, tc.n)
			err := b.Read(tc.addr, data)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Read err = %v, want %v", err, tc.wantErr)
			}
			want := byte(0xff)
			if tc.dev != "" {
				want = devs[tc.dev].id
			}
			for i, v := range data {
				if v != want {
					t.Fatalf("data[%d] = %#x, want %#x", i, v, want)
				}
			}
			if err := b.Write(tc.addr, data); !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Write err = %v, want %v", err, tc.wantErr)
			}
			for name, d := range devs {
				saw := d.lastLen != -1
				if saw != (name == tc.dev) {
					t.Fatalf("device %s saw access = %v", name, saw)
				}
				if saw && (d.lastOff != tc.off || d.lastLen != tc.n) {
					t.Fatalf("device %s got off %#x len %d, want %#x %d", name, d.lastOff, d.lastLen, tc.off, tc.n)
				}
			}
		})
	}
}

func TestBusRegisterRanges(t *testing.T) {
	b := NewBus("pio")
	k := NewI8042(nil)
	if err := b.RegisterRanges(k.Ranges()); err != nil {
		t.Fatal(err)
	}
	if err := b.RegisterRanges(k.Ranges()); !errors.Is(err, ErrOverlap) {
		t.Fatalf("second registration: %v, want ErrOverlap", err)
	}
	st := []byte{0}
	if err := b.Read(I8042CommandPort, st); err != nil || st[0]&kbdStatSys == 0 {
		t.Fatalf("status via bus = %#x, %v", st[0], err)
	}
}

func TestBusNoAllocs(t *testing.T) {
	b := benchBus(t)
	data := make([]byte, 1)
	allocs := testing.AllocsPerRun(1000, func() {
		_ = b.Read(0x3f8+5, data)
		_ = b.Write(0x3f8+7, data)
		_ = b.Read(0x9999, data) // unmapped: the error path must not allocate either
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per Read/Write", allocs)
	}
}

// TestBusConcurrent exercises lock-free lookups racing Register (run with -race).
func TestBusConcurrent(t *testing.T) {
	b := NewBus("mmio")
	d := &recDev{id: 7}
	if err := b.Register(0, 0x10, "first", d); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			buf := make([]byte, 4)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := b.Read(0x4, buf); err != nil || buf[0] != 7 {
					t.Errorf("read during Register: %v %#x", err, buf[0])
					return
				}
			}
		})
	}
	for i := range 200 {
		if err := b.Register(uint64(0x1000*(i+1)), 0x1000, fmt.Sprint("d", i), &recDev{}); err != nil {
			t.Error(err)
			break
		}
	}
	close(stop)
	wg.Wait()
}

func benchBus(tb testing.TB) *Bus {
	b := NewBus("pio")
	for i := range 16 {
		if err := b.Register(uint64(0x100*i), 0x10, fmt.Sprint("dev", i), &recDev{}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := b.Register(SerialCOM1Port, SerialPorts, "com1", NewSerial(nil, nil)); err != nil {
		tb.Fatal(err)
	}
	return b
}

func BenchmarkBusRead(b *testing.B) {
	bus := benchBus(b)
	data := make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		_ = bus.Read(0x3f8+5, data)
	}
}

func BenchmarkBusWriteUnmapped(b *testing.B) {
	bus := benchBus(b)
	data := make([]byte, 1)
	b.ReportAllocs()
	for b.Loop() {
		_ = bus.Write(0x9999, data)
	}
}
