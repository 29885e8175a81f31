package parse

import (
	"github.com/lambdalog/lambdalog/schemas"
)

// jsonParser reads JSON lines already in the normalized shape
// (schemas.AppendJSON): a flat object with "dataset" and column names.
type jsonParser struct{ c *config }

func (p *jsonParser) Format() string { return p.c.format }

func (p *jsonParser) Parse(line []byte) (schemas.Record, error) {
	s, err := p.c.prepare(line)
	if err != nil {
		return nil, err
	}
	r, err := schemas.UnmarshalJSONRecord([]byte(s))
	if err != nil {
		return nil, p.c.err(ReasonBadJSON, err.Error())
	}
	c := r.Common()
	if c.EventOriginal == "" {
		c.EventOriginal = s
	}
	if c.ParseVersion == 0 {
		c.ParseVersion = schemas.Version
	}
	if c.Timestamp.IsZero() {
		return nil, p.c.err(ReasonBadTimestamp, "no timestamp")
	}
	return r, nil
}
