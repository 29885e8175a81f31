package service

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime"
	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/realtime/watermark"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// Repartition configures how rules not keyed by the source topics'
// partition key get their input. Producers key the source topics by
// PartitionKey (the source address), so each instance of the group sees
// every event of a source address but only some of a user's or a
// destination's. Such rules read a repartition topic instead: the
// instance that reads a source record whose dataset and filter match one
// of them produces the raw line, keyed by the rule's key, to the topic of
// that key, in the same transaction as the input offsets, and the group
// consumes the repartition topics too. See docs/realtime.md,
// "Repartitioning".
type Repartition struct {
	// Disabled feeds every rule from the source topics (exact only with
	// one instance for rules keyed otherwise).
	Disabled bool
	// TopicPrefix names the repartition topics: prefix + key columns
	// joined by "."; default Group + "-repartition-".
	TopicPrefix string
	// PartitionKey is the column the source topics are keyed by (default
	// source_ip).
	PartitionKey string
}

// Headers of a repartition record of the first version (the raw line,
// before rpcodec.go): where the line was first written and its format.
// Still read, so that a replay after an upgrade reads what the previous
// version forwarded.
const (
	hdrTopic     = "source_topic"
	hdrPartition = "source_partition"
	hdrOffset    = "source_offset"
	hdrFormat    = "format"
)

// repartition is the service's repartitioning state.
type repartition struct {
	on     bool
	key    string
	prefix string
	// topo is the set of repartition topics: made at New from the initial
	// rules, grown by a reload that brings a rule keyed by columns no rule
	// had (growTopology) and shrunk by one that leaves a topic without a
	// rule (shrinkTopology). It is replaced, never modified, so the parse
	// workers read it without a lock.
	topo atomic.Pointer[topology]
	// mu serializes topology changes with the start and the end of Run:
	// a topic added (removed) while Run subscribes is either in (out of)
	// its initial subscription or added to (purged from) cl's.
	mu sync.Mutex
	// cl is the running group session's client (nil outside Run) and
	// parts the partition count of the repartition topics Run creates,
	// the largest source topic's; both guarded by mu.
	cl    *kgo.Client
	parts int32
	// srcParts are the source topics' partition counts, read at start.
	srcParts map[string]int32
	// fwd routes a dataset's records to repartition topics; built from
	// fwdRules, rebuilt when the rules change. Only the loop touches it.
	fwdRules *rules.RuleSet
	fwd      map[string]*fwdRoute
	// schemas encode and decode forwarded records (rpcodec.go).
	schemas map[string]*rpSchema
	// clocks caches watermark partition names (loop only).
	clocks map[clockKey]string
}

// fwdRoute is where a dataset's records go: its repartition topics and
// whether a rule there reads the raw line (then the line is forwarded
// too).
type fwdRoute struct {
	groups   []fwdGroup
	original bool
	schema   *rpSchema
}

// fwdGroup is the repartitioned rules of one dataset sharing one key,
// hence one repartition topic and lane.
type fwdGroup struct {
	topic string
	rules []*rules.Rule
}

// topology is the repartition topics: by key columns (Rule.Key joined
// by "."), and their engine lanes by name. Each topic has a lane of its
// own (source topics are lane 0) holding the rules of its key: a source
// record matching rules of several keys is forwarded to several topics,
// and each copy must reach only the rules of its topic's key.
type topology struct {
	topics map[string]string
	lanes  map[string]int
}

// with returns a copy of t that also has the topics of cols (key columns
// -> topic name), each in the lowest lane no topic of t has. A topic
// keeps its lane while it exists: the running rules of its key stay in
// that lane across the reloads that add other topics.
func (t *topology) with(cols map[string]string) *topology {
	n := &topology{topics: maps.Clone(t.topics), lanes: maps.Clone(t.lanes)}
	used := map[int]bool{}
	for _, l := range n.lanes {
		used[l] = true
	}
	next := 1
	for _, c := range slices.Sorted(maps.Keys(cols)) {
		name := cols[c]
		n.topics[c] = name
		if n.lanes[name] != 0 {
			continue
		}
		for used[next] {
			next++
		}
		n.lanes[name], used[next] = next, true
	}
	return n
}

// without returns a copy of t without the topics of cols (key columns ->
// topic name), whose lanes a later topic may take.
func (t *topology) without(cols map[string]string) *topology {
	n := &topology{topics: maps.Clone(t.topics), lanes: maps.Clone(t.lanes)}
	for c, name := range cols {
		delete(n.topics, c)
		delete(n.lanes, name)
	}
	return n
}

