package rules

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/lambdalog/lambdalog/schemas"
)

// fillRecord sets every field of rec to a random value.
func fillRecord(rng *rand.Rand, v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeOf(time.Time{}) {
			v.Set(reflect.ValueOf(time.Unix(rng.Int64N(2e9), rng.Int64N(1e9)).UTC()))
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Field(i).CanSet() {
				fillRecord(rng, v.Field(i))
			}
		}
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d", rng.IntN(1000)))
	case reflect.Int64, reflect.Int32:
		v.SetInt(rng.Int64N(1<<31) - 1<<30)
	case reflect.Uint16:
		v.SetUint(uint64(rng.IntN(1 << 16)))
	case reflect.Float64:
		v.SetFloat(rng.Float64() * 1e6)
	case reflect.Slice:
		v.SetBytes([]byte(fmt.Sprintf("b%d", rng.IntN(1000))))
	}
}

// TestColumnsReadLikeAccessors checks every column of every dataset: the
// rules' column reader returns what schemas.Accessor returns, on records
// of its dataset, of every other dataset and nil; and string and integer
// columns of the known record types are read directly.
func TestColumnsReadLikeAccessors(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var recs []schemas.Record
	for _, d := range schemas.Datasets() {
		for i := 0; i < 3; i++ {
			r := d.New()
			fillRecord(rng, reflect.ValueOf(r).Elem())
			recs = append(recs, r)
		}
	}
	recs = append(recs, nil)
	direct := 0
	for _, d := range schemas.Datasets() {
		for _, f := range d.Fields() {
			acc, err := d.Accessor(f.Name)
			if err != nil {
				t.Fatal(err)
			}
			c := newCol(d, acc)
			knownType := d.Name() != schemas.DatasetQuarantine
			wantDirect := knownType && (f.Kind == schemas.KindString || f.Kind == schemas.KindInt64 || f.Kind == schemas.KindInt32 || f.Kind == schemas.KindUint16)
			if c.direct != wantDirect {
				t.Errorf("%s.%s (%v): direct %v, want %v", d.Name(), f.Name, f.Kind, c.direct, wantDirect)
			}
			if c.direct {
				direct++
			}
			for _, r := range recs {
				name := fmt.Sprintf("%s.%s on %T", d.Name(), f.Name, r)
				if c.kind == schemas.KindString {
					if got, want := c.str(r), acc.String(r); got != want {
						t.Errorf("%s: str %q, accessor %q", name, got, want)
					}
				}
				if got, want := string(c.appendString([]byte("x"), r)), string(acc.AppendString([]byte("x"), r)); got != want {
					t.Errorf("%s: appendString %q, accessor %q", name, got, want)
				}
				gi, gok := c.int64(r)
				wi, wok := acc.Int64(r)
				if gi != wi || gok != wok {
					t.Errorf("%s: int64 %d %v, accessor %d %v", name, gi, gok, wi, wok)
				}
				gf, gok := c.float64(r)
				wf, wok := acc.Float64(r)
				if strconv.FormatFloat(gf, 'g', -1, 64) != strconv.FormatFloat(wf, 'g', -1, 64) || gok != wok {
					t.Errorf("%s: float64 %v %v, accessor %v %v", name, gf, gok, wf, wok)
				}
			}
		}
	}
	if direct < 40 {
		t.Errorf("only %d columns read directly", direct)
	}
}
