package cgroup

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// crunShares2Weight is the shares→weight conversion crun documents (and
// runc used before 1.3); WeightToShares must invert it exactly.
func crunShares2Weight(shares uint64) uint64 {
	return 1 + ((shares-2)*9999)/262142
}

func TestWeightToShares(t *testing.T) {
	for _, tc := range []struct{ w, shares uint64 }{
		{0, 2}, // clamped (0 is not a weight)
		{1, 2},
		{2, 29},
		{10, 238},
		{50, 1287},
		{100, 2598},
		{200, 5220},
		{300, 7841},
		{1000, 26193},
		{5000, 131060},
		{9999, 262118},
		{10000, 262144},
		{20000, 262144}, // clamped
	} {
		if got := WeightToShares(tc.w); got != tc.shares {
			t.Errorf("WeightToShares(%d) = %d, want %d", tc.w, got, tc.shares)
		}
	}
	// Every weight survives the round trip through crun's formula, and the
	// map is monotonic and inside v1's range.
	prev := uint64(0)
	for w := uint64(MinCPUWeight); w <= MaxCPUWeight; w++ {
		s := WeightToShares(w)
		if s < minShares || s > maxShares || s <= prev {
			t.Fatalf("WeightToShares(%d) = %d (previous %d): outside %d..%d or not increasing", w, s, prev, minShares, maxShares)
		}
		if back := crunShares2Weight(s); back != w {
			t.Fatalf("crun maps WeightToShares(%d) = %d back to weight %d", w, s, back)
		}
		prev = s
	}
	// Ratios between VMs survive (what the fair-share test relies on).
	if r := float64(WeightToShares(300)) / float64(WeightToShares(100)); r < 2.95 || r > 3.05 {
		t.Errorf("shares ratio for weights 300:100 = %.3f, want about 3", r)
	}
}

func TestValidateWeight(t *testing.T) {
	for _, w := range []uint64{1, 100, 10000} {
		if err := ValidateWeight(w); err != nil {
			t.Errorf("ValidateWeight(%d) = %v", w, err)
		}
	}
	for _, w := range []uint64{0, 10001, 1 << 63} {
		err := ValidateWeight(w)
		if !errors.Is(err, ErrInvalidWeight) || !strings.Contains(err.Error(), "1..10000") {
			t.Errorf("ValidateWeight(%d) = %v, want ErrInvalidWeight naming the range", w, err)
		}
	}
}

func TestParseCPUMax(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		in            string
		quota, period time.Duration
	}{
		{"50000/100000", 50 * ms, 100 * ms},
		{"50000", 50 * ms, 100 * ms},
		{"200000/100000", 200 * ms, 100 * ms}, // two CPUs
		{"1000/1000", ms, ms},
		{"1000/1000000", ms, time.Second},
		{"max", 0, 100 * ms},
		{"max/50000", 0, 50 * ms},
		{"0050000/0100000", 50 * ms, 100 * ms},
		{"17592186044415", MaxCPUQuota, 100 * ms},
	} {
		q, p, err := ParseCPUMax(tc.in)
		if err != nil || q != tc.quota || p != tc.period {
			t.Errorf("ParseCPUMax(%q) = %v, %v, %v; want %v, %v", tc.in, q, p, err, tc.quota, tc.period)
		}
	}
	for _, tc := range []struct{ in, msg string }{
		{"", "empty"},
		{"/", "empty number"},
		{"50000/", "empty number"},
		{"/100000", "empty number"},
		{"0", "quota 0 µs"},
		{"0/100000", "quota 0 µs"},
		{"999", "want 1000.."},
		{"50000/999", "period 999 µs"},
		{"50000/1000001", "period 1000001 µs"},
		{"17592186044416", "quota 17592186044416"},
		{"99999999999999999999", "out of range"},
		{"-1", "not a decimal"},
		{"+50000", "not a decimal"},
		{" 50000", "not a decimal"},
		{"50000 100000", "not a decimal"},
		{"50ms", "not a decimal"},
		{"0x1000", "not a decimal"},
		{"50000/100000/1", "not a decimal"},
		{"MAX", "not a decimal"},
		{"max/max", "not a decimal"},
		{"1.5", "not a decimal"},
		{strings.Repeat("1", 40), "longer than"},
	} {
		q, p, err := ParseCPUMax(tc.in)
		if !errors.Is(err, ErrInvalidCPUMax) || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseCPUMax(%q) = %v, %v, %v; want ErrInvalidCPUMax mentioning %q", tc.in, q, p, err, tc.msg)
		}
	}
}

