package mmio

import (
	"testing"
	"time"
)

// TestLimiter: a guest that violates the protocol in a loop (reset,
// violate, reset, ...) gets logBurst lines, then one per logEvery, and the
// next allowed line reports how many were suppressed.
func TestLimiter(t *testing.T) {
	var l limiter
	t0 := time.Unix(1000, 0)
	for i := range logBurst {
		if ok, _ := l.allow(t0); !ok {
			t.Fatalf("line %d of the burst refused", i)
		}
	}
	for i := range 100 {
		if ok, _ := l.allow(t0.Add(time.Duration(i) * time.Millisecond)); ok {
			t.Fatalf("line %d past the burst allowed", i)
		}
	}
	ok, dropped := l.allow(t0.Add(logEvery))
	if !ok || dropped != 100 {
		t.Fatalf("after %v: ok %v dropped %d, want true 100", logEvery, ok, dropped)
	}
	if ok, _ := l.allow(t0.Add(logEvery)); ok {
		t.Fatal("second line in the same interval allowed")
	}
	// A long quiet period refills at most the burst.
	n := 0
	for range 3 * logBurst {
		if ok, _ := l.allow(t0.Add(time.Hour)); ok {
			n++
		}
	}
	if n != logBurst {
		t.Fatalf("after an hour %d lines allowed, want %d", n, logBurst)
	}
}
