package main

// consumeCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func consumeCommand() *command {
	return notBuilt("consume", "write every event exactly once to Parquet in the master dataset",
		"lambdalog consume [--group G]",
		"the exactly-once Kafka -> Parquet consumer (issue: exactly-once consumer)")
}
