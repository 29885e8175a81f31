package main

// hdfsCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func hdfsCommand() *command {
	return notBuilt("hdfs", "run an in-process HDFS test server (development and tests only)",
		"lambdalog hdfs --listen ADDR [--dir DIR]",
		"the in-process HDFS test server (issue: dataset storage)")
}
