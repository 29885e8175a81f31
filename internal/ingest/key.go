package ingest

import (
	"github.com/lambdalog/lambdalog/schemas"
	"github.com/lambdalog/lambdalog/schemas/parse"
)

// keyer finds a line's Kafka key: the source IP the parser finds in it, so
// that every event of one IP lands in one partition and downstream
// per-IP state stays partition-local. The key is exactly the record's
// source_ip column, so ingest and the layers that parse the line again
// always agree.
//
// Fallbacks: a parsed record without a source IP (a Syslog record, a PAM
// session line) is keyed by its host; a line the parser rejects gets an
// empty key (the partitioner then spreads those lines).
type keyer struct {
	p   parse.Parser
	acc []keyAccessor
}

type keyAccessor struct {
	ds  *schemas.Dataset
	acc schemas.Accessor
}

func newKeyer(p parse.Parser) *keyer {
	k := &keyer{p: p}
	for _, ds := range schemas.Datasets() {
		if a, err := ds.Accessor("source_ip"); err == nil {
			k.acc = append(k.acc, keyAccessor{ds: ds, acc: a})
		}
	}
	return k
}

// appendKey parses line and appends its key to dst. It returns the parse
// error (a *parse.Error) when the line was rejected.
func (k *keyer) appendKey(dst, line []byte) ([]byte, error) {
	rec, err := k.p.Parse(line)
	if err != nil {
		return dst, err
	}
	n := len(dst)
	ds := schemas.Of(rec)
	for i := range k.acc {
		if k.acc[i].ds == ds {
			dst = k.acc[i].acc.AppendString(dst, rec)
			break
		}
	}
	if len(dst) == n {
		dst = append(dst, rec.Common().Host...)
	}
	return dst, nil
}
