package main

// datasetCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func datasetCommand() *command {
	return notBuilt("dataset", "list or verify the master dataset",
		"lambdalog dataset ls|verify [--json]",
		"dataset listing and verification (issue: exactly-once consumer)")
}
