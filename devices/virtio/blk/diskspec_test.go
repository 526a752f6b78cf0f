package blk

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDiskSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		err  string // substring of the error; "" = success
	}{
		{"path=/a.img", Spec{Path: "/a.img"}, ""},
		{"path=a.img,readonly=on,serial=vol1,direct=on,bps=1048576,iops=100",
			Spec{Path: "a.img", ReadOnly: true, Serial: "vol1", Direct: true, BPS: 1 << 20, IOPS: 100}, ""},
		{"iops=5,path=x", Spec{Path: "x", IOPS: 5}, ""},
		{"path=x,readonly=off,direct=off,bps=0", Spec{Path: "x"}, ""},
		{"path=x,serial=abcdefghijklmnopqrst", Spec{Path: "x", Serial: "abcdefghijklmnopqrst"}, ""},
		{"path=/p=q", Spec{Path: "/p=q"}, ""},
		{"", Spec{}, "empty --disk"},
		{"readonly=on", Spec{}, "path: missing"},
		{"path=", Spec{}, "path: empty"},
		{"path=a,path=b", Spec{}, `key "path" given twice`},
		{"path=a,readonly=on,readonly=off", Spec{}, `key "readonly" given twice`},
		{"path=a,cache=none", Spec{}, `unknown key "cache"`},
		{"path=a,readonly=yes", Spec{}, "readonly:"},
		{"path=a,direct=1", Spec{}, "direct:"},
		{"path=a,bps=10k", Spec{}, "bps:"},
		{"path=a,iops=-1", Spec{}, "iops:"},
		{"path=a,iops=+1", Spec{}, "iops:"},
		{"path=a,bps=", Spec{}, "bps: empty"},
		{"path=a,bps=18446744073709551616", Spec{}, "bps: \"18446744073709551616\" is out of range"},
		{"path=a,serial=abcdefghijklmnopqrstu", Spec{}, "serial:"},
		{"path=a,serial=", Spec{}, "serial: empty"},
		{"path=a,serial=a\x01b", Spec{}, "serial: byte 0x01"},
		{"path=a,", Spec{}, "empty item"},
		{"path=a,,readonly=on", Spec{}, "empty item"},
		{"path=a,readonly", Spec{}, `"readonly" is not key=value`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseDiskSpec(tc.in)
			if tc.err == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error %v, want ErrBadSpec containing %q", err, tc.err)
			}
		})
	}
}

func TestSpecRoundTrip(t *testing.T) {
	s := Spec{Path: "/x/y.img", ReadOnly: true, Serial: "s 1", Direct: true, BPS: 7, IOPS: 9}
	got, err := ParseDiskSpec(s.String())
	if err != nil || got != s {
		t.Fatalf("%q -> %+v, %v", s.String(), got, err)
	}
	if o := s.Options(); !o.ReadOnly || !o.Direct || o.Serial != "s 1" || o.BPS != 7 || o.IOPS != 9 {
		t.Fatalf("options %+v", o)
	}
}

func FuzzParseDiskSpec(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseDiskSpec(s)
		if err != nil {
			if !errors.Is(err, ErrBadSpec) {
				t.Fatalf("error without ErrBadSpec: %v", err)
			}
			return
		}
		if spec.Path == "" || strings.Contains(spec.Path, ",") || len(spec.Serial) > IDBytes {
			t.Fatalf("accepted bad spec %+v", spec)
		}
		// A parsed spec formats back to an equivalent one.
		again, err := ParseDiskSpec(spec.String())
		if err != nil || again != spec {
			t.Fatalf("round trip of %q: %+v, %v", spec.String(), again, err)
		}
	})
}
