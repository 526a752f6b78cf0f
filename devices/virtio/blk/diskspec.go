package blk

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadSpec marks a malformed --disk value; the CLI maps it to the usage
// exit code.
var ErrBadSpec = errors.New("bad disk spec")

// Spec is a parsed --disk value:
//
//	path=FILE[,readonly=on|off][,serial=ID][,direct=on|off][,bps=N][,iops=N]
//
// Keys may come in any order, each at most once; path is required. FILE
// cannot contain a comma (there is no escaping). bps and iops are decimal,
// 0 meaning unlimited; the burst of each limit is one second's worth.
type Spec struct {
	Path     string
	ReadOnly bool
	Direct   bool
	Serial   string
	BPS      uint64
	IOPS     uint64
}

// Options returns the Open options the spec asks for.
func (s Spec) Options() Options {
	return Options{ReadOnly: s.ReadOnly, Direct: s.Direct, Serial: s.Serial, BPS: s.BPS, IOPS: s.IOPS}
}

// String formats the spec so that ParseDiskSpec(s.String()) == s.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString("path=")
	b.WriteString(s.Path)
	onoff := func(v bool) string {
		if v {
			return "on"
		}
		return "off"
	}
	fmt.Fprintf(&b, ",readonly=%s,direct=%s", onoff(s.ReadOnly), onoff(s.Direct))
	if s.Serial != "" {
		b.WriteString(",serial=")
		b.WriteString(s.Serial)
	}
	if s.BPS != 0 {
		fmt.Fprintf(&b, ",bps=%d", s.BPS)
	}
	if s.IOPS != 0 {
		fmt.Fprintf(&b, ",iops=%d", s.IOPS)
	}
	return b.String()
}

func specErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadSpec, fmt.Sprintf(format, args...))
}

// ParseDiskSpec parses a --disk value. Every error names the offending key.
// It checks syntax only; Open checks the file itself.
func ParseDiskSpec(s string) (Spec, error) {
	var spec Spec
	if s == "" {
		return spec, specErr("empty --disk value (want path=FILE[,readonly=on][,serial=ID][,direct=on][,bps=N][,iops=N])")
	}
	seen := map[string]bool{}
	for _, kv := range strings.Split(s, ",") {
		key, val, ok := strings.Cut(kv, "=")
		if !ok {
			if kv == "" {
				return spec, specErr("empty item in %q (stray comma?)", s)
			}
			return spec, specErr("%q is not key=value", kv)
		}
		if seen[key] {
			return spec, specErr("key %q given twice", key)
		}
		seen[key] = true
		var err error
		switch key {
		case "path":
			if val == "" {
				return spec, specErr("path: empty file name")
			}
			spec.Path = val
		case "readonly":
			spec.ReadOnly, err = parseOnOff(key, val)
		case "direct":
			spec.Direct, err = parseOnOff(key, val)
		case "serial":
			err = checkSerial(val)
			spec.Serial = val
		case "bps":
			spec.BPS, err = parseRate(key, val)
		case "iops":
			spec.IOPS, err = parseRate(key, val)
		default:
			return spec, specErr("unknown key %q (known: path, readonly, serial, direct, bps, iops)", key)
		}
		if err != nil {
			return spec, err
		}
	}
	if !seen["path"] {
		return spec, specErr("path: missing (path=FILE is required)")
	}
	return spec, nil
}

func parseOnOff(key, val string) (bool, error) {
	switch val {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	return false, specErr("%s: %q is not on or off", key, val)
}

func parseRate(key, val string) (uint64, error) {
	// Decimal digits only: ParseUint would also accept "+5" or "0x10" in
	// some bases, and we want one spelling per value.
	if val == "" {
		return 0, specErr("%s: empty value", key)
	}
	for _, c := range val {
		if c < '0' || c > '9' {
			return 0, specErr("%s: %q is not a decimal number", key, val)
		}
	}
	n, err := strconv.ParseUint(val, 10, 64)
	if err != nil {
		return 0, specErr("%s: %q is out of range", key, val)
	}
	return n, nil
}

// checkSerial accepts what GET_ID can return: at most IDBytes bytes of
// printable ASCII. The guest shows the serial to userspace (sysfs, udev
// symlinks), so control bytes are refused rather than passed on.
func checkSerial(val string) error {
	if val == "" {
		return specErr("serial: empty value")
	}
	if len(val) > IDBytes {
		return specErr("serial: %q is %d bytes, at most %d (VIRTIO_BLK_ID_BYTES)", val, len(val), IDBytes)
	}
	for i := 0; i < len(val); i++ {
		if c := val[i]; c < 0x20 || c > 0x7e {
			return specErr("serial: byte %#02x at %d is not printable ASCII", c, i)
		}
	}
	return nil
}
