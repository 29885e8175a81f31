package chload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/batch/reports"
	"github.com/lambdalog/lambdalog/batch/scheduler"
	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/internal/chserver"
	"github.com/lambdalog/lambdalog/internal/zktest"
)

const (
	testCluster      = "logs"
	testPlainCluster = "logs_plain"
)

// startCluster starts ZooKeeper and shards x replicas ClickHouse servers
// forming cluster "logs", with distributed DDL and the {shard}/{replica}
// macros, like a production cluster's config. Servers are returned shard
// by shard.
func startCluster(t *testing.T, shards, replicas int) []*chserver.Server {
	t.Helper()
	zk := zktest.Start(t)
	ports := make([]int, shards*replicas)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ports[i] = ln.Addr().(*net.TCPAddr).Port
		ln.Close()
	}
	// Two definitions of the same servers: testCluster for replicated
	// tables (a Distributed insert goes to one replica per shard), and
	// testPlainCluster for plain MergeTree ones (ClickHouse refuses
	// ON CLUSTER ALTERs of non-replicated tables on a cluster whose shards
	// say internal_replication).
	var remote strings.Builder
	for _, c := range []struct {
		name     string
		internal bool
	}{{testCluster, true}, {testPlainCluster, false}} {
		fmt.Fprintf(&remote, "<%s>", c.name)
		for sh := 0; sh < shards; sh++ {
			fmt.Fprintf(&remote, "<shard><internal_replication>%v</internal_replication>", c.internal)
			for r := 0; r < replicas; r++ {
				fmt.Fprintf(&remote, "<replica><host>127.0.0.1</host><port>%d</port></replica>", ports[sh*replicas+r])
			}
			remote.WriteString("</shard>")
		}
		fmt.Fprintf(&remote, "</%s>", c.name)
	}
	srvs := make([]*chserver.Server, len(ports))
	errs := make([]error, len(ports))
	var wg sync.WaitGroup
	for i := range srvs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			extra := fmt.Sprintf(`<!-- %[1]s --><remote_servers>%[2]s</remote_servers>
    %[3]s
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
    <macros><shard>0%[4]d</shard><replica>r%[5]d</replica></macros>`, testCluster, remote.String(), zk.ClickHouseConfig(), i/replicas+1, i%replicas+1)
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			srvs[i], errs[i] = chserver.Start(ctx, chserver.Options{Dir: t.TempDir(), TCPPort: ports[i], ExtraConfig: extra})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if errors.Is(err, chserver.ErrNotInstalled) {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and ClickHouse is required: %v", err)
			}
			t.Skip(err)
		}
		if err != nil {
			t.Fatalf("server %d: %v", i+1, err)
		}
	}
	for _, s := range srvs {
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("clickhouse %s log tail:\n%s", s.TCPAddr(), s.LogTail(30))
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s.Stop(ctx)
		})
	}
	return srvs
}

// TestClusterReplicatedDistributed applies the replicated cluster
// migrations to a 2-shard cluster (ReplicatedMergeTree ON CLUSTER through
// ZooKeeper, Distributed tables), loads a day of events and computes the
// day's reports in both modes; counts through the Distributed tables equal
// the ground truth and the report tables equal a single server's, rows are
// spread over both shards, and a re-run changes nothing.
func TestClusterReplicatedDistributed(t *testing.T) {
	srvs := startCluster(t, 2, 1)
	// Both variants of the cluster DDL on the same servers: Replicated
	// local tables, and plain MergeTree ones (partition ALTERs ON CLUSTER,
	// falling back to each host on 18.16).
	for _, replicated := range []bool{true, false} {
		t.Run(fmt.Sprintf("replicated=%v", replicated), func(t *testing.T) { testCluster2Shards(t, srvs, replicated) })
	}
}

