package service

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BusiestRules is how many rules the per-rule state gauges cover: the
// rules with the most tracked keys, so the series count stays bounded
// whatever the rules file holds.
const BusiestRules = 10

// Metrics are the service's Prometheus metrics. Build with NewMetrics,
// register with Register.
type Metrics struct {
	events, parseFail, late *prometheus.CounterVec // by topic
	alerts                  *prometheus.CounterVec // by rule
	duplicates, aborts      prometheus.Counter
	replayed                prometheus.Counter
	reloads                 *prometheus.CounterVec // by result
	txnSeconds              prometheus.Histogram
	recoverySeconds         prometheus.Gauge

	mu     sync.Mutex
	topics map[string]*topicMetrics
	state  *stateCollector
}

type topicMetrics struct {
	events, parseFail, late prometheus.Counter
}

// NewMetrics returns unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		events:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_realtime_events_total", Help: "Events read from each source topic and fed to the engine."}, []string{"topic"}),
		parseFail:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_realtime_parse_failures_total", Help: "Lines of each source topic that did not parse (the consumer quarantines them)."}, []string{"topic"}),
		late:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_realtime_late_events_total", Help: "Events later than the allowed lateness, by source topic."}, []string{"topic"}),
		alerts:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_realtime_alerts_total", Help: "Alerts committed to the alerts topic, by rule."}, []string{"rule"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_duplicate_alerts_total", Help: "Alerts not published again because their id already was (after a recovery)."}),
		aborts:     prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_transaction_aborts_total", Help: "Transactions aborted by rebalances."}),
		replayed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_replayed_events_total", Help: "Records replayed to rebuild window state."}),
		reloads:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_realtime_rule_reloads_total", Help: "Rule reloads, by result (ok, error)."}, []string{"result"}),
		txnSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lambdalog_realtime_transaction_seconds", Help: "Transaction latency: from its first input to the commit of alerts and offsets.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		recoverySeconds: prometheus.NewGauge(prometheus.GaugeOpts{Name: "lambdalog_realtime_recovery_seconds", Help: "Duration of the last window-state rebuild (replay)."}),
		topics:          map[string]*topicMetrics{},
	}
}

// Register registers every metric, including the hub's, with reg.
func (m *Metrics) Register(reg prometheus.Registerer, hub *Hub) error {
	cs := []prometheus.Collector{m.events, m.parseFail, m.late, m.alerts, m.duplicates, m.aborts, m.replayed, m.reloads, m.txnSeconds, m.recoverySeconds}
	if m.state != nil {
		cs = append(cs, m.state)
	}
	if hub != nil {
		cs = append(cs, hub.Collectors()...)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("realtime/service: register metrics: %w", err)
		}
	}
	return nil
}

func (m *Metrics) attach(s *Service) {
	m.state = &stateCollector{s: s,
		lag:  prometheus.NewDesc("lambdalog_realtime_watermark_lag_seconds", "Processing time minus the event-time watermark.", nil, nil),
		keys: prometheus.NewDesc("lambdalog_realtime_tracked_keys", "Keys held in window and sequence state, all rules.", nil, nil),
		rule: prometheus.NewDesc("lambdalog_realtime_rule_keys", fmt.Sprintf("Keys tracked by each of the %d rules with the most.", BusiestRules), []string{"rule"}, nil),
		dropped: prometheus.NewDesc("lambdalog_realtime_sequence_dropped_total",
			"Sequence-rule events not kept because a rule's cap (realtime.max_keys) was reached; the matches they would have made are lost. All rules, since the engine started.", nil, nil),
	}
	for _, src := range s.o.Sources {
		m.topic(src.Topic)
	}
}

// topic returns the counters of one topic, created on first use.
func (m *Metrics) topic(t string) *topicMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	tm := m.topics[t]
	if tm == nil {
		tm = &topicMetrics{events: m.events.WithLabelValues(t), parseFail: m.parseFail.WithLabelValues(t), late: m.late.WithLabelValues(t)}
		m.topics[t] = tm
	}
	return tm
}

// stateCollector reads the engine's state at scrape time.
type stateCollector struct {
	s                        *Service
	lag, keys, rule, dropped *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.keys
	ch <- c.rule
	ch <- c.dropped
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.s.mu.Lock()
	st := c.s.engine.Stats()
	wm := c.s.engine.Watermark()
	c.s.mu.Unlock()
	if !wm.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, time.Since(wm).Seconds())
	}
	total, dropped := 0, uint64(0)
	for _, r := range st.Rules {
		total += r.Keys
		dropped += r.Dropped
	}
	ch <- prometheus.MustNewConstMetric(c.keys, prometheus.GaugeValue, float64(total))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(dropped))
	sort.SliceStable(st.Rules, func(i, j int) bool { return st.Rules[i].Keys > st.Rules[j].Keys })
	for _, r := range st.Rules[:min(BusiestRules, len(st.Rules))] {
		ch <- prometheus.MustNewConstMetric(c.rule, prometheus.GaugeValue, float64(r.Keys), r.ID)
	}
}
