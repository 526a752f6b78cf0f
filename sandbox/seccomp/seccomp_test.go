package seccomp

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	tests := []struct {
		in      string
		want    Mode
		wantErr bool
	}{
		{"kill", ModeKill, false},
		{"log", ModeLog, false},
		{"off", ModeOff, false},
		{"", 0, true},
		{"Kill", 0, true},
		{"allow", 0, true},
		{" kill", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseMode(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseMode(%q) = %v, want an error", tt.in, got)
				continue
			}
			// The error names the bad value and the choices.
			for _, s := range []string{`"` + tt.in + `"`, "kill", "log", "off"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("ParseMode(%q) error %q does not mention %s", tt.in, err, s)
				}
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
		if got.String() != tt.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
		}
	}
	if s := Mode(9).String(); s != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", s)
	}
}

func TestClassString(t *testing.T) {
	for c, want := range map[Class]string{ClassVCPU: "vcpu", ClassDevice: "device", ClassAPI: "api", Class(3): "Class(3)", Class(-1): "Class(-1)"} {
		if got := c.String(); got != want {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), got, want)
		}
	}
}
