package service

import (
	"context"
	"fmt"

	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/schemas"
)

// checkMinutes refuses a per-minute aggregator whose lateness differs from
// the engine's: the replay horizon and the minutes' closing use one.
func checkMinutes(o Options) error {
	if o.Minutes == nil {
		return nil
	}
	late := o.Engine.AllowedLateness
	if late == 0 {
		late = realtime.DefaultAllowedLateness
	}
	if o.Minutes.AllowedLateness() != late {
		return fmt.Errorf("realtime/service: minutes aggregator lateness %s differs from the engine's %s", o.Minutes.AllowedLateness(), late)
	}
	return nil
}

// runMinutes starts the per-minute aggregator's periodic writes and
// returns the function that stops them after a last flush. The writes run
// outside the loop, so a slow or unreachable ClickHouse never delays
// alerts; Run defers the stop so the last flush follows the final commit.
func (s *Service) runMinutes(ctx context.Context) (stop func()) {
	if s.o.Minutes == nil {
		return func() {}
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.o.Minutes.Run(mctx); err != nil {
			s.log.Warn("per-minute aggregates: last flush failed; a restart rebuilds them from the replay", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// minutesParallel is the poll size from which the aggregator runs beside
// the engine instead of after it: the loop is sequential, and the two
// read the same parsed records without writing them.
const minutesParallel = 256

// addMinutes feeds a parsed poll to the per-minute aggregator, on its own
// goroutine for a large poll; wait returns once it is done. The caller
// must not reuse b before wait returns.
func (s *Service) addMinutes(b *batch) (wait func()) {
	if s.o.Minutes == nil || len(b.parsed) == 0 {
		return func() {}
	}
	add := func() {
		s.o.Minutes.AddBatch(len(b.parsed), func(i int) (string, int32, schemas.Record) {
			r := b.recs[i]
			if s.isInternal(r.Topic) {
				// A repartition record is a copy of a source record
				// the aggregates count where it was first read.
				return r.Topic, r.Partition, nil
			}
			return r.Topic, r.Partition, b.parsed[i]
		})
	}
	if len(b.parsed) < minutesParallel {
		add()
		return func() {}
	}
	done := make(chan struct{})
	go func() { defer close(done); add() }()
	return func() { <-done }
}
