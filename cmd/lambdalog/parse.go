package main

// parseCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func parseCommand() *command {
	return notBuilt("parse", "parse log lines into normalized JSON events",
		"lambdalog parse --format F [--quarantine FILE] [FILE...]",
		"the log parsers (issue: schemas, parsers, ingest and gen)")
}
