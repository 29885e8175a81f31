// Package queries is lambdalog's serving layer: the catalog of named SQL
// reports (reports/*.sql, embedded here), the merged batch + real-time
// series (queries/merge), the HTTP API and dashboard (queries/server,
// queries/web). See docs/queries.md.
package queries

import "embed"

// Reports holds the report catalog: one reports/NAME.sql per report, each
// starting with a header comment block that queries/catalog parses.
//
//go:embed reports/*.sql
var Reports embed.FS
