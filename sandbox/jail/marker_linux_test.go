package jail

import "testing"

// The C constructor and the Go side must agree on the marker's name.
func TestCtorMarker(t *testing.T) {
	if got := ctorMarker(); got != envMarker {
		t.Errorf("constructor marker %q, Go marker %q", got, envMarker)
	}
}

func TestInnermostNSpid(t *testing.T) {
	for _, c := range []struct {
		status string
		want   int
		ok     bool
	}{
		{"Name:\tx\nNSpid:\t100\t1\n", 1, true},
		{"NSpid:\t100\n", 100, true},
		{"NSpid:\t5\t6\t7\n", 7, true},
		{"Name:\tx\n", 0, false},
		{"NSpid:\n", 0, false},
	} {
		got, ok := innermostNSpid(c.status)
		if got != c.want || ok != c.ok {
			t.Errorf("innermostNSpid(%q) = %d %v", c.status, got, ok)
		}
	}
}
