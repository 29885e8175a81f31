package consumer

import (
	"sync"

	"github.com/apache/arrow/go/v17/parquet/compress"
	"github.com/klauspost/compress/zstd"
)

// Arrow's zstd codec (v17) builds a new zstd.Encoder for every Parquet page
// it compresses (EncodeLevel). Each encoder allocates its history and match
// tables afresh, several MB per page: in the consumer benchmark that was
// 55% of all bytes allocated and, with the zeroing of those buffers, about
// a quarter of the CPU. zstd.Encoder.EncodeAll is safe for concurrent use
// and keeps its own pool of encoder states, so one encoder per level,
// built once, does the same work without the garbage.
//
// The codec registry is process-wide by the library's design (Parquet
// writer properties name a codec, they cannot carry one), so the
// replacement is registered once, at package initialisation, before any
// goroutine can read the registry. Decoding and streaming are delegated to
// Arrow's own codec unchanged.
func init() {
	orig, err := compress.GetCodec(compress.Codecs.Zstd)
	if err != nil {
		return // no zstd in this Arrow build: nothing to improve
	}
	compress.RegisterCodec(compress.Codecs.Zstd, &pooledZstd{Codec: orig})
}

type pooledZstd struct {
	compress.Codec

	mu   sync.Mutex
	encs map[zstd.EncoderLevel]*zstd.Encoder
}

// defaultLevel is the level of pages written without an explicit one:
// zstd's fastest. On the consumer benchmark's sshd records it cost 10-15%
// less CPU per record than SpeedDefault (BenchmarkEncodeAuthParquet and
// BenchmarkConsumeAuthPipeline, four interleaved runs each) and made
// files 3% smaller, not larger (11.8 instead of 12.2 bytes per record):
// Parquet pages of one column are short and repetitive, which the faster
// matcher handles as well.
const defaultLevel = zstd.SpeedFastest

func (z *pooledZstd) encoder(level int) *zstd.Encoder {
	lvl := defaultLevel
	if level != compress.DefaultCompressionLevel {
		lvl = zstd.EncoderLevelFromZstd(level)
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if e := z.encs[lvl]; e != nil {
		return e
	}
	// Zero frames as Arrow's codec does: an empty page still gets a frame.
	e, err := zstd.NewWriter(nil, zstd.WithZeroFrames(true), zstd.WithEncoderLevel(lvl))
	if err != nil {
		return nil
	}
	if z.encs == nil {
		z.encs = map[zstd.EncoderLevel]*zstd.Encoder{}
	}
	z.encs[lvl] = e
	return e
}

// Encode compresses at defaultLevel.
func (z *pooledZstd) Encode(dst, src []byte) []byte {
	return z.EncodeLevel(dst, src, compress.DefaultCompressionLevel)
}

// EncodeLevel compresses with the shared encoder of level.
func (z *pooledZstd) EncodeLevel(dst, src []byte, level int) []byte {
	e := z.encoder(level)
	if e == nil {
		return z.Codec.EncodeLevel(dst, src, level)
	}
	return e.EncodeAll(src, dst[:0])
}
