package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/lambdalog/lambdalog/internal/storage"
)

// Idle partitions and their watermark.
//
// A partition's watermark normally advances with the event times it
// commits. A partition that receives nothing would hold the dataset's
// watermark (the minimum over partitions) back forever, and the batch
// layer with it. So a partition that is caught up with Kafka and has been
// idle for Options.IdleHeartbeat publishes a heartbeat entry: no files, the
// same offsets, a higher watermark.
//
// The heartbeat's watermark is t0 - IdleLateness, where t0 is read before
// asking the broker for the partition's end (the last stable offset, as
// this consumer reads committed data) and the answer equals the partition's
// commit point. Every record not in the dataset then became readable after
// t0. The assumption, documented in docs/exactly-once.md: a record becomes
// readable in Kafka at most IdleLateness after its event time (producer
// delay, retries and clock skew included). Under it every such record has
// an event time after t0 - IdleLateness, so the heartbeat never claims an
// event time that can still arrive. A record that breaks the assumption is
// a late event: it is still written, once, into its own event-time hour,
// exactly like a late event on a busy partition.

// Heartbeat publishes a heartbeat entry raising the partition's watermark to
// wm, through the same fenced Publish as every commit. It refuses when
// records are buffered (their commit carries the watermark) and does
// nothing (ok=false) when wm does not raise the watermark. A published
// entry whose files are not all moved yet is rolled forward first: recovery
// rolls forward only the newest entry, so an entry may only be followed by
// another once its files are in place.
func (w *PartitionWriter) Heartbeat(ctx context.Context, wm time.Time) (e Entry, ok bool, err error) {
	if w.pending != nil {
		if err := w.log.RollForward(ctx, *w.pending); err != nil {
			return Entry{}, false, err
		}
		w.pending = nil
	}
	if w.last >= w.next {
		return Entry{}, false, fmt.Errorf("consumer: heartbeat %s/%d with %d records buffered", w.log.topic, w.log.partition, w.records)
	}
	wm = wm.UTC()
	if !wm.After(w.watermark) {
		return Entry{}, false, nil
	}
	e = Entry{Seq: w.seq + 1, Kind: KindHeartbeat, Start: w.next, Next: w.next, Epoch: w.epoch,
		MaxEventTime: w.maxEventTime, Watermark: wm}
	if err := w.log.Publish(ctx, e); err != nil {
		return Entry{}, false, err
	}
	w.seq, w.watermark = e.Seq, wm
	return e, true, nil
}

// heartbeats publishes a heartbeat for every owned partition that has
// buffered nothing and seen no record for IdleHeartbeat and whose commit
// point is the broker's end of the partition. Failing to learn the ends is
// not an error of the run (only the watermark waits); failing to publish
// is, like a failed commit.
func (c *Consumer) heartbeats(ctx context.Context, cl *kgo.Client) error {
	if c.o.IdleHeartbeat <= 0 {
		return nil
	}
	now := time.Now()
	cands := map[tp]*PartitionWriter{}
	c.mu.Lock()
	for k, w := range c.writers {
		if n, _, _ := w.Buffered(); n == 0 && now.Sub(c.active[k]) >= c.o.IdleHeartbeat {
			cands[k] = w
			// Ask again only after another idle period, whatever happens.
			c.active[k] = now
		}
	}
	c.mu.Unlock()
	if len(cands) == 0 {
		return nil
	}
	t0 := time.Now()
	ends, err := listEnds(ctx, cl, cands)
	if err != nil {
		c.log.Warn("idle heartbeat: list partition ends", "err", err)
		return nil
	}
	wm := t0.Add(-c.o.IdleLateness)
	for k, w := range cands {
		if end, ok := ends[k]; !ok || end != w.Next() {
			continue // not caught up: records are on their way and carry the watermark
		}
		if err := c.heartbeat(ctx, k, w, wm); err != nil && !errors.Is(err, ErrFenced) {
			return err
		}
	}
	return nil
}

// heartbeat publishes one heartbeat, retrying transient storage failures
// with the same entry (a lost answer is then recognised as ours).
func (c *Consumer) heartbeat(ctx context.Context, k tp, w *PartitionWriter, wm time.Time) error {
	var e Entry
	var ok bool
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		e, ok, err = w.Heartbeat(ctx, wm)
		if err == nil || errors.Is(err, ErrFenced) || !storage.IsRetryable(err) || ctx.Err() != nil {
			break
		}
		c.log.Warn("heartbeat failed, retrying", "topic", k.topic, "partition", k.partition, "attempt", attempt+1, "err", err)
		time.Sleep(time.Duration(attempt+1) * 250 * time.Millisecond)
	}
	if errors.Is(err, ErrFenced) {
		c.fenced(ctx, k, w, err)
		return err
	}
	if err != nil {
		return fmt.Errorf("consumer: heartbeat %s/%d: %w", k.topic, k.partition, err)
	}
	if !ok {
		return nil
	}
	c.m.heartbeats.Inc()
	c.log.Debug("heartbeat", "topic", k.topic, "partition", k.partition, "seq", e.Seq, "watermark", e.Watermark)
	return c.maybeCheckpoint(ctx, k, w)
}

// listEnds asks the partitions' leaders for their last stable offset (the
// end a read-committed consumer sees).
func listEnds(ctx context.Context, cl *kgo.Client, parts map[tp]*PartitionWriter) (map[tp]int64, error) {
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	req.IsolationLevel = 1 // read committed, as the consumer reads
	byTopic := map[string]int{}
	for k := range parts {
		i, ok := byTopic[k.topic]
		if !ok {
			t := kmsg.NewListOffsetsRequestTopic()
			t.Topic = k.topic
			req.Topics = append(req.Topics, t)
			i = len(req.Topics) - 1
			byTopic[k.topic] = i
		}
		p := kmsg.NewListOffsetsRequestTopicPartition()
		p.Partition = k.partition
		p.CurrentLeaderEpoch = -1
		p.Timestamp = -1 // the end
		req.Topics[i].Partitions = append(req.Topics[i].Partitions, p)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	resp, err := req.RequestWith(rctx, cl)
	if err != nil {
		return nil, fmt.Errorf("consumer: list offsets: %w", err)
	}
	out := map[tp]int64{}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
				continue // that partition waits for the next round
			}
			out[tp{t.Topic, p.Partition}] = p.Offset
		}
	}
	return out, nil
}
