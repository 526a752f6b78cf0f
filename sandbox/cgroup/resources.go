package cgroup

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of the values the kernel accepts (kernel/sched/core.c,
// kernel/cgroup/pids.c), checked here so a bad flag fails before anything
// is created, with a message that says what the range is.
const (
	// DefaultCPUWeight is cgroup v2's default cpu.weight.
	DefaultCPUWeight = 100
	// MinCPUWeight and MaxCPUWeight bound cpu.weight (CGROUP_WEIGHT_MIN/MAX).
	MinCPUWeight = 1
	MaxCPUWeight = 10000
	// DefaultCPUPeriod is the CFS bandwidth period of both versions.
	DefaultCPUPeriod = 100 * time.Millisecond
	// MinCPUPeriod and MaxCPUPeriod bound the period (min/max_cfs_quota_period).
	MinCPUPeriod = time.Millisecond
	MaxCPUPeriod = time.Second
	// MinCPUQuota is the smallest quota (min_cfs_quota_period).
	MinCPUQuota = time.Millisecond
	// MaxCPUQuota is the largest quota (max_cfs_runtime: 2^44-1 µs).
	MaxCPUQuota = time.Duration(1<<44-1) * time.Microsecond
	// MaxPids is the largest pids.max below "max" (PID_MAX_LIMIT).
	MaxPids = 4 * 1024 * 1024
)

// v1 cpu.shares range (MIN_SHARES/MAX_SHARES for group scheduling).
const (
	minShares = 2
	maxShares = 262144
)

// Resources are the limits of one VM's group. The zero value means "all
// defaults": weight 100, no CPU cap, no memory or pids limit.
type Resources struct {
	// CPUWeight is the group's CPU weight, 1..10000 with cgroup v2
	// semantics (default 100 when 0). On v1 it is written to cpu.shares
	// as WeightToShares(CPUWeight).
	CPUWeight uint64
	// CPUQuota is how much CPU time the group may use per CPUPeriod
	// (cpu.max "QUOTA PERIOD" on v2, cpu.cfs_quota_us on v1). It may
	// exceed the period on a multi-CPU host. 0 = no cap. Whole
	// microseconds, MinCPUQuota..MaxCPUQuota.
	CPUQuota time.Duration
	// CPUPeriod is the bandwidth period (default DefaultCPUPeriod when
	// 0). Whole microseconds, MinCPUPeriod..MaxCPUPeriod.
	CPUPeriod time.Duration
	// MemoryMax is the memory limit in bytes (memory.max on v2,
	// memory.limit_in_bytes on v1), 0 = no limit. The caller passes guest
	// RAM plus the VMM's own overhead. Swap is refused as well: on v2
	// memory.swap.max is set to 0 (always, where the file exists); on v1
	// memory.memsw.limit_in_bytes is set equal to the limit (only with a
	// limit, where the file exists).
	MemoryMax int64
	// PidsMax is the most tasks (threads) the group may hold (pids.max),
	// 0 = no limit.
	PidsMax int64
}

// ValidateWeight checks a CPU weight given by a user (0 is not a weight;
// Resources treats it as "default").
func ValidateWeight(w uint64) error {
	if w < MinCPUWeight || w > MaxCPUWeight {
		return fmt.Errorf("%w %d: want %d..%d (default %d)", ErrInvalidWeight, w,
			MinCPUWeight, MaxCPUWeight, DefaultCPUWeight)
	}
	return nil
}

// WeightToShares converts a cgroup v2 CPU weight (1..10000) to a v1
// cpu.shares value (2..262144). It is the exact inverse of the linear
// shares→weight conversion that crun documents (crun(1), "CPU controller")
// and runc used until 1.3:
//
//	weight = 1 + ((shares - 2) * 9999) / 262142
//
// namely the smallest shares value that formula maps back to weight:
//
//	shares = 2 + ceil((weight - 1) * 262142 / 9999)
//
// So 1 → 2, 100 → 2598, 300 → 7841, 10000 → 262144, and crun/runc reading
// the shares back get the same weight. The linear map keeps the ratios
// between sibling VMs (100:300 → 1:3.02); the quadratic map that runc ≥1.3
// and opencontainers/cgroups use for shares→weight maps 1024 ↔ 100 but
// does not (its inverse gives 100:300 → 1024:4059, 1:3.96). The price is
// that a VM at the default weight has 2598 shares against 1024 for a v1
// group left at the default; VM groups only compete with each other,
// inside the "govmm" parent, so that does not matter there. Weights
// outside 1..10000 are clamped.
func WeightToShares(w uint64) uint64 {
	switch {
	case w <= MinCPUWeight:
		return minShares
	case w >= MaxCPUWeight:
		return maxShares
	}
	const span, wspan = maxShares - minShares, MaxCPUWeight - MinCPUWeight
	return minShares + ((w-1)*span+wspan-1)/wspan
}

// Validate checks r as New would, without touching the system. A zero
// Resources is valid.
func (r Resources) Validate() error {
	_, err := r.normalize()
	return err
}

// normalize fills in defaults and checks every field.
func (r Resources) normalize() (Resources, error) {
	if r.CPUWeight == 0 {
		r.CPUWeight = DefaultCPUWeight
	}
	if err := ValidateWeight(r.CPUWeight); err != nil {
		return r, err
	}
	periodSet := r.CPUPeriod != 0
	if !periodSet {
		r.CPUPeriod = DefaultCPUPeriod
	}
	if err := checkPeriod(r.CPUPeriod); err != nil {
		return r, err
	}
	if r.CPUQuota != 0 {
		if err := checkQuota(r.CPUQuota); err != nil {
			return r, err
		}
	}
	if r.MemoryMax < 0 {
		return r, fmt.Errorf("%w: memory max %d: want bytes > 0, or 0 for no limit", ErrInvalidLimit, r.MemoryMax)
	}
	if r.PidsMax < 0 || r.PidsMax > MaxPids {
		return r, fmt.Errorf("%w: pids max %d: want 1..%d, or 0 for no limit", ErrInvalidLimit, r.PidsMax, MaxPids)
	}
	return r, nil
}

func checkPeriod(p time.Duration) error {
	if p%time.Microsecond != 0 || p < MinCPUPeriod || p > MaxCPUPeriod {
		return fmt.Errorf("%w: period %v: want whole microseconds in %d..%d µs",
			ErrInvalidCPUMax, p, MinCPUPeriod.Microseconds(), MaxCPUPeriod.Microseconds())
	}
	return nil
}

func checkQuota(q time.Duration) error {
	if q%time.Microsecond != 0 || q < MinCPUQuota || q > MaxCPUQuota {
		return fmt.Errorf("%w: quota %v: want whole microseconds in %d..%d µs (or no cap)",
			ErrInvalidCPUMax, q, MinCPUQuota.Microseconds(), MaxCPUQuota.Microseconds())
	}
	return nil
}

// maxCPUMaxLen bounds the flag string: the longest valid one is 14 digits
// of quota, "/" and 7 digits of period; leading zeros beyond a little
// slack are not worth accepting.
const maxCPUMaxLen = 32

// ParseCPUMax parses a --cpu-max flag: "QUOTA_US/PERIOD_US" (e.g.
// "50000/100000": half a CPU) or "QUOTA_US" (period 100000 µs). QUOTA_US
// may be "max" for no cap, as in the kernel's cpu.max, which then returns
// quota 0. Both numbers are decimal microseconds, digits only, within the
// kernel's ranges (quota ≥ 1000 µs, period 1000..1000000 µs).
func ParseCPUMax(s string) (quota, period time.Duration, err error) {
	const want = `want QUOTA_US[/PERIOD_US], e.g. "50000/100000" (half a CPU) or "max"`
	if s == "" {
		return 0, 0, fmt.Errorf("%w: empty; %s", ErrInvalidCPUMax, want)
	}
	if len(s) > maxCPUMaxLen {
		return 0, 0, fmt.Errorf("%w %.32q...: longer than %d bytes; %s", ErrInvalidCPUMax, s, maxCPUMaxLen, want)
	}
	qs, ps, hasPeriod := strings.Cut(s, "/")
	period = DefaultCPUPeriod
	if hasPeriod {
		us, err := parseMicros(ps)
		if err != nil {
			return 0, 0, fmt.Errorf("%w %q: period %q: %v; %s", ErrInvalidCPUMax, s, ps, err, want)
		}
		period = time.Duration(us) * time.Microsecond
		if us < uint64(MinCPUPeriod.Microseconds()) || us > uint64(MaxCPUPeriod.Microseconds()) {
			return 0, 0, fmt.Errorf("%w %q: period %d µs: want %d..%d µs", ErrInvalidCPUMax, s, us,
				MinCPUPeriod.Microseconds(), MaxCPUPeriod.Microseconds())
		}
	}
	if qs == "max" {
		return 0, period, nil
	}
	us, err := parseMicros(qs)
	if err != nil {
		return 0, 0, fmt.Errorf("%w %q: quota %q: %v; %s", ErrInvalidCPUMax, s, qs, err, want)
	}
	if us < uint64(MinCPUQuota.Microseconds()) || us > uint64(MaxCPUQuota.Microseconds()) {
		return 0, 0, fmt.Errorf(`%w %q: quota %d µs: want %d..%d µs, or "max" for no cap`, ErrInvalidCPUMax, s, us,
			MinCPUQuota.Microseconds(), MaxCPUQuota.Microseconds())
	}
	return time.Duration(us) * time.Microsecond, period, nil
}

// parseMicros parses a non-empty run of ASCII digits (no sign, no space).
func parseMicros(s string) (uint64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty number")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("not a decimal number of microseconds")
		}
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("out of range")
	}
	return v, nil
}

