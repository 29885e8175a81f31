// Package service runs the speed layer's engine (package realtime) as a
// Kafka service: it consumes the source topics in a group, parses each line,
// feeds the engine, and publishes alerts to the alerts topic in Kafka
// transactions together with the input offsets (franz-go's
// GroupTransactSession), so an alert is published once per committed input
// and never for input that is re-read after a crash. Committed alerts are
// also streamed to HTTP clients as Server-Sent Events.
package service

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// Source is one input topic and the format of its lines.
type Source struct {
	Topic  string
	Format string
}

// Options configure a Service.
type Options struct {
	// Client reaches the cluster (brokers, TLS, SASL).
	Client      []kgo.Opt
	Group       string
	Sources     []Source
	AlertsTopic string
	LateTopic   string
	Rules       *rules.RuleSet
	Engine      realtime.Options
	// TransactionalID prefix; a random suffix makes it unique per process.
	TransactionalID string
	// MaxPollWait bounds how long a poll waits for input, and so the
	// latency from an event to its alert when input is sparse.
	MaxPollWait time.Duration
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
	// Hub receives every committed alert (nil: a new hub).
	Hub *Hub
}

// Service is a running speed layer.
type Service struct {
	o       Options
	engine  *realtime.Engine
	parsers map[string]parse.Parser
	log     *slog.Logger

	alerts   atomic.Int64
	late     atomic.Int64
	events   atomic.Int64
	mAlerts  *prometheus.CounterVec
	mEvents  prometheus.Counter
	mLate    prometheus.Counter
	mTxnSecs prometheus.Histogram

	mu sync.Mutex // guards engine between the poll loop and group callbacks
}

// New builds the service.
func New(o Options) (*Service, error) {
	if o.Group == "" || len(o.Sources) == 0 || o.AlertsTopic == "" || o.Rules == nil {
		return nil, errors.New("realtime/service: Group, Sources, AlertsTopic and Rules are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.MaxPollWait <= 0 {
		o.MaxPollWait = 10 * time.Millisecond
	}
	if o.TransactionalID == "" {
		o.TransactionalID = "lambdalog-realtime"
	}
	if o.Hub == nil {
		o.Hub = NewHub(1000, 64)
	}
	eng, err := realtime.New(o.Rules, o.Engine)
	if err != nil {
		return nil, fmt.Errorf("realtime/service: %w", err)
	}
	s := &Service{o: o, engine: eng, parsers: map[string]parse.Parser{}, log: o.Logger,
		mAlerts:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_realtime_alerts_total", Help: "Alerts published, by rule."}, []string{"rule"}),
		mEvents:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_events_total", Help: "Events processed."}),
		mLate:    prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_realtime_late_events_total", Help: "Events later than the allowed lateness, sent to the late-events topic."}),
		mTxnSecs: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lambdalog_realtime_transaction_seconds", Help: "Time to commit one transaction of alerts and offsets.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
	}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.mAlerts, s.mEvents, s.mLate, s.mTxnSecs)
	}
	for _, src := range o.Sources {
		p, err := parse.New(src.Format, parse.Options{Location: time.UTC})
		if err != nil {
			return nil, fmt.Errorf("realtime/service: topic %s: %w", src.Topic, err)
		}
		s.parsers[src.Topic] = p
	}
	return s, nil
}

// Hub is where committed alerts go for live consumers.
func (s *Service) Hub() *Hub { return s.o.Hub }

// Alerts is the number of alerts committed so far.
func (s *Service) Alerts() int64 { return s.alerts.Load() }

