package mac

import (
	"errors"
	"testing"
)

func TestPairAtIsABijection(t *testing.T) {
	for _, n := range []int{2, 3, 4, 17, MaxCategories} {
		seen := map[[2]int]bool{}
		for i := range pairCount(n) {
			a, b := pairAt(n, i)
			if a < 0 || a >= b || b >= n {
				t.Fatalf("n=%d: pairAt(%d) = (%d,%d), want 0 <= a < b < n", n, i, a, b)
			}
			if seen[[2]int{a, b}] {
				t.Fatalf("n=%d: pair (%d,%d) twice", n, a, b)
			}
			seen[[2]int{a, b}] = true
		}
		if len(seen) != pairCount(n) {
			t.Fatalf("n=%d: %d distinct pairs, want %d", n, len(seen), pairCount(n))
		}
	}
	if got := pairCount(MaxCategories); got != 523776 {
		t.Errorf("pairCount(1024) = %d, want 523776", got)
	}
}

func TestValidateLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		ok    bool
	}{
		{"s0", true},
		{"s0:c12,c345", true},
		{"s0:c0,c1023", true},
		{"s0:c0,c1024", false},
		{"s0:c5,c5", false},
		{"s0:c7,c3", false},
		{"s0:c012,c345", false},
		{"s0-s0:c0.c1023", false},
		{"s1:c1,c2", false},
		{"s0:c1,c2\n", false},
		{"s0:c1,c2:x", false},
		{"", false},
	} {
		err := ValidateLevel(tc.level)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateLevel(%q) = %v, want ok=%v", tc.level, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidLevel) {
			t.Errorf("ValidateLevel(%q) = %v, want ErrInvalidLevel", tc.level, err)
		}
	}
}
