package ingest

import (
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ProducerConfig tunes the Kafka producer of an ingester.
type ProducerConfig struct {
	// Compression is the batch codec: snappy (default), lz4, zstd, gzip
	// or none.
	Compression string
	// Linger is how long a partition's batch waits for more records
	// (default 5ms).
	Linger time.Duration
	// MaxBufferedRecords and MaxBufferedBytes bound the records (and
	// their key+value bytes) held by the producer before they are
	// acknowledged; reading blocks when either is reached. Defaults
	// 262144 and 64 MiB.
	MaxBufferedRecords int
	MaxBufferedBytes   int
}

// Producer defaults.
const (
	DefaultCompression        = "snappy"
	DefaultLinger             = 5 * time.Millisecond
	DefaultMaxBufferedRecords = 256 << 10
	DefaultMaxBufferedBytes   = 64 << 20
)

// Codec returns the franz-go codec named name.
func Codec(name string) (kgo.CompressionCodec, error) {
	switch name {
	case "", "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "none":
		return kgo.NoCompression(), nil
	}
	return kgo.NoCompression(), fmt.Errorf("compression %q: want snappy, lz4, zstd, gzip or none", name)
}

// ProducerOptions returns the franz-go options for an ingester's client,
// to add to the connection options (internal/kafkaconf). The producer is
// idempotent (franz-go's default: retries cannot duplicate or reorder
// records within a partition), keys are hashed to partitions with Kafka's
// murmur2 (so one IP stays in one partition; keyless lines are spread),
// and memory is bounded by MaxBufferedRecords/Bytes.
func ProducerOptions(c ProducerConfig) ([]kgo.Opt, error) {
	codec, err := Codec(c.Compression)
	if err != nil {
		return nil, err
	}
	if c.Linger <= 0 {
		c.Linger = DefaultLinger
	}
	if c.MaxBufferedRecords <= 0 {
		c.MaxBufferedRecords = DefaultMaxBufferedRecords
	}
	if c.MaxBufferedBytes <= 0 {
		c.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	return []kgo.Opt{
		kgo.ProducerLinger(c.Linger),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.MaxBufferedRecords(c.MaxBufferedRecords),
		kgo.MaxBufferedBytes(c.MaxBufferedBytes),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
	}, nil
}