func TestResourcesValidate(t *testing.T) {
	ms := time.Millisecond
	good := []Resources{
		{},
		{CPUWeight: 1},
		{CPUWeight: 10000, CPUQuota: 50 * ms, CPUPeriod: 100 * ms, MemoryMax: 1 << 30, PidsMax: 64},
		{CPUQuota: 3 * time.Second},
		{CPUPeriod: time.Second},
		{PidsMax: MaxPids},
	}
	for _, r := range good {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []struct {
		r    Resources
		want error
	}{
		{Resources{CPUWeight: 10001}, ErrInvalidWeight},
		{Resources{CPUQuota: -ms}, ErrInvalidCPUMax},
		{Resources{CPUQuota: 999 * time.Microsecond}, ErrInvalidCPUMax},
		{Resources{CPUQuota: 50*ms + 1}, ErrInvalidCPUMax}, // not whole µs
		{Resources{CPUQuota: MaxCPUQuota + time.Microsecond}, ErrInvalidCPUMax},
		{Resources{CPUPeriod: 999 * time.Microsecond}, ErrInvalidCPUMax},
		{Resources{CPUPeriod: time.Second + time.Microsecond}, ErrInvalidCPUMax},
		{Resources{CPUPeriod: -ms}, ErrInvalidCPUMax},
		{Resources{MemoryMax: -1}, ErrInvalidLimit},
		{Resources{PidsMax: -1}, ErrInvalidLimit},
		{Resources{PidsMax: MaxPids + 1}, ErrInvalidLimit},
	}
	for _, tc := range bad {
		if err := tc.r.Validate(); !errors.Is(err, tc.want) {
			t.Errorf("%+v: %v, want %v", tc.r, err, tc.want)
		}
	}
	n, err := Resources{}.normalize()
	if err != nil || n.CPUWeight != DefaultCPUWeight || n.CPUPeriod != DefaultCPUPeriod {
		t.Errorf("defaults: %+v, %v", n, err)
	}
}

func TestValidateName(t *testing.T) {
	for _, n := range []string{"govmm/vm1", "govmm/fs-a-12ab", "a", "a/b/c", "A_b-9", strings.Repeat("x", 64)} {
		if err := validateName(n); err != nil {
			t.Errorf("validateName(%q) = %v", n, err)
		}
	}
	for _, n := range []string{"", "/govmm/vm1", "govmm/", "govmm//vm1", "../x", "govmm/..", ".", "govmm/vm.1",
		"govmm/cpu.shares", "govmm/vm 1", "govmm/vm\n", "govmm\\vm", strings.Repeat("x", 65), "a/b/c/d/e/f/g/h/i"} {
		if err := validateName(n); !errors.Is(err, ErrInvalidName) {
			t.Errorf("validateName(%q) = %v, want ErrInvalidName", n, err)
		}
	}
}

// FuzzParseCPUMax: no input panics; what parses is within the kernel's
// ranges and survives FormatCPUMax → ParseCPUMax.
func FuzzParseCPUMax(f *testing.F) {
	for _, s := range []string{"50000/100000", "50000", "max", "max/50000", "0", "", "/", "1000/1000",
		"17592186044416", "-1", "99999999999999999999/1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, p, err := ParseCPUMax(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidCPUMax) {
				t.Fatalf("ParseCPUMax(%q): error %v does not wrap ErrInvalidCPUMax", s, err)
			}
			if q != 0 || p != 0 {
				t.Fatalf("ParseCPUMax(%q): error with values %v, %v", s, q, p)
			}
			return
		}
		if err := checkPeriod(p); err != nil {
			t.Fatalf("ParseCPUMax(%q) period: %v", s, err)
		}
		if q != 0 {
			if err := checkQuota(q); err != nil {
				t.Fatalf("ParseCPUMax(%q) quota: %v", s, err)
			}
		}
		if err := (Resources{CPUQuota: q, CPUPeriod: p}).Validate(); err != nil {
			t.Fatalf("ParseCPUMax(%q) = %v, %v, which Resources refuses: %v", s, q, p, err)
		}
		q2, p2, err := ParseCPUMax(FormatCPUMax(q, p))
		if err != nil || q2 != q || p2 != p {
			t.Fatalf("round trip of %q via %q: %v, %v, %v", s, FormatCPUMax(q, p), q2, p2, err)
		}
	})
}
