package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	cases := []struct {
		in      string
		want    uint64
		wantErr string
	}{
		{"128M", 128 << 20, ""},
		{"128m", 128 << 20, ""},
		{"1G", 1 << 30, ""},
		{"1GiB", 1 << 30, ""},
		{"512K", 512 << 10, ""},
		{"4096", 4096, ""},
		{"16MB", 16 << 20, ""},
		{"0", 0, ""},
		{"", 0, "empty size"},
		{"M", 0, "want a non-negative"},
		{"-1M", 0, "want a non-negative"},
		{"+1M", 0, "want a non-negative"},
		{"1.5G", 0, "whole number"},
		{"12X", 0, "whole number"},
		{"16777216T", 0, "too large"},
		{"18446744073709551615", math.MaxUint64, ""},
		{"18446744073709551616", 0, "whole number"},
	}
	for _, c := range cases {
		got, err := parseSize(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("parseSize(%q) err = %v, want containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
}

func TestParseConsole(t *testing.T) {
	cases := []struct {
		in, kind, path string
		ok             bool
	}{
		{"stdout", "stdout", "", true},
		{"off", "off", "", true},
		{"file:/tmp/x", "file", "/tmp/x", true},
		{"file:", "", "", false},
		{"serial", "", "", false},
		{"file:a\x00b", "", "", false},
	}
	for _, c := range cases {
		got, err := parseConsole(c.in)
		if (err == nil) != c.ok || (c.ok && (got.kind != c.kind || got.path != c.path)) {
			t.Errorf("parseConsole(%q) = %+v, %v", c.in, got, err)
		}
	}
}

// FuzzParseSize: any input either fails cleanly or yields a value that
// printing and re-parsing reproduces; it never panics or wraps.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"128M", "1G", "0", "18446744073709551615", "17179869184G", "-1", "K"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if strings.ContainsAny(s, "-+") {
			t.Fatalf("parseSize(%q) accepted a sign: %d", s, n)
		}
	})
}

// FuzzParseConsole: any --console value is refused with an error or maps
// to exactly one of the three kinds, a file kind always with a NUL-free,
// non-empty path.
func FuzzParseConsole(f *testing.F) {
	for _, s := range []string{"stdout", "off", "file:/tmp/c.log", "file:", "file:a\x00b", "tty", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConsole(s)
		if err != nil {
			return
		}
		switch c.kind {
		case "stdout", "off":
			if c.path != "" || s != c.kind {
				t.Fatalf("parseConsole(%q) = %+v", s, c)
			}
		case "file":
			if c.path == "" || strings.IndexByte(c.path, 0) >= 0 || s != "file:"+c.path {
				t.Fatalf("parseConsole(%q) = %+v", s, c)
			}
		default:
			t.Fatalf("parseConsole(%q) = unknown kind %q", s, c.kind)
		}
	})
}