// topicLane is the engine lane of the records of topic: its lane for a
// repartition topic, else 0.
func (s *Service) topicLane(topic string) int { return s.rp.topo.Load().lanes[topic] }

// isInternal says whether topic is a repartition topic.
func (s *Service) isInternal(topic string) bool { return s.topicLane(topic) != 0 }

// isInput says whether topic is one the service reads: a source topic or
// a repartition topic. A repartition topic a reload dropped is no input
// any more, though a poll may still bring records of it.
func (s *Service) isInput(topic string) bool {
	_, src := s.sources[topic]
	return src || s.isInternal(topic)
}

type clockKey struct {
	topic  string
	part   int32
	origin string
}

func keyCols(r *rules.Rule) string { return strings.Join(r.Key, ".") }

// setupRepartition fills s.rp from the options and the initial rules.
func (s *Service) setupRepartition() {
	o := s.o.Repartition
	s.rp.on, s.rp.key, s.rp.prefix = !o.Disabled, o.PartitionKey, o.TopicPrefix
	s.rp.srcParts, s.rp.clocks = map[string]int32{}, map[clockKey]string{}
	if s.rp.key == "" {
		s.rp.key = "source_ip"
	}
	if s.rp.prefix == "" {
		s.rp.prefix = s.o.Group + "-repartition-"
	}
	empty := &topology{topics: map[string]string{}, lanes: map[string]int{}}
	s.rp.topo.Store(empty.with(s.missingTopics(empty, s.o.Rules)))
}

// rekeyed says whether rule r reads a repartition topic when one
// exists for its key: rules keyed by the partition key, and sequence
// rules (which need both steps of a key in one instance and rely on
// co-partitioned source topics), read the source topics.
func (s *Service) rekeyed(r *rules.Rule) bool {
	return s.rp.on && r.Kind != rules.Sequence && (len(r.Key) != 1 || r.Key[0] != s.rp.key)
}

// missingTopics are the repartition topics (key columns -> name) that the
// rules of rs need and t lacks.
func (s *Service) missingTopics(t *topology, rs *rules.RuleSet) map[string]string {
	out := map[string]string{}
	for _, r := range rs.Rules {
		if !s.rekeyed(r) {
			continue
		}
		if _, ok := t.topics[keyCols(r)]; !ok {
			out[keyCols(r)] = s.rp.prefix + keyCols(r)
		}
	}
	return out
}

// unusedTopics are the repartition topics of t (key columns -> name) that
// no rule of rs reads.
func (s *Service) unusedTopics(t *topology, rs *rules.RuleSet) map[string]string {
	used := map[string]bool{}
	for _, r := range rs.Rules {
		if s.rekeyed(r) {
			used[keyCols(r)] = true
		}
	}
	out := map[string]string{}
	for c, name := range t.topics {
		if !used[c] {
			out[c] = name
		}
	}
	return out
}

// laneOf is the engine's Options.Lane: a repartitioned rule whose topic
// exists reads it (the topic's lane), every other rule the source topics
// (lane 0). A reload adds the topic of a new key before the rules that
// need it (growTopology), so a repartitioned rule is never in lane 0.
func (s *Service) laneOf(r *rules.Rule) int {
	if !s.rekeyed(r) {
		return 0
	}
	t := s.rp.topo.Load()
	if name, ok := t.topics[keyCols(r)]; ok {
		return t.lanes[name]
	}
	return 0
}

// repartitionTopics lists the repartition topics, sorted.
func (s *Service) repartitionTopics() []string {
	return slices.Sorted(maps.Keys(s.rp.topo.Load().lanes))
}

// growTopology makes sure every repartition topic the rules of rs need
// exists before rs runs: a reload that brings a rule keyed by columns no
// rule had so far. While Run runs, the missing topics are created as Run
// creates them at start (ensureTopics) and, once the topology has them,
// the caller adds them to the group's subscription (the returned names)
// after swapping the rules; outside Run they are only added to the
// topology, and Run creates and subscribes them at its start. On error
// nothing changed. The caller holds s.rp.mu.
func (s *Service) growTopology(ctx context.Context, rs *rules.RuleSet) ([]string, error) {
	t := s.rp.topo.Load()
	add := s.missingTopics(t, rs)
	if len(add) == 0 {
		return nil, nil
	}
	names := slices.Sorted(maps.Values(add))
	for _, n := range names {
		if _, clash := s.sources[n]; clash {
			return nil, fmt.Errorf("realtime/service: repartition topic %s is also a source topic", n)
		}
	}
	if s.rp.cl != nil {
		if err := s.ensureTopics(ctx, names, s.rp.parts); err != nil {
			return nil, err
		}
	}
	s.rp.topo.Store(t.with(add))
	return names, nil
}

