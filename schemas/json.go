package schemas

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
	"unsafe"
)

// AppendJSON appends r as one flat JSON object to dst: "dataset" first,
// then every column in Fields order keyed by column name. Strings are JSON
// strings (invalid UTF-8 replaced by U+FFFD), bytes are base64, integers
// are numbers, times are RFC 3339 strings in UTC with up to nanosecond
// precision, and the zero time is null. It reads fields by offset: no
// reflection per field.
func AppendJSON(dst []byte, r Record) []byte {
	d := Of(r)
	dst = append(dst, `{"dataset":`...)
	dst = appendJSONString(dst, d.name)
	for i := range d.fields {
		f := &d.fields[i]
		dst = append(dst, ',', '"')
		dst = append(dst, f.Name...)
		dst = append(dst, '"', ':')
		p := fieldPtr(r, f)
		switch f.Kind {
		case KindString:
			dst = appendJSONString(dst, *(*string)(p))
		case KindBytes:
			raw := *(*[]byte)(p)
			dst = append(dst, '"')
			dst = base64.StdEncoding.AppendEncode(dst, raw)
			dst = append(dst, '"')
		case KindInt64:
			dst = strconv.AppendInt(dst, *(*int64)(p), 10)
		case KindInt32:
			dst = strconv.AppendInt(dst, int64(*(*int32)(p)), 10)
		case KindUint16:
			dst = strconv.AppendUint(dst, uint64(*(*uint16)(p)), 10)
		case KindFloat64:
			v := *(*float64)(p)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				dst = append(dst, "null"...)
			} else {
				dst = strconv.AppendFloat(dst, v, 'g', -1, 64)
			}
		case KindTime:
			t := *(*time.Time)(p)
			if t.IsZero() {
				dst = append(dst, "null"...)
			} else {
				dst = append(dst, '"')
				dst = t.UTC().AppendFormat(dst, time.RFC3339Nano)
				dst = append(dst, '"')
			}
		}
	}
	return append(dst, '}')
}

// MarshalJSON returns AppendJSON(nil, r).
func MarshalJSON(r Record) []byte { return AppendJSON(nil, r) }

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string literal.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript consumers of JSON lines.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// UnmarshalJSONRecord decodes one flat JSON object in the shape AppendJSON
// writes. "dataset" selects the record type; keys that are not columns are
// ignored (a newer writer may have added them) and missing columns keep
// their zero value. Times may be RFC 3339 strings, null, or numbers of Unix
// milliseconds. Type mismatches and out-of-range numbers are errors.
func UnmarshalJSONRecord(b []byte) (Record, error) {
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("schemas: decode JSON record: %w", err)
	}
	if obj == nil {
		return nil, fmt.Errorf("schemas: decode JSON record: not an object")
	}
	if dec.More() {
		return nil, fmt.Errorf("schemas: decode JSON record: data after the object")
	}
	rawDS, ok := obj["dataset"]
	if !ok {
		return nil, fmt.Errorf("schemas: decode JSON record: no \"dataset\" key")
	}
	var name string
	if err := json.Unmarshal(rawDS, &name); err != nil {
		return nil, fmt.Errorf("schemas: decode JSON record: dataset: %w", err)
	}
	d, ok := Lookup(name)
	if !ok {
		return nil, fmt.Errorf("schemas: decode JSON record: unknown dataset %q", name)
	}
	r := d.New()
	for i := range d.fields {
		f := &d.fields[i]
		raw, ok := obj[f.Name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := setJSON(fieldPtr(r, f), f, raw); err != nil {
			return nil, fmt.Errorf("schemas: decode JSON record: %s.%s: %w", d.name, f.Name, err)
		}
	}
	return r, nil
}

func setJSON(p unsafe.Pointer, f *Field, raw json.RawMessage) error {
	switch f.Kind {
	case KindString:
		return json.Unmarshal(raw, (*string)(p))
	case KindBytes:
		return json.Unmarshal(raw, (*[]byte)(p)) // base64, as written
	case KindFloat64:
		return json.Unmarshal(raw, (*float64)(p))
	case KindTime:
		t, err := parseJSONTime(raw)
		if err != nil {
			return err
		}
		*(*time.Time)(p) = t
		return nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return fmt.Errorf("want an integer, got %.40s", raw)
	}
	switch f.Kind {
	case KindInt64:
		*(*int64)(p) = n
	case KindInt32:
		if n < math.MinInt32 || n > math.MaxInt32 {
			return fmt.Errorf("%d out of range for int32", n)
		}
		*(*int32)(p) = int32(n)
	case KindUint16:
		if n < 0 || n > math.MaxUint16 {
			return fmt.Errorf("%d out of range for uint16", n)
		}
		*(*uint16)(p) = uint16(n)
	}
	return nil
}

func parseJSONTime(raw json.RawMessage) (time.Time, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return time.Time{}, err
		}
		if s == "" {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return time.Time{}, err
		}
		return t.UTC(), nil
	}
	ms, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("want an RFC 3339 string or Unix milliseconds, got %.40s", raw)
	}
	return time.UnixMilli(ms).UTC(), nil
}
