package main

// devCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func devCommand() *command {
	return notBuilt("dev", "run the whole platform in one process on embedded defaults",
		"lambdalog dev",
		"the embedded development platform")
}
