package jobs_test

import (
	"context"
	"fmt"
	"hash/fnv"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chtest"
	"github.com/lambdalog/lambdalog/queries/catalog"
	"github.com/lambdalog/lambdalog/queries/merge"
	"github.com/lambdalog/lambdalog/queries/querytest"
	"github.com/lambdalog/lambdalog/realtime/minutes"
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/metrics"
)

// TestOneDefinitionBothLayersAgree is issue #8's consistency check: three
// hours of `lambdalog gen` traffic (about 100k events, attacks included,
// across midnight) go through the speed layer's per-minute aggregator
// (realtime/minutes, as the service feeds it: in arrival order, with the
// watermark trailing the newest event) into rt_metric_minutes, and through
// the batch layer (Parquet in the consumer's layout, then the real
// load-events and reports jobs) into report_metrics. For every shared
// metric the two tables hold the same set of (key, window) cells with the
// same values: the batch window equals the speed layer's tumbling window
// (the sum of its minutes for counts, its last minute's running count for
// distinct), and both equal the metric's Reference.
func TestOneDefinitionBothLayersAgree(t *testing.T) {
	ctx := context.Background()
	srv := chtest.Shared(t)
	db, _ := querytest.NewDB(t, srv)
	recs, _, err := querytest.Generate(ctx, querytest.Options{Seed: 17, Start: time.Date(2026, 3, 1, 22, 30, 0, 0, time.UTC),
		Duration: 3 * time.Hour, Rate: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 100_000 {
		t.Fatalf("%d records; want about 100k", len(recs))
	}

	// Speed layer.
	if err := merge.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	agg, err := minutes.New(minutes.Options{Writer: merge.NewWriter(db)})
	if err != nil {
		t.Fatal(err)
	}
	// Partitioned by the Kafka key as ingest does: the source IP, every
	// shared metric's key column.
	const partitions = 3
	all := metrics.All()
	partition := func(r schemas.Record) int32 {
		h := fnv.New32a()
		for _, m := range all {
			if r.Dataset() == m.Dataset {
				h.Write([]byte(m.Key(r)))
				break
			}
		}
		return int32(h.Sum32() % partitions)
	}
	for _, topic := range []string{"auth", "firewall", "ids", "web", "syslog", "quarantine"} {
		for p := range int32(partitions) {
			agg.Assign(topic, p, time.Time{})
		}
	}
	const ooo = 5 * time.Second // the engine's default out-of-orderness
	var newest time.Time
	for i, r := range recs {
		c := r.Common()
		agg.Add(c.KafkaTopic, partition(r), r)
		if et := r.EventTime(); et.After(newest) {
			newest = et
		}
		if i%1000 == 999 {
			agg.Advance(newest.Add(-ooo))
		}
		if i%20000 == 19999 {
			if err := agg.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	agg.Advance(newest.Add(time.Hour))
	if err := agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := agg.Stats(); st.Late != 0 || st.Overflow != 0 || st.Unassigned != 0 || st.CrossPartition != 0 || st.Events == 0 {
		t.Fatalf("speed layer %+v: every matching event must be aggregated", st)
	}

	// Batch layer.
	day1, day2 := querytest.DayRange(recs)
	if day1.Equal(day2) {
		t.Fatal("the traffic should span two days")
	}
	if err := querytest.RunBatch(ctx, db, recs, t.TempDir(), day1.Format(time.DateOnly), day2.Format(time.DateOnly)); err != nil {
		t.Fatal(err)
	}

	for _, m := range metrics.All() {
		name := catalog.QuoteString(m.Name)
		batch := readCells(t, db, fmt.Sprintf(`SELECT key, toInt64(toUInt32(period_start)), toInt64(sum(value)) FROM %s
WHERE metric = %s GROUP BY key, period_start`, merge.BatchTable, name))
		// Count and Sum: the window is the sum of its minutes; Distinct:
		// the running count of the window's last minute with a row.
		fold := "sum(v)"
		if m.Agg == metrics.Distinct {
			fold = "argMax(v, minute)"
		}
		win := int64(m.Window / time.Second)
		speed := readCells(t, db, fmt.Sprintf(`SELECT key, intDiv(toInt64(toUInt32(minute)), %d) * %d AS w, toInt64(%s) FROM (
    SELECT key, minute, argMax(value, version) AS v FROM %s WHERE metric = %s GROUP BY key, minute)
GROUP BY key, w`, win, win, fold, merge.Table, name))
		ref := map[metrics.Cell]int64{}
		for c, v := range m.Reference(recs) {
			ref[metrics.Cell{Window: c.Window.UTC(), Key: c.Key}] = v
		}
		if len(batch) == 0 {
			t.Fatalf("%s: no batch cells; the test would prove nothing", m.Name)
		}
		keys := func(cells map[metrics.Cell]int64) map[string]bool {
			out := map[string]bool{}
			for c := range cells {
				out[c.Key] = true
			}
			return out
		}
		bk, sk := keys(batch), keys(speed)
		for k := range bk {
			if !sk[k] {
				t.Errorf("%s: key %s in the batch layer only", m.Name, k)
			}
		}
		for k := range sk {
			if !bk[k] {
				t.Errorf("%s: key %s in the speed layer only", m.Name, k)
			}
		}
		bad := 0
		for c, v := range batch {
			if speed[c] != v || ref[c] != v {
				bad++
				if bad <= 10 {
					t.Errorf("%s %s %s: batch %d, speed %d, reference %d", m.Name, c.Key, c.Window.Format(time.DateTime), v, speed[c], ref[c])
				}
			}
		}
		for c, v := range speed {
			if _, ok := batch[c]; !ok {
				bad++
				if bad <= 10 {
					t.Errorf("%s %s %s: speed %d, no batch cell", m.Name, c.Key, c.Window.Format(time.DateTime), v)
				}
			}
		}
		if len(ref) != len(batch) {
			t.Errorf("%s: %d batch cells, reference %d", m.Name, len(batch), len(ref))
		}
		t.Logf("%s: %d cells over %d keys equal in both layers", m.Name, len(batch), len(bk))
	}
}

func readCells(t *testing.T, db *chdb.DB, q string) map[metrics.Cell]int64 {
	t.Helper()
	rows, err := db.Query(context.Background(), q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	out := map[metrics.Cell]int64{}
	for rows.Next() {
		var key string
		var w, v int64
		if err := rows.Scan(&key, &w, &v); err != nil {
			t.Fatal(err)
		}
		out[metrics.Cell{Window: time.Unix(w, 0).UTC(), Key: key}] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
