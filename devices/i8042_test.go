package devices

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// kop is one i8042 step: port 0x60 or 0x64, write val, or read expecting want.
type kop struct {
	port  uint64
	write bool
	val   uint8
}

func kw(port uint64, v uint8) kop    { return kop{port: port, write: true, val: v} }
func kr(port uint64, want uint8) kop { return kop{port: port, val: want} }

func runI8042(t *testing.T, k *I8042, ops []kop) {
	t.Helper()
	bus := NewBus("pio")
	if err := bus.RegisterRanges(k.Ranges()); err != nil {
		t.Fatal(err)
	}
	for i, o := range ops {
		b := []byte{o.val}
		if o.write {
			if err := bus.Write(o.port, b); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			continue
		}
		if err := bus.Read(o.port, b); err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
		if b[0] != o.val {
			t.Fatalf("op %d: read %#x = %#02x, want %#02x", i, o.port, b[0], o.val)
		}
	}
}

const (
	dp = I8042DataPort
	cp = I8042CommandPort
	// Status: unlocked | sys | (cmd) | (obf).
	stIdleCmd  = kbdStatUnlock | kbdStatSys | kbdStatCmd
	stIdleData = kbdStatUnlock | kbdStatSys
)

func TestI8042(t *testing.T) {
	tests := []struct {
		name string
		ops  []kop
	}{
		{"power-on status", []kop{kr(cp, stIdleCmd), kr(dp, 0), kr(cp, stIdleCmd)}},
		{"self-test", []kop{
			kw(cp, kbdCmdSelfTest), kr(cp, stIdleCmd|kbdStatOBF), kr(dp, kbdSelfTestOK), kr(cp, stIdleCmd),
		}},
		{"read command byte", []kop{
			kw(cp, kbdCmdReadCB), kr(cp, stIdleCmd|kbdStatOBF), kr(dp, kbdCBDefault), kr(cp, stIdleCmd),
			kr(dp, kbdCBDefault), // re-reading the latch returns the stale byte
		}},
		{"write command byte", []kop{
			kw(cp, kbdCmdWriteCB), kw(dp, 0x30), kr(cp, kbdStatUnlock), // SYS follows CB bit 2
			kw(cp, kbdCmdReadCB), kr(dp, 0x30),
			kw(cp, kbdCmdSelfTest), kr(dp, kbdSelfTestOK), kw(cp, kbdCmdReadCB), kr(dp, 0x34),
		}},
		{"data byte without command goes to absent keyboard", []kop{
			kw(dp, 0xff), kr(cp, stIdleData), kw(cp, kbdCmdReadCB), kr(dp, kbdCBDefault),
		}},
		{"new command abandons a pending write", []kop{
			kw(cp, kbdCmdWriteCB), kw(cp, kbdCmdReadCB), kr(dp, kbdCBDefault),
			kw(dp, 0x00), kw(cp, kbdCmdReadCB), kr(dp, kbdCBDefault),
		}},
		{"enable/disable ports", []kop{
			kw(cp, kbdCmdDisableKbd), kw(cp, kbdCmdDisableAux), kw(cp, kbdCmdReadCB), kr(dp, kbdCBDefault|0x30),
			kw(cp, kbdCmdEnableKbd), kw(cp, kbdCmdEnableAux), kw(cp, kbdCmdReadCB), kr(dp, kbdCBDefault),
		}},
		{"output port", []kop{
			kw(cp, kbdCmdReadOutPort), kr(dp, kbdOutPortInit),
			kw(cp, kbdCmdWriteOutPrt), kw(dp, 0x01), kw(cp, kbdCmdReadOutPort), kr(dp, 0x01),
		}},
		{"unknown command ignored", []kop{kw(cp, 0xc0), kr(cp, stIdleCmd), kw(cp, 0xa9), kr(cp, stIdleCmd)}},
		{"newer answer replaces unread one", []kop{kw(cp, kbdCmdReadCB), kw(cp, kbdCmdSelfTest), kr(dp, kbdSelfTestOK), kr(cp, stIdleCmd)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resets := 0
			k := NewI8042(func() { resets++ })
			runI8042(t, k, tc.ops)
			if resets != 0 {
				t.Fatalf("%d resets", resets)
			}
		})
	}
}

func TestI8042Reset(t *testing.T) {
	tests := []struct {
		name  string
		ops   []kop
		reset bool
	}{
		{"pulse 0xfe", []kop{kw(cp, 0xfe)}, true},
		{"pulse 0xf0 (all lines)", []kop{kw(cp, 0xf0)}, true},
		{"pulse 0xff (no line)", []kop{kw(cp, 0xff)}, false},
		{"pulse 0xfd (line 1 only)", []kop{kw(cp, 0xfd)}, false},
		{"output port bit 0 low", []kop{kw(cp, kbdCmdWriteOutPrt), kw(dp, 0x02)}, true},
		{"output port bit 0 high", []kop{kw(cp, kbdCmdWriteOutPrt), kw(dp, 0x03)}, false},
		{"0xfe on the data port", []kop{kw(dp, 0xfe)}, false},
		{"repeated", []kop{kw(cp, 0xfe), kw(cp, 0xfe), kw(cp, kbdCmdWriteOutPrt), kw(dp, 0), kw(cp, 0xfe)}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resets := 0
			k := NewI8042(func() { resets++ })
			runI8042(t, k, tc.ops)
			if want := btoi(tc.reset); resets != want || k.Resets() != tc.reset {
				t.Fatalf("onReset called %d times (Resets %v), want %d", resets, k.Resets(), want)
			}
		})
	}
}

func TestI8042ResetConcurrent(t *testing.T) {
	var mu sync.Mutex
	resets := 0
	k := NewI8042(func() { mu.Lock(); resets++; mu.Unlock() })
	cmd := k.Ranges()[1].Dev
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range 100 {
				_ = cmd.Write(0, []byte{0xfe})
			}
		})
	}
	wg.Wait()
	if resets != 1 {
		t.Fatalf("onReset called %d times from two vCPUs", resets)
	}
}

func TestI8042NilOnReset(t *testing.T) {
	k := NewI8042(nil)
	runI8042(t, k, []kop{kw(cp, 0xfe)})
	if !k.Resets() {
		t.Fatal("reset not recorded")
	}
}

func TestI8042BadAccess(t *testing.T) {
	k := NewI8042(nil)
	for _, r := range k.Ranges() {
		for _, n := range []int{0, 2, 4} {
			b := make([]byte, n)
			if err := r.Dev.Read(0, b); !errors.Is(err, ErrBadAccess) {
				t.Errorf("%s read width %d: %v", r.Name, n, err)
			}
			for _, v := range b {
				if v != 0xff {
					t.Errorf("%s rejected read gave %x", r.Name, b)
				}
			}
			if err := r.Dev.Write(0, bytes.Repeat([]byte{0xfe}, n)); !errors.Is(err, ErrBadAccess) {
				t.Errorf("%s write width %d: %v", r.Name, n, err)
			}
		}
		if err := r.Dev.Write(1, []byte{0xfe}); !errors.Is(err, ErrBadAccess) {
			t.Errorf("%s offset 1: %v", r.Name, err)
		}
	}
	if k.Resets() {
		t.Fatal("a rejected access reset the VM")
	}
}
