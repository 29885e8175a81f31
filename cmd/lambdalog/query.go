package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lambdalog/lambdalog/internal/chdb"
	"github.com/lambdalog/lambdalog/queries"
	"github.com/lambdalog/lambdalog/queries/catalog"
)

func queryCommand() *command {
	var (
		from, to, format string
		params           []string
	)
	return &command{
		name:    "query",
		summary: "list or run the named SQL reports",
		usage:   "lambdalog query list | NAME [--from D --to D] [--param k=v] [--format table|csv|json]",
		long: `'query list' prints the report catalog: every named report with its title and
typed parameters. 'query NAME' runs one report against ClickHouse
(clickhouse.dsn) and prints it as an aligned table, CSV or JSON.

Dates are UTC days, YYYY-MM-DD or today / today-N, both ends inclusive;
--from and --to are shorthands for --param from=D --param to=D. Parameters
are validated against their declared types and bound as literals, never
spliced as text; an unknown report or a bad parameter exits 2 with the
reason. See docs/queries.md for every report.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&from, "from", "", "first day `D` (UTC, inclusive): YYYY-MM-DD, today or today-N")
			fs.StringVar(&to, "to", "", "last day `D` (UTC, inclusive)")
			fs.StringVar(&format, "format", "table", "output: table, csv or json")
			fs.Func("param", "report parameter `KEY=VALUE` (repeatable)", func(s string) error {
				if !strings.Contains(s, "=") {
					return fmt.Errorf("want KEY=VALUE, got %q", s)
				}
				params = append(params, s)
				return nil
			})
		},
		run: func(ctx context.Context, e *env, args []string) error {
			c, err := catalog.Load(queries.Reports, "reports")
			if err != nil {
				return err
			}
			if format != "table" && format != "csv" && format != "json" {
				return usagef("--format: want table, csv or json, got %q", format)
			}
			if len(args) != 1 {
				return usagef("want 'list' or one report name; 'lambdalog query list' shows them")
			}
			if args[0] == "list" {
				return printCatalog(e, c, format)
			}
			rep, ok := c.Lookup(args[0])
			if !ok {
				return usagef("unknown report %q; 'lambdalog query list' shows the catalog", args[0])
			}
			raw := map[string]string{}
			for _, p := range params {
				k, v, _ := strings.Cut(p, "=")
				if _, dup := raw[k]; dup {
					return usagef("--param %s given twice", k)
				}
				raw[k] = v
			}
			for k, v := range map[string]string{"from": from, "to": to} {
				if v != "" {
					if _, dup := raw[k]; dup {
						return usagef("--%s and --param %s both given", k, k)
					}
					raw[k] = v
				}
			}
			// Check the parameters before connecting: a typo is a usage
			// error whether or not ClickHouse is up.
			if _, _, err := rep.Bind(raw, time.Now()); err != nil {
				return usageError{err.Error()}
			}
			db, err := chdb.Open(ctx, e.cfg.ClickHouse.DSN.Reveal())
			if err != nil {
				return fmt.Errorf("query: clickhouse %s: %w", e.cfg.ClickHouse.DSN, err)
			}
			defer db.Close()
			qctx, cancel := context.WithTimeout(ctx, e.cfg.Serve.QueryTimeout.D())
			defer cancel()
			res, err := c.Run(qctx, db, rep.Name, raw, catalog.RunOptions{MaxRows: e.cfg.Serve.MaxRows})
			var pe *catalog.ParamError
			if errors.As(err, &pe) {
				return usageError{pe.Error()}
			}
			if err != nil {
				return err
			}
			return res.Write(e.stdout, format)
		},
	}
}

func printCatalog(e *env, c *catalog.Catalog, format string) error {
	if format == "json" {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(c.Reports())
	}
	tw := tabwriter.NewWriter(e.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTITLE\tPARAMETERS")
	for _, r := range c.Reports() {
		var ps []string
		for _, p := range r.Params {
			s := p.Name + ":" + string(p.Type)
			if p.HasDefault {
				s += "=" + p.Default
			} else {
				s += " (required)"
			}
			ps = append(ps, s)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Title, strings.Join(ps, ", "))
	}
	return tw.Flush()
}
