// Package service runs the speed layer's engine (package realtime) as a
// Kafka service: it consumes the source topics in a group, parses each line,
// feeds the engine, and publishes alerts and late events to Kafka in
// transactions together with the input offsets (franz-go's
// GroupTransactSession), one transaction per Options.TransactionInterval.
// An alert is on the alerts topic exactly when the input that raised it is
// committed.
//
// The engine's windows live in memory. Whenever the service (re)starts,
// gains or loses partitions, or a transaction aborts, it rebuilds them by
// replaying each owned partition from the committed offset back by the
// longest window plus lateness (recover.go), with alerts suppressed during
// the replay and, afterwards, alerts whose ids were already published
// (read back from the alerts topic) dropped. Committed alerts then go to
// the sinks: the Server-Sent Events hub and the webhook. See
// docs/realtime.md, "The service".
package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/minutes"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// Source is one input topic and the format of its lines.
type Source struct {
	Topic  string
	Format string
}

// Sink receives every committed alert, in commit order. Send must not
// block for long: it runs on the service's loop.
type Sink interface {
	Send(alert.Alert)
}

// Options configure a Service.
type Options struct {
	// Client reaches the cluster (brokers, TLS, SASL).
	Client  []kgo.Opt
	Group   string
	Sources []Source
	// AlertsTopic receives alerts; LateTopic (optional) the raw lines of
	// events later than the allowed lateness.
	AlertsTopic string
	LateTopic   string
	// Rules is the initial rule set; RulesFile, when set, is what Reload
	// reads.
	Rules     *rules.RuleSet
	RulesFile string
	// MaxRulesBytes refuses a reloaded rules file larger than this
	// (default rules.MaxFileBytes); the running rules stay.
	MaxRulesBytes int
	// MaxLineBytes is the longest line parsed; longer ones count as parse
	// failures (default parse.DefaultMaxLineBytes; topics.max_line_size).
	MaxLineBytes int
	Engine       realtime.Options
	// TransactionalID must be unique per running instance and stable
	// across its restarts: a restarted instance then fences its previous
	// incarnation and aborts its open transaction at once, instead of
	// leaving read_committed consumers waiting for the transaction
	// timeout. Default "lambdalog-realtime-" + host name.
	TransactionalID string
	// SessionTimeout is how soon the partitions of an instance that
	// died and did not come back move to the others (default 10s). A
	// restarted instance takes its partitions back at once: it rejoins
	// as the same static group member (its TransactionalID).
	SessionTimeout time.Duration
	// TransactionInterval is how long a transaction collects input before
	// it commits (default 10ms): the latency/throughput trade-off.
	TransactionInterval time.Duration
	// ParseWorkers parse lines in parallel (default GOMAXPROCS).
	ParseWorkers int
	// AllowUncopartitioned starts even when a sequence rule's topics have
	// different partition counts (only correct with a single instance).
	AllowUncopartitioned bool
	// Sinks get every committed alert (the Hub is always one of them).
	Sinks []Sink
	// Hub streams committed alerts (nil: NewHub with defaults).
	Hub    *Hub
	Logger *slog.Logger
	// Metrics holds the Prometheus metrics (nil: unregistered ones).
	Metrics *Metrics
	// Minutes, when set, gets every parsed record, live and replayed, and
	// writes the shared metrics' per-minute aggregates (realtime/minutes);
	// Run flushes it periodically and once more when it stops. Its
	// allowed lateness must be the engine's.
	Minutes *minutes.Aggregator
	// Repartition re-keys the input of rules not keyed by the source
	// topics' partition key through repartition topics (repartition.go),
	// so that they are exact with several instances; on by default.
	Repartition Repartition
}

// Stats counts what the service did.
type Stats struct {
	Events        int64 // records fed to the engine live
	ParseFailures int64
	Late          int64 // events published to the late-events topic
	Alerts        int64 // alerts committed to the alerts topic
	Duplicates    int64 // alerts dropped because their id was already published
	Transactions  int64 // committed transactions
	Aborts        int64 // transactions aborted by rebalances (cut short or refused at commit)
	Rebuilds      int64
	Replayed      int64 // source records replayed by rebuilds
	// Forwarded counts repartition records produced (including those of
	// aborted transactions, whose input is read again); Repartitioned
	// the repartition records fed to the engine live.
	Forwarded     int64
	Repartitioned int64
	// LastRecovery is how long the last rebuild took.
	LastRecovery time.Duration
}

