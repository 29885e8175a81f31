package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/realtime/alert"
	"github.com/lambdalog/lambdalog/realtime/rules"
)

// How long recovery waits for a fetch that brings nothing before it takes
// a partition as read to its end.
const (
	recoverIdle     = 500 * time.Millisecond
	recoverMaxWait  = 100 * time.Millisecond
	recoverDeadline = 5 * time.Minute
)

// horizon is how far back in event time the state of the windows reaches:
// the longest window (or sequence duration) plus a slide, the allowed
// lateness and the out-of-orderness.
func (s *Service) horizon(rs *rules.RuleSet) time.Duration {
	var w time.Duration
	for _, r := range rs.Rules {
		w = max(w, r.Window+r.Slide, r.Within)
	}
	late, ooo := s.lateness()
	if s.o.Minutes != nil {
		// The per-minute aggregates suppress writes before the replay
		// start plus lateness and out-of-orderness (assignMinutes), and
		// every minute or window not surely written must start after that
		// (minutes.Aggregator.Horizon).
		w = max(w, s.o.Minutes.Horizon()+late+ooo)
	}
	return w + late + ooo
}

func (s *Service) lateness() (late, ooo time.Duration) {
	late, ooo = s.o.Engine.AllowedLateness, s.o.Engine.OutOfOrderness
	if late == 0 {
		late = realtime.DefaultAllowedLateness
	}
	if ooo == 0 {
		ooo = realtime.DefaultOutOfOrderness
	}
	return late, ooo
}

// assignMinutes (re)starts the per-minute aggregator's partitions before a
// replay. A partition with a committed offset replays from target (event
// time, Unix ns): records before the replay's first offset may still have
// event times up to the out-of-orderness plus lateness after it, so the
// minutes and windows starting before target plus both are left to what
// the previous owner wrote. A partition never consumed starts with
// nothing suppressed.
func (s *Service) assignMinutes(owned map[string][]int32, committed map[tp]int64, target int64) {
	if s.o.Minutes == nil {
		return
	}
	late, ooo := s.lateness()
	for t, ps := range owned {
		if s.isInternal(t) {
			continue // the aggregates read source records only
		}
		for _, p := range ps {
			var from time.Time
			if _, ok := committed[tp{t, p}]; ok {
				from = time.Unix(0, target).Add(late + ooo)
			}
			s.o.Minutes.Assign(t, p, from)
		}
	}
}

func maxSuppress(rs *rules.RuleSet) time.Duration {
	var d time.Duration
	for _, r := range rs.Rules {
		d = max(d, r.Suppress)
	}
	return d
}

type tp struct {
	topic string
	part  int32
}

// recover rebuilds the engine for the owned partitions: a fresh engine is
// fed, with its alerts discarded, every record from the committed offset
// back by the horizon up to the committed offset, and the ids of alerts
// published in the horizon plus the longest suppression period are read
// back from the alerts topic so they are not published again. The caller
// is between transactions and has rewound the session to the committed
// offsets.
func (s *Service) recover(ctx context.Context, cl *kgo.Client) error {
	began := time.Now()
	s.rebuild.Store(false) // a callback during recovery sets it again
	owned := s.ownedPartitions()
	s.mu.Lock()
	rs := s.rs
	s.mu.Unlock()
	eng, err := realtime.New(rs, s.o.Engine)
	if err != nil {
		return fmt.Errorf("realtime/service: recover: %w", err)
	}
	now := time.Now()
	n := 0
	for t, ps := range owned {
		for _, p := range ps {
			if s.isInternal(t) {
				s.assignClocks(eng, rs, t, p, now)
			} else {
				eng.Assign(t, p, now)
			}
			n++
		}
	}
	var replayed int64
	if n > 0 {
		replayed, err = s.replay(ctx, cl, eng, owned, rs)
		if err != nil {
			return err
		}
	}
	s.mu.Lock()
	if s.rs != rs {
		// A reload swapped the rules during the replay (on the engine
		// being replaced): run them here too, keeping the rebuilt state
		// of the rules it did not change; without this the rebuilt
		// engine would run the rules of before the reload while s.rs
		// and the forwarding follow the new ones.
		if err := eng.SetRules(s.rs); err != nil {
			s.mu.Unlock()
			return fmt.Errorf("realtime/service: recover: rules reloaded during the rebuild: %w", err)
		}
		// The reload may have dropped repartition topics whose
		// partitions eng registered (shrinkTopology).
		for t, ps := range owned {
			if !s.isInput(t) {
				for _, p := range ps {
					s.revokeClocks(eng, t, p)
				}
			}
		}
	}
	s.engine = eng
	s.mu.Unlock()
	took := time.Since(began)
	s.rebuilds.Add(1)
	s.replayed.Add(replayed)
	s.lastRecovery.Store(int64(took))
	s.m.recoverySeconds.Set(took.Seconds())
	s.m.replayed.Add(float64(replayed))
	s.log.Info("window state rebuilt", "partitions", n, "replayed", replayed, "known_alert_ids", len(s.published), "took", took)
	return nil
}