// shrinkTopology drops from the topology the repartition topics no rule
// of rs reads, once the engine runs rs: from then on this instance
// forwards nothing to them (the routes follow the running rules) and
// takes a record of theirs for no input (isInput), so neither lane counts
// it. Their watermark inputs leave the engine at once, rather than
// holding the watermark back until the rebalance that the caller's purge
// of the topics from the group's subscription causes. The topics
// themselves stay on the cluster: instances that have not reloaded may
// still forward to them. It returns their names. The caller holds s.rp.mu
// and s.mu.
func (s *Service) shrinkTopology(rs *rules.RuleSet) []string {
	t := s.rp.topo.Load()
	drop := s.unusedTopics(t, rs)
	if len(drop) == 0 {
		return nil
	}
	owned := s.ownedPartitions() // before the drop, which hides them
	s.rp.topo.Store(t.without(drop))
	names := slices.Sorted(maps.Values(drop))
	for _, n := range names {
		for _, p := range owned[n] {
			s.revokeClocks(s.engine, n, p)
		}
	}
	return names
}

// prepareRepartition reads the source topics' partition counts and makes
// sure each repartition topic exists (ensureTopics) with the partition
// count of the largest source topic. The caller holds s.rp.mu.
func (s *Service) prepareRepartition(ctx context.Context) error {
	if !s.rp.on {
		return nil
	}
	cl, err := kgo.NewClient(s.o.Client...)
	if err != nil {
		return fmt.Errorf("realtime/service: kafka: %w", err)
	}
	defer cl.Close()
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	src, err := kadm.NewClient(cl).ListTopics(mctx, s.topics()...)
	if err != nil {
		return fmt.Errorf("realtime/service: source topic metadata: %w", err)
	}
	most := int32(1)
	for _, t := range s.topics() {
		if d, ok := src[t]; ok && d.Err == nil {
			s.rp.srcParts[t] = int32(len(d.Partitions))
			most = max(most, int32(len(d.Partitions)))
		}
	}
	s.rp.parts = most
	return s.ensureTopics(ctx, s.repartitionTopics(), most)
}