func testCluster2Shards(t *testing.T, srvs []*chserver.Server, replicated bool) {
	ctx := context.Background()
	dbName := fmt.Sprintf("lambdalog_cluster_%v", replicated)
	cluster := testCluster
	if !replicated {
		cluster = testPlainCluster
	}
	topo := Topology{Cluster: cluster, Replicated: replicated, DSN: srvs[0].DSN(dbName)}
	db, err := chdb.Open(ctx, srvs[0].DSN(dbName), chdb.WithSettings(topo.Settings()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	l := New(db, nil)
	if err := l.SetTopology(topo); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Migrate(ctx); err != nil || n != 3 {
		t.Fatalf("migrate: %d, %v", n, err)
	}
	// A worker connected to the other server sees the migrations applied.
	db2, err := chdb.Open(ctx, srvs[1].DSN(dbName), chdb.WithSettings(topo.Settings()))
	if err != nil {
		t.Fatal(err)
	}
	defer db2.Close()
	l2 := New(db2, nil)
	if err := l2.SetTopology(topo); err != nil {
		t.Fatal(err)
	}
	if n, err := l2.Migrate(ctx); err != nil || n != 0 {
		t.Fatalf("migrate from the second server: %d, %v (want 0: already applied)", n, err)
	}
	wantTables := (len(EventDatasets())*2 + len(reports.TableSchemas())*2 + 2) * 2
	for i, s := range srvs {
		out, err := s.Query(ctx, "SELECT count() FROM system.tables WHERE database = '"+dbName+"'")
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(out) != fmt.Sprint(wantTables) {
			t.Fatalf("server %d has %s tables, want %d", i+1, strings.TrimSpace(out), wantTables)
		}
	}
	out, err := srvs[1].Query(ctx, "SELECT engine FROM system.tables WHERE database = '"+dbName+"' AND name = 'events_auth_local'")
	wantEngine := "MergeTree"
	if replicated {
		wantEngine = "ReplicatedMergeTree"
	}
	if err != nil || strings.TrimSpace(out) != wantEngine {
		t.Fatalf("events_auth_local on server 2: %q, %v", out, err)
	}

	// The single-server reference, from the same Parquet files.
	ref := New(openDB(t), nil)
	if _, err := ref.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	fsys, recs, src := fixture(t, 20000)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	out2, err := reports.Compute(ctx, src, fsys, day, end, reports.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, lo := range []*Loader{ref, l} {
		for _, ds := range EventDatasets() {
			files, err := src.Files(ctx, ds, day, end)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := lo.LoadEvents(ctx, fsys, ds, files, day, end, 2); err != nil {
				t.Fatalf("load %s: %v", ds, err)
			}
		}
		if _, err := lo.ReplaceReports(ctx, day, end, out2.Tables); err != nil {
			t.Fatal(err)
		}
	}
	want := dumpReports(t, ref.DB(), day)

	check := func(what string) {
		t.Helper()
		for _, ds := range reports.ReportDatasets() {
			if got, w := count(t, db, "SELECT count() FROM "+EventTable(ds)), inside(recs, ds, day, end); int(got) != w || w == 0 {
				t.Errorf("%s: %s has %d rows through the Distributed table, want %d", what, EventTable(ds), got, w)
			}
			// Both shards hold some of them: the sharding key spread them.
			for i, s := range srvs {
				o, err := s.Query(ctx, "SELECT count() FROM "+dbName+"."+EventTable(ds)+LocalSuffix)
				if err != nil || strings.TrimSpace(o) == "0" {
					t.Errorf("%s: shard %d holds %q rows of %s (%v)", what, i+1, strings.TrimSpace(o), ds, err)
				}
			}
		}
		compareReports(t, what, dumpReports(t, db, day), want)
	}
	check("first load, Go reports")
	// Re-run both jobs: nothing doubles.
	for _, ds := range EventDatasets() {
		files, _ := src.Files(ctx, ds, day, end)
		if _, err := l.LoadEvents(ctx, fsys, ds, files, day, end, 2); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.ReplaceReports(ctx, day, end, out2.Tables); err != nil {
		t.Fatal(err)
	}
	check("re-run, Go reports")
	// Push-down over the Distributed tables, twice.
	for run := 1; run <= 2; run++ {
		if _, err := l.ComputeReports(ctx, day, end); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("push-down run %d", run))
	}

	// The job history works through the Distributed table from either
	// server.
	h := NewHistory(db)
	if err := h.Record(ctx, testRun(day)); err != nil {
		t.Fatal(err)
	}
	if ivs, err := NewHistory(db2).Succeeded(ctx, "reports", day, end); err != nil || len(ivs) != 1 {
		t.Fatalf("history read from server 2: %v, %v", ivs, err)
	}
}

func testRun(day time.Time) scheduler.Run {
	return scheduler.Run{Job: "reports", Interval: scheduler.Interval{Start: day, End: day.Add(24 * time.Hour)}, Attempt: 1,
		Status: scheduler.StatusSucceeded, Started: day.Add(25 * time.Hour), Finished: day.Add(26 * time.Hour)}
}

// TestClusterReplicas runs a day's loads and reports on 1 shard x 2
// replicas, in alternation from both servers: the loader's per-shard swap
// (SYNC REPLICA, then REPLACE PARTITION on one replica) leaves both
// replicas with exactly the day's rows, also after re-runs.
func TestClusterReplicas(t *testing.T) {
	srvs := startCluster(t, 1, 2)
	ctx := context.Background()
	const dbName = "lambdalog_replicas"
	fsys, recs, src := fixture(t, 10000)
	day := time.Date(2026, 4, 2, 0, 0, 0, 0, time.UTC)
	end := day.Add(24 * time.Hour)
	out, err := reports.Compute(ctx, src, fsys, day, end, reports.Options{Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var loaders []*Loader
	for _, s := range srvs {
		topo := Topology{Cluster: testCluster, Replicated: true, DSN: s.DSN(dbName)}
		db, err := chdb.Open(ctx, s.DSN(dbName), chdb.WithSettings(topo.Settings()))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		l := New(db, nil)
		if err := l.SetTopology(topo); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		loaders = append(loaders, l)
	}
	for run := 0; run < 3; run++ {
		l := loaders[run%2]
		for _, ds := range reports.ReportDatasets() {
			files, _ := src.Files(ctx, ds, day, end)
			if _, err := l.LoadEvents(ctx, fsys, ds, files, day, end, 2); err != nil {
				t.Fatalf("run %d: load %s: %v", run, ds, err)
			}
		}
		if _, err := l.ReplaceReports(ctx, day, end, out.Tables); err != nil {
			t.Fatal(err)
		}
		for i, s := range srvs {
			for _, ds := range reports.ReportDatasets() {
				table := dbName + "." + EventTable(ds) + LocalSuffix
				if _, err := s.Query(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
					t.Fatal(err)
				}
				got, err := s.Query(ctx, "SELECT count() FROM "+table)
				if err != nil {
					t.Fatal(err)
				}
				if want := inside(recs, ds, day, end); strings.TrimSpace(got) != fmt.Sprint(want) || want == 0 {
					t.Errorf("run %d: replica %d holds %s rows of %s, want %d", run, i+1, strings.TrimSpace(got), ds, want)
				}
			}
			table := dbName + ".report_auth_ip_day" + LocalSuffix
			if _, err := s.Query(ctx, "SYSTEM SYNC REPLICA "+table); err != nil {
				t.Fatal(err)
			}
			got, _ := s.Query(ctx, "SELECT count() FROM "+table)
			if tb, _ := out.Table("report_auth_ip_day"); strings.TrimSpace(got) != fmt.Sprint(len(tb.Rows)) {
				t.Errorf("run %d: replica %d holds %s rows of report_auth_ip_day, want %d", run, i+1, strings.TrimSpace(got), len(tb.Rows))
			}
		}
	}
}
