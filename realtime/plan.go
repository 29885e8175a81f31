package realtime

import (
	"hash/maphash"
	"strings"
	"unsafe"

	"github.com/lambdalog/lambdalog/realtime/rules"
	"github.com/lambdalog/lambdalog/schemas"
)

// dsPlan is what Process does with a record of one dataset: the rule
// steps that read the dataset, in rule order, and the distinct filters
// and keys those steps use, each evaluated at most once per event however
// many rules share it (the default rules share one failed-login filter
// and one source_ip key among three auth rules).
type dsPlan struct {
	steps   []planStep
	filters []planFilter
	keys    []planKey
}

// planStep is one rule (or one step of a sequence rule) on the dataset.
type planStep struct {
	st     *ruleState
	step   int // sequence step (0 or 1); -1 for window rules
	filter int // index into dsPlan.filters, -1 for none
	key    int // index into dsPlan.keys
}

// planFilter caches one filter's result for the event numbered epoch.
type planFilter struct {
	f     rules.Filter
	epoch uint64
	ok    bool
}

// planKey caches one key's value and hash for the event numbered epoch.
// The key is either a view of the record (one string column) or of buf.
type planKey struct {
	cols  string // the key columns, for sharing
	rule  *rules.Rule
	step  *rules.Step
	epoch uint64
	ok    bool
	key   string
	hash  uint64
	buf   []byte
}

// eval reads the key of rec into the cache, hashing it under seed.
func (k *planKey) eval(rec schemas.Record, seed maphash.Seed) {
	var key string
	var ok bool
	if k.rule != nil {
		key, ok = k.rule.Key1(rec)
	} else {
		key, ok = k.step.Key1(rec)
	}
	if !ok {
		var buf []byte
		if k.rule != nil {
			buf, ok = k.rule.AppendKey(k.buf[:0], rec)
		} else {
			buf, ok = k.step.AppendKey(k.buf[:0], rec)
		}
		k.buf = buf
		if ok = ok && len(buf) > 0; ok {
			// Consumers clone keys they keep, so a view of the buffer is
			// enough and saves an allocation per event.
			key = unsafe.String(&buf[0], len(buf))
		}
	}
	k.ok, k.key = ok, key
	if ok {
		k.hash = maphash.String(seed, key)
	}
}

func (p *dsPlan) filterIndex(f rules.Filter) int {
	if f.Empty() {
		return -1
	}
	for i := range p.filters {
		if p.filters[i].f.Equal(f) {
			return i
		}
	}
	p.filters = append(p.filters, planFilter{f: f})
	return len(p.filters) - 1
}

func (p *dsPlan) keyIndex(cols []string, r *rules.Rule, s *rules.Step) int {
	c := strings.Join(cols, "\x00")
	for i := range p.keys {
		if p.keys[i].cols == c {
			return i
		}
	}
	p.keys = append(p.keys, planKey{cols: c, rule: r, step: s})
	return len(p.keys) - 1
}

// buildPlans routes each dataset to the steps of the rules in, in rule
// order; for a
// sequence rule reading one dataset in both steps, step 2 comes first so
// that an event matching both cannot match itself.
func buildPlans(states []*ruleState, in func(*rules.Rule) bool) map[string]*dsPlan {
	plans := map[string]*dsPlan{}
	plan := func(ds string) *dsPlan {
		p := plans[ds]
		if p == nil {
			p = &dsPlan{}
			plans[ds] = p
		}
		return p
	}
	for _, st := range states {
		r := st.rule
		if !in(r) {
			continue
		}
		if r.Kind == rules.Sequence {
			for step := 1; step >= 0; step-- {
				s := &r.Steps[step]
				p := plan(s.Dataset)
				p.steps = append(p.steps, planStep{st: st, step: step, filter: p.filterIndex(s.Where), key: p.keyIndex(r.Key, nil, s)})
			}
			continue
		}
		p := plan(r.Dataset)
		p.steps = append(p.steps, planStep{st: st, step: -1, filter: p.filterIndex(r.Where), key: p.keyIndex(r.Key, r, nil)})
	}
	return plans
}

// datasetSlot numbers the record types the engine knows without a map
// lookup; other records go through the map by dataset name.
func datasetSlot(rec schemas.Record) int {
	switch rec.(type) {
	case *schemas.Auth:
		return 0
	case *schemas.Firewall:
		return 1
	case *schemas.Web:
		return 2
	case *schemas.IDS:
		return 3
	case *schemas.Syslog:
		return 4
	}
	return -1
}

var slotDatasets = [...]string{schemas.DatasetAuth, schemas.DatasetFirewall, schemas.DatasetWeb, schemas.DatasetIDS, schemas.DatasetSyslog}