// Service is the speed layer on Kafka.
type Service struct {
	o       Options
	log     *slog.Logger
	m       *Metrics
	sources map[string]Source
	// dataset of each topic's format ("" when the format can carry any).
	topicDataset map[string]string
	workers      []map[string]parse.Parser

	// mu guards engine and rs between the loop, HTTP views and reloads.
	mu     sync.Mutex
	engine *realtime.Engine
	rs     *rules.RuleSet

	// owned is the partition set, maintained by the group callbacks.
	ownMu   sync.Mutex
	owned   map[string]map[int32]bool
	rebuild atomic.Bool

	// published holds recently published alert ids -> event time (ns);
	// only the loop touches it.
	published map[string]int64

	rp       repartition
	rpWarned atomic.Bool // an undecodable repartition record was logged

	events, parseFail, late, alerts, dups, txns, aborts, rebuilds, replayed atomic.Int64
	forwarded, repartitioned                                                atomic.Int64
	lastRecovery                                                            atomic.Int64
}

// New checks o and builds the service.
func New(o Options) (*Service, error) {
	if o.Group == "" || len(o.Sources) == 0 || o.AlertsTopic == "" || o.Rules == nil {
		return nil, errors.New("realtime/service: Group, Sources, AlertsTopic and Rules are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.TransactionInterval <= 0 {
		o.TransactionInterval = 10 * time.Millisecond
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.ParseWorkers <= 0 {
		o.ParseWorkers = runtime.GOMAXPROCS(0)
	}
	if o.TransactionalID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "localhost"
		}
		o.TransactionalID = "lambdalog-realtime-" + host
	}
	if o.Hub == nil {
		o.Hub = NewHub(HubOptions{})
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	if err := checkMinutes(o); err != nil {
		return nil, err
	}
	s := &Service{o: o, log: o.Logger, m: o.Metrics, rs: o.Rules,
		sources: map[string]Source{}, topicDataset: map[string]string{},
		owned: map[string]map[int32]bool{}, published: map[string]int64{}}
	for _, src := range o.Sources {
		if _, dup := s.sources[src.Topic]; dup {
			return nil, fmt.Errorf("realtime/service: topic %s listed twice", src.Topic)
		}
		s.sources[src.Topic] = src
		s.topicDataset[src.Topic] = formatDataset[src.Format]
	}
	s.setupRepartition()
	if s.rp.on {
		var err error
		if s.rp.schemas, err = rpSchemas(); err != nil {
			return nil, err
		}
	}
	for t := range s.rp.topo.Load().lanes {
		if _, clash := s.sources[t]; clash {
			return nil, fmt.Errorf("realtime/service: repartition topic %s is also a source topic", t)
		}
	}
	s.o.Engine.Lane = s.laneOf
	eng, err := realtime.New(o.Rules, s.o.Engine)
	if err != nil {
		return nil, fmt.Errorf("realtime/service: %w", err)
	}
	s.engine = eng
	for range o.ParseWorkers {
		ps := map[string]parse.Parser{}
		for _, src := range o.Sources {
			p, err := parse.New(src.Format, parse.Options{Location: time.UTC, MaxLineBytes: o.MaxLineBytes})
			if err != nil {
				return nil, fmt.Errorf("realtime/service: topic %s: %w", src.Topic, err)
			}
			ps[src.Topic] = p
			if k := formatParserKey + src.Format; s.rp.on && ps[k] == nil {
				// Repartition records carry their format; a parser of
				// its own, as parsers may keep per-stream state.
				if ps[k], err = parse.New(src.Format, parse.Options{Location: time.UTC, MaxLineBytes: o.MaxLineBytes}); err != nil {
					return nil, fmt.Errorf("realtime/service: format %s: %w", src.Format, err)
				}
			}
		}
		s.workers = append(s.workers, ps)
	}
	s.m.attach(s)
	return s, nil
}

// formatDataset is the dataset each single-dataset format produces.
var formatDataset = map[string]string{
	parse.FormatSSHD: "auth", parse.FormatAccess: "web", parse.FormatNetfilter: "firewall",
	parse.FormatEVE: "ids", parse.FormatSyslog: "syslog",
}

// Hub is where committed alerts go for live consumers.
func (s *Service) Hub() *Hub { return s.o.Hub }

// Alerts is the number of alerts committed so far.
func (s *Service) Alerts() int64 { return s.alerts.Load() }

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{Events: s.events.Load(), ParseFailures: s.parseFail.Load(), Late: s.late.Load(), Alerts: s.alerts.Load(),
		Duplicates: s.dups.Load(), Transactions: s.txns.Load(), Aborts: s.aborts.Load(), Rebuilds: s.rebuilds.Load(),
		Replayed: s.replayed.Load(), LastRecovery: time.Duration(s.lastRecovery.Load()),
		Forwarded: s.forwarded.Load(), Repartitioned: s.repartitioned.Load()}
}

