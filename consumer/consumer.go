package consumer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// Source is one input topic and the format of its lines.
type Source struct {
	Topic  string
	Format string
}

// Options configure a Consumer.
type Options struct {
	FS storage.FS
	// Client are the franz-go options that reach the cluster (brokers,
	// TLS, SASL); the consumer adds its group options.
	Client  []kgo.Opt
	Group   string
	Sources []Source
	Writer  WriterOptions
	// Parse configures the parsers (reference time, source timezone).
	Parse parse.Options
	// A partition's buffer is committed when it holds RollRecords records
	// or RollBytes bytes of input, or its oldest record is RollInterval old.
	RollRecords  int64
	RollBytes    int64
	RollInterval time.Duration
	// MemoryBudget bounds the memory buffered records hold across every
	// open file of every partition (PartitionWriter.MemBytes, an
	// estimate of the Arrow and Parquet buffers): after a poll that takes
	// the sum past it, the partitions holding the most are committed at
	// once, largest first, until the rest fit, before their size, count or
	// age would roll them. Default 256 MiB; negative disables.
	MemoryBudget int64
	// IdleHeartbeat: a partition that is caught up with Kafka and has
	// received no record for this long publishes a heartbeat entry that
	// raises its watermark (heartbeat.go). Default 1m; negative disables.
	IdleHeartbeat time.Duration
	// IdleLateness bounds how long after its event time a record becomes
	// readable in Kafka; a heartbeat's watermark is the time it checked
	// the partition's end minus this. Default 35s (the speed layer's
	// default out-of-orderness plus allowed lateness).
	IdleLateness time.Duration
	// CheckpointEvery: after this many entries since the newest
	// checkpoint, the owner folds its commit log into a new one and
	// deletes the folded entries (compact.go). Default 1000; negative
	// disables.
	CheckpointEvery int64
	// SessionTimeout is the group session timeout (default 10s).
	SessionTimeout time.Duration
	Logger         *slog.Logger
	// Registerer receives the consumer's metrics (nil: none).
	Registerer prometheus.Registerer
	// Hook is called between the steps of the commit protocol (tests).
	Hook func(step string) error
}

// DefaultMemoryBudget is Options.MemoryBudget when unset.
const DefaultMemoryBudget = 256 << 20

// Consumer reads the source topics in a consumer group and writes them to
// the dataset exactly once.
type Consumer struct {
	o       Options
	parsers map[string]parse.Parser
	formats map[string]string
	log     *slog.Logger
	m       *metrics

	mu      sync.Mutex
	writers map[tp]*PartitionWriter
	// active is when each owned partition last received a record, was
	// claimed or was checked for a heartbeat.
	active map[tp]time.Time

	files       atomic.Int64
	records     atomic.Int64
	budgetRolls atomic.Int64
	// claimErr is the last failed claim's error until a claim succeeds:
	// while the dataset refuses claims the group keeps retrying the
	// assignment and nothing is consumed, which Ready reports.
	claimErr atomic.Pointer[error]

	// scratch is the record absorb parses each line into: Add copies it
	// into Arrow buffers at once, so one per consumer (absorb runs on the
	// poll loop only) spares an allocation per line.
	scratch parse.Scratch
}

type tp struct {
	topic     string
	partition int32
}

type metrics struct {
	records     *prometheus.CounterVec
	quarantined *prometheus.CounterVec
	files       prometheus.Counter
	commits     prometheus.Counter
	fenced      prometheus.Counter
	heartbeats  prometheus.Counter
	checkpoints prometheus.Counter
	budgetRolls prometheus.Counter
	commitSecs  prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		records:     prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_consumer_records_total", Help: "Records committed to the dataset, by dataset."}, []string{"dataset"}),
		quarantined: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "lambdalog_consumer_quarantined_total", Help: "Lines quarantined, by reason."}, []string{"reason"}),
		files:       prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_files_committed_total", Help: "Parquet files committed."}),
		commits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_commits_total", Help: "Commit log entries published."}),
		fenced:      prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_fenced_total", Help: "Partitions this process lost to another writer."}),
		checkpoints: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_checkpoints_total", Help: "Commit log checkpoints published (older entries folded and deleted)."}),
		heartbeats:  prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_heartbeats_total", Help: "Heartbeat entries published for idle, caught-up partitions."}),
		budgetRolls: prometheus.NewCounter(prometheus.CounterOpts{Name: "lambdalog_consumer_budget_rolls_total", Help: "Partitions committed early because the buffered records passed the memory budget."}),
		commitSecs:  prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lambdalog_consumer_commit_seconds", Help: "Time to write and publish one commit.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 12)}),
	}
	if reg != nil {
		reg.MustRegister(m.records, m.quarantined, m.files, m.commits, m.fenced, m.heartbeats, m.checkpoints, m.budgetRolls, m.commitSecs)
	}
	return m
}

