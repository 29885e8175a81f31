package main

import (
	"context"
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/lambdalog/lambdalog/internal/config"
)

func configCommand() *command {
	return &command{
		name:    "config",
		summary: "print, check or list the configuration",
		usage:   "lambdalog config print|check|keys [--config FILE]",
		long: `print  shows the effective configuration (file, then LAMBDALOG_* environment,
       then flags) as YAML, with secrets masked.
check  validates it and lists every problem with its key path, where it came
       from and the fix; exits 2 when there is any.
keys   lists every key with its type, default and environment variable.`,
		run: func(_ context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("want one of print, check, keys")
			}
			switch args[0] {
			case "print":
				if e.cfgErr != nil {
					return e.cfgErr
				}
				out, err := yaml.Marshal(e.cfg)
				if err != nil {
					return fmt.Errorf("config: marshal: %w", err)
				}
				_, err = e.stdout.Write(out)
				return err
			case "check":
				if e.cfgErr != nil {
					probs := config.Problems(e.cfgErr)
					for _, p := range probs {
						fmt.Fprintln(e.stdout, p.String())
					}
					return exitError{code: 2, msg: fmt.Sprintf("%d problem(s)", len(probs))}
				}
				src := e.configFile
				if src == "" {
					src = "defaults"
				}
				fmt.Fprintf(e.stdout, "ok: %s is valid\n", src)
				return nil
			case "keys":
				fmt.Fprint(e.stdout, config.MarkdownTable())
				return nil
			default:
				return usagef("unknown config action %q: want print, check or keys", args[0])
			}
		},
	}
}