// topics are the source topics.
func (s *Service) topics() []string {
	t := make([]string, 0, len(s.o.Sources))
	for _, src := range s.o.Sources {
		t = append(t, src.Topic)
	}
	return t
}

// inputs are the topics the group consumes: the source topics and the
// repartition topics.
func (s *Service) inputs() []string {
	return append(s.topics(), s.repartitionTopics()...)
}

// clientOpts are the options of the group session.
func (s *Service) clientOpts() []kgo.Opt {
	opts := append([]kgo.Opt{}, s.o.Client...)
	return append(opts,
		kgo.TransactionalID(s.o.TransactionalID),
		// Short, so an instance that dies without a restart holds
		// read_committed consumers back for at most this long.
		kgo.TransactionTimeout(10*time.Second),
		kgo.ConsumerGroup(s.o.Group),
		kgo.InstanceID(s.o.TransactionalID),
		kgo.SessionTimeout(s.o.SessionTimeout),
		kgo.ConsumeTopics(s.inputs()...),
		// Range assigns partition i of every topic with the same count to
		// the same member, which sequence rules need (both steps of an
		// address in one instance); the default cooperative-sticky
		// balancer balances over all topic-partitions and splits them.
		kgo.Balancers(kgo.RangeBalancer()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		// A partition without a committed offset is read from its start
		// (the default, relied on): a repartition topic added by a reload
		// holds what was forwarded before the group assigned it.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.ProducerLinger(0),
		kgo.FetchMaxWait(s.o.TransactionInterval+5*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			s.ownMu.Lock()
			for t, ps := range m {
				if s.owned[t] == nil {
					s.owned[t] = map[int32]bool{}
				}
				for _, p := range ps {
					s.owned[t][p] = true
				}
			}
			s.ownMu.Unlock()
			s.rebuild.Store(true)
		}),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onRevoked),
	)
}

func (s *Service) onRevoked(_ context.Context, _ *kgo.Client, m map[string][]int32) {
	if len(m) == 0 {
		return
	}
	s.ownMu.Lock()
	for t, ps := range m {
		for _, p := range ps {
			delete(s.owned[t], p)
			if s.o.Minutes != nil {
				s.o.Minutes.Revoke(t, p)
			}
		}
	}
	s.ownMu.Unlock()
	// The engine holds state of keys that now belong to another instance:
	// start over from the committed offsets of what is left.
	s.rebuild.Store(true)
}

// ownedPartitions snapshots the assignment, without the partitions of a
// repartition topic a reload dropped: they leave at the rebalance the drop
// causes, and until then nothing rebuilds or reads them.
func (s *Service) ownedPartitions() map[string][]int32 {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	out := map[string][]int32{}
	for t, ps := range s.owned {
		if !s.isInput(t) {
			continue
		}
		for p := range ps {
			out[t] = append(out[t], p)
		}
		slices.Sort(out[t])
	}
	return out
}