// New checks the options and prepares the parsers.
func New(o Options) (*Consumer, error) {
	if o.FS == nil || o.Group == "" || len(o.Sources) == 0 {
		return nil, errors.New("consumer: FS, Group and Sources are required")
	}
	if o.RollRecords <= 0 {
		o.RollRecords = 1_000_000
	}
	if o.RollBytes <= 0 {
		o.RollBytes = 128 << 20
	}
	if o.RollInterval <= 0 {
		o.RollInterval = time.Minute
	}
	if o.MemoryBudget == 0 {
		o.MemoryBudget = DefaultMemoryBudget
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = 10 * time.Second
	}
	if o.IdleHeartbeat == 0 {
		o.IdleHeartbeat = time.Minute
	}
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 1000
	}
	if o.IdleLateness <= 0 {
		o.IdleLateness = 35 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Consumer{o: o, parsers: map[string]parse.Parser{}, formats: map[string]string{}, log: o.Logger,
		m: newMetrics(o.Registerer), writers: map[tp]*PartitionWriter{}, active: map[tp]time.Time{}}
	for _, s := range o.Sources {
		p, err := parse.New(s.Format, o.Parse)
		if err != nil {
			return nil, fmt.Errorf("consumer: topic %s: %w", s.Topic, err)
		}
		c.parsers[s.Topic], c.formats[s.Topic] = p, s.Format
	}
	if _, err := o.Writer.withDefaults().codec(); err != nil {
		return nil, err
	}
	return c, nil
}

// Ready is nil unless the last claim of a partition failed and none has
// succeeded since: the consumer is then not consuming, only retrying its
// assignment until the dataset accepts claims again.
func (c *Consumer) Ready(context.Context) error {
	if p := c.claimErr.Load(); p != nil {
		return *p
	}
	return nil
}

// FilesCommitted is the number of Parquet files this consumer published.
func (c *Consumer) FilesCommitted() int64 { return c.files.Load() }

// RecordsCommitted is the number of records this consumer published.
func (c *Consumer) RecordsCommitted() int64 { return c.records.Load() }

// BudgetRolls is the number of commits the memory budget made early.
func (c *Consumer) BudgetRolls() int64 { return c.budgetRolls.Load() }

func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return time.Now().UTC().Format("20060102T150405") + "-" + hex.EncodeToString(b[:])
}

// Run consumes until ctx ends, then commits what it buffered and leaves the
// group. It returns nil after a clean stop.
func (c *Consumer) Run(ctx context.Context) error {
	topics := make([]string, 0, len(c.o.Sources))
	for _, s := range c.o.Sources {
		topics = append(topics, s.Topic)
	}
	opts := append([]kgo.Opt{}, c.o.Client...)
	opts = append(opts,
		kgo.ConsumerGroup(c.o.Group),
		kgo.SessionTimeout(c.o.SessionTimeout),
		kgo.HeartbeatInterval(c.o.SessionTimeout/5),
		kgo.ConsumeTopics(topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// The dataset, not Kafka, says where to resume: claim each newly
		// assigned partition and start from its committed next offset.
		kgo.AdjustFetchOffsetsFn(c.assign),
		kgo.OnPartitionsRevoked(func(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
			c.release(ctx, revoked, true)
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, _ *kgo.Client, lost map[string][]int32) {
			c.release(ctx, lost, false)
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("consumer: kafka client: %w", err)
	}
	defer cl.Close()

	var runErr error
	for ctx.Err() == nil {
		pollCtx, cancel := context.WithTimeout(ctx, pollWait(c.o.RollInterval))
		fetches := cl.PollRecords(pollCtx, 50_000)
		cancel()
		fetches.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				c.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
			}
		})
		if err := c.absorb(fetches); err != nil {
			runErr = err
			cl.AllowRebalance()
			break
		}
		// A commit that has started finishes even if a stop arrives
		// meanwhile: abandoning it half-way only costs a re-read.
		commitCtx, commitCancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		err := c.commitDue(commitCtx, cl, false)
		if err == nil {
			err = c.heartbeats(commitCtx, cl)
		}
		commitCancel()
		if err != nil {
			runErr = err
			cl.AllowRebalance()
			break
		}
		cl.AllowRebalance()
	}
	// A clean stop publishes what is buffered, so nothing is re-read.
	if runErr == nil {
		stopCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		runErr = c.commitDue(stopCtx, cl, true)
		if runErr == nil {
			c.commitGroupOffsets(stopCtx, cl)
		}
		cancel()
	}
	cl.LeaveGroup()
	// Leaving revokes every partition, which publishes or aborts its
	// writer; whatever the leave did not reach (a partition the group
	// no longer counted as ours, a leave cut short) still has encoder
	// goroutines and buffers, which must not outlive Run.
	c.discardWriters()
	return runErr
}

