// Package ingest ships log lines from files, followed files or a stream
// into a Kafka topic: the raw lines, keyed by source IP, through an
// idempotent, batching, compressing producer with bounded memory.
//
// Every line read is accounted for. Lines the parser rejects are still
// shipped raw (the consumer quarantines them with their Kafka lineage);
// lines longer than the size limit go whole to the quarantine topic as a
// quarantine JSON record. With a state file, the position of every
// followed file is persisted only after the lines before it are
// acknowledged by Kafka (see docs/ingest.md for the exact guarantees).
package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// Producer is what the ingester needs of a Kafka client; *kgo.Client
// implements it. Produce must call promise exactly once per record.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
	Flush(ctx context.Context) error
}

// Defaults of Options fields left zero.
const (
	// DefaultLongLineKeep is how much of an over-long line is kept: lines
	// up to this size reach the quarantine topic whole. 512 KiB keeps the
	// quarantine record (base64 raw bytes in JSON) under Kafka's default
	// 1 MB message limit.
	DefaultLongLineKeep = 512 << 10
	// DefaultPollInterval is how often a followed file at its end is
	// checked for new data, rotation and truncation.
	DefaultPollInterval = 250 * time.Millisecond
	// DefaultStateInterval is how often acknowledged positions are
	// written to the state file.
	DefaultStateInterval = time.Second
	// DefaultFlushTimeout bounds the wait for acknowledgements on stop.
	DefaultFlushTimeout = 30 * time.Second
	// DefaultBatchRecords is how many records make one acknowledgement
	// batch (the granularity of persisted positions).
	DefaultBatchRecords = 4096
)

// Options configure an Ingester.
type Options struct {
	// Topic receives the raw lines. Required.
	Topic string
	// Format is the parser format used to find each line's key
	// (schemas/parse: sshd, syslog, access, netfilter, eve, json, auto).
	Format string
	// QuarantineTopic receives over-long lines. Required.
	QuarantineTopic string
	// MaxLineSize is the longest line shipped to Topic, in bytes without
	// the line ending; 0 means parse.DefaultMaxLineBytes.
	MaxLineSize int
	// LongLineKeep is how many leading bytes of an over-long line are
	// kept and sent to quarantine; the rest is counted, not buffered.
	// 0 means DefaultLongLineKeep.
	LongLineKeep int
	// Parse is passed to the parser (MaxLineBytes is set from
	// MaxLineSize).
	Parse parse.Options
	// Follow keeps reading files at their end, like tail -F.
	Follow bool
	// StateFile persists acknowledged positions of files; "" disables.
	StateFile string
	// PollInterval, StateInterval and FlushTimeout: see the defaults.
	PollInterval, StateInterval, FlushTimeout time.Duration
	// BatchRecords: see DefaultBatchRecords.
	BatchRecords int
	// Stdin is read for the input "-".
	Stdin io.Reader
	// Logger receives rotation, truncation and quarantine events; nil
	// discards them.
	Logger *slog.Logger
	// Progress, when set, is called every ProgressEvery (default 1s)
	// while running.
	Progress      func(Progress)
	ProgressEvery time.Duration
}

// Stats count what an Ingester did.
type Stats struct {
	// Lines is the number of lines read.
	Lines int64
	// Bytes is the number of input bytes read.
	Bytes int64
	// Produced counts records handed to the producer: every line, to
	// Topic or (over-long) to the quarantine topic.
	Produced int64
	// Acked counts records acknowledged by Kafka.
	Acked int64
	// Failed counts records the producer gave up on.
	Failed int64
	// ParseErrors counts lines the parser rejected, by reason. They were
	// shipped raw with an empty key all the same.
	ParseErrors map[string]int64
	// Quarantined counts over-long lines sent to the quarantine topic.
	Quarantined int64
	// Elapsed is the time since Run started.
	Elapsed time.Duration
}

// ParseErrorTotal is the number of lines the parser rejected.
func (s Stats) ParseErrorTotal() int64 {
	var n int64
	for _, v := range s.ParseErrors {
		n += v
	}
	return n
}

// String renders the stats on one line, reasons sorted.
func (s Stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d lines (%d bytes), acked %d of %d records, parse errors %d", s.Lines, s.Bytes, s.Acked, s.Produced, s.ParseErrorTotal())
	if len(s.ParseErrors) > 0 {
		keys := make([]string, 0, len(s.ParseErrors))
		for k := range s.ParseErrors {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, s.ParseErrors[k])
		}
		fmt.Fprintf(&b, " (%s)", strings.Join(parts, ", "))
	}
	fmt.Fprintf(&b, ", quarantined %d", s.Quarantined)
	if s.Failed > 0 {
		fmt.Fprintf(&b, ", failed %d", s.Failed)
	}
	return b.String()
}

