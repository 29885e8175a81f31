package main

import "context"

// notBuilt is the whole behaviour of a subcommand whose layer has not landed:
// it says which capability is missing and exits 1. It never pretends to work.
func notBuilt(name, summary, usage, capability string) *command {
	return &command{
		name:    name,
		summary: summary + " (not built yet)",
		usage:   usage,
		long:    "Not built yet: " + capability + ". Until it lands this subcommand exits 1.",
		run: func(context.Context, *env, []string) error {
			return notBuiltError{cmd: name, capability: capability}
		},
	}
}
