package gen

import (
	"context"
	"fmt"
	"time"
)

// Sink receives generated lines. The line and its slices are only valid
// during the call.
type Sink interface {
	Write(ctx context.Context, l *Line) error
}

// SinkFunc adapts a function to a Sink.
type SinkFunc func(ctx context.Context, l *Line) error

// Write calls f.
func (f SinkFunc) Write(ctx context.Context, l *Line) error { return f(ctx, l) }

// Run generates every line into sink, following Rate on the wall clock
// when Options.Pace is set, and returns the ground truth. An unbounded run
// ends without error when ctx ends; a bounded one returns ctx's error with
// the truth of what was emitted.
func (g *Generator) Run(ctx context.Context, sink Sink) (*Truth, error) {
	var l Line
	begin := time.Now()
	lastT, lastN := begin, int64(0)
	nextProgress := begin.Add(g.o.ProgressEvery)
	// Check the clock about every millisecond of event time when pacing,
	// and every 4096 lines otherwise: time.Now per line would cost more
	// than the line.
	check := int64(4096)
	if g.o.Pace {
		check = max(1, min(4096, int64(g.o.Rate/1000)))
	}
	report := func(now time.Time, done bool) {
		if g.o.Progress == nil {
			return
		}
		n := g.truth.Events
		p := Progress{Events: n, Total: g.total, Elapsed: now.Sub(begin), Done: done}
		if dt := now.Sub(lastT).Seconds(); dt > 0 {
			p.Rate = float64(n-lastN) / dt
		}
		if done && p.Elapsed > 0 {
			p.Rate = float64(n) / p.Elapsed.Seconds()
		}
		if g.total > 0 && n > 0 && !done {
			p.ETA = time.Duration(float64(p.Elapsed) / float64(n) * float64(g.total-n))
		}
		lastT, lastN = now, n
		g.o.Progress(p)
	}
	stopped := func() (*Truth, error) {
		g.finish()
		report(time.Now(), true)
		if g.total < 0 {
			return &g.truth, nil
		}
		return &g.truth, fmt.Errorf("gen: stopped after %d of %d events: %w", g.truth.Events, g.total, ctx.Err())
	}
	for n := int64(0); ; n++ {
		if n%check == 0 {
			if ctx.Err() != nil {
				return stopped()
			}
			now := time.Now()
			if g.o.Pace {
				due := begin.Add(time.Duration(float64(n) / g.o.Rate * 1e9))
				if wait := due.Sub(now); wait > 0 {
					if sleep(ctx, wait) != nil {
						return stopped()
					}
					now = time.Now()
				}
			}
			if !now.Before(nextProgress) {
				report(now, false)
				nextProgress = now.Add(g.o.ProgressEvery)
			}
		}
		if !g.Next(&l) {
			break
		}
		if err := sink.Write(ctx, &l); err != nil {
			g.finish()
			return &g.truth, fmt.Errorf("gen: event %d: %w", l.Seq, err)
		}
	}
	report(time.Now(), true)
	return &g.truth, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
