package main

// realtimeCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func realtimeCommand() *command {
	return notBuilt("realtime", "run the speed layer: sliding windows, rules and alerts",
		"lambdalog realtime [--rules FILE] [--http ADDR]",
		"the speed layer (issue: speed layer)")
}
