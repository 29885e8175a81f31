package ingest

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

// refLine is what the splitter must produce for one line of the input.
type refLine struct {
	value       string
	start, end  int64
	total       int64
	long        bool
	unfinalized bool // the input's last line without "\n"
}

// reference splits input the obvious way, with the whole input in memory.
func reference(input []byte, max, keep int) []refLine {
	var out []refLine
	var off int64
	for len(input) > 0 {
		i := bytes.IndexByte(input, '\n')
		raw, nl, last := input, 0, true
		if i >= 0 {
			raw, nl, last = input[:i], 1, false
		}
		v := raw
		if len(v) > 0 && v[len(v)-1] == '\r' && (nl == 1 || len(v) <= max+1) {
			// A '\r' before "\n" is the line ending; at the end of input
			// the splitter trims it too (a cut "\r\n").
			v = v[:len(v)-1]
		}
		if nl == 0 && len(raw) > max+1 && raw[len(raw)-1] == '\r' {
			// Over-long unterminated line: the '\r' is kept as data.
			v = raw
		}
		l := refLine{value: string(v), start: off, end: off + int64(len(raw)+nl), total: int64(len(v)), unfinalized: last}
		if len(v) > max {
			l.long = true
			l.value = string(v[:min(len(v), keep)])
		}
		out = append(out, l)
		off = l.end
		input = input[len(raw)+nl:]
	}
	return out
}

// splitAll runs the splitter over r the way the ingester does.
func splitAll(t *testing.T, r io.Reader, max, keep, arena int) []refLine {
	t.Helper()
	sp := newSplitter(max, keep, arena)
	var out []refLine
	for {
		_, err := sp.readFrom(r)
		for l, ok := sp.next(); ok; l, ok = sp.next() {
			out = append(out, refLine{value: string(l.value), start: l.start, end: l.end, total: l.total, long: l.long})
		}
		if errors.Is(err, io.EOF) {
			if l, ok := sp.final(); ok {
				out = append(out, refLine{value: string(l.value), start: l.start, end: l.end, total: l.total, long: l.long, unfinalized: true})
			}
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if sp.pending() > int64(max)+2 && !sp.inLong {
			t.Fatalf("splitter buffers %d bytes of one line with max %d", sp.pending(), max)
		}
	}
}

func TestSplitterCases(t *testing.T) {
	const max, keep = 10, 6
	for _, in := range []string{
		"",
		"a\nb\n",
		"a\r\nb\r\n",
		"no newline at end",
		"\n\n\n",
		"exactly10!\n",
		"exactly10!\r\n",
		"eleven1234x\nok\n",
		"this line is far longer than ten bytes\nshort\n",
		"this line is far longer than ten bytes and has CRLF\r\nnext\r\n",
		"ends with a long unterminated line of many bytes",
		"x\x00\xff\xfe binary garbage \xc3\x28\n\xff\n",
	} {
		want := reference([]byte(in), max, keep)
		for _, rd := range []struct {
			name string
			r    func() io.Reader
		}{
			{"whole", func() io.Reader { return strings.NewReader(in) }},
			{"onebyte", func() io.Reader { return iotest.OneByteReader(strings.NewReader(in)) }},
			{"half", func() io.Reader { return iotest.HalfReader(strings.NewReader(in)) }},
		} {
			got := splitAll(t, rd.r(), max, keep, 0)
			if !equalLines(got, want) {
				t.Errorf("%q via %s:\n got %+v\nwant %+v", in, rd.name, got, want)
			}
		}
	}
}

func equalLines(a, b []refLine) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestSplitterRandom checks random inputs, with random read sizes, small
// arenas (so the tail is copied between arenas often) and long lines of
// every length around the limit.
func TestSplitterRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for iter := 0; iter < 300; iter++ {
		max := 1 + rng.IntN(300)
		keep := 1 + rng.IntN(2*max)
		var b bytes.Buffer
		for n := rng.IntN(200); n > 0; n-- {
			ln := rng.IntN(3 * max)
			for i := 0; i < ln; i++ {
				c := byte(rng.IntN(256))
				if c == '\n' {
					c = 'n'
				}
				b.WriteByte(c)
			}
			switch rng.IntN(4) {
			case 0:
				b.WriteString("\r\n")
			default:
				b.WriteByte('\n')
			}
		}
		if rng.IntN(2) == 0 {
			b.WriteString("tail without newline")
		}
		in := b.Bytes()
		want := reference(in, max, keep)
		got := splitAll(t, &randReader{r: bytes.NewReader(in), rng: rng}, max, keep, 1)
		if !equalLines(got, want) {
			for i := range min(len(got), len(want)) {
				if got[i] != want[i] {
					t.Fatalf("iter %d (max %d keep %d): line %d\n got %+v\nwant %+v", iter, max, keep, i, got[i], want[i])
				}
			}
			t.Fatalf("iter %d: %d lines, want %d", iter, len(got), len(want))
		}
	}
}

type randReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (r *randReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1+r.rng.IntN(min(len(p), 5000))]
	}
	return r.r.Read(p)
}

// TestSplitterLinesStayValid checks that lines handed out earlier are not
// overwritten by later reads (the producer holds them until acked).
func TestSplitterLinesStayValid(t *testing.T) {
	var in bytes.Buffer
	for i := 0; i < 50000; i++ {
		in.WriteString(strings.Repeat(string(rune('a'+i%26)), i%97))
		in.WriteByte('\n')
	}
	sp := newSplitter(100, 100, 0)
	r := bytes.NewReader(in.Bytes())
	var held [][]byte
	for {
		_, err := sp.readFrom(r)
		for l, ok := sp.next(); ok; l, ok = sp.next() {
			held = append(held, l.value)
		}
		if err != nil {
			break
		}
	}
	if len(held) != 50000 {
		t.Fatalf("%d lines", len(held))
	}
	for i, v := range held {
		if want := strings.Repeat(string(rune('a'+i%26)), i%97); string(v) != want {
			t.Fatalf("line %d changed: %q, want %q", i, v, want)
		}
	}
}

// TestSplitterBoundedMemory feeds one 50 MB line and checks that only the
// kept prefix is buffered.
func TestSplitterBoundedMemory(t *testing.T) {
	const size = 50 << 20
	sp := newSplitter(1000, 4096, 0)
	r := io.MultiReader(io.LimitReader(repeatReader('x'), size), strings.NewReader("\nnext\n"))
	var lines []line
	for {
		_, err := sp.readFrom(r)
		for l, ok := sp.next(); ok; l, ok = sp.next() {
			lines = append(lines, l)
		}
		if cap(sp.arena) > 2<<20 || cap(sp.longBuf) > 4096 {
			t.Fatalf("buffers grew: arena %d, long %d", cap(sp.arena), cap(sp.longBuf))
		}
		if err != nil {
			break
		}
	}
	if len(lines) != 2 || !lines[0].long || lines[0].total != size || len(lines[0].value) != 4096 || lines[0].end != size+1 {
		t.Fatalf("long line: %d lines, first long=%v total=%d kept=%d end=%d", len(lines), lines[0].long, lines[0].total, len(lines[0].value), lines[0].end)
	}
	if string(lines[1].value) != "next" || lines[1].start != size+1 || lines[1].end != size+6 {
		t.Fatalf("line after: %+v", lines[1])
	}
}

type repeatReader byte

func (c repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}
