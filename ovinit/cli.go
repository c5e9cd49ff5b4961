package ovinit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/reaper"
)

// Version is set at build time (-ldflags -X).
var Version = "dev"

const description = `A container init (PID 1) that also injects sealed secrets.

Starts COMMAND, forwards signals to it, reaps zombies and exits with its
status. With --app it first reads the machine key, opens that app's secrets
from the vault and puts them in COMMAND's environment.

Exit status: COMMAND's own; 128+N when a signal N killed it; 2 usage error;
78 machine key, vault or secret error (COMMAND not started); 125 ov-init
failed; 126 COMMAND not executable; 127 COMMAND not found.`

type cli struct {
	Flags   `embed:""`
	Vault   string           `env:"OV_VAULT" placeholder:"PATH" group:"secrets" help:"The vault file (default: /etc/ov/vault.json, else ~/.config/ov/vault.json where ov keeps it)."`
	Version kong.VersionFlag `help:"Print the version and exit."`
	Command []string         `arg:"" optional:"" passthrough:"partial" name:"command" help:"The app and its arguments (after --)."`
}

// Main is bin/ov-init's main.
func Main(sigs *reaper.Signals) int {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name("ov-init"),
		kong.Description(description),
		kong.Vars{"version": "ov-init " + Version},
		kong.ExplicitGroups([]kong.Group{{Key: "secrets", Title: "Secrets mode (with --app)"}}),
		kong.Exit(func(code int) { exit = code }),
		kong.Writers(os.Stdout, os.Stderr),
		kong.Help(help),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ov-init: %v\n", err)
		return reaper.ExitInternal
	}
	ctx, err := parser.Parse(os.Args[1:])
	if exit >= 0 {
		return exit // --help or --version
	}
	if err != nil {
		return usageError(err)
	}
	// kong keeps the "--" that ends the flags in a passthrough argument.
	if len(c.Command) > 0 && c.Command[0] == "--" {
		c.Command = c.Command[1:]
	}
	return Run(Options{
		Flags:   c.Flags,
		Vault:   c.Vault,
		Command: c.Command,
		Env:     CleanEnv(os.Environ(), EnvNames(ctx)),
		Self:    "/proc/self/exe",
	}, sigs)
}

// EnvNames lists the OV_* variables that configure ov-init, from the
// parser's own model so the list cannot drift from the flags.
func EnvNames(ctx *kong.Context) []string {
	var names []string
	for _, f := range ctx.Flags() {
		names = append(names, f.Envs...)
	}
	return names
}

func usageError(err error) int {
	var pe *kong.ParseError
	msg := err.Error()
	if errors.As(err, &pe) {
		msg = pe.Error()
	}
	fmt.Fprintf(os.Stderr, "ov-init: %s (see ov-init --help)\n", msg)
	return reaper.ExitUsage
}

// help is kong's help with the usage line users know from tini.
func help(options kong.HelpOptions, ctx *kong.Context) error {
	var buf bytes.Buffer
	out := ctx.Stdout
	ctx.Stdout = &buf
	err := kong.DefaultHelpPrinter(options, ctx)
	ctx.Stdout = out
	text := buf.String()
	if strings.HasPrefix(text, "Usage:") {
		if _, rest, ok := strings.Cut(text, "\n"); ok {
			text = "Usage: " + ctx.Model.Name + " [flags] -- COMMAND [ARG...]\n" + rest
		}
	}
	fmt.Fprint(out, text)
	return err
}
