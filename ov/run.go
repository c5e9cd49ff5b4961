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
	command := ovinit.Command(os.Args[1:], c.Command)
	if len(command) == 0 {
		return usageError("run needs a command: ov run [flags] -- COMMAND [ARG...]")
	}
	env := os.Environ()
	given := ovinit.Given(ctx, env)
	// ov's --vault has ov's default; ov run, like ov-init, looks in
	// /etc/ov/vault.json first unless a vault is named.
	vault := ""
	if given["vault"] {
		vault = g.Vault
	}
	// --vault is ov's own, for every command: naming it does not ask for
	// secrets mode here.
	delete(given, "vault")
	return exitStatus(ovinit.Run(ovinit.Options{
		Flags:   c.Flags,
		Vault:   vault,
		Command: command,
		Env:     ovinit.CleanEnv(env, ovinit.EnvNames(ctx)),
		Self:    "/proc/self/exe",
		Given:   given,
	}, sigs))
}