// replay finds where each owned partition's replay starts, reads the
// published alert ids, and feeds the replay to eng.
func (s *Service) replay(ctx context.Context, cl *kgo.Client, eng *realtime.Engine, owned map[string][]int32, rs *rules.RuleSet) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, recoverDeadline)
	defer cancel()
	adm := kadm.NewClient(cl)
	committed, err := s.committedOffsets(ctx, adm, owned)
	if err != nil {
		return 0, err
	}
	if len(committed) == 0 {
		s.assignMinutes(owned, nil, 0)
		return 0, nil // nothing consumed yet: nothing to rebuild
	}
	// Event time of the last record consumed in each partition. A
	// repartition partition's last committed offset is usually a
	// transaction marker (nothing to probe there but a wait), and its
	// records copy source records of about the same times, so the source
	// partitions set the target when this instance has consumed any.
	lastAt := map[tp]int64{}
	for k, c := range committed {
		if !s.isInternal(k.topic) {
			lastAt[k] = c - 1
		}
	}
	if len(lastAt) == 0 {
		for k, c := range committed {
			lastAt[k] = c - 1
		}
	}
	last, err := s.probe(ctx, lastAt)
	if err != nil {
		return 0, err
	}
	minET, minTS := int64(math.MaxInt64), int64(math.MaxInt64)
	for _, pr := range last {
		minET, minTS = min(minET, pr.eventTime), min(minTS, pr.recordTime)
	}
	if minET == math.MaxInt64 {
		return 0, errors.New("realtime/service: recover: no parseable record found in any partition")
	}
	hz := s.horizon(rs)
	target := minET - int64(hz)

	// Start offsets: first by record timestamp (the broker's time index),
	// then stepped back until the first record's event time is before the
	// target, since record timestamps need not be event times.
	topics := make([]string, 0, len(owned))
	for t := range owned {
		topics = append(topics, t)
	}
	byTime, err := adm.ListOffsetsAfterMilli(ctx, time.Unix(0, minTS).Add(-hz).UnixMilli(), topics...)
	if err != nil {
		return 0, fmt.Errorf("realtime/service: recover: list offsets by time: %w", err)
	}
	logStart, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return 0, fmt.Errorf("realtime/service: recover: list start offsets: %w", err)
	}
	starts := map[tp]int64{}
	floor := map[tp]int64{}
	for k, c := range committed {
		st := c - 1
		if o, ok := byTime.Lookup(k.topic, k.part); ok && o.Err == nil && o.Offset >= 0 {
			st = min(st, o.Offset)
		}
		if o, ok := logStart.Lookup(k.topic, k.part); ok && o.Err == nil {
			floor[k] = o.Offset
			st = max(st, o.Offset)
		}
		starts[k] = st
	}
	step := map[tp]int64{}
	for round := 0; round < 40; round++ {
		check := map[tp]int64{}
		for k, st := range starts {
			if st > floor[k] {
				check[k] = st
			}
		}
		if len(check) == 0 {
			break
		}
		first, err := s.probe(ctx, check)
		if err != nil {
			return 0, err
		}
		moved := false
		for k, st := range check {
			if pr, ok := first[k]; ok && (pr.eventTime <= target || pr.eventTime == math.MaxInt64) {
				// Before the target, or nothing parseable from st on
				// (nothing there to replay).
				continue
			}
			if step[k] == 0 {
				step[k] = max(1000, committed[k]-st)
			} else {
				step[k] *= 2
			}
			starts[k] = max(floor[k], st-step[k])
			moved = true
		}
		if !moved {
			break
		}
	}
	if err := s.readPublished(ctx, adm, target-int64(maxSuppress(rs))); err != nil {
		return 0, err
	}
	s.assignMinutes(owned, committed, target)
	return s.feedReplay(ctx, eng, starts, committed)
}

