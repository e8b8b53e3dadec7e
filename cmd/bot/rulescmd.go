package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/comm100bot/bot/internal/actions"
	"github.com/comm100bot/bot/internal/rules"
)

func rulesCmd(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError{"no rules command"}
	}
	switch args[0] {
	case "check":
		return rulesCheck(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "bot rules: unknown command %q\n\n%s", args[0], usage)
		return exitError{"unknown command"}
	}
}

func rulesDir(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	return "./rules"
}

func rulesCheck(args []string, stdout, stderr io.Writer) error {
	dir := rulesDir(args)
	eng, err := rules.LoadDir(dir, actions.NewCatalog())
	if err != nil {
		var list rules.ErrorList
		if errors.As(err, &list) {
			for _, e := range list {
				fmt.Fprintln(stderr, e)
			}
			fmt.Fprintf(stderr, "%d error(s)\n", len(list))
			return exitError{"rules have errors"}
		}
		return err
	}
	fmt.Fprintf(stdout, "%s: %d rules in %d files, all valid\n", dir, len(eng.Rules()), eng.Files())
	return nil
}