// discardWriters drops every remaining writer's buffered records and
// stops its encoders, touching no file: what it buffered was never
// published, and the next owner's claim cleans its temporary files.
func (c *Consumer) discardWriters() {
	c.mu.Lock()
	ws := c.writers
	c.writers, c.active = map[tp]*PartitionWriter{}, map[tp]time.Time{}
	c.mu.Unlock()
	for _, w := range ws {
		w.discard()
	}
}

func pollWait(roll time.Duration) time.Duration {
	if roll < time.Second {
		return roll
	}
	return time.Second
}

// assign claims every newly assigned partition and answers the offsets to
// fetch from: the next offset of its commit log.
func (c *Consumer) assign(ctx context.Context, offsets map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	out := make(map[string]map[int32]kgo.Offset, len(offsets))
	for topic, parts := range offsets {
		out[topic] = make(map[int32]kgo.Offset, len(parts))
		for p := range parts {
			w, err := c.claim(ctx, topic, p)
			if err != nil {
				return nil, err
			}
			out[topic][p] = kgo.NewOffset().At(w.Next())
		}
	}
	return out, nil
}

func (c *Consumer) claim(ctx context.Context, topic string, p int32) (*PartitionWriter, error) {
	l := NewLog(c.o.FS, topic, p)
	l.hook = c.o.Hook
	var claim Entry
	var err error
	for attempt := 0; ; attempt++ {
		claim, err = l.Claim(ctx, newEpoch())
		if err == nil || attempt == 4 || !storage.IsRetryable(err) {
			break
		}
		time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
	}
	if err != nil {
		err = fmt.Errorf("consumer: claim %s/%d: %w", topic, p, err)
		c.claimErr.Store(&err)
		return nil, err
	}
	c.claimErr.Store(nil)
	w := NewPartitionWriter(c.o.FS, l, claim, c.o.Writer)
	c.mu.Lock()
	c.writers[tp{topic, p}] = w
	c.active[tp{topic, p}] = time.Now()
	c.mu.Unlock()
	c.log.Info("partition claimed", "topic", topic, "partition", p, "resume_at", claim.Next, "seq", claim.Seq, "epoch", claim.Epoch)
	return w, nil
}

// release gives up partitions: on revocation what is buffered is still
// ours and is published; on loss it is dropped unpublished.
func (c *Consumer) release(ctx context.Context, parts map[string][]int32, publish bool) {
	for topic, ps := range parts {
		for _, p := range ps {
			k := tp{topic, p}
			c.mu.Lock()
			w := c.writers[k]
			delete(c.writers, k)
			delete(c.active, k)
			c.mu.Unlock()
			if w == nil {
				continue
			}
			if publish {
				if err := c.commit(ctx, k, w); err == nil {
					continue
				}
			}
			if err := w.Abort(ctx); err != nil {
				c.log.Warn("abort partition", "topic", topic, "partition", p, "err", err)
			}
		}
	}
}

func (c *Consumer) absorb(fetches kgo.Fetches) error {
	var err error
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if err != nil || len(ftp.Records) == 0 {
			return
		}
		c.mu.Lock()
		w := c.writers[tp{ftp.Topic, ftp.Partition}]
		if w != nil {
			c.active[tp{ftp.Topic, ftp.Partition}] = time.Now()
		}
		c.mu.Unlock()
		if w == nil {
			return // not ours (fenced or released): the owner writes it
		}
		parser, format := c.parsers[ftp.Topic], c.formats[ftp.Topic]
		now := time.Now().UTC()
		for _, r := range ftp.Records {
			if r.Offset < w.Next() {
				continue // before the commit point: already in the dataset
			}
			rec, perr := parse.ParseInto(parser, r.Value, &c.scratch)
			if perr != nil {
				q := parse.Quarantine(r.Value, format, perr)
				// Partition by the Kafka time, not the time of quarantine,
				// so a re-read lands in the same place.
				q.Base.Timestamp = r.Timestamp.UTC()
				rec = q
				c.m.quarantined.WithLabelValues(q.Reason).Inc()
			}
			cm := rec.Common()
			cm.KafkaTopic, cm.KafkaPartition, cm.KafkaOffset = r.Topic, r.Partition, r.Offset
			cm.KafkaTimestamp, cm.IngestTime = r.Timestamp.UTC(), now
			if aerr := w.Add(rec, r.Offset, len(r.Value)); aerr != nil {
				err = aerr
				return
			}
		}
	})
	return err
}

