// Package batchtest builds master-dataset fixtures for the batch layer's
// tests and benchmarks: deterministic security events and Parquet files
// written in the consumer's layout (<dataset>/dt=YYYY-MM-DD/hour=HH/) with
// the schemas Arrow model. It is for tests only; production files come
// from the consumer.
package batchtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/apache/arrow/go/v17/parquet"
	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/apache/arrow/go/v17/parquet/pqarrow"

	"github.com/lambdalog/lambdalog/internal/storage"
	"github.com/lambdalog/lambdalog/schemas"
)

// Gen generates deterministic events.
type Gen struct {
	rng *rand.Rand
	// IPs, Users, Paths are the value pools (set by NewGen).
	IPs, Users, Paths []string
	seq               int64
}

// NewGen returns a generator seeded with seed; pools scale with ips.
func NewGen(seed uint64, ips int) *Gen {
	g := &Gen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
	for i := 0; i < ips; i++ {
		g.IPs = append(g.IPs, fmt.Sprintf("203.0.%d.%d", i/250, i%250+1))
	}
	for i := 0; i < 40; i++ {
		g.Users = append(g.Users, fmt.Sprintf("user%02d", i))
	}
	g.Users = append(g.Users, "root", "admin", "oracle")
	for i := 0; i < 60; i++ {
		g.Paths = append(g.Paths, fmt.Sprintf("/app/page%02d", i))
	}
	g.Paths = append(g.Paths, "/wp-login.php", "/.env", "/admin")
	return g
}

// skewed picks from a pool with a heavy head, so top lists are meaningful.
func (g *Gen) skewed(pool []string) string {
	i := int(float64(len(pool)) * g.rng.Float64() * g.rng.Float64())
	return pool[i]
}

func (g *Gen) common(t time.Time, topic string) schemas.Common {
	g.seq++
	return schemas.Common{Timestamp: t, Host: fmt.Sprintf("host%d", g.seq%4), EventOriginal: fmt.Sprintf("line %d", g.seq),
		ParseVersion: schemas.Version, KafkaTopic: topic, KafkaPartition: int32(g.seq % 3), KafkaOffset: g.seq,
		KafkaTimestamp: t.Add(time.Second), IngestTime: t.Add(2 * time.Second)}
}

// Event returns one event of dataset at time t.
func (g *Gen) Event(dataset string, t time.Time) schemas.Record {
	r := g.rng
	switch dataset {
	case schemas.DatasetAuth:
		a := &schemas.Auth{Base: g.common(t, "auth"), Program: "sshd", PID: int64(1000 + r.IntN(5000)), Count: 1}
		a.SourceIP = g.skewed(g.IPs)
		a.User = g.skewed(g.Users)
		a.SourcePort = uint16(1024 + r.IntN(60000))
		switch x := r.IntN(20); {
		case x < 10:
			a.Action, a.Outcome, a.Method = "ssh_login", schemas.OutcomeFailure, "password"
		case x < 13:
			a.Action, a.Outcome = "invalid_user", schemas.OutcomeFailure
		case x < 17:
			a.Action, a.Outcome, a.Method = "ssh_login", schemas.OutcomeSuccess, "publickey"
		case x < 19:
			a.Action, a.Outcome = "connection_closed", schemas.OutcomeUnknown
			a.User = ""
		default:
			a.Action, a.Outcome = "session_opened", schemas.OutcomeSuccess
			a.SourceIP, a.SourcePort = "", 0 // PAM session lines carry no address
		}
		return a
	case schemas.DatasetFirewall:
		f := &schemas.Firewall{Base: g.common(t, "firewall"), Transport: "tcp", NetworkType: "ipv4", InInterface: "eth0"}
		f.SourceIP = g.skewed(g.IPs)
		f.DestinationIP = "10.0.0.1"
		f.DestinationPort = uint16([]int{22, 80, 443, 3389, 8080, 23, 25, 445}[r.IntN(8)])
		if r.IntN(4) == 0 {
			f.DestinationPort = uint16(1 + r.IntN(1024))
		}
		f.Action = []string{"deny", "drop", "allow", "deny", "reject"}[r.IntN(5)]
		f.Bytes = int64(40 + r.IntN(1400))
		f.Packets = 1
		f.Rule = "UFW BLOCK"
		return f
	case schemas.DatasetIDS:
		sig := r.IntN(12)
		return &schemas.IDS{Base: g.common(t, "ids"), SignatureID: int64(2000000 + sig), Signature: fmt.Sprintf("ET SCAN signature %d", sig),
			Category: []string{"Attempted Information Leak", "Misc activity", "Attempted Administrator Privilege Gain"}[sig%3],
			Severity: int64(1 + sig%3), Transport: "tcp", AppProtocol: "http", SourceIP: g.skewed(g.IPs), SourcePort: uint16(1024 + r.IntN(60000)),
			DestinationIP: "10.0.0.2", DestinationPort: 80, Action: "allowed", FlowID: r.Int64(), Interface: "eth1"}
	case schemas.DatasetWeb:
		st := []uint16{200, 200, 200, 200, 301, 304, 404, 403, 500, 503, 101}[r.IntN(11)]
		return &schemas.Web{Base: g.common(t, "web"), SourceIP: g.skewed(g.IPs), Method: "GET", Path: g.skewed(g.Paths), HTTPVersion: "1.1",
			Status: st, Bytes: int64(r.IntN(20000)), UserAgent: "curl/8", Duration: int64(r.IntN(1e9))}
	}
	return nil
}

