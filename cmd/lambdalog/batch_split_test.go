package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/internal/chdb"
)

// TestBatchSplitWorkers starts two `lambdalog batch backfill --split`
// processes over the same two days with the reports pushed down into
// ClickHouse: together they run each of the 4 units once, and the reports
// agree with the loaded events.
func TestBatchSplitWorkers(t *testing.T) {
	dataset, dsn := batchFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type proc struct {
		out, errOut bytes.Buffer
		err         error
	}
	procs := make([]*proc, 2)
	done := make(chan int)
	for i := range procs {
		p := &proc{}
		procs[i] = p
		cmd := lambdalog(ctx, t, "batch", "backfill", "--from", "2026-06-01", "--to", "2026-06-02", "--ignore-watermark",
			"--split", "--worker", fmt.Sprintf("w%d", i), "--dataset", dataset, "--clickhouse", dsn, "--log-level", "info")
		cmd.Env = append(cmd.Env, "LAMBDALOG_BATCH_COMPUTE=clickhouse", "LAMBDALOG_BATCH_LEASE_TTL=30s")
		cmd.Stdout, cmd.Stderr = &p.out, &p.errOut
		go func() {
			p.err = cmd.Run()
			done <- i
		}()
	}
	<-done
	<-done
	summary := regexp.MustCompile(`backfill --split \(worker w\d\): (\d+) done, \d+ skipped, 0 failed`)
	total := 0
	for i, p := range procs {
		m := summary.FindStringSubmatch(p.out.String())
		if p.err != nil || m == nil {
			t.Fatalf("worker %d: %v\n%s\n%s\nthe other worker:\n%s\n%s", i, p.err, p.out.String(), p.errOut.String(), procs[1-i].out.String(), procs[1-i].errOut.String())
		}
		n, _ := strconv.Atoi(m[1])
		total += n
	}
	if total != 4 {
		t.Fatalf("the workers ran %d units, want 4\n%s\n%s", total, procs[0].out.String(), procs[1].out.String())
	}
	db, err := chdb.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var units, rows uint64
	if err := db.QueryRow(ctx, "SELECT uniqExact(job, interval_start), count() FROM batch_job_runs WHERE status = 'succeeded'").Scan(&units, &rows); err != nil || units != 4 || rows != 4 {
		t.Fatalf("history: %d units in %d succeeded rows (%v), want 4 in 4", units, rows, err)
	}
	var n, want uint64
	db.QueryRow(ctx, "SELECT toUInt64(countIf(event_outcome = 'failure' AND source_ip != '')) FROM events_auth WHERE timestamp < toDateTime('2026-06-03 00:00:00', 'UTC')").Scan(&want)
	if err := db.QueryRow(ctx, "SELECT toUInt64(sum(failures)) FROM report_auth_ip_day").Scan(&n); err != nil || n != want || n == 0 {
		t.Fatalf("pushed-down report failures %d, events say %d (%v)", n, want, err)
	}
}

func TestRelativeDay(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	if got := relativeDay("2026-06-01", berlin); got != "2026-06-01" {
		t.Errorf("a date became %q", got)
	}
	today, yesterday := relativeDay("today", berlin), relativeDay("yesterday", berlin)
	td, err1 := time.ParseInLocation("2006-01-02", today, berlin)
	yd, err2 := time.ParseInLocation("2006-01-02", yesterday, berlin)
	if err1 != nil || err2 != nil || td.AddDate(0, 0, -1) != yd {
		t.Errorf("today %q, yesterday %q", today, yesterday)
	}
}
