package gen

import "strconv"

// rng is splitmix64: tiny, fast, and fixed here so output never changes with
// the Go version (math/rand's streams are not a compatibility promise).
type rng struct{ s uint64 }

func newRNG(seed, stream uint64) rng { return rng{s: mix(seed ^ mix(stream+0x51ed27))} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

// intn returns a number in [0, n) for 0 < n < 2^32.
func (r *rng) intn(n int) int { return int(((r.next() >> 32) * uint64(n)) >> 32) }

// float returns a number in [0, 1).
func (r *rng) float() float64 { return float64(r.next()>>11) / (1 << 53) }

// mix is splitmix64's finalizer: a stateless hash used to derive attributes
// (ports, pids, hosts) from counters, so nothing has to be remembered.
func mix(z uint64) uint64 {
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

// civil is a calendar second, cached because consecutive events share it.
type civil struct {
	sec                       int64
	year, mon, day, h, min, s int
	valid                     bool
}

func (c *civil) set(sec int64) {
	if c.valid && c.sec == sec {
		return
	}
	c.sec, c.valid = sec, true
	days := floorDiv(sec, 86400)
	rem := int(sec - days*86400)
	c.h, c.min, c.s = rem/3600, rem%3600/60, rem%60
	// Howard Hinnant's civil_from_days.
	z := days + 719468
	era := floorDiv(z, 146097)
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	y := yoe + era*400
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	if m <= 2 {
		y++
	}
	c.year, c.mon, c.day = int(y), int(m), int(d)
}

const digits = "0123456789"

func append2(b []byte, v int) []byte { return append(b, digits[v/10%10], digits[v%10]) }

func append4(b []byte, v int) []byte {
	return append(b, digits[v/1000%10], digits[v/100%10], digits[v/10%10], digits[v%10])
}

// appendISO writes 2026-01-01T00:00:00 (no fraction, no zone).
func appendISO(b []byte, c *civil) []byte {
	b = append4(b, c.year)
	b = append(b, '-')
	b = append2(b, c.mon)
	b = append(b, '-')
	b = append2(b, c.day)
	b = append(b, 'T')
	b = append2(b, c.h)
	b = append(b, ':')
	b = append2(b, c.min)
	b = append(b, ':')
	return append2(b, c.s)
}

func appendFrac(b []byte, v, width int) []byte {
	var tmp [9]byte
	for i := width - 1; i >= 0; i-- {
		tmp[i] = digits[v%10]
		v /= 10
	}
	return append(b, tmp[:width]...)
}

var monthAbbr = [13]string{"", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

// appendCLF writes 01/Jan/2026:00:00:00 +0000.
func appendCLF(b []byte, c *civil) []byte {
	b = append2(b, c.day)
	b = append(b, '/')
	b = append(b, monthAbbr[c.mon]...)
	b = append(b, '/')
	b = append4(b, c.year)
	b = append(b, ':')
	b = append2(b, c.h)
	b = append(b, ':')
	b = append2(b, c.min)
	b = append(b, ':')
	b = append2(b, c.s)
	return append(b, " +0000"...)
}

func appendOctet(b []byte, v uint32) []byte {
	switch {
	case v >= 100:
		return append(b, digits[v/100], digits[v/10%10], digits[v%10])
	case v >= 10:
		return append(b, digits[v/10], digits[v%10])
	}
	return append(b, digits[v])
}

func appendIP(b []byte, ip uint32) []byte {
	b = appendOctet(b, ip>>24)
	b = append(b, '.')
	b = appendOctet(b, ip>>16&0xff)
	b = append(b, '.')
	b = appendOctet(b, ip>>8&0xff)
	b = append(b, '.')
	return appendOctet(b, ip&0xff)
}

// appendInt writes a non-negative decimal without strconv's generality.
func appendInt(b []byte, v int) []byte {
	if v < 0 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	if v < 10 {
		return append(b, digits[v])
	}
	var tmp [20]byte
	i := len(tmp)
	for v >= 10 {
		i--
		tmp[i] = digits[v%10]
		v /= 10
	}
	i--
	tmp[i] = digits[v]
	return append(b, tmp[i:]...)
}

const hexDigits = "0123456789abcdef"

func appendHex2(b []byte, v byte) []byte { return append(b, hexDigits[v>>4], hexDigits[v&15]) }

const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// appendFingerprint writes 43 base64 characters derived from h, the length
// of an unpadded SHA256 key fingerprint.
func appendFingerprint(b []byte, h uint64) []byte {
	for i := 0; i < 43; i++ {
		if i%10 == 0 {
			h = mix(h + uint64(i))
		}
		b = append(b, b64[h&63])
		h >>= 6
	}
	return b
}
