package minutes

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type promMetrics struct {
	rowsWritten, writeErrors prometheus.Counter
	flushSeconds             prometheus.Histogram
	state                    *stateCollector
}

func newPromMetrics(a *Aggregator) *promMetrics {
	return &promMetrics{
		rowsWritten: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_minute_rows_written_total",
			Help: "Per-minute aggregate rows written to ClickHouse (a row rewritten with a newer value counts again)."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_minute_write_errors_total",
			Help: "Failed writes of per-minute aggregates (the rows are kept and retried with backoff)."}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lambdalog_realtime_minute_flush_seconds",
			Help: "Latency of one write of per-minute aggregates.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 15)}),
		state: &stateCollector{a: a,
			dirty:   prometheus.NewDesc("lambdalog_realtime_minute_dirty_rows", "Per-minute aggregate rows changed and not yet written.", nil, nil),
			entries: prometheus.NewDesc("lambdalog_realtime_minute_entries", "Cells and distinct values held by the per-minute aggregator.", nil, nil),
			dropped: prometheus.NewDesc("lambdalog_realtime_minute_dropped_events_total", "Matching events not aggregated, by reason: late (closed minute), overflow (entry cap), unassigned (partition revoked).", []string{"reason"}, nil),
			cross:   prometheus.NewDesc("lambdalog_realtime_minute_cross_partition_events_total", "Events of a key already seen in another partition (the shared metrics assume a key lives in one partition).", nil, nil),
		},
	}
}

func (m *promMetrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.rowsWritten, m.writeErrors, m.flushSeconds, m.state} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("realtime/minutes: register metrics: %w", err)
		}
	}
	return nil
}

// stateCollector reads the aggregator's counters at scrape time, so the
// per-event path updates plain integers only.
type stateCollector struct {
	a                              *Aggregator
	dirty, entries, dropped, cross *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.dirty
	ch <- c.entries
	ch <- c.dropped
	ch <- c.cross
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.a.Stats()
	ch <- prometheus.MustNewConstMetric(c.dirty, prometheus.GaugeValue, float64(s.Dirty))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Late), "late")
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Overflow), "overflow")
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(s.Unassigned), "unassigned")
	ch <- prometheus.MustNewConstMetric(c.cross, prometheus.CounterValue, float64(s.CrossPartition))
}
