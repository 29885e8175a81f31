package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/lambdalog/lambdalog/consumer"
)

func datasetCommand() *command {
	var asJSON bool
	return &command{
		name:    "dataset",
		summary: "list or verify the master dataset",
		usage:   "lambdalog dataset ls|verify [--json] [--dataset URL]",
		long: `ls      lists the committed files per dataset and partition, with rows and
        sizes, from the commit log.
verify  reads the commit log and every committed Parquet file and reports
        per topic-partition the committed range, holes, duplicates, row
        counts, files pending roll-forward and the newest commit-log
        checkpoint (whose snapshot it reads like the entries it folded),
        plus orphan data files no commit references. Exits 1 on any
        inconsistency.`,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 || (args[0] != "ls" && args[0] != "verify") {
				return usagef("want ls or verify")
			}
			fsys, err := openDataset(ctx, e)
			if err != nil {
				return err
			}
			defer fsys.Close()
			if args[0] == "ls" {
				st, err := consumer.ReadState(ctx, fsys)
				if err != nil {
					return err
				}
				if asJSON {
					return json.NewEncoder(e.stdout).Encode(st)
				}
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "FILE\tROWS\tBYTES\tTOPIC/PARTITION\tOFFSETS")
				for _, p := range st.Partitions {
					for _, en := range p.Entries {
						for _, f := range en.Files {
							fmt.Fprintf(tw, "%s\t%d\t%d\t%s/%d\t%d-%d\n", f.Final, f.Rows, f.Bytes, p.Topic, p.Partition, f.FirstOffset, f.LastOffset)
						}
					}
				}
				return tw.Flush()
			}
			rep, err := consumer.Verify(ctx, fsys)
			if err != nil {
				return err
			}
			if asJSON {
				if err := json.NewEncoder(e.stdout).Encode(rep); err != nil {
					return err
				}
			} else {
				tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "TOPIC/PARTITION\tCOMMITTED\tROWS\tFILES\tHOLES\tDUPLICATES\tPENDING\tCHECKPOINT\tPROBLEMS")
				for _, p := range rep.Partitions {
					// CHECKPOINT: the newest checkpoint's sequence number and
					// how many entries it folded ("-" for a log without one).
					cp := "-"
					if p.Checkpoint > 0 {
						cp = fmt.Sprintf("#%d (%d folded)", p.Checkpoint, p.Folded)
					}
					fmt.Fprintf(tw, "%s/%d\t[%d,%d)\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", p.Topic, p.Partition, p.Start, p.Next, p.Rows, p.Files, len(p.Holes), p.Duplicates, p.Pending, cp, strings.Join(p.Problems, "; "))
				}
				tw.Flush()
				for _, o := range rep.Orphans {
					fmt.Fprintf(e.stdout, "orphan: %s\n", o)
				}
			}
			if !rep.OK {
				return exitError{code: 1, msg: "dataset is inconsistent"}
			}
			if !asJSON {
				fmt.Fprintln(e.stdout, "ok: every committed offset is in the dataset exactly once")
			}
			return nil
		},
	}
}
