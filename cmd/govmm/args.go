package main

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// parseSize parses a byte size such as "128M", "1G", "65536" or "512KiB".
// Suffixes are binary (K = 1024). The result must fit in uint64; overflow
// is an error, never a wrap-around.
func parseSize(s string) (uint64, error) {
	orig := s
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty size")
	}
	mult := uint64(1)
	upper := strings.ToUpper(s)
	for _, suf := range []struct {
		s string
		m uint64
	}{
		{"KIB", 1 << 10}, {"MIB", 1 << 20}, {"GIB", 1 << 30}, {"TIB", 1 << 40},
		{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40},
		{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"B", 1},
	} {
		if strings.HasSuffix(upper, suf.s) {
			mult = suf.m
			s = s[:len(s)-len(suf.s)]
			break
		}
	}
	if s == "" || s[0] == '+' || s[0] == '-' {
		return 0, fmt.Errorf("size %q: want a non-negative whole number with an optional K, M, G or T suffix", orig)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a whole number with an optional K, M, G or T suffix", orig)
	}
	if n > math.MaxUint64/mult {
		return 0, fmt.Errorf("size %q is too large", orig)
	}
	return n * mult, nil
}

// consoleSpec is the parsed --console flag.
type consoleSpec struct {
	kind string // "stdout", "file" or "off"
	path string // for "file"
}

func parseConsole(s string) (consoleSpec, error) {
	switch {
	case s == "stdout" || s == "off":
		return consoleSpec{kind: s}, nil
	case strings.HasPrefix(s, "file:"):
		p := strings.TrimPrefix(s, "file:")
		if p == "" {
			return consoleSpec{}, fmt.Errorf("--console file: needs a path, as in file:/tmp/console.log")
		}
		if strings.IndexByte(p, 0) >= 0 {
			return consoleSpec{}, fmt.Errorf("--console path contains a NUL byte")
		}
		return consoleSpec{kind: "file", path: p}, nil
	}
	return consoleSpec{}, fmt.Errorf("--console %q: want stdout, off or file:PATH", s)
}