// Progress is a periodic snapshot with rates over the last interval.
type Progress struct {
	Stats
	LinesPerSec float64
	BytesPerSec float64
}

// Ingester ships lines into Kafka. Create it with New and call Run once.
type Ingester struct {
	o     Options
	p     Producer
	keyer *keyer
	log   *slog.Logger
	state *stateStore

	stats struct {
		lines, bytes, produced, acked, failed, quarantined atomic.Int64
	}
	errMu     sync.Mutex
	parseErrs map[string]int64
	firstErr  error
	// abort stops reading after a produce failure.
	abort context.CancelCauseFunc
	start time.Time
}

// New validates the options and returns an Ingester producing through p.
func New(p Producer, o Options) (*Ingester, error) {
	if o.Topic == "" {
		return nil, errors.New("ingest: no topic")
	}
	if o.QuarantineTopic == "" {
		return nil, errors.New("ingest: no quarantine topic")
	}
	if o.MaxLineSize <= 0 {
		o.MaxLineSize = parse.DefaultMaxLineBytes
	}
	if o.LongLineKeep <= 0 {
		o.LongLineKeep = DefaultLongLineKeep
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	if o.StateInterval <= 0 {
		o.StateInterval = DefaultStateInterval
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = DefaultFlushTimeout
	}
	if o.BatchRecords <= 0 {
		o.BatchRecords = DefaultBatchRecords
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = time.Second
	}
	po := o.Parse
	po.MaxLineBytes = o.MaxLineSize
	pr, err := parse.New(o.Format, po)
	if err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	lg := o.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Ingester{o: o, p: p, keyer: newKeyer(pr), log: lg, parseErrs: map[string]int64{}}, nil
}

// Stats returns the counts so far.
func (g *Ingester) Stats() Stats {
	s := Stats{
		Lines: g.stats.lines.Load(), Bytes: g.stats.bytes.Load(), Produced: g.stats.produced.Load(),
		Acked: g.stats.acked.Load(), Failed: g.stats.failed.Load(), Quarantined: g.stats.quarantined.Load(),
		ParseErrors: map[string]int64{},
	}
	if !g.start.IsZero() {
		s.Elapsed = time.Since(g.start)
	}
	g.errMu.Lock()
	for k, v := range g.parseErrs {
		s.ParseErrors[k] = v
	}
	g.errMu.Unlock()
	return s
}

func (g *Ingester) recordFailed(err error) {
	g.stats.failed.Add(1)
	g.errMu.Lock()
	first := g.firstErr == nil
	if first {
		g.firstErr = err
	}
	g.errMu.Unlock()
	if first && g.abort != nil {
		g.abort(err)
	}
}

func (g *Ingester) produceErr() error {
	g.errMu.Lock()
	defer g.errMu.Unlock()
	return g.firstErr
}

// Run ships every input ("-" is Options.Stdin; paths are files) and
// returns when they are exhausted (without Follow), when ctx is done, or on
// the first produce failure. Either way it then waits up to FlushTimeout
// for every record handed to the producer to be acknowledged and writes the
// final state. A stop through ctx is not an error: Run returns nil once
// everything read was acknowledged.
//
// Without Follow, inputs are read one after the other, in order; with
// Follow, each is followed concurrently.
func (g *Ingester) Run(ctx context.Context, inputs []string) (Stats, error) {
	if len(inputs) == 0 {
		inputs = []string{"-"}
	}
	g.start = time.Now()
	if g.o.StateFile != "" {
		st, err := openState(g.o.StateFile)
		if err != nil {
			return g.Stats(), err
		}
		g.state = st
		defer st.close()
	}
	readCtx, abort := context.WithCancelCause(ctx)
	defer abort(nil)
	g.abort = abort

	// Producing does not stop when ctx does: records already read are
	// delivered, so a clean stop re-sends nothing. It stops FlushTimeout
	// after ctx, should the cluster not answer.
	prodCtx, cancelProd := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProd()
	stopAfter := context.AfterFunc(ctx, func() { time.AfterFunc(g.o.FlushTimeout, cancelProd) })
	defer stopAfter()

	bg, stopBG := context.WithCancel(context.Background())
	var bgWG sync.WaitGroup
	g.background(bg, &bgWG)

	var readErr error
	if g.o.Follow {
		var wg sync.WaitGroup
		errs := make([]error, len(inputs))
		for i, in := range inputs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = g.input(readCtx, prodCtx, in)
				if errs[i] != nil {
					abort(errs[i])
				}
			}()
		}
		wg.Wait()
		readErr = errors.Join(errs...)
	} else {
		for _, in := range inputs {
			if readErr = g.input(readCtx, prodCtx, in); readErr != nil || readCtx.Err() != nil {
				break
			}
		}
	}

	fctx, cancel := context.WithTimeout(prodCtx, g.o.FlushTimeout)
	ferr := g.p.Flush(fctx)
	cancel()
	stopBG()
	bgWG.Wait()
	var errs []error
	if readErr != nil {
		errs = append(errs, readErr)
	}
	if perr := g.produceErr(); perr != nil {
		errs = append(errs, fmt.Errorf("ingest: produce: %w", perr))
	}
	if ferr != nil {
		st := g.Stats()
		errs = append(errs, fmt.Errorf("ingest: flush: %d of %d records unacknowledged: %w", st.Produced-st.Acked-st.Failed, st.Produced, ferr))
	}
	if g.state != nil {
		if err := g.state.save(); err != nil {
			errs = append(errs, err)
		}
	}
	return g.Stats(), errors.Join(errs...)
}