// Run consumes until ctx ends, then commits the open transaction and
// leaves the group; it returns nil on such a clean stop. Any error it
// returns leaves the input uncommitted past the last transaction, so a
// restarted process continues exactly where this one stopped.
func (s *Service) Run(ctx context.Context) error {
	if err := s.checkCopartitioning(ctx); err != nil {
		return err
	}
	sess, err := s.startSession(ctx)
	if err != nil {
		return err
	}
	defer sess.Close()
	defer s.stopSession()
	defer s.runMinutes(ctx)()
	// The open transaction's records must outlive a stop signal: the clean
	// stop commits them (a produce failed by the signal's cancellation
	// would abort it and fail the stop). They end with Run.
	prodCtx, cancelProd := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProd()

	var (
		pending []alert.Alert // alerts of the open transaction
		inTxn   bool
		txStart time.Time
		prodErr error
		prodMu  sync.Mutex
		b       batch
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			prodMu.Lock()
			if prodErr == nil {
				prodErr = err
			}
			prodMu.Unlock()
		}
	}
	end := func() error {
		// A clean stop commits what was processed: the context of the
		// commit outlives ctx.
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		prodMu.Lock()
		perr := prodErr
		prodMu.Unlock()
		try := kgo.TryCommit
		if perr != nil {
			try = kgo.TryAbort
		}
		committed, err := sess.End(tctx, try)
		inTxn = false
		s.m.txnSeconds.Observe(time.Since(txStart).Seconds())
		if perr != nil {
			return fmt.Errorf("realtime/service: produce: %w", perr)
		}
		if err != nil {
			return fmt.Errorf("realtime/service: commit transaction: %w", err)
		}
		if !committed {
			// A rebalance aborted it; the session rewound to the committed
			// offsets, so the engine has seen input that will be re-read.
			s.aborts.Add(1)
			s.m.aborts.Inc()
			s.log.Info("transaction aborted by a rebalance; rebuilding state", "alerts_dropped", len(pending))
			for _, a := range pending {
				delete(s.published, a.ID) // not published after all
			}
			pending = pending[:0]
			s.rebuild.Store(true)
			return nil
		}
		s.txns.Add(1)
		for _, a := range pending {
			s.published[a.ID] = a.Timestamp.UnixNano()
			s.alerts.Add(1)
			s.m.alerts.WithLabelValues(a.RuleID).Inc()
			s.o.Hub.Send(a)
			for _, sk := range s.o.Sinks {
				sk.Send(a)
			}
		}
		pending = pending[:0]
		return nil
	}

	lastPrune := time.Now()
	for {
		if ctx.Err() != nil {
			break
		}
		if s.rebuild.Load() {
			// Rewind to the committed offsets (aborting the open
			// transaction, if any), then rebuild the state up to them.
			aborting := inTxn
			if !inTxn {
				if err := sess.Begin(); err != nil {
					return fmt.Errorf("realtime/service: begin transaction: %w", err)
				}
			}
			tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_, err := sess.End(tctx, kgo.TryAbort)
			cancel()
			inTxn = false
			if err != nil {
				return fmt.Errorf("realtime/service: abort transaction: %w", err)
			}
			if aborting {
				// The rebalance cut an open transaction short: it counts
				// as aborted like one whose commit the rebalance refused.
				s.aborts.Add(1)
				s.m.aborts.Inc()
				s.log.Info("transaction aborted by a rebalance; rebuilding state", "alerts_dropped", len(pending))
			}
			for _, a := range pending {
				delete(s.published, a.ID)
			}
			pending = pending[:0]
			if err := s.recover(ctx, sess.Client()); err != nil {
				if ctx.Err() != nil {
					break
				}
				return err
			}
			continue
		}
		wait := s.o.TransactionInterval
		if inTxn {
			wait = max(time.Until(txStart.Add(s.o.TransactionInterval)), 0)
		}
		pctx, cancel := context.WithTimeout(ctx, wait)
		fetches := sess.PollFetches(pctx)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				s.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if s.rebuild.Load() {
			continue // the assignment changed under this poll: rewind first
		}
		now := time.Now()
		s.startParse(fetches, &b)
		s.mu.Lock()
		out := s.feed(&b, now)
		s.mu.Unlock()
		out = s.dedup(out)
		if (len(out) > 0 || len(b.late) > 0 || b.n > 0) && !inTxn {
			if err := sess.Begin(); err != nil {
				return fmt.Errorf("realtime/service: begin transaction: %w", err)
			}
			inTxn, txStart = true, now
			prodMu.Lock()
			prodErr = nil
			prodMu.Unlock()
		}
		for _, a := range out {
			v, err := json.Marshal(a)
			if err != nil {
				return fmt.Errorf("realtime/service: encode alert %s: %w", a.ID, err)
			}
			sess.Produce(prodCtx, &kgo.Record{Topic: s.o.AlertsTopic, Key: []byte(alertKey(a)), Value: v, Timestamp: a.Timestamp}, promise)
			pending = append(pending, a)
		}
		for _, r := range b.late {
			sess.Produce(prodCtx, r, promise)
		}
		// Repartition records go in the transaction of the input that
		// produced them: exactly once, like the alerts.
		for _, r := range b.fwd {
			sess.Produce(prodCtx, r, promise)
		}
		if n := len(b.fwd); n > 0 {
			s.forwarded.Add(int64(n))
		}
		if n := len(b.late); n > 0 {
			s.late.Add(int64(n))
		}
		if inTxn && (time.Since(txStart) >= s.o.TransactionInterval || ctx.Err() != nil) {
			if err := end(); err != nil {
				return err
			}
		}
		if time.Since(lastPrune) > time.Second {
			s.prunePublished()
			lastPrune = time.Now()
		}
	}
	if inTxn {
		if err := end(); err != nil {
			return err
		}
	}
	return nil
}

