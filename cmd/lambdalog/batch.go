package main

// batchCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func batchCommand() *command {
	return notBuilt("batch", "schedule, run, backfill and list batch jobs",
		"lambdalog batch schedule|run|backfill|history [--job J] [--date YYYY-MM-DD]",
		"the batch layer (issue: batch layer)")
}
