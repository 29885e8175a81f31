package server

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/merge"
)

// Health is the pipeline health the dashboard shows. Anything that could
// not be read is reported with Status "unavailable" and the reason, never
// guessed.
type Health struct {
	Time   time.Time     `json:"time"`
	Kafka  KafkaHealth   `json:"kafka"`
	Groups []GroupHealth `json:"groups"`
	Batch  BatchHealth   `json:"batch"`
}

// KafkaHealth is the source topics' state from their end offsets.
type KafkaHealth struct {
	Status string        `json:"status"`
	Error  string        `json:"error,omitempty"`
	Topics []TopicHealth `json:"topics"`
}

// TopicHealth is one topic's end offset and ingest rate. EventsPerSec is
// nil until two samples have been taken (the rate is the change of the
// summed end offsets between two health calls at least a second apart).
type TopicHealth struct {
	Topic        string   `json:"topic"`
	EndOffset    int64    `json:"end_offset"`
	EventsPerSec *float64 `json:"events_per_sec"`
}

// GroupHealth is a consumer group's lag and last commit. Kafka does not
// keep commit times, so LastCommit is "unavailable" unless the layer
// publishes it.
type GroupHealth struct {
	Group      string `json:"group"`
	Status     string `json:"status"`
	Error      string `json:"error,omitempty"`
	State      string `json:"state,omitempty"`
	Lag        int64  `json:"lag"`
	LastCommit string `json:"last_commit"`
}

// BatchHealth is the newest batch run and the batch watermark.
type BatchHealth struct {
	Status    string    `json:"status"`
	Error     string    `json:"error,omitempty"`
	LastRun   *BatchRun `json:"last_run"`
	Watermark string    `json:"watermark"`
}

// BatchRun is one row of batch_job_runs.
type BatchRun struct {
	Job           string `json:"job"`
	IntervalStart string `json:"interval_start"`
	IntervalEnd   string `json:"interval_end"`
	Status        string `json:"status"`
	Finished      string `json:"finished"`
	RowsWritten   uint64 `json:"rows_written"`
	Error         string `json:"error,omitempty"`
}

// HealthSource reports the pipeline's health.
type HealthSource interface {
	Health(ctx context.Context) Health
}

// PipelineOptions configure NewPipeline. Nil Kafka or DB mark that part
// unavailable.
type PipelineOptions struct {
	Kafka  *kadm.Client
	Topics []string
	Groups []string
	DB     catalog.Querier
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Pipeline reads health from Kafka (kadm) and the batch history.
type Pipeline struct {
	o    PipelineOptions
	mu   sync.Mutex
	prev map[string]int64
	at   time.Time
	rate map[string]float64
}

// NewPipeline returns a HealthSource over o.
func NewPipeline(o PipelineOptions) *Pipeline {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Pipeline{o: o}
}

// Health samples Kafka and ClickHouse; each part has its own short timeout
// so one slow dependency does not hide the others.
func (p *Pipeline) Health(ctx context.Context) Health {
	h := Health{Time: p.o.Now().UTC(), Groups: []GroupHealth{}}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		h.Kafka, h.Groups = p.kafka(cctx)
	}()
	go func() {
		defer wg.Done()
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		h.Batch = p.batch(cctx)
	}()
	wg.Wait()
	return h
}

func (p *Pipeline) kafka(ctx context.Context) (KafkaHealth, []GroupHealth) {
	k := KafkaHealth{Status: "unavailable", Topics: []TopicHealth{}}
	groups := []GroupHealth{}
	for _, g := range p.o.Groups {
		groups = append(groups, GroupHealth{Group: g, Status: "unavailable", LastCommit: "unavailable"})
	}
	if p.o.Kafka == nil {
		k.Error = "no Kafka client configured"
		return k, groups
	}
	ends, err := p.o.Kafka.ListEndOffsets(ctx, p.o.Topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		k.Error = err.Error()
		return k, groups
	}
	sums := map[string]int64{}
	ends.Each(func(o kadm.ListedOffset) { sums[o.Topic] += o.Offset })
	now := p.o.Now()
	p.mu.Lock()
	if p.prev != nil && now.Sub(p.at) >= time.Second {
		p.rate = map[string]float64{}
		for t, n := range sums {
			if before, ok := p.prev[t]; ok {
				p.rate[t] = float64(n-before) / now.Sub(p.at).Seconds()
			}
		}
	}
	if p.prev == nil || now.Sub(p.at) >= time.Second {
		p.prev, p.at = sums, now
	}
	rates := p.rate
	p.mu.Unlock()
	k.Status = "ok"
	for _, t := range p.o.Topics {
		th := TopicHealth{Topic: t, EndOffset: sums[t]}
		if r, ok := rates[t]; ok {
			th.EventsPerSec = &r
		}
		k.Topics = append(k.Topics, th)
	}
	if len(p.o.Groups) == 0 {
		return k, groups
	}
	lags, err := p.o.Kafka.Lag(ctx, p.o.Groups...)
	if err != nil {
		for i := range groups {
			groups[i].Error = err.Error()
		}
		return k, groups
	}
	for i := range groups {
		l, ok := lags[groups[i].Group]
		switch {
		case !ok:
			groups[i].Error = "not described"
		case l.Error() != nil:
			groups[i].Error = l.Error().Error()
		case l.Lag.IsEmpty():
			groups[i].Status, groups[i].State = "no commits", l.State
		default:
			groups[i].Status, groups[i].State, groups[i].Lag = "ok", l.State, l.Lag.Total()
		}
	}
	sort.Slice(groups, func(a, b int) bool { return groups[a].Group < groups[b].Group })
	return k, groups
}

func (p *Pipeline) batch(ctx context.Context) BatchHealth {
	b := BatchHealth{Status: "unavailable", Watermark: "unavailable"}
	if p.o.DB == nil {
		b.Error = "no ClickHouse configured"
		return b
	}
	wm, err := merge.NewReader(p.o.DB).Watermark(ctx)
	if err != nil {
		b.Error = err.Error()
		return b
	}
	if !wm.IsZero() {
		b.Watermark = wm.Format(time.RFC3339)
	} else {
		b.Watermark = "none yet"
	}
	rows, err := p.o.DB.Query(ctx, fmt.Sprintf(`SELECT job, toString(interval_start, 'UTC'), toString(interval_end, 'UTC'), status,
    toString(finished, 'UTC'), rows_written, error
FROM %s WHERE status != 'not_ready' ORDER BY finished DESC, finished_ms DESC LIMIT 1`, chload.HistoryTable))
	if err != nil {
		b.Error = fmt.Sprintf("batch history: %v", err)
		return b
	}
	defer rows.Close()
	b.Status = "no runs yet"
	for rows.Next() {
		var r BatchRun
		if err := rows.Scan(&r.Job, &r.IntervalStart, &r.IntervalEnd, &r.Status, &r.Finished, &r.RowsWritten, &r.Error); err != nil {
			b.Status, b.Error = "unavailable", err.Error()
			return b
		}
		b.LastRun, b.Status = &r, "ok"
	}
	if err := rows.Err(); err != nil {
		b.Status, b.Error = "unavailable", err.Error()
	}
	return b
}