// Events generates n events spread uniformly over [from, to), cycling
// through datasets with the given weights (auth, firewall, ids, web).
func (g *Gen) Events(n int, from, to time.Time, weights [4]int) []schemas.Record {
	names := []string{schemas.DatasetAuth, schemas.DatasetFirewall, schemas.DatasetIDS, schemas.DatasetWeb}
	total := weights[0] + weights[1] + weights[2] + weights[3]
	span := to.Sub(from)
	out := make([]schemas.Record, 0, n)
	for i := 0; i < n; i++ {
		x := g.rng.IntN(total)
		d := 0
		for x >= weights[d] {
			x -= weights[d]
			d++
		}
		t := from.Add(time.Duration(g.rng.Int64N(int64(span)))).Truncate(time.Microsecond)
		out = append(out, g.Event(names[d], t))
	}
	return out
}

// WriteOptions tune WriteLayout.
type WriteOptions struct {
	// Location is the partition timezone (UTC when nil).
	Location *time.Location
	// FilesPerHour splits each hour partition into this many files (1).
	FilesPerHour int
	// RowGroupRows caps the rows of a row group (default 1<<20).
	RowGroupRows int64
	// Prefix is prepended to file names (to add files to a layout later).
	Prefix string
}

// WriteLayout writes records as Parquet files in the consumer's layout,
// one partition per dataset and local hour, and returns the file names.
func WriteLayout(ctx context.Context, fsys storage.FS, records []schemas.Record, o WriteOptions) ([]string, error) {
	loc := o.Location
	if loc == nil {
		loc = time.UTC
	}
	if o.FilesPerHour <= 0 {
		o.FilesPerHour = 1
	}
	type part struct{ ds, dir string }
	groups := map[part][]schemas.Record{}
	for _, r := range records {
		lt := r.EventTime().In(loc)
		dir := fmt.Sprintf("%s/dt=%s/hour=%02d", r.Dataset(), lt.Format("2006-01-02"), lt.Hour())
		p := part{r.Dataset(), dir}
		groups[p] = append(groups[p], r)
	}
	parts := make([]part, 0, len(groups))
	for p := range groups {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i].dir < parts[j].dir })
	var names []string
	for _, p := range parts {
		if err := fsys.MkdirAll(ctx, p.dir); err != nil {
			return nil, fmt.Errorf("batchtest: mkdir %s: %w", p.dir, err)
		}
		recs := groups[p]
		per := (len(recs) + o.FilesPerHour - 1) / o.FilesPerHour
		for i := 0; i < o.FilesPerHour && i*per < len(recs); i++ {
			end := min((i+1)*per, len(recs))
			name := fmt.Sprintf("%s/%spart-%05d.parquet", p.dir, o.Prefix, i)
			if err := WriteFile(ctx, fsys, name, recs[i*per:end], o.RowGroupRows); err != nil {
				return nil, err
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// WriteFile writes records of one dataset to a new Parquet file with the
// writer settings the consumer uses (zstd, dictionaries, statistics).
func WriteFile(ctx context.Context, fsys storage.FS, name string, records []schemas.Record, rowGroupRows int64) error {
	if len(records) == 0 {
		return nil
	}
	if rowGroupRows <= 0 {
		rowGroupRows = 1 << 20
	}
	ds := schemas.Of(records[0])
	f, err := fsys.Create(ctx, name)
	if err != nil {
		return fmt.Errorf("batchtest: create %s: %w", name, err)
	}
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithDictionaryDefault(true),
		parquet.WithStats(true), parquet.WithMaxRowGroupLength(rowGroupRows))
	w, err := pqarrow.NewFileWriter(ds.ArrowSchema(), f, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		f.Abort()
		return fmt.Errorf("batchtest: writer %s: %w", name, err)
	}
	b := schemas.NewBatchBuilder(ds, nil)
	defer b.Release()
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		return w.WriteBuffered(rec)
	}
	for i, r := range records {
		if err := b.Append(r); err != nil {
			f.Abort()
			return err
		}
		if int64(i+1)%rowGroupRows == 0 {
			if err := flush(); err != nil {
				f.Abort()
				return fmt.Errorf("batchtest: write %s: %w", name, err)
			}
			w.NewBufferedRowGroup()
		}
	}
	if b.Len() > 0 {
		if err := flush(); err != nil {
			f.Abort()
			return fmt.Errorf("batchtest: write %s: %w", name, err)
		}
	}
	// FileWriter.Close closes the sink too, which for storage.File is the
	// durable commit.
	if err := w.Close(); err != nil {
		f.Abort()
		return fmt.Errorf("batchtest: close %s: %w", name, err)
	}
	return nil
}

// WriteGenerated generates n events over [from, to) hour by hour (so
// memory holds one hour, not the whole set) and writes them in the layout;
// it returns the events written per dataset.
func WriteGenerated(ctx context.Context, fsys storage.FS, g *Gen, n int, from, to time.Time, weights [4]int, o WriteOptions) (map[string]int, error) {
	hours := int(to.Sub(from) / time.Hour)
	if hours < 1 {
		hours = 1
	}
	counts := map[string]int{}
	for h := 0; h < hours; h++ {
		lo := from.Add(time.Duration(h) * time.Hour)
		hi := minTime(lo.Add(time.Hour), to)
		per := n / hours
		if h == hours-1 {
			per = n - per*(hours-1)
		}
		recs := g.Events(per, lo, hi, weights)
		for _, r := range recs {
			counts[r.Dataset()]++
		}
		if _, err := WriteLayout(ctx, fsys, recs, o); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	return counts, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
