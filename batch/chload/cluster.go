package chload

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/lambdalog/lambdalog/internal/chdb"
)

// Topology says how lambdalog's tables are laid out in ClickHouse: on one
// server (the zero value), or on a cluster (clickhouse.cluster), where every
// table is a *_local table created ON CLUSTER on each shard plus a
// Distributed table with the original name, so readers and inserts keep
// using the names they use on one server.
type Topology struct {
	// Database holds the tables; cluster DDL names it explicitly because
	// ON CLUSTER statements run on other servers, whose current database
	// is not ours.
	Database string
	// Cluster is the remote_servers name; empty means one server.
	Cluster string
	// Replicated makes the local tables Replicated*MergeTree (ZooKeeper
	// and the {shard}/{replica} macros on every server).
	Replicated bool
	// ZooKeeperPath is the replicated tables' path template: {database}
	// and {table} are filled in here, {shard} (and any other macro) by the
	// server. Default DefaultZooKeeperPath.
	ZooKeeperPath string
	// DSN is the configured connection (with credentials): when a server
	// cannot run a partition replace ON CLUSTER (18.16), the loader
	// connects to each shard with it, host and port taken from
	// system.clusters. Never logged.
	DSN string
}

// DefaultZooKeeperPath is the default ZooKeeper path template.
const DefaultZooKeeperPath = "/clickhouse/tables/{shard}/{database}/{table}"

// LocalSuffix names a table's per-shard twin on a cluster.
const LocalSuffix = "_local"

// Clustered reports whether the tables live on a cluster.
func (t Topology) Clustered() bool { return t.Cluster != "" }

// Local is the name of the table that holds a shard's rows of table: the
// table itself on one server, table_local on a cluster.
func (t Topology) Local(table string) string {
	if t.Clustered() {
		return table + LocalSuffix
	}
	return table
}

// qualified is db.table on a cluster (ON CLUSTER statements run with the
// remote server's default database), the bare table otherwise.
func (t Topology) qualified(table string) string {
	if t.Clustered() {
		return chdb.QuoteIdent(t.Database) + "." + chdb.QuoteIdent(table)
	}
	return chdb.QuoteIdent(table)
}

// onCluster is the ON CLUSTER clause, with its leading space, or "".
func (t Topology) onCluster() string {
	if t.Clustered() {
		return " ON CLUSTER " + chdb.QuoteIdent(t.Cluster)
	}
	return ""
}

// Settings are the session settings lambdalog's writers need on this
// topology; pass them to chdb.Open with chdb.WithSettings. On a cluster,
// inserts into a Distributed table must reach the shards before the
// INSERT returns (insert_distributed_sync), because the next statement
// swaps the staged partitions on every shard: the default asynchronous
// forwarding would swap in a partition still missing rows.
func (t Topology) Settings() clickhouse.Settings {
	if !t.Clustered() {
		return nil
	}
	return clickhouse.Settings{"insert_distributed_sync": 1}
}

// Validate checks the topology.
func (t Topology) Validate() error {
	if !t.Clustered() {
		if t.Replicated {
			return fmt.Errorf("chload: replicated tables need a cluster")
		}
		return nil
	}
	if t.Database == "" {
		return fmt.Errorf("chload: cluster %s: the database must be named", t.Cluster)
	}
	if t.Replicated && t.ZooKeeperPath != "" && !strings.Contains(t.ZooKeeperPath, "{table}") {
		return fmt.Errorf("chload: zookeeper path %q has no {table}", t.ZooKeeperPath)
	}
	return nil
}

// createRE splits a single-server CREATE TABLE as lambdalog writes it:
// name, the column list, the engine with its arguments, and the clauses
// after it.
var createRE = regexp.MustCompile(`(?s)^\s*CREATE TABLE (IF NOT EXISTS )?(\S+)\s*(\(.*\))\s*ENGINE = (\w+)\(([^)]*)\)(.*)$`)

// ShardingKey chooses the shard of a row in a Distributed table.
//
// Event tables with a source IP shard by cityHash64(source_ip): all of an
// address's events sit on one shard, so the per-source reports (which are
// most of them) aggregate per shard and the initiator merges disjoint
// groups, and an investigation of one address reads one shard. Tables
// without a natural key use rand() (even spread); correctness never depends
// on the key, since every interval replace happens on every shard.
type ShardingKey string

// Sharding keys.
const (
	ShardBySourceIP ShardingKey = "cityHash64(source_ip)"
	ShardRandom     ShardingKey = "rand()"
)