// FormatCPUMax is the inverse of ParseCPUMax: "QUOTA_US/PERIOD_US", or
// "max/PERIOD_US" for quota 0. It does not validate.
func FormatCPUMax(quota, period time.Duration) string {
	q := "max"
	if quota > 0 {
		q = strconv.FormatInt(quota.Microseconds(), 10)
	}
	return q + "/" + strconv.FormatInt(period.Microseconds(), 10)
}

// validateName checks a group name: a relative path of 1..8 components,
// each 1..64 bytes of [A-Za-z0-9_-]. No dots at all, so no "." or "..",
// and no component can collide with a control file (those all contain a
// dot, except v1's "tasks", "notify_on_release" and "release_agent",
// which mkdir refuses as existing).
func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty", ErrInvalidName)
	}
	parts := strings.Split(name, "/")
	if len(parts) > 8 {
		return fmt.Errorf("%w %q: more than 8 components", ErrInvalidName, name)
	}
	for _, p := range parts {
		if p == "" || len(p) > 64 {
			return fmt.Errorf("%w %q: want a relative path like \"govmm/VMID\" of components of 1..64 bytes", ErrInvalidName, name)
		}
		for i := 0; i < len(p); i++ {
			c := p[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("%w %q: byte %q not in [A-Za-z0-9_-]", ErrInvalidName, name, c)
			}
		}
	}
	return nil
}
