package mac

import (
	"fmt"
	"regexp"
	"strconv"
)

// MaxCategories is the number of MCS categories in the default SELinux
// policy (c0..c1023).
const MaxCategories = 1024

// pairCount is C(n,2), the number of category pairs a<b among n categories.
func pairCount(n int) int { return n * (n - 1) / 2 }

// pairAt maps an index in [0, pairCount(n)) to the pair (a, b), a < b, in
// lexicographic order. Indexing the pairs lets the allocator draw one
// uniformly at random with a single random number and scan them in a fixed
// order when randomness keeps colliding.
func pairAt(n, idx int) (a, b int) {
	for a = 0; a < n-1; a++ {
		row := n - 1 - a
		if idx < row {
			return a, a + 1 + idx
		}
		idx -= row
	}
	panic(fmt.Sprintf("mcs: pair index out of range for %d categories", n))
}

// FormatLevel returns the MCS level "s0:c<a>,c<b>" for a category pair.
func FormatLevel(a, b int) string {
	return "s0:c" + strconv.Itoa(a) + ",c" + strconv.Itoa(b)
}

var levelRE = regexp.MustCompile(`^s0(?::c(0|[1-9][0-9]{0,3}),c(0|[1-9][0-9]{0,3}))?$`)

// ValidateLevel accepts only "s0" and "s0:c<a>,c<b>" with 0 <= a < b <= 1023:
// the levels this package hands out. Ranges and sensitivities other than s0
// have no place in the sVirt model, so refusing them keeps a caller from
// passing, say, "s0-s0:c0.c1023" (every category) by mistake.
func ValidateLevel(level string) error {
	m := levelRE.FindStringSubmatch(level)
	if m == nil {
		return fmt.Errorf("%w %q: want s0:c<a>,c<b>", ErrInvalidLevel, level)
	}
	if m[1] == "" {
		return nil
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	if a >= b || b >= MaxCategories {
		return fmt.Errorf("%w %q: need 0 <= a < b <= %d", ErrInvalidLevel, level, MaxCategories-1)
	}
	return nil
}

// vmIDRE is the jail's VM id syntax; the id is written into reservation
// files and profile names, so it must not carry separators or newlines.
var vmIDRE = regexp.MustCompile(`^[a-zA-Z0-9-]{1,64}$`)

func validateVMID(id string) error {
	if !vmIDRE.MatchString(id) {
		return fmt.Errorf("mac: %w: VM id %q must match [a-zA-Z0-9-]{1,64}", ErrInvalidName, id)
	}
	return nil
}