// background runs the progress reporter and the periodic state writer.
func (g *Ingester) background(ctx context.Context, wg *sync.WaitGroup) {
	if g.o.Progress != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(g.o.ProgressEvery)
			defer t.Stop()
			last, lastAt := g.Stats(), time.Now()
			for {
				select {
				case <-ctx.Done():
					return
				case now := <-t.C:
					s := g.Stats()
					d := now.Sub(lastAt).Seconds()
					g.o.Progress(Progress{Stats: s, LinesPerSec: float64(s.Lines-last.Lines) / d, BytesPerSec: float64(s.Bytes-last.Bytes) / d})
					last, lastAt = s, now
				}
			}
		}()
	}
	if g.state != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(g.o.StateInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := g.state.save(); err != nil {
						g.log.Error("saving ingest state", "err", err)
					}
				}
			}
		}()
	}
}

// shipper turns the lines of one input into records, in order.
type shipper struct {
	g    *Ingester
	ctx  context.Context // produce context
	tr   *tracker
	cur  *batch
	slab slabs
	pos  Position // file identity of the lines being read
	src  string   // input name, for quarantine messages
}

func (g *Ingester) newShipper(prodCtx context.Context, src string, onCommit func(Position)) *shipper {
	return &shipper{g: g, ctx: prodCtx, tr: newTracker(g, onCommit), src: src}
}

func (s *shipper) batch() *batch {
	if s.cur == nil {
		s.cur = s.tr.open(s.pos)
	}
	return s.cur
}

// seal closes the open batch, if any.
func (s *shipper) seal() {
	if s.cur != nil {
		s.cur.seal()
		s.cur = nil
	}
}

// mark records a position change that ships no line (a new file, a
// truncation), so the persisted position follows it once everything
// before it is acknowledged.
func (s *shipper) mark(pos Position) {
	s.seal()
	s.pos = pos
	s.batch()
	s.seal()
}

// ship produces one line: to the topic keyed by source IP, or, when too
// long, to quarantine.
func (s *shipper) ship(l line) {
	g := s.g
	b := s.batch()
	r := s.slab.record()
	if l.long {
		detail := fmt.Sprintf("%d bytes > %d (%s, offset %d)", l.total, g.o.MaxLineSize, s.src, l.start)
		if int64(len(l.value)) < l.total {
			detail += fmt.Sprintf("; only the first %d bytes are kept", len(l.value))
		}
		q := parse.Quarantine(l.value, g.o.Format, &parse.Error{Format: g.o.Format, Reason: parse.ReasonLineTooLong, Detail: detail})
		r.Topic = g.o.QuarantineTopic
		r.Value = schemas.MarshalJSON(q)
		g.stats.quarantined.Add(1)
		g.log.Warn("over-long line sent to quarantine", "input", s.src, "bytes", l.total, "max", g.o.MaxLineSize, "kept", len(l.value), "topic", g.o.QuarantineTopic)
	} else {
		key, err := g.keyer.appendKey(s.slab.keyBuf(64), l.value)
		if err != nil {
			g.countParseErr(err)
		}
		r.Topic = g.o.Topic
		r.Key = s.slab.keyDone(key)
		r.Value = l.value
	}
	g.stats.lines.Add(1)
	g.stats.produced.Add(1)
	b.pending.Add(1)
	b.pos.Offset = l.end
	s.pos.Offset = l.end
	b.n++
	g.p.Produce(s.ctx, r, b.promise)
	if b.n >= g.o.BatchRecords {
		s.seal()
	}
}

func (g *Ingester) countParseErr(err error) {
	reason := "unknown"
	var pe *parse.Error
	if errors.As(err, &pe) {
		reason = pe.Reason
	}
	g.errMu.Lock()
	g.parseErrs[reason]++
	g.errMu.Unlock()
}
