package main

// queryCommand is not built yet: its layer has not landed. Replace this file
// with the real subcommand when it does.
func queryCommand() *command {
	return notBuilt("query", "list or run the named SQL reports",
		"lambdalog query list | NAME [--from D --to D] [--param k=v] [--format table|csv|json]",
		"the report catalog (issue: serving layer)")
}
