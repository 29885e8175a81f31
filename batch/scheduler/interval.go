package scheduler

import (
	"fmt"
	"time"
)

// Granularity is the length of a job's data interval: an hour or a calendar
// day of the schedule's timezone (23 or 25 hours on DST transition days).
type Granularity int

const (
	// Hourly intervals are one absolute hour, aligned to the local hour.
	Hourly Granularity = iota + 1
	// Daily intervals run from local midnight to the next local midnight.
	Daily
)

// String names the granularity.
func (g Granularity) String() string {
	switch g {
	case Hourly:
		return "hour"
	case Daily:
		return "day"
	}
	return fmt.Sprintf("Granularity(%d)", int(g))
}

// Interval is a half-open data interval [Start, End) in absolute time.
type Interval struct {
	Start, End time.Time
}

// String formats the interval in UTC.
func (iv Interval) String() string {
	return iv.Start.UTC().Format(time.RFC3339) + "/" + iv.End.UTC().Format(time.RFC3339)
}

// Contains reports whether t lies in [Start, End).
func (iv Interval) Contains(t time.Time) bool { return !t.Before(iv.Start) && t.Before(iv.End) }

// Floor returns the interval of granularity g in loc that contains t.
func Floor(g Granularity, loc *time.Location, t time.Time) Interval {
	lt := t.In(loc)
	switch g {
	case Hourly:
		// Truncate by the local minutes and seconds rather than rebuilding
		// the hour with time.Date, which is ambiguous in the repeated hour
		// of a fall-back transition.
		into := time.Duration(lt.Minute())*time.Minute + time.Duration(lt.Second())*time.Second + time.Duration(lt.Nanosecond())
		start := t.Add(-into)
		return Interval{Start: start, End: start.Add(time.Hour)}
	default:
		y, m, d := lt.Date()
		start := time.Date(y, m, d, 0, 0, 0, 0, loc)
		return Interval{Start: start, End: time.Date(y, m, d+1, 0, 0, 0, 0, loc)}
	}
}

// Next returns the interval after iv.
func Next(g Granularity, loc *time.Location, iv Interval) Interval {
	return Floor(g, loc, iv.End)
}

// Day returns the calendar day named "2006-01-02" in loc as an interval.
func Day(date string, loc *time.Location) (Interval, error) {
	t, err := time.ParseInLocation("2006-01-02", date, loc)
	if err != nil {
		return Interval{}, fmt.Errorf("scheduler: date %q: want YYYY-MM-DD", date)
	}
	return Floor(Daily, loc, t), nil
}

// Split cuts iv into consecutive intervals of granularity g (the first and
// last may be partial when iv is not aligned).
func Split(g Granularity, loc *time.Location, iv Interval) []Interval {
	var out []Interval
	for cur := iv.Start; cur.Before(iv.End); {
		part := Floor(g, loc, cur)
		part.Start = cur
		if part.End.After(iv.End) {
			part.End = iv.End
		}
		out = append(out, part)
		cur = part.End
	}
	return out
}
