package watermark

import (
	"math"
	"testing"
	"time"
)

func TestMinimumAcrossPartitionsAndIdleness(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	tr := New(Options{OutOfOrderness: 5 * time.Second, IdleTimeout: 30 * time.Second})
	a, b := Partition{"auth", 0}, Partition{"auth", 1}
	tr.Assign(a, t0)
	tr.Assign(b, t0)
	tr.Observe(a, t0.Add(100*time.Second), t0)
	// b has no event yet and is not idle: it holds the watermark.
	if wm := tr.Advance(t0.Add(time.Second)); wm != math.MinInt64 {
		t.Fatalf("watermark %d with a silent, non-idle partition, want MinInt64", wm)
	}
	tr.Observe(b, t0.Add(50*time.Second), t0.Add(2*time.Second))
	if wm := tr.Advance(t0.Add(2 * time.Second)); wm != t0.Add(45*time.Second).UnixNano() {
		t.Fatalf("watermark %v, want min(100,50)-5 = 45 s", time.Unix(0, wm).Sub(t0))
	}
	// a keeps flowing, b goes quiet for 30 s of processing time: b no
	// longer holds the watermark back.
	tr.Observe(a, t0.Add(200*time.Second), t0.Add(31*time.Second))
	if !tr.Idle(b, t0.Add(32*time.Second)) || tr.Idle(a, t0.Add(32*time.Second)) {
		t.Fatal("idleness wrong")
	}
	if wm := tr.Advance(t0.Add(32 * time.Second)); wm != t0.Add(195*time.Second).UnixNano() {
		t.Fatalf("watermark %v, want 195 s once b is idle", time.Unix(0, wm).Sub(t0))
	}
	// b wakes up behind: the watermark does not go back.
	tr.Observe(b, t0.Add(60*time.Second), t0.Add(33*time.Second))
	if wm := tr.Advance(t0.Add(33 * time.Second)); wm != t0.Add(195*time.Second).UnixNano() {
		t.Fatalf("watermark moved back to %v", time.Unix(0, wm).Sub(t0))
	}
	// Everything idle: follow the most advanced partition.
	if wm := tr.Advance(t0.Add(10 * time.Minute)); wm != t0.Add(195*time.Second).UnixNano() {
		t.Fatalf("all idle: %v", time.Unix(0, wm).Sub(t0))
	}
	tr.Revoke(a)
	tr.Observe(b, t0.Add(300*time.Second), t0.Add(11*time.Minute))
	if wm := tr.Advance(t0.Add(11 * time.Minute)); wm != t0.Add(295*time.Second).UnixNano() {
		t.Fatalf("after revoking a: %v, want 295 s", time.Unix(0, wm).Sub(t0))
	}
}
