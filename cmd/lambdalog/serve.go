package main

// serveCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func serveCommand() *command {
	return notBuilt("serve", "serve the reports API and the dashboard",
		"lambdalog serve [--listen ADDR]",
		"the serving layer and dashboard (issue: serving layer)")
}