// startSession creates the repartition topics and joins the group as a
// transactional session consuming the source and repartition topics. A
// reload waits for it (s.rp.mu), so a repartition topic it adds is either
// created and subscribed here or added to the session's subscription.
func (s *Service) startSession(ctx context.Context) (*kgo.GroupTransactSession, error) {
	s.rp.mu.Lock()
	defer s.rp.mu.Unlock()
	if err := s.prepareRepartition(ctx); err != nil {
		return nil, err
	}
	sess, err := kgo.NewGroupTransactSession(s.clientOpts()...)
	if err != nil {
		return nil, fmt.Errorf("realtime/service: kafka: %w", err)
	}
	s.rp.cl = sess.Client()
	return sess, nil
}

// stopSession tells reloads that the session is gone: a topic added from
// now on is created and subscribed by the next Run.
func (s *Service) stopSession() {
	s.rp.mu.Lock()
	s.rp.cl = nil
	s.rp.mu.Unlock()
}

// alertKey partitions alerts by their key values, so the alerts of one
// key stay in order.
func alertKey(a alert.Alert) string {
	k := a.RuleID
	for _, v := range a.KeyValues {
		k += "|" + v
	}
	return k
}

// dedup drops alerts already published (by this or an earlier
// incarnation, or another instance before a reassignment).
func (s *Service) dedup(out []alert.Alert) []alert.Alert {
	j := 0
	for _, a := range out {
		if _, ok := s.published[a.ID]; ok {
			s.dups.Add(1)
			s.m.duplicates.Inc()
			continue
		}
		// Mark now: one batch cannot raise the same id twice, but the
		// pending transaction's alerts are not in published yet.
		s.published[a.ID] = a.Timestamp.UnixNano()
		out[j] = a
		j++
	}
	return out[:j]
}

// prunePublished forgets ids no accepted event can raise again.
func (s *Service) prunePublished() {
	s.mu.Lock()
	wm := s.engine.Watermark()
	horizon := s.horizon(s.rs) + maxSuppress(s.rs)
	s.mu.Unlock()
	if wm.IsZero() {
		return
	}
	cut := wm.Add(-horizon).UnixNano()
	maps.DeleteFunc(s.published, func(_ string, t int64) bool { return t < cut })
}

// batch is one poll's input, parsed.
type batch struct {
	recs   []*kgo.Record
	parsed []schemas.Record // nil where the line did not parse
	orig   []origin         // of repartition records whose value carries it
	late   []*kgo.Record
	fwd    []*kgo.Record // repartition records (live only)
	n      int
	// pending[c] is closed when chunk c (parseChunk records) is parsed,
	// nil when every record is; records before readyTo are known parsed.
	pending []chan struct{}
	readyTo int
	// slab and recSlab hold the keys, values and structs of repartition
	// records (appendForwards).
	slab    []byte
	recSlab []kgo.Record
}

// parse parses a poll's records, in parallel when it is large.
func (s *Service) parse(fetches kgo.Fetches, b *batch) {
	s.startParse(fetches, b)
	b.waitAll()
}

// parseChunk is how many records a parse worker takes at a time: feed
// starts on the first chunks while the workers parse the rest.
const parseChunk = 1024

// startParse starts parsing a poll's records: on the caller's goroutine
// when the poll is small, else on parse workers that take chunks in
// order, so that feed (b.ready) runs the engine on the first chunks
// while the rest are parsed: the engine and the parsers then use both
// cores instead of taking turns.
func (s *Service) startParse(fetches kgo.Fetches, b *batch) {
	b.recs = b.recs[:0]
	b.late = b.late[:0]
	clear(b.fwd)
	b.fwd = b.fwd[:0]
	fetches.EachRecord(func(r *kgo.Record) { b.recs = append(b.recs, r) })
	b.n = len(b.recs)
	b.parsed = slices.Grow(b.parsed[:0], b.n)[:b.n]
	b.orig = slices.Grow(b.orig[:0], b.n)[:b.n]
	b.pending, b.readyTo = nil, 0
	w := min(len(s.workers), b.n/512)
	if w <= 1 {
		s.parseRange(s.workers[0], b, 0, b.n)
		return
	}
	nc := (b.n + parseChunk - 1) / parseChunk
	b.pending = make([]chan struct{}, nc)
	for c := range b.pending {
		b.pending[c] = make(chan struct{})
	}
	var next atomic.Int64
	for i := range w {
		go func() {
			for {
				c := int(next.Add(1) - 1)
				if c >= nc {
					return
				}
				s.parseRange(s.workers[i], b, c*parseChunk, min((c+1)*parseChunk, b.n))
				close(b.pending[c])
			}
		}()
	}
}

