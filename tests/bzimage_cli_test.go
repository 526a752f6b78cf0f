package tests

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/govmm/govmm/vmm"
)

// TestMalformedBzImages mutates Debian's real kernel image and checks that
// govmm refuses each with a one-line error naming the problem, before any
// guest instruction runs.
func TestMalformedBzImages(t *testing.T) {
	good, err := os.ReadFile(debianKernel(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	le := binary.LittleEndian

	bigInitrd := filepath.Join(dir, "initrd-big")
	f, err := os.Create(bigInitrd)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(80 << 20); err != nil { // sparse: costs no disk
		t.Fatal(err)
	}
	f.Close()

	cases := []struct {
		name    string
		image   []byte
		extra   []string
		mention string
	}{
		{"bad magic", mut(func(b []byte) []byte { copy(b[0x202:], "HdrX"); return b }), nil, "ELF or bzImage"},
		{"protocol too old", mut(func(b []byte) []byte { le.PutUint16(b[0x206:], 0x0205); return b }), nil, "2.05"},
		{"setup_sects past end", mut(func(b []byte) []byte { b[0x1f1] = 0xff; return b[:0x10000] }), nil, "setup"},
		{"truncated payload", mut(func(b []byte) []byte { return b[:len(b)/2] }), nil, "truncated"},
		{"initrd larger than RAM", good, []string{"--memory", "128M", "--initrd", bigInitrd}, "initrd"},
		{"cmdline longer than cmdline_size", good, []string{"--cmdline", strings.Repeat("x", 3000)}, "command line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.extra != nil {
				// Placement is checked against real guest RAM, which
				// exists only once KVM is open.
				RequireKVM(t)
			}
			p := write(strings.ReplaceAll(c.name, " ", "_"), c.image)
			args := append([]string{"run", "--kernel", p}, c.extra...)
			r := Run(t, time.Minute, args...)
			requireOneLineError(t, r, vmm.CodeUsage, c.mention)
		})
	}
}