// commitDue publishes every partition whose buffer is due (all of them when
// force is set).
func (c *Consumer) commitDue(ctx context.Context, cl *kgo.Client, force bool) error {
	c.mu.Lock()
	due := map[tp]*PartitionWriter{}
	for k, w := range c.writers {
		n, b, since := w.Buffered()
		if n == 0 {
			continue
		}
		if force || n >= c.o.RollRecords || b >= c.o.RollBytes || time.Since(since) >= c.o.RollInterval {
			due[k] = w
		}
	}
	early := c.overBudget(due)
	c.mu.Unlock()
	for k := range early {
		due[k] = early[k]
	}
	committed := map[string]map[int32]kgo.EpochOffset{}
	for k, w := range due {
		err := c.commit(ctx, k, w)
		if errors.Is(err, ErrFenced) {
			continue
		}
		if err != nil {
			return err
		}
		if committed[k.topic] == nil {
			committed[k.topic] = map[int32]kgo.EpochOffset{}
		}
		committed[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: w.Next()}
	}
	if len(committed) > 0 && cl != nil {
		// For lag monitoring only: resume positions come from the dataset.
		// Asynchronous, so its own context: the caller's ends when this
		// returns, which would cancel the request before it is sent.
		octx, ocancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		cl.CommitOffsets(octx, committed, func(cl *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			ocancel()
			c.logOffsetCommit(cl, req, resp, err)
		})
	}
	return nil
}

// overBudget picks the partitions to commit early so that the memory
// the others hold fits the budget: largest first, since one big commit
// frees the most for the fixed cost of a commit. Partitions already due
// do not count: their commit frees their memory anyway. c.mu is held.
func (c *Consumer) overBudget(due map[tp]*PartitionWriter) map[tp]*PartitionWriter {
	if c.o.MemoryBudget <= 0 {
		return nil
	}
	type held struct {
		k     tp
		w     *PartitionWriter
		bytes int64
	}
	var all []held
	var total int64
	for k, w := range c.writers {
		if due[k] != nil {
			continue
		}
		if n := w.MemBytes(); n > 0 {
			all = append(all, held{k, w, n})
			total += n
		}
	}
	if total <= c.o.MemoryBudget {
		return nil
	}
	sort.Slice(all, func(i, j int) bool { return all[i].bytes > all[j].bytes })
	early := map[tp]*PartitionWriter{}
	for _, h := range all {
		if total <= c.o.MemoryBudget {
			break
		}
		early[h.k] = h.w
		total -= h.bytes
		c.budgetRolls.Add(1)
		c.m.budgetRolls.Inc()
		c.log.Debug("memory budget: committing early", "topic", h.k.topic, "partition", h.k.partition, "held_bytes", h.bytes, "budget", c.o.MemoryBudget)
	}
	return early
}

// commitGroupOffsets records every owned partition's next offset in the
// group, synchronously, so lag reads right after a clean stop even when an
// asynchronous commit failed earlier. Monitoring only: failures are logged.
func (c *Consumer) commitGroupOffsets(ctx context.Context, cl *kgo.Client) {
	offsets := map[string]map[int32]kgo.EpochOffset{}
	c.mu.Lock()
	for k, w := range c.writers {
		if offsets[k.topic] == nil {
			offsets[k.topic] = map[int32]kgo.EpochOffset{}
		}
		offsets[k.topic][k.partition] = kgo.EpochOffset{Epoch: -1, Offset: w.Next()}
	}
	c.mu.Unlock()
	if len(offsets) == 0 {
		return
	}
	cl.CommitOffsetsSync(ctx, offsets, c.logOffsetCommit)
}

func (c *Consumer) logOffsetCommit(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
	if err == nil && resp != nil {
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if perr := kerr.ErrorForCode(p.ErrorCode); perr != nil && err == nil {
					err = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, perr)
				}
			}
		}
	}
	if err != nil {
		c.log.Debug("group offset commit (monitoring only) failed", "err", err)
	}
}