// committedOffsets returns the group's committed offsets (> 0) of the
// owned partitions, waiting out pending transactional commits of the
// partitions' previous owner.
func (s *Service) committedOffsets(ctx context.Context, adm *kadm.Client, owned map[string][]int32) (map[tp]int64, error) {
	for {
		resp, err := adm.FetchOffsets(kadm.RequireStable(ctx), s.o.Group)
		if err == nil {
			unstable := false
			out := map[tp]int64{}
			for t, ps := range owned {
				for _, p := range ps {
					o, ok := resp.Lookup(t, p)
					if !ok {
						continue
					}
					if o.Err != nil {
						if errors.Is(o.Err, kerr.UnstableOffsetCommit) {
							unstable = true
							continue
						}
						return nil, fmt.Errorf("realtime/service: recover: committed offset of %s/%d: %w", t, p, o.Err)
					}
					if o.At > 0 {
						out[tp{t, p}] = o.At
					}
				}
			}
			if !unstable {
				return out, nil
			}
		} else if !errors.Is(err, kerr.UnstableOffsetCommit) {
			return nil, fmt.Errorf("realtime/service: recover: fetch committed offsets: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("realtime/service: recover: committed offsets still unstable: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type probed struct {
	offset     int64
	recordTime int64 // Unix ns
	eventTime  int64 // Unix ns
}

// probe reads the first parseable committed record at or after each
// offset and returns its record and event time; a partition with none
// gets the others' earliest, math.MaxInt64 when none had one.
func (s *Service) probe(ctx context.Context, at map[tp]int64) (map[tp]probed, error) {
	parts := map[string]map[int32]kgo.Offset{}
	for k, o := range at {
		if parts[k.topic] == nil {
			parts[k.topic] = map[int32]kgo.Offset{}
		}
		parts[k.topic][k.part] = kgo.NewOffset().At(o)
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, s.o.Client...),
		kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(recoverMaxWait), kgo.FetchMaxPartitionBytes(256<<10))...)
	if err != nil {
		return nil, fmt.Errorf("realtime/service: recover: probe client: %w", err)
	}
	defer cl.Close()
	out := map[tp]probed{}
	ps := s.workers[0]
	idleSince := time.Now()
	for len(out) < len(at) {
		pctx, cancel := context.WithTimeout(ctx, recoverIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("realtime/service: recover: probe: %w", ctx.Err())
		}
		got := false
		var done []tp
		fs.EachRecord(func(r *kgo.Record) {
			k := tp{r.Topic, r.Partition}
			if _, ok := out[k]; ok || r.Offset < at[k] {
				return
			}
			got = true
			rec, _, err := s.parseRecord(ps, r)
			if err != nil {
				return
			}
			out[k] = probed{offset: r.Offset, recordTime: r.Timestamp.UnixNano(), eventTime: rec.EventTime().UnixNano()}
			done = append(done, k)
		})
		if len(done) > 0 {
			rm := map[string][]int32{}
			for _, k := range done {
				rm[k.topic] = append(rm[k.topic], k.part)
			}
			cl.RemoveConsumePartitions(rm)
		}
		if got {
			idleSince = time.Now()
		} else if idle := time.Since(idleSince); idle > 4*recoverIdle {
			// Nothing parseable at or after the offset: the partition
			// ends there. Its last record is the committed one, so the
			// replay needs nothing before what was found. A source
			// partition does have a record there (the probed offsets
			// are at or after the log start and at or before the last
			// consumed record), so nothing yet means a slow broker:
			// wait longer for it (a loaded machine made this give up
			// and the service exit). A repartition partition may hold
			// only transaction markers there.
			for k, o := range at {
				if _, ok := out[k]; !ok && (s.isInternal(k.topic) || idle > 20*recoverIdle) {
					s.log.Warn("recover: no parseable record at or after offset", "topic", k.topic, "partition", k.part, "offset", o)
					out[k] = probed{offset: o, recordTime: math.MaxInt64, eventTime: math.MaxInt64}
				}
			}
		}
	}
	// Partitions with no record at all fall back to the others' times
	// (math.MaxInt64 when no partition had one).
	minET, minTS := int64(math.MaxInt64), int64(math.MaxInt64)
	for _, p := range out {
		minET, minTS = min(minET, p.eventTime), min(minTS, p.recordTime)
	}
	for k, p := range out {
		if p.eventTime == math.MaxInt64 {
			out[k] = probed{offset: p.offset, recordTime: minTS, eventTime: minET}
		}
	}
	return out, nil
}

// readPublished adds to s.published the ids of alerts on the alerts topic
// (read committed) whose record timestamp (the alert's event time) is at
// or after from.
func (s *Service) readPublished(ctx context.Context, adm *kadm.Client, from int64) error {
	startAt, err := adm.ListOffsetsAfterMilli(ctx, time.Unix(0, from).UnixMilli(), s.o.AlertsTopic)
	if err != nil {
		return fmt.Errorf("realtime/service: recover: alerts offsets: %w", err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, s.o.AlertsTopic)
	if err != nil {
		return fmt.Errorf("realtime/service: recover: alerts end offsets: %w", err)
	}
	parts := map[int32]kgo.Offset{}
	endOf := map[int32]int64{}
	startAt.Each(func(o kadm.ListedOffset) {
		e, ok := ends.Lookup(o.Topic, o.Partition)
		if o.Err != nil || !ok || e.Err != nil || o.Offset >= e.Offset {
			return
		}
		parts[o.Partition] = kgo.NewOffset().At(o.Offset)
		endOf[o.Partition] = e.Offset
	})
	if len(parts) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, s.o.Client...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{s.o.AlertsTopic: parts}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.FetchMaxWait(recoverMaxWait))...)
	if err != nil {
		return fmt.Errorf("realtime/service: recover: alerts reader: %w", err)
	}
	defer cl.Close()
	empty := 0
	for len(endOf) > 0 && empty < 2 {
		pctx, cancel := context.WithTimeout(ctx, recoverIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return fmt.Errorf("realtime/service: recover: read alerts: %w", ctx.Err())
		}
		if fs.NumRecords() == 0 {
			// Transaction markers end the committed log, so its last
			// offset is never delivered: two empty fetches in a row mean
			// the reader is caught up.
			empty++
		} else {
			empty = 0
		}
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				var a struct {
					ID string    `json:"event_id"`
					At time.Time `json:"@timestamp"`
				}
				if json.Unmarshal(r.Value, &a) == nil && a.ID != "" {
					s.published[a.ID] = a.At.UnixNano()
				}
			}
			e, ok := endOf[p.Partition]
			if !ok {
				return
			}
			// Every transaction ends in a marker, so a committed one
			// leaves its last record at end-2.
			if n := len(p.Records); (n > 0 && p.Records[n-1].Offset >= e-2) || (p.Err == nil && p.LastStableOffset >= e && n == 0) {
				delete(endOf, p.Partition)
			}
		})
	}
	return nil
}

