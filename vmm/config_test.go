package vmm_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/govmm/govmm/cmd/govmm/demo"
	"github.com/govmm/govmm/vmm"
)

// TestValidateParsesKernel: Validate refuses a malformed kernel image with
// the parser's reason, so callers (the CLI before MAC, the jail or
// /dev/kvm) learn of a bad image before any host set-up can fail first.
// It needs no KVM.
func TestValidateParsesKernel(t *testing.T) {
	good := demo.ELF
	mut := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	le := binary.LittleEndian
	cases := []struct {
		name    string
		kernel  []byte
		initrd  []byte
		mention string // "" = valid
	}{
		{"demo guest", good, nil, ""},
		{"empty", nil, nil, "no kernel image"},
		{"garbage", []byte(strings.Repeat("not a kernel ", 64)), nil, "not an ELF or bzImage"},
		{"truncated ELF", good[:len(good)/2], nil, "kernel test"},
		{"wrong class", mut(func(b []byte) { b[4] = 3 }), nil, "class"},
		{"wrong machine", mut(func(b []byte) { le.PutUint16(b[18:], 183) }), nil, "machine"},
		{"PVH with initrd", good, []byte("initrd"), "initrd"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := vmm.Config{Kernel: c.kernel, Initrd: c.initrd, KernelName: "test", Memory: vmm.DefaultMemory, CPUs: 1}
			err := cfg.Validate()
			if c.mention == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, vmm.ErrConfig) {
				t.Fatalf("Validate: %v, want an ErrConfig", err)
			}
			if !strings.Contains(err.Error(), c.mention) {
				t.Errorf("Validate: %q does not mention %q", err, c.mention)
			}
		})
	}
}