// Run consumes until ctx ends. Each poll's alerts and late events are
// produced in one transaction with the poll's offsets; a transaction that
// cannot commit ends Run with an error (the process restarts and re-reads
// from the committed offsets, so no alert is lost or doubled).
func (s *Service) Run(ctx context.Context) error {
	topics := make([]string, 0, len(s.o.Sources))
	for _, src := range s.o.Sources {
		topics = append(topics, src.Topic)
	}
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	opts := append([]kgo.Opt{}, s.o.Client...)
	opts = append(opts,
		kgo.TransactionalID(s.o.TransactionalID+"-"+hex.EncodeToString(suffix[:])),
		kgo.ConsumerGroup(s.o.Group),
		kgo.ConsumeTopics(topics...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.ProducerLinger(0),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for t, ps := range m {
				for _, p := range ps {
					s.engine.Assign(t, p, time.Now())
				}
			}
		}),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for t, ps := range m {
				for _, p := range ps {
					s.engine.Revoke(t, p)
				}
			}
		}),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("realtime/service: kafka: %w", err)
	}
	defer sess.Close()

	var out []alert.Alert
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, s.o.MaxPollWait)
		fetches := sess.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			break
		}
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if err := sess.Begin(); err != nil {
			return fmt.Errorf("realtime/service: begin transaction: %w", err)
		}
		start := time.Now()
		out = out[:0]
		var late []*kgo.Record
		s.process(fetches, time.Now(), &out, &late)

		// Finish the transaction even when ctx was cancelled meanwhile: a
		// clean stop commits what this poll produced.
		txnCtx, txnCancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		recs := make([]*kgo.Record, 0, len(out)+len(late))
		for _, a := range out {
			b, err := json.Marshal(a)
			if err != nil {
				txnCancel()
				return fmt.Errorf("realtime/service: encode alert: %w", err)
			}
			recs = append(recs, &kgo.Record{Topic: s.o.AlertsTopic, Key: []byte(a.ID), Value: b})
		}
		recs = append(recs, late...)
		if len(recs) > 0 {
			if err := sess.ProduceSync(txnCtx, recs...).FirstErr(); err != nil {
				_, _ = sess.End(txnCtx, kgo.TryAbort)
				txnCancel()
				return fmt.Errorf("realtime/service: produce alerts: %w", err)
			}
		}
		committed, err := sess.End(txnCtx, kgo.TryCommit)
		txnCancel()
		if err != nil {
			return fmt.Errorf("realtime/service: commit transaction: %w", err)
		}
		if !committed {
			// The session aborted (a rebalance took partitions away): the
			// input is re-read by its new owner, and this engine's state
			// for it is no longer trustworthy. Restart clean.
			return errors.New("realtime/service: transaction aborted by a rebalance; restart to rebuild state")
		}
		s.mTxnSecs.Observe(time.Since(start).Seconds())
		s.late.Add(int64(len(late)))
		s.mLate.Add(float64(len(late)))
		for _, a := range out {
			s.alerts.Add(1)
			s.mAlerts.WithLabelValues(a.RuleID).Inc()
			s.o.Hub.Publish(a)
		}
	}
	return nil
}

// process feeds one poll to the engine and collects its alerts and late
// events. The engine is shared with the group callbacks, hence the lock;
// the deferred unlock keeps a panic from leaving the callbacks blocked.
func (s *Service) process(fetches kgo.Fetches, now time.Time, out *[]alert.Alert, late *[]*kgo.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fetches.EachRecord(func(r *kgo.Record) {
		p := s.parsers[r.Topic]
		if p == nil {
			return
		}
		rec, err := p.Parse(r.Value)
		if err != nil {
			return // the consumer quarantines it; there is no event to count
		}
		s.events.Add(1)
		s.mEvents.Inc()
		var isLate bool
		*out, isLate = s.engine.Process(rec, realtime.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, now, *out)
		if isLate && s.o.LateTopic != "" {
			*late = append(*late, &kgo.Record{Topic: s.o.LateTopic, Key: r.Key, Value: r.Value,
				Headers: []kgo.RecordHeader{{Key: "source_topic", Value: []byte(r.Topic)}}})
		}
	})
	*out = s.engine.Advance(now, *out)
}