// Create renders the DDL of one table from its single-server CREATE TABLE
// statement (ENGINE = SomeMergeTree(args) followed by PARTITION BY, ORDER
// BY...). On one server it returns the statement unchanged. On a cluster
// it returns two statements: the local table ON CLUSTER (Replicated when
// configured, with the engine's own arguments kept after the ZooKeeper
// path and replica name) and a Distributed table with the original name
// over it, sharded by key. This is the one place cluster DDL is made;
// queries/merge can render rt_metric_minutes through it too.
func (t Topology) Create(stmt string, key ShardingKey) ([]string, error) {
	if !t.Clustered() {
		return []string{strings.TrimSpace(stmt)}, nil
	}
	if err := t.Validate(); err != nil {
		return nil, err
	}
	m := createRE.FindStringSubmatch(stmt)
	if m == nil {
		return nil, fmt.Errorf("chload: cannot render for a cluster (want CREATE TABLE name (...) ENGINE = X(...) ...): %s", abbrev(stmt))
	}
	ifNot, name, cols, engine, args, rest := m[1], unquote(m[2]), m[3], m[4], strings.TrimSpace(m[5]), m[6]
	if !strings.HasSuffix(engine, "MergeTree") {
		return nil, fmt.Errorf("chload: %s: engine %s is not a MergeTree", name, engine)
	}
	local := name + LocalSuffix
	if t.Replicated {
		path := t.ZooKeeperPath
		if path == "" {
			path = DefaultZooKeeperPath
		}
		path = strings.NewReplacer("{database}", t.Database, "{table}", local).Replace(path)
		rargs := quoteString(path) + ", '{replica}'"
		if args != "" {
			rargs += ", " + args
		}
		engine, args = "Replicated"+engine, rargs
	}
	localDDL := fmt.Sprintf("CREATE TABLE %s%s%s %s ENGINE = %s(%s)%s", ifNot, t.qualified(local), t.onCluster(), cols, engine, args, rest)
	dist := fmt.Sprintf("CREATE TABLE %s%s%s AS %s ENGINE = Distributed(%s, %s, %s, %s)", ifNot, t.qualified(name), t.onCluster(), t.qualified(local),
		quoteString(t.Cluster), quoteString(t.Database), quoteString(local), key)
	return []string{localDDL, dist}, nil
}

// DropPartition empties partition part of table on every shard.
func (t Topology) DropPartition(table, part string) string {
	return fmt.Sprintf("ALTER TABLE %s%s DROP PARTITION %s", t.qualified(t.Local(table)), t.onCluster(), part)
}

// ReplacePartition replaces partition part of table with the same
// partition of from, each shard with its own rows: on a cluster the rows
// of an interval are spread over the shards' local tables, so the replace
// runs on every shard (ON CLUSTER) between local tables.
func (t Topology) ReplacePartition(table, part, from string) string {
	return fmt.Sprintf("ALTER TABLE %s%s REPLACE PARTITION %s FROM %s", t.qualified(t.Local(table)), t.onCluster(), part, t.qualified(t.Local(from)))
}

func unquote(ident string) string {
	if len(ident) >= 2 && ident[0] == '`' && ident[len(ident)-1] == '`' {
		return strings.ReplaceAll(ident[1:len(ident)-1], "\\`", "`")
	}
	return ident
}

