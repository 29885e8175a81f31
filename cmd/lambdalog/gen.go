package main

// genCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func genCommand() *command {
	return notBuilt("gen", "generate realistic security traffic with attacks and a ground-truth file",
		"lambdalog gen --seed S --rate R (--count N | --duration D) [--truth FILE] [--out DIR]",
		"the traffic generator (issue: schemas, parsers, ingest and gen)")
}
