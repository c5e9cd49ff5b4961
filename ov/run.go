package main

import (
	"os"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/ovinit"
	"github.com/ov-init/ov-init/reaper"
)

// runCmd is ov-init itself: the same flags, the same behaviour, with ov's
// --vault.
type runCmd struct {
	ovinit.Flags `embed:""`
	Command      []string `arg:"" optional:"" passthrough:"partial" name:"command" help:"The app and its arguments (after --)."`
}

func (c runCmd) Run(g *Globals, ctx *kong.Context) error {
	// Subscribe first: from here a signal is the app's, not ov's end.
	sigs := reaper.Listen()
	// kong keeps the "--" that ends the flags in a passthrough argument.
	if len(c.Command) > 0 && c.Command[0] == "--" {
		c.Command = c.Command[1:]
	}
	if len(c.Command) == 0 {
		return usageError("run needs a command: ov run [flags] -- COMMAND [ARG...]")
	}
	return exitStatus(ovinit.Run(ovinit.Options{
		Flags:   c.Flags,
		Vault:   g.Vault,
		Command: c.Command,
		Env:     ovinit.CleanEnv(os.Environ(), ovinit.EnvNames(ctx)),
		Self:    "/proc/self/exe",
	}, sigs))
}