func abbrev(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// migrationsDDL is chdb.Migrate's table, created first on a cluster so the
// record of applied migrations is one table for every batch worker
// whichever server it connects to (chdb.Migrate's own CREATE ... IF NOT
// EXISTS then finds the Distributed table).
const migrationsDDL = `CREATE TABLE IF NOT EXISTS ` + MigrationsTable + ` (
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime
) ENGINE = MergeTree() ORDER BY version`

// swapShards replaces partition part of table's local tables with their
// staging twins' on every shard.
func (l *Loader) swapShards(ctx context.Context, table, part string) error {
	local := Topology{Database: l.topo.Database}
	staging := l.topo.Local(table + StagingSuffix)
	return l.alterShards(ctx,
		[]string{l.topo.ReplacePartition(table, part, table+StagingSuffix), l.topo.DropPartition(table+StagingSuffix, part)},
		[]string{local.ReplacePartition(l.topo.Local(table), part, staging), local.DropPartition(staging, part)},
		staging)
}

// dropStagingShards empties partition part of table's staging twin on every
// shard.
func (l *Loader) dropStagingShards(ctx context.Context, table, part string) error {
	local := Topology{Database: l.topo.Database}
	return l.alterShards(ctx, []string{l.topo.DropPartition(table+StagingSuffix, part)},
		[]string{local.DropPartition(l.topo.Local(table+StagingSuffix), part)}, "")
}

// alterShards runs partition ALTERs on every shard of the cluster: the
// onCluster statements (ALTER ... ON CLUSTER) where the server can, else
// the perHost statements on the shards' servers themselves.
//
// Replicated tables always go per shard: the loader connects to one
// replica per shard (system.clusters), first runs SYSTEM SYNC REPLICA on
// syncTable (a Distributed insert lands on one replica and reaches the
// others by replication, so the replica that runs the replace waits until
// it has every staged part), and the ALTERs are replicated through
// ZooKeeper. ON CLUSTER is not used for them: on 18.16.1 with two replicas
// of a shard, the second replica's DDL worker fails ("Node exists" on the
// task's executed node) and stops, and the query waits out
// distributed_ddl_task_timeout (observed).
//
// Non-replicated tables: ON CLUSTER, on every host. ClickHouse 18.16
// refuses REPLACE PARTITION in distributed DDL ("Unsupported type of ALTER
// query", code 48, observed on 18.16.1); then the loader runs the ALTERs on
// every host itself, and remembers to.
func (l *Loader) alterShards(ctx context.Context, onCluster, perHost []string, syncTable string) error {
	if l.topo.Replicated {
		if syncTable != "" {
			perHost = append([]string{"SYSTEM SYNC REPLICA " + chdb.QuoteIdent(syncTable)}, perHost...)
		}
		return l.onEveryShard(ctx, perHost, false)
	}
	if !l.noClusterReplace.Load() {
		var err error
		for _, q := range onCluster {
			if err = l.exec(ctx, q); err != nil {
				break
			}
		}
		if err == nil {
			return nil
		}
		var ex *clickhouse.Exception
		if !errors.As(err, &ex) || ex.Code != 48 {
			return err
		}
		l.noClusterReplace.Store(true)
		l.log.Info("server refuses REPLACE PARTITION ON CLUSTER; altering on each host", "server", l.db.Version().String())
	}
	return l.onEveryShard(ctx, perHost, true)
}

// onEveryShard runs stmts, in order, on each shard of the cluster: on
// every replica with allReplicas, else on the first of each shard.
func (l *Loader) onEveryShard(ctx context.Context, stmts []string, allReplicas bool) error {
	if l.topo.DSN == "" {
		return fmt.Errorf("chload: cluster %s: the replace runs on each shard, which needs Topology.DSN", l.topo.Cluster)
	}
	base, err := url.Parse(l.topo.DSN)
	if err != nil {
		return fmt.Errorf("chload: cluster DSN: %w", err)
	}
	rows, err := l.db.Query(ctx, "SELECT shard_num, replica_num, host_address, port FROM system.clusters WHERE cluster = "+quoteString(l.topo.Cluster)+" ORDER BY shard_num, replica_num")
	if err != nil {
		return fmt.Errorf("chload: shards of %s: %w", l.topo.Cluster, err)
	}
	type host struct {
		shard uint32
		addr  string
	}
	var hosts []host
	for rows.Next() {
		var shard, replica uint32
		var addr string
		var port uint16
		if err := rows.Scan(&shard, &replica, &addr, &port); err != nil {
			rows.Close()
			return fmt.Errorf("chload: shards of %s: %w", l.topo.Cluster, err)
		}
		if !allReplicas && len(hosts) > 0 && hosts[len(hosts)-1].shard == shard {
			continue
		}
		hosts = append(hosts, host{shard, net.JoinHostPort(addr, strconv.Itoa(int(port)))})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("chload: shards of %s: %w", l.topo.Cluster, err)
	}
	if len(hosts) == 0 {
		return fmt.Errorf("chload: cluster %s is not in system.clusters", l.topo.Cluster)
	}
	for _, h := range hosts {
		u := *base
		u.Host = h.addr
		db, err := chdb.Open(ctx, u.String())
		if err != nil {
			return fmt.Errorf("chload: shard %d (%s): %w", h.shard, h.addr, err)
		}
		for _, s := range stmts {
			if err := db.Exec(ctx, s); err != nil {
				db.Close()
				return fmt.Errorf("chload: shard %d (%s): %s: %w", h.shard, h.addr, s, err)
			}
		}
		db.Close()
	}
	return nil
}
