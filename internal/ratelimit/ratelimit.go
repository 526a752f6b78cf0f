// Package ratelimit implements the token buckets behind a device's optional
// I/O rate limit: one bucket for bytes per second and one for operations per
// second, each with a burst.
//
// A throttled request is never dropped: Take reports how long the caller has
// to wait, the device keeps the request and retries it when a timer armed
// with that duration fires. The buckets are integer arithmetic only (no
// floating-point drift over a long-running VM), allocation-free, and take
// their time from an injectable clock so tests need no sleeps.
//
// Buckets and Limiters are not safe for concurrent use: each belongs to one
// device, whose request path already holds the device's lock.
package ratelimit

import (
	"math"
	"math/bits"
	"time"
)

// Clock returns the current time. Only differences between readings are
// used, so a monotonic source is all that is needed; time.Now carries a
// monotonic reading and is the default.
type Clock func() time.Time

const nsPerSec = uint64(time.Second)

// maxCost caps a single charge so that the signed token count cannot
// overflow however large a (hostile) request claims to be. 2^62 bytes is far
// beyond any disk.
const maxCost = uint64(1) << 62

// Bucket is a token bucket refilled at Rate tokens per second up to Burst
// tokens. The zero Bucket (Rate 0) is unlimited.
//
// A charge larger than Burst would never fit in the bucket, so it is
// admitted when the bucket is full and leaves the bucket in debt (a negative
// balance) that later refills pay off first. Large requests are thereby
// slowed to Rate on average instead of starving forever.
type Bucket struct {
	Rate  uint64 // tokens per second; 0 = unlimited
	Burst uint64 // capacity in tokens; 0 = Rate (one second's worth)

	tokens  int64  // balance; negative = debt from an oversized charge
	frac    uint64 // sub-token remainder of the last refill, in token·ns/s units (< 1e9)
	last    time.Time
	started bool
}

// NewBucket returns a bucket; like a Bucket literal it is full at its first
// use.
func NewBucket(rate, burst uint64) Bucket { return Bucket{Rate: rate, Burst: burst} }

// capacity is the effective burst, clamped so it fits the signed balance.
func (b *Bucket) capacity() uint64 {
	c := b.Burst
	if c == 0 {
		c = b.Rate
	}
	if c > maxCost {
		c = maxCost
	}
	return c
}

// Unlimited reports whether the bucket never throttles.
func (b *Bucket) Unlimited() bool { return b.Rate == 0 }

// refill adds the tokens accrued since the last call.
func (b *Bucket) refill(now time.Time) {
	if !b.started {
		// The first use starts the clock with a full bucket, so a
		// freshly booted guest gets its burst at once.
		b.started = true
		b.last = now
		b.tokens, b.frac = int64(b.capacity()), 0
		return
	}
	d := now.Sub(b.last)
	if d <= 0 {
		// A clock that stands still or steps back adds nothing; keeping
		// the old reference point means no tokens are ever counted twice.
		return
	}
	b.last = now
	capacity := b.capacity()
	// accrued = d*Rate/1e9 tokens, computed in 128 bits so that a long idle
	// period at a high rate cannot overflow; frac carries the remainder so
	// many short refills add up exactly to one long one.
	hi, lo := bits.Mul64(uint64(d), b.Rate)
	var carry uint64
	lo, carry = bits.Add64(lo, b.frac, 0)
	hi += carry
	if hi >= nsPerSec {
		// The quotient would not fit in 64 bits: certainly enough to fill.
		b.tokens, b.frac = int64(capacity), 0
		return
	}
	q, r := bits.Div64(hi, lo, nsPerSec)
	room := uint64(int64(capacity) - b.tokens) // tokens <= capacity always, so >= 0
	if q >= room {
		b.tokens, b.frac = int64(capacity), 0
		return
	}
	b.tokens += int64(q)
	b.frac = r
}

