package service

import (
	"context"
	"fmt"

	"github.com/lambdalog/lambdalog/realtime"
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
