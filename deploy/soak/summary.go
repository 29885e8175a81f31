package main

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// row is one line of the summary table.
type row struct {
	check, value, bound string
	// status is PASS, FAIL, INFO (reported, not judged) or GAP (a known
	// limitation of the platform, reported and documented, not failed).
	status string
}

// summary collects the rows; it fails when any row does.
type summary struct{ rows []row }

func (s *summary) add(check, value, bound string, ok bool) {
	st := "PASS"
	if !ok {
		st = "FAIL"
	}
	s.rows = append(s.rows, row{check, value, bound, st})
}

func (s *summary) info(check, value string) {
	s.rows = append(s.rows, row{check, value, "", "INFO"})
}

func (s *summary) gap(check, value, bound string) {
	s.rows = append(s.rows, row{check, value, bound, "GAP"})
}

func (s *summary) gaps() int {
	n := 0
	for _, r := range s.rows {
		if r.status == "GAP" {
			n++
		}
	}
	return n
}

func (s *summary) failf(check, format string, args ...any) {
	s.add(check, fmt.Sprintf(format, args...), "", false)
}

func (s *summary) passed() bool {
	for _, r := range s.rows {
		if r.status == "FAIL" {
			return false
		}
	}
	return len(s.rows) > 0
}

func (s *summary) failed() []row {
	var out []row
	for _, r := range s.rows {
		if r.status == "FAIL" {
			out = append(out, r)
		}
	}
	return out
}

func (s *summary) write(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tVALUE\tBOUND\tRESULT")
	for _, r := range s.rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.check, r.value, r.bound, r.status)
	}
	tw.Flush()
}