// need is how many tokens must be in the bucket before a charge of cost is
// admitted: the cost itself, or a full bucket for an oversized charge.
func (b *Bucket) need(cost uint64) int64 {
	if c := b.capacity(); cost > c {
		return int64(c)
	}
	return int64(cost)
}

// wait is how long until the balance reaches need, at Rate. The caller has
// refilled the bucket at the current time.
func (b *Bucket) wait(need int64) time.Duration {
	if b.tokens >= need {
		return 0
	}
	deficit := uint64(need - b.tokens) // > 0, < 2^63
	// ns = ceil((deficit*1e9 - frac) / Rate). frac < 1e9 <= deficit*1e9,
	// so the subtraction cannot underflow.
	hi, lo := bits.Mul64(deficit, nsPerSec)
	var borrow uint64
	lo, borrow = bits.Sub64(lo, b.frac, 0)
	hi -= borrow
	if hi >= b.Rate {
		return time.Duration(math.MaxInt64)
	}
	q, r := bits.Div64(hi, lo, b.Rate)
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(q)
}

// Take charges cost tokens at time now if the bucket allows it. Otherwise it
// charges nothing and returns how long to wait before trying again.
func (b *Bucket) Take(now time.Time, cost uint64) (ok bool, retryAfter time.Duration) {
	if b.Unlimited() {
		return true, 0
	}
	if cost > maxCost {
		cost = maxCost
	}
	b.refill(now)
	need := b.need(cost)
	if w := b.wait(need); w > 0 {
		return false, w
	}
	b.tokens -= int64(cost)
	return true, 0
}

// check is Take without the charge, for the all-or-nothing Limiter.
func (b *Bucket) check(now time.Time, cost uint64) time.Duration {
	if b.Unlimited() {
		return 0
	}
	if cost > maxCost {
		cost = maxCost
	}
	b.refill(now)
	return b.wait(b.need(cost))
}

func (b *Bucket) charge(cost uint64) {
	if b.Unlimited() {
		return
	}
	if cost > maxCost {
		cost = maxCost
	}
	b.tokens -= int64(cost)
}

// Tokens returns the current balance (negative while in debt), refilled to
// the time now. For tests and stats.
func (b *Bucket) Tokens(now time.Time) int64 {
	if b.Unlimited() {
		return math.MaxInt64
	}
	b.refill(now)
	return b.tokens
}

// Config describes a Limiter. Zero rates are unlimited; zero bursts default
// to one second's worth of the rate.
type Config struct {
	BPS, BPSBurst   uint64 // bytes per second, and burst in bytes
	IOPS, IOPSBurst uint64 // operations per second, and burst in operations
}

// Enabled reports whether the configuration limits anything.
func (c Config) Enabled() bool { return c.BPS != 0 || c.IOPS != 0 }

// Limiter charges each operation against both an ops bucket (one token per
// operation) and a bytes bucket. A request passes only if both buckets allow
// it, and then both are charged: a throttled request consumes nothing, so
// its retry is charged exactly once.
type Limiter struct {
	Bytes Bucket
	Ops   Bucket
	now   Clock
}

// New returns a Limiter with full buckets. clock may be nil (time.Now).
func New(cfg Config, clock Clock) *Limiter {
	if clock == nil {
		clock = time.Now
	}
	return &Limiter{
		Bytes: NewBucket(cfg.BPS, cfg.BPSBurst),
		Ops:   NewBucket(cfg.IOPS, cfg.IOPSBurst),
		now:   clock,
	}
}

// Take charges one operation of the given number of bytes. If either bucket
// is short it charges nothing and returns the longer of the two waits, after
// which a retry of the same request succeeds unless something else was
// charged meanwhile.
func (l *Limiter) Take(bytes uint64) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	w := l.Ops.check(now, 1)
	if wb := l.Bytes.check(now, bytes); wb > w {
		w = wb
	}
	if w > 0 {
		return false, w
	}
	l.Ops.charge(1)
	l.Bytes.charge(bytes)
	return true, 0
}
