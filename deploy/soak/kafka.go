package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/lambdalog/lambdalog/realtime/alert"
)

// offsets are per topic, per partition.
type offsets map[string]map[int32]int64

func (o offsets) total() int64 {
	var n int64
	for _, ps := range o {
		for _, v := range ps {
			n += v
		}
	}
	return n
}

// endOffsets returns the high watermarks of the topics.
func endOffsets(ctx context.Context, adm *kadm.Client, topics ...string) (offsets, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("soak: end offsets: %w", err)
	}
	out := offsets{}
	var ferr error
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err != nil {
			ferr = o.Err
		}
		if out[o.Topic] == nil {
			out[o.Topic] = map[int32]int64{}
		}
		out[o.Topic][o.Partition] = o.Offset
	})
	if ferr != nil {
		return nil, fmt.Errorf("soak: end offsets: %w", ferr)
	}
	return out, nil
}

// behind returns how many records of target the group has not committed.
func behind(ctx context.Context, adm *kadm.Client, group string, target offsets) (int64, error) {
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("soak: offsets of group %s: %w", group, err)
	}
	var n int64
	for topic, ps := range target {
		for p, end := range ps {
			c, ok := committed.Lookup(topic, p)
			at := int64(0)
			if ok && c.Err == nil {
				at = max(c.At, 0)
			}
			if end > at {
				n += end - at
			}
		}
	}
	return n, nil
}

// lag is the group's distance to the current end of the topics.
func lag(ctx context.Context, adm *kadm.Client, group string, topics []string) (int64, error) {
	ends, err := endOffsets(ctx, adm, topics...)
	if err != nil {
		return 0, err
	}
	return behind(ctx, adm, group, ends)
}

// waitCaughtUp waits until the group has committed everything up to
// target: the records produced before the fault are all processed.
func waitCaughtUp(ctx context.Context, adm *kadm.Client, group string, target offsets, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last int64 = -1
	var lastErr error
	for time.Now().Before(deadline) {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := behind(qctx, adm, group, target)
		cancel()
		if err == nil && n == 0 {
			return nil
		}
		last, lastErr = n, err
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return fmt.Errorf("soak: group %s still %d records behind after %v (%v)", group, last, timeout, lastErr)
}

// readAlerts reads the alerts topic from the start with isolation
// read_committed, to the last committed offset of every partition.
func readAlerts(ctx context.Context, brokers, topic string) ([]alert.Alert, error) {
	adm, cl, err := admin(brokers)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	ends, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("soak: alerts end offsets: %w", err)
	}
	want := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			want[o.Partition] = o.Offset
		}
	})
	rd, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("soak: alerts reader: %w", err)
	}
	defer rd.Close()
	var out []alert.Alert
	// A committed read ends before the last offset when the newest
	// records are transaction markers: stop after a few empty polls.
	empty := 0
	for len(want) > 0 && empty < 5 {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		fs := rd.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if fs.NumRecords() == 0 {
			empty++
		}
		var perr error
		fs.EachRecord(func(r *kgo.Record) {
			empty = 0
			var a alert.Alert
			if err := json.Unmarshal(r.Value, &a); err != nil {
				perr = fmt.Errorf("soak: alert at %s/%d@%d: %w", r.Topic, r.Partition, r.Offset, err)
			}
			out = append(out, a)
			if r.Offset >= want[r.Partition]-2 {
				delete(want, r.Partition)
			}
		})
		if perr != nil {
			return nil, perr
		}
	}
	return out, nil
}

func admin(brokers string) (*kadm.Client, *kgo.Client, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers))
	if err != nil {
		return nil, nil, fmt.Errorf("soak: kafka client: %w", err)
	}
	return kadm.NewClient(cl), cl, nil
}