// commit publishes one partition's buffer, retrying transient storage
// failures. A fenced partition is dropped: its new owner resumes it.
func (c *Consumer) commit(ctx context.Context, k tp, w *PartitionWriter) error {
	start := time.Now()
	var e Entry
	var ok bool
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var got Entry
		var published bool
		got, published, err = w.Commit(ctx)
		if published {
			e, ok = got, true // published even if its files still need moving
		}
		if err == nil || errors.Is(err, ErrFenced) || !storage.IsRetryable(err) || ctx.Err() != nil {
			break
		}
		c.log.Warn("commit failed, retrying", "topic", k.topic, "partition", k.partition, "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(attempt+1) * 250 * time.Millisecond)
	}
	if err != nil && !errors.Is(err, ErrFenced) && ctx.Err() == nil && c.superseded(ctx, w) {
		// A zombie's commit can fail before it reaches the publish that
		// would say "fenced": the new owner's claim removes stale
		// temporary files, so the zombie's file write fails first. That
		// is a lost partition, not a broken consumer.
		err = fmt.Errorf("%w (the commit failed first: %v)", ErrFenced, err)
	}
	if errors.Is(err, ErrFenced) {
		c.fenced(ctx, k, w, err)
		return err
	}
	if err != nil {
		return fmt.Errorf("consumer: commit %s/%d: %w", k.topic, k.partition, err)
	}
	if !ok {
		return nil
	}
	c.m.commits.Inc()
	c.m.commitSecs.Observe(time.Since(start).Seconds())
	c.m.files.Add(float64(len(e.Files)))
	c.files.Add(int64(len(e.Files)))
	c.records.Add(e.Records)
	for _, f := range e.Files {
		c.m.records.WithLabelValues(f.Dataset).Add(float64(f.Rows))
	}
	c.log.Debug("committed", "topic", k.topic, "partition", k.partition, "seq", e.Seq, "start", e.Start, "next", e.Next, "files", len(e.Files))
	return c.maybeCheckpoint(ctx, k, w)
}

// maybeCheckpoint compacts the partition's commit log when enough entries
// piled up since its newest checkpoint. Only a fenced or failed publish is
// an error; a deletion cut short is logged (the next compaction finishes
// it, and readers ignore what it left).
func (c *Consumer) maybeCheckpoint(ctx context.Context, k tp, w *PartitionWriter) error {
	if c.o.CheckpointEvery <= 0 || w.EntriesSinceCheckpoint() < c.o.CheckpointEvery {
		return nil
	}
	var cp Entry
	var published bool
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		cp, published, err = w.Checkpoint(ctx)
		if published || err == nil || errors.Is(err, ErrFenced) || !storage.IsRetryable(err) || ctx.Err() != nil {
			break
		}
		c.log.Warn("checkpoint failed, retrying", "topic", k.topic, "partition", k.partition, "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(attempt+1) * 250 * time.Millisecond)
	}
	if errors.Is(err, ErrFenced) {
		c.fenced(ctx, k, w, err)
		return err
	}
	if !published {
		return fmt.Errorf("consumer: checkpoint %s/%d: %w", k.topic, k.partition, err)
	}
	c.m.checkpoints.Inc()
	if err != nil {
		c.log.Warn("checkpoint published; deleting the folded entries failed (the next checkpoint retries)", "topic", k.topic, "partition", k.partition, "err", err)
	}
	c.log.Debug("checkpoint", "topic", k.topic, "partition", k.partition, "seq", cp.Seq, "folded", cp.Folded.Entries)
	return nil
}

// superseded reports whether another writer has published in w's
// partition since w's last publish or claim (its claim or a later entry
// took w's next sequence number). An unreadable log answers false: the
// caller then reports its own error.
func (c *Consumer) superseded(ctx context.Context, w *PartitionWriter) bool {
	e, ok, err := w.log.Last(ctx)
	return err == nil && ok && e.Seq > w.seq && e.Epoch != w.epoch
}

// fenced drops a partition another writer took over: its new owner resumes
// it from the commit log.
func (c *Consumer) fenced(ctx context.Context, k tp, w *PartitionWriter, err error) {
	c.m.fenced.Inc()
	c.log.Warn("partition fenced: another writer owns it; dropping it", "topic", k.topic, "partition", k.partition, "err", err)
	c.mu.Lock()
	if c.writers[k] == w {
		delete(c.writers, k)
		delete(c.active, k)
	}
	c.mu.Unlock()
	_ = w.Abort(ctx)
}
