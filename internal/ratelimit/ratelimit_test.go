package ratelimit

import (
	"math"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock.
type fakeClock struct{ t time.Time }

func newFakeClock() *fakeClock               { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func (c *fakeClock) Now() time.Time          { return c.t }
func (c *fakeClock) Advance(d time.Duration) { c.t = c.t.Add(d) }

func TestBucketSteps(t *testing.T) {
	type step struct {
		advance time.Duration
		cost    uint64
		ok      bool
		wait    time.Duration // expected retryAfter when !ok
	}
	tests := []struct {
		name        string
		rate, burst uint64
		steps       []step
	}{
		{
			name: "unlimited", rate: 0, burst: 0,
			steps: []step{{0, math.MaxUint64, true, 0}, {0, 1 << 40, true, 0}},
		},
		{
			name: "burst then refill", rate: 10, burst: 3,
			steps: []step{
				{0, 1, true, 0}, {0, 1, true, 0}, {0, 1, true, 0},
				{0, 1, false, 100 * time.Millisecond}, // 10/s: one token per 100 ms
				{50 * time.Millisecond, 1, false, 50 * time.Millisecond},
				{50 * time.Millisecond, 1, true, 0},
				{0, 1, false, 100 * time.Millisecond},
			},
		},
		{
			name: "burst defaults to rate", rate: 4, burst: 0,
			steps: []step{
				{0, 4, true, 0},
				{0, 1, false, 250 * time.Millisecond},
				{time.Hour, 5, true, 0},               // capacity 4 < 5: admitted on a full bucket, debt 1
				{0, 1, false, 500 * time.Millisecond}, // pay the debt (1) and one more token
			},
		},
		{
			name: "refill capped at burst", rate: 1000, burst: 10,
			steps: []step{
				{0, 10, true, 0},
				{24 * time.Hour, 10, true, 0},
				{0, 1, false, time.Millisecond},
			},
		},
		{
			name: "fractional refills add up", rate: 3, burst: 1,
			steps: []step{
				{0, 1, true, 0},
				// 1/3 s per token = 333333333.3 ns: three steps of 111111111 ns
				// leave 1 ns·token short; the exact wait reports it.
				{111_111_111, 1, false, 222_222_223},
				{111_111_111, 1, false, 111_111_112},
				{111_111_111, 1, false, 1},
				{1, 1, true, 0},
			},
		},
		{
			name: "huge rate and idle do not overflow", rate: math.MaxUint64, burst: math.MaxUint64,
			steps: []step{
				{0, 1 << 61, true, 0},
				{1000 * time.Hour, 1 << 61, true, 0},
				{time.Second, math.MaxUint64, true, 0}, // clamped to 2^62 = the capacity, refilled in 1 s
			},
		},
		{
			name: "hostile cost on slow bucket", rate: 1, burst: 1,
			steps: []step{
				{0, math.MaxUint64, true, 0}, // full bucket admits it, into huge debt
				{0, 1, false, time.Duration(math.MaxInt64)},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := newFakeClock()
			b := NewBucket(tc.rate, tc.burst)
			for i, s := range tc.steps {
				clk.Advance(s.advance)
				ok, wait := b.Take(clk.Now(), s.cost)
				if ok != s.ok || wait != s.wait {
					t.Fatalf("step %d: Take(%d) = %v, %v; want %v, %v", i, s.cost, ok, wait, s.ok, s.wait)
				}
			}
		})
	}
}

func TestBucketClockBackwards(t *testing.T) {
	clk := newFakeClock()
	b := Bucket{Rate: 10, Burst: 1}
	if ok, _ := b.Take(clk.Now(), 1); !ok {
		t.Fatal("first take refused")
	}
	clk.Advance(-time.Hour)
	if ok, _ := b.Take(clk.Now(), 1); ok {
		t.Fatal("a clock stepping back added tokens")
	}
	clk.Advance(time.Hour + 100*time.Millisecond)
	if ok, w := b.Take(clk.Now(), 1); !ok {
		t.Fatalf("token not refilled after 100 ms of forward time (wait %v)", w)
	}
}

// TestBucketWaitIsExact: sleeping exactly retryAfter always makes the same
// request pass, and one nanosecond less never does.
func TestBucketWaitIsExact(t *testing.T) {
	for _, rate := range []uint64{1, 3, 7, 10, 999, 1 << 20, 123456789} {
		for _, cost := range []uint64{1, 2, 5, 4096} {
			clk := newFakeClock()
			b := Bucket{Rate: rate, Burst: 4096}
			b.Take(clk.Now(), 4096) // empty it
			ok, w := b.Take(clk.Now(), cost)
			if ok || w <= 0 {
				t.Fatalf("rate %d cost %d: empty bucket admitted (%v, %v)", rate, cost, ok, w)
			}
			probe := b // copy: try one ns early without disturbing b
			if ok, _ := probe.Take(clk.Now().Add(w-1), cost); ok {
				t.Fatalf("rate %d cost %d: admitted 1 ns before retryAfter %v", rate, cost, w)
			}
			clk.Advance(w)
			if ok, w2 := b.Take(clk.Now(), cost); !ok {
				t.Fatalf("rate %d cost %d: refused after retryAfter %v (new wait %v)", rate, cost, w, w2)
			}
		}
	}
}

func TestLimiterAllOrNothing(t *testing.T) {
	clk := newFakeClock()
	l := New(Config{BPS: 1000, BPSBurst: 1000, IOPS: 10, IOPSBurst: 2}, clk.Now)

	tests := []struct {
		advance time.Duration
		bytes   uint64
		ok      bool
		wait    time.Duration
		ops     int64 // Ops tokens afterwards
		byt     int64 // Bytes tokens afterwards
	}{
		{0, 600, true, 0, 1, 400},
		// bytes short (400 < 600): nothing charged, wait for 200 bytes at 1000/s
		{0, 600, false, 200 * time.Millisecond, 1, 400},
		{0, 400, true, 0, 0, 0},
		// both short: the longer wait (ops: 100 ms; bytes: 100 bytes = 100 ms; 500 = 500 ms)
		{0, 500, false, 500 * time.Millisecond, 0, 0},
		{500 * time.Millisecond, 500, true, 0, 1, 0}, // 5 ops accrued, capped at burst 2, minus 1
		{0, 0, true, 0, 0, 0},                        // zero-byte op (a flush) costs an op only
		{0, 0, false, 100 * time.Millisecond, 0, 0},
	}
	for i, tc := range tests {
		clk.Advance(tc.advance)
		ok, w := l.Take(tc.bytes)
		if ok != tc.ok || w != tc.wait {
			t.Fatalf("step %d: Take(%d) = %v, %v; want %v, %v", i, tc.bytes, ok, w, tc.ok, tc.wait)
		}
		if got := l.Ops.Tokens(clk.Now()); got != tc.ops {
			t.Fatalf("step %d: ops tokens %d, want %d", i, got, tc.ops)
		}
		if got := l.Bytes.Tokens(clk.Now()); got != tc.byt {
			t.Fatalf("step %d: bytes tokens %d, want %d", i, got, tc.byt)
		}
	}
}

// TestLimiterThroughput: a stream of requests retried after retryAfter (as
// the device does) is neither dropped nor faster than the rate.
func TestLimiterThroughput(t *testing.T) {
	clk := newFakeClock()
	l := New(Config{IOPS: 10, IOPSBurst: 5}, clk.Now)
	start := clk.Now()
	done, throttled := 0, 0
	for done < 105 {
		ok, w := l.Take(4096)
		if ok {
			done++
			continue
		}
		throttled++
		if w <= 0 {
			t.Fatalf("throttled with retryAfter %v", w)
		}
		clk.Advance(w)
	}
	// 5 from the burst, then 100 at 10/s: exactly 10 s.
	if el := clk.Now().Sub(start); el != 10*time.Second {
		t.Fatalf("105 ops took %v of fake time, want 10s", el)
	}
	if throttled != 100 {
		t.Fatalf("throttled %d times, want 100", throttled)
	}
}

func TestNilAndDisabledLimiter(t *testing.T) {
	var l *Limiter
	if ok, w := l.Take(1 << 30); !ok || w != 0 {
		t.Fatalf("nil limiter throttled: %v %v", ok, w)
	}
	if (Config{}).Enabled() || !(Config{IOPS: 1}).Enabled() || !(Config{BPS: 1}).Enabled() {
		t.Fatal("Config.Enabled wrong")
	}
	l = New(Config{}, nil)
	for i := 0; i < 1000; i++ {
		if ok, _ := l.Take(1 << 40); !ok {
			t.Fatal("unlimited limiter throttled")
		}
	}
}

func TestLimiterNoAllocs(t *testing.T) {
	clk := newFakeClock()
	l := New(Config{BPS: 1 << 20, IOPS: 1000}, clk.Now)
	allocs := testing.AllocsPerRun(1000, func() {
		clk.Advance(time.Millisecond)
		l.Take(512)
	})
	if allocs != 0 {
		t.Fatalf("Take allocates %v times per call", allocs)
	}
}

func BenchmarkLimiterTake(b *testing.B) {
	l := New(Config{BPS: 1 << 40, IOPS: 1 << 30}, nil)
	b.ReportAllocs()
	for b.Loop() {
		l.Take(4096)
	}
}