// feedReplay feeds eng every record from starts up to (not including) the
// committed offsets, in replay mode: state is updated, alerts are
// discarded (their input was committed, so they were published).
func (s *Service) feedReplay(ctx context.Context, eng *realtime.Engine, starts, committed map[tp]int64) (int64, error) {
	parts := map[string]map[int32]kgo.Offset{}
	for k, o := range starts {
		if o >= committed[k] {
			continue
		}
		if parts[k.topic] == nil {
			parts[k.topic] = map[int32]kgo.Offset{}
		}
		parts[k.topic][k.part] = kgo.NewOffset().At(o)
	}
	if len(parts) == 0 {
		return 0, nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, s.o.Client...),
		kgo.ConsumePartitions(parts), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(recoverMaxWait), kgo.FetchMaxBytes(64<<20), kgo.FetchMaxPartitionBytes(16<<20))...)
	if err != nil {
		return 0, fmt.Errorf("realtime/service: recover: replay client: %w", err)
	}
	defer cl.Close()
	open := 0
	for _, ps := range parts {
		open += len(ps)
	}
	var (
		b       batch
		n       int64
		nearEnd = map[tp]bool{} // open repartition partitions read to c-2

		scratch  []alert.Alert
		idleFrom = time.Now()
	)
	for open > 0 {
		pctx, cancel := context.WithTimeout(ctx, recoverIdle)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return n, fmt.Errorf("realtime/service: recover: replay: %w", ctx.Err())
		}
		if fs.NumRecords() == 0 {
			if open == len(nearEnd) {
				// Only repartition partitions are open, each read to
				// just before its committed offset, where a
				// transaction's marker (never delivered) may sit, and
				// nothing more came: they are done.
				break
			}
			// An open source partition has records up to its last
			// consumed one (committed-1), so nothing for a while means a
			// slow broker, not the end: wait longer before giving up
			// with windows missing events (a loaded machine made the
			// 2 s below stop replays short and miss alerts).
			patience := 4 * recoverIdle
			for t, ps := range parts {
				if len(ps) > 0 && !s.isInternal(t) {
					patience = 20 * recoverIdle
					break
				}
			}
			if time.Since(idleFrom) > patience {
				s.log.Warn("recover: replay stopped short of the committed offsets (no more records)", "partitions_open", open)
				break
			}
			continue
		}
		idleFrom = time.Now()
		var rm map[string][]int32
		s.parse(fs, &b)
		// Keep only records before the committed offsets: the session
		// delivers the rest.
		j := 0
		for i, r := range b.recs {
			k := tp{r.Topic, r.Partition}
			c := committed[k]
			if r.Offset == c-2 && s.isInternal(k.topic) {
				if _, ok := parts[k.topic][k.part]; ok {
					nearEnd[k] = true
				}
			}
			if r.Offset >= c-1 && parts[k.topic] != nil {
				if _, ok := parts[k.topic][k.part]; ok {
					delete(nearEnd, k)
					delete(parts[k.topic], k.part)
					open--
					if rm == nil {
						rm = map[string][]int32{}
					}
					rm[k.topic] = append(rm[k.topic], k.part)
				}
			}
			if r.Offset >= c {
				continue
			}
			b.recs[j], b.parsed[j], b.orig[j] = r, b.parsed[i], b.orig[i]
			j++
		}
		b.recs, b.parsed, b.orig = b.recs[:j], b.parsed[:j], b.orig[:j]
		// Unlike alerts, the aggregates need the replayed events: they
		// rebuild the open minutes whole.
		waitMinutes := s.addMinutes(&b)
		now := time.Now()
		for i, rec := range b.parsed {
			if rec == nil {
				continue
			}
			r := b.recs[i]
			if !s.isInput(r.Topic) {
				continue // a repartition topic a reload dropped meanwhile
			}
			lane := s.topicLane(r.Topic)
			src, ok := s.sourceOf(r, lane, b.orig[i])
			if !ok {
				continue
			}
			// Feed only: the repartition records of replayed source
			// records were committed with them.
			scratch, _ = eng.ProcessLane(rec, src, lane, now, scratch[:0])
			if lane == 0 {
				n++ // source records; repartition ones are copies
			}
		}
		waitMinutes()
		scratch = eng.Advance(now, scratch[:0])
		if s.o.Minutes != nil {
			s.o.Minutes.Advance(eng.Watermark())
		}
		if rm != nil {
			cl.RemoveConsumePartitions(rm)
		}
	}
	return n, nil
}