// ready waits until record i of the batch is parsed.
func (b *batch) ready(i int) {
	for b.pending != nil && i >= b.readyTo {
		<-b.pending[b.readyTo/parseChunk]
		b.readyTo = min(b.readyTo+parseChunk, b.n)
	}
}

// waitAll waits until every record of the batch is parsed.
func (b *batch) waitAll() {
	if b.n > 0 {
		b.ready(b.n - 1)
	}
	b.pending = nil
}

func (s *Service) parseRange(ps map[string]parse.Parser, b *batch, lo, hi int) {
	for i := lo; i < hi; i++ {
		b.parsed[i], b.orig[i] = nil, origin{}
		if rec, o, err := s.parseRecord(ps, b.recs[i]); err == nil {
			b.parsed[i], b.orig[i] = rec, o
		}
	}
}

// feed runs a parsed batch through the engine, then advances the
// watermark; it fills b.late. The caller holds s.mu.
func (s *Service) feed(b *batch, now time.Time) []alert.Alert {
	var (
		out             []alert.Alert
		topic           string
		internal        bool
		lane            int
		tm              *topicMetrics
		input           bool
		ev, fail, lateN int64
		totEv, totFail  int64
		totRep          int64
	)
	if s.o.Minutes != nil {
		b.waitAll() // the aggregator reads the whole poll at once
	}
	// The topology of this poll: a reload adds topics before the rules
	// that forward to them, under s.mu, which the caller holds.
	topo := s.rp.topo.Load()
	waitMinutes := s.addMinutes(b)
	// Records come grouped by partition, so counters are added per run
	// of one topic rather than per event.
	flush := func() {
		if tm != nil {
			tm.events.Add(float64(ev))
			tm.parseFail.Add(float64(fail))
			tm.late.Add(float64(lateN))
		}
		if internal {
			totRep += ev
		} else {
			totEv += ev
		}
		totFail += fail
		ev, fail, lateN = 0, 0, 0
	}
	for i := range b.n {
		b.ready(i)
		if j := i + realtime.PrefetchDistance; j < b.readyTo || (b.pending == nil && j < b.n) {
			realtime.Prefetch(b.parsed[j]) // parsed already: no race with the parse workers
		}
		rec, r := b.parsed[i], b.recs[i]
		if r.Topic != topic {
			flush()
			topic, tm = r.Topic, s.m.topic(r.Topic)
			lane = topo.lanes[topic]
			internal = lane != 0
			_, src := s.sources[topic]
			input = internal || src
		}
		if !input {
			// A repartition topic a reload dropped after this poll:
			// no rule of the running set reads it.
			continue
		}
		if rec == nil {
			fail++
			continue
		}
		src, ok := s.sourceOf(r, lane, b.orig[i])
		if !ok {
			fail++
			continue
		}
		ev++
		var isLate bool
		out, isLate = s.engine.ProcessLane(rec, src, lane, now, out)
		if !isLate && !internal && len(topo.lanes) > 0 {
			b.fwd = s.appendForwards(b.fwd, b, rec, r)
		}
		if isLate {
			lateN++
			if s.o.LateTopic != "" {
				b.late = append(b.late, &kgo.Record{Topic: s.o.LateTopic, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp,
					Headers: []kgo.RecordHeader{
						{Key: "source_topic", Value: []byte(src.Topic)},
						{Key: "source_partition", Value: strconv.AppendInt(nil, int64(src.Partition), 10)},
						{Key: "source_offset", Value: strconv.AppendInt(nil, src.Offset, 10)},
						{Key: "reason", Value: fmt.Appendf(nil, "event time %s is more than the allowed lateness behind the watermark %s",
							rec.EventTime().UTC().Format(time.RFC3339Nano), s.engine.Watermark().Format(time.RFC3339Nano))},
					}})
			}
		}
	}
	flush()
	s.events.Add(totEv)
	s.repartitioned.Add(totRep)
	s.parseFail.Add(totFail)
	waitMinutes()
	out = s.engine.Advance(now, out)
	if s.o.Minutes != nil {
		s.o.Minutes.Advance(s.engine.Watermark())
	}
	return out
}