// ensureTopics makes sure each repartition topic of ts exists: a missing
// one is created with parts partitions (the largest source topic's count)
// and the broker's default replication and configuration; an existing one
// with no partition is refused, one with another count logged. In
// production create them ahead with that count and the source topics'
// retention, like the source topics. It returns once the metadata shows
// them all.
func (s *Service) ensureTopics(ctx context.Context, ts []string, parts int32) error {
	if len(ts) == 0 {
		return nil
	}
	// The shortest metadata age (kgo serves metadata requests from its
	// cache for that long): a topic just created shows at the next look.
	cl, err := kgo.NewClient(append(append([]kgo.Opt{}, s.o.Client...), kgo.MetadataMinAge(10*time.Millisecond))...)
	if err != nil {
		return fmt.Errorf("realtime/service: kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	have, err := adm.ListTopics(mctx, ts...)
	if err != nil {
		return fmt.Errorf("realtime/service: repartition topic metadata: %w", err)
	}
	for _, t := range ts {
		if d, ok := have[t]; ok && d.Err == nil {
			continue
		}
		resp, err := adm.CreateTopic(mctx, parts, -1, nil, t)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !strings.Contains(err.Error(), "TOPIC_ALREADY_EXISTS") {
			return fmt.Errorf("realtime/service: create repartition topic %s: %w", t, err)
		}
		s.log.Info("created repartition topic", "topic", t, "partitions", parts)
	}
	// A created topic takes a moment to show in the metadata: look again
	// soon, then less often (a fixed 200 ms and a 50 ms metadata age were
	// most of the start-up of a new group).
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 200*time.Millisecond) {
		have, err = adm.ListTopics(mctx, ts...)
		if err != nil {
			return fmt.Errorf("realtime/service: repartition topic metadata: %w", err)
		}
		if !slices.ContainsFunc(ts, func(t string) bool { d, ok := have[t]; return !ok || d.Err != nil || len(d.Partitions) == 0 }) {
			break
		}
		select {
		case <-mctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	for _, t := range ts {
		d, ok := have[t]
		if !ok || d.Err != nil || len(d.Partitions) == 0 {
			return fmt.Errorf("realtime/service: repartition topic %s has no partitions (create it with %d, the largest source topic's count)", t, parts)
		}
		if n := int32(len(d.Partitions)); n != parts {
			s.log.Warn("repartition topic partition count differs from the largest source topic's: it bounds how many instances share those rules", "topic", t, "partitions", n, "want", parts)
		}
	}
	return nil
}

// forwards returns the routing of rs's repartitioned rules (those not in
// lane 0), rebuilding it after a reload.
func (s *Service) forwards(rs *rules.RuleSet) map[string]*fwdRoute {
	if s.rp.fwdRules == rs {
		return s.rp.fwd
	}
	fwd := map[string]*fwdRoute{}
	topo := s.rp.topo.Load()
	for _, r := range rs.Rules {
		if s.laneOf(r) == 0 {
			continue
		}
		t := topo.topics[keyCols(r)]
		rt := fwd[r.Dataset]
		if rt == nil {
			rt = &fwdRoute{schema: s.rp.schemas[r.Dataset]}
			fwd[r.Dataset] = rt
		}
		i := slices.IndexFunc(rt.groups, func(g fwdGroup) bool { return g.topic == t })
		if i < 0 {
			rt.groups = append(rt.groups, fwdGroup{topic: t})
			i = len(rt.groups) - 1
		}
		rt.groups[i].rules = append(rt.groups[i].rules, r)
		rt.original = rt.original || slices.Contains(r.Columns(), "event_original")
	}
	s.rp.fwdRules, s.rp.fwd = rs, fwd
	return fwd
}

// fwdSlab is how much memory the repartition records of a poll take at
// a time: keys, values and record structs are carved from chunks instead
// of allocated one by one. A chunk is never written again once handed
// out (the producer reads the records until their transaction ends), so
// a new chunk replaces a full one rather than reusing it.
const fwdSlab = 64 << 10

// appendForwards appends the repartition records of source record r
// (parsed as rec): one per repartition topic with a rule whose filter the
// record matches and whose key it has, all sharing one encoded value
// (rpcodec.go). The caller holds s.mu.
func (s *Service) appendForwards(dst []*kgo.Record, b *batch, rec schemas.Record, r *kgo.Record) []*kgo.Record {
	rt := s.forwards(s.rs)[rec.Dataset()]
	if rt == nil || rt.schema == nil || rt.schema.ds != schemas.Of(rec) {
		return dst
	}
	var value []byte
	for _, g := range rt.groups {
		var hit *rules.Rule
		for _, ru := range g.rules {
			if ru.Where.Empty() || ru.Where.Match(rec) {
				hit = ru
				break
			}
		}
		if hit == nil {
			continue
		}
		if cap(b.slab)-len(b.slab) < 4096 {
			b.slab = make([]byte, 0, fwdSlab)
		}
		n := len(b.slab)
		var ok bool
		if k, ok1 := hit.Key1(rec); ok1 {
			b.slab, ok = append(b.slab, k...), true
		} else {
			b.slab, ok = hit.AppendKey(b.slab, rec)
		}
		if !ok || len(b.slab) == n {
			b.slab = b.slab[:n]
			continue
		}
		key := b.slab[n:len(b.slab):len(b.slab)]
		if value == nil {
			n = len(b.slab)
			b.slab = rt.schema.appendForward(b.slab, rec, r.Topic, r.Partition, r.Offset, rt.original)
			value = b.slab[n:len(b.slab):len(b.slab)]
		}
		if len(b.recSlab) == cap(b.recSlab) {
			b.recSlab = make([]kgo.Record, 0, 256)
		}
		b.recSlab = append(b.recSlab, kgo.Record{Topic: g.topic, Key: key, Value: value, Timestamp: r.Timestamp})
		dst = append(dst, &b.recSlab[len(b.recSlab)-1])
	}
	return dst
}

// header returns the value of header k of r.
func header(r *kgo.Record, k string) []byte {
	for _, h := range r.Headers {
		if h.Key == k {
			return h.Value
		}
	}
	return nil
}

// atoi parses a decimal header without allocating; ok is false on
// anything else.
func atoi(b []byte) (n int64, ok bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

// origin is the engine source of repartition record r, whose origin
// (topic, partition, offset) was decoded from its value (o) or, for a
// record of the first version, is in its headers: its original position
// (what alert samples name) and the watermark partition it is tracked
// under, one per (repartition partition, origin partition): the instances
// owning the origin partitions interleave their records in a repartition
// partition, each in its origin's order, so each keeps the
// out-of-orderness bound of its origin. ok is false when neither names a
// source topic.
func (s *Service) origin(r *kgo.Record, o origin) (realtime.Source, bool) {
	if o.topic == "" {
		src, ok := s.sources[string(header(r, hdrTopic))]
		if !ok {
			return realtime.Source{}, false
		}
		p, ok1 := atoi(header(r, hdrPartition))
		off, ok2 := atoi(header(r, hdrOffset))
		if !ok1 || !ok2 {
			return realtime.Source{}, false
		}
		o = origin{topic: src.Topic, partition: int32(p), offset: off}
	}
	return realtime.Source{Topic: o.topic, Partition: o.partition, Offset: o.offset,
		Clock: watermark.Partition{Topic: s.clockName(r.Topic, r.Partition, o.topic), Partition: o.partition}}, true
}

// origin is where a repartition record was first read; topic is the
// service's own string for the source topic ("" when unknown).
type origin struct {
	topic     string
	partition int32
	offset    int64
}

func (s *Service) clockName(topic string, part int32, origin string) string {
	k := clockKey{topic, part, origin}
	if n, ok := s.rp.clocks[k]; ok {
		return n
	}
	n := clockString(topic, part, origin)
	s.rp.clocks[k] = n
	return n
}

// clockString names the watermark partition of repartition partition
// topic/part fed from source topic origin (clockName caches it).
func clockString(topic string, part int32, origin string) string {
	return topic + "/" + strconv.Itoa(int(part)) + "<-" + origin
}

// revokeClocks removes from eng the watermark partitions of repartition
// partition topic/part that assignClocks may have registered: one per
// partition of each source topic (revoking one never registered is a
// no-op).
func (s *Service) revokeClocks(eng *realtime.Engine, topic string, part int32) {
	for t, n := range s.rp.srcParts {
		for q := range n {
			eng.Revoke(clockString(topic, part, t), q)
		}
	}
}

// assignClocks registers with eng the watermark partitions of an owned
// repartition partition: one per partition of each source topic that
// feeds it, so that an instance that has not forwarded yet holds the
// watermark back (until the idle timeout) instead of finding its records
// late.
func (s *Service) assignClocks(eng *realtime.Engine, rs *rules.RuleSet, topic string, part int32, now time.Time) {
	for ds, rt := range s.forwards(rs) {
		if !slices.ContainsFunc(rt.groups, func(g fwdGroup) bool { return g.topic == topic }) {
			continue
		}
		for t, d := range s.topicDataset {
			if d != ds && d != "" {
				continue
			}
			for q := range s.rp.srcParts[t] {
				eng.Assign(s.clockName(topic, part, t), q, now)
			}
		}
	}
}

// sourceOf is the engine source of record r of the poll, read in lane
// (topicLane: 0 for a source topic). ok is false for a repartition record
// with broken headers, which is skipped.
func (s *Service) sourceOf(r *kgo.Record, lane int, o origin) (src realtime.Source, ok bool) {
	if lane == 0 {
		return realtime.Source{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, true
	}
	return s.origin(r, o)
}

// parseRecord parses record r with one of a worker's parsers: a source
// record's line by its topic's format; a repartition record by decoding
// its value (rpcodec.go), or for one of the first version (raw line and
// headers) by the format header. o is a repartition record's origin when
// its value carries it.
func (s *Service) parseRecord(ps map[string]parse.Parser, r *kgo.Record) (rec schemas.Record, o origin, err error) {
	if p := ps[r.Topic]; p != nil {
		rec, err = p.Parse(r.Value)
		return rec, origin{}, err
	}
	if !s.isInternal(r.Topic) {
		return nil, origin{}, fmt.Errorf("record of topic %s, which is no input", r.Topic)
	}
	if len(r.Headers) > 0 {
		p := ps[formatParserKey+string(header(r, hdrFormat))]
		if p == nil {
			return nil, origin{}, fmt.Errorf("repartition record of unknown format %q", header(r, hdrFormat))
		}
		rec, err = p.Parse(r.Value)
		return rec, origin{}, err
	}
	f, err := decodeForward(s.rp.schemas, r.Value)
	if err != nil {
		if s.rpWarned.CompareAndSwap(false, true) {
			s.log.Warn("undecodable repartition record (counted as a parse failure; further ones are not logged)",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
		}
		return nil, origin{}, err
	}
	src, ok := s.sources[string(f.topic)]
	if !ok {
		return nil, origin{}, fmt.Errorf("repartition record from topic %q, which is no source topic", f.topic)
	}
	return f.rec, origin{topic: src.Topic, partition: f.partition, offset: f.offset}, nil
}

// formatParserKey prefixes the per-format parsers of a worker, which no
// topic name can collide with.
const formatParserKey = "\x00format:"
