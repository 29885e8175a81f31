package chload_test

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lambdalog/lambdalog/batch/chload"
	"github.com/lambdalog/lambdalog/queries/merge"
)

var update = flag.Bool("update", false, "rewrite the golden DDL files in testdata/")

// render writes every migration of topo, and rt_metric_minutes rendered
// through the same generator, as one SQL script.
func render(t *testing.T, topo chload.Topology) string {
	t.Helper()
	ms, err := chload.MigrationsFor(topo)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "-- migration %d: %s\n%s\n\n", m.Version, m.Name, strings.TrimSpace(m.SQL))
	}
	rt, err := topo.Create(merge.Migrations()[0].SQL, chload.ShardingKey("cityHash64(metric, key)"))
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "-- queries/merge %s\n%s;\n", merge.Table, strings.Join(rt, ";\n"))
	return b.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the rendered DDL; if the change is intended, add a migration and run go test ./batch/chload -run TestDDLGolden -update\n--- got:\n%s", path, got)
	}
}

func TestDDLGolden(t *testing.T) {
	single := render(t, chload.Topology{})
	golden(t, "ddl_single.sql", single)
	// The single-server DDL is what 0.x installations applied: the
	// migrations' checksums must not change, so no cluster syntax leaks in.
	for _, s := range []string{"ON CLUSTER", "Distributed", "Replicated", "_local"} {
		if strings.Contains(single, s) {
			t.Errorf("single-server DDL contains %q", s)
		}
	}
	golden(t, "ddl_cluster.sql", render(t, chload.Topology{Database: "lambdalog", Cluster: "logs"}))
	repl := render(t, chload.Topology{Database: "lambdalog", Cluster: "logs", Replicated: true})
	golden(t, "ddl_cluster_replicated.sql", repl)
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `lambdalog`.`events_auth_local` ON CLUSTER `logs`",
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/lambdalog/events_auth_local', '{replica}')",
		"ENGINE = Distributed('logs', 'lambdalog', 'events_auth_local', cityHash64(source_ip))",
		"ENGINE = Distributed('logs', 'lambdalog', 'events_syslog_local', rand())",
		"ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/lambdalog/events_auth__staging_local', '{replica}')",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/lambdalog/rt_metric_minutes_local', '{replica}', version)",
		"ENGINE = Distributed('logs', 'lambdalog', 'rt_metric_minutes_local', cityHash64(metric, key))",
	} {
		if !strings.Contains(repl, want) {
			t.Errorf("replicated DDL lacks %s", want)
		}
	}
}

func TestTopologyStatements(t *testing.T) {
	one := chload.Topology{}
	if got := one.ReplacePartition("events_auth", "20260101", "events_auth__staging"); got != "ALTER TABLE `events_auth` REPLACE PARTITION 20260101 FROM `events_auth__staging`" {
		t.Errorf("single replace: %s", got)
	}
	c := chload.Topology{Database: "db", Cluster: "c"}
	if got := c.ReplacePartition("events_auth", "20260101", "events_auth__staging"); got != "ALTER TABLE `db`.`events_auth_local` ON CLUSTER `c` REPLACE PARTITION 20260101 FROM `db`.`events_auth__staging_local`" {
		t.Errorf("cluster replace: %s", got)
	}
	if got := c.DropPartition("report_x__staging", "20260101"); got != "ALTER TABLE `db`.`report_x__staging_local` ON CLUSTER `c` DROP PARTITION 20260101" {
		t.Errorf("cluster drop: %s", got)
	}
	if _, err := c.Create("CREATE VIEW v AS SELECT 1", chload.ShardRandom); err == nil {
		t.Error("a view was rendered for a cluster")
	}
	if err := (chload.Topology{Cluster: "c", Database: "d", Replicated: true, ZooKeeperPath: "/x/{shard}"}).Validate(); err == nil {
		t.Error("a ZooKeeper path without {table} was accepted")
	}
	if err := (chload.Topology{Replicated: true}).Validate(); err == nil {
		t.Error("replicated without a cluster was accepted")
	}
}
