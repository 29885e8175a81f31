package main

// ingestCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func ingestCommand() *command {
	return notBuilt("ingest", "ship log files or stdin into a Kafka topic",
		"lambdalog ingest --topic T --format F [--follow] FILE...",
		"log shipping into Kafka (issue: schemas, parsers, ingest and gen)")
}
