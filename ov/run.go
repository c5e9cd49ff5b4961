package main

import (
	"os"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/initcmd"
	"github.com/ov-init/ov-init/internal/envlist"
	"github.com/ov-init/ov-init/reaper"
)

// runCmd is ov-init itself: the same flags, the same behaviour, with ov's
// --vault. main routes the exec stage first, as initcmd requires.
type runCmd struct {
	initcmd.Flags `embed:""`
	Command       []string `arg:"" optional:"" passthrough:"partial" name:"command" help:"The app and its arguments (after --)."`
}

func (c runCmd) Run(g *Globals, ctx *kong.Context) error {
	// Subscribe first: from here a signal is the app's, not ov's end.
	sigs := reaper.Listen()
	// ov's --vault is ov's own, for every command: it is used when given
	// and, unlike ov-init's, does not ask for secrets mode. Not given, ov
	// run looks where ov-init looks (/etc/ov/vault.json first).
	// New drops the variables of this command's flags; vault passwd's is
	// ov's too, and names a file holding a master password.
	env := envlist.Unset(os.Environ(), "OV_NEW_PASSWORD_FILE")
	o := initcmd.New(ctx, c.Flags, g.Vault, c.Command, env)
	if len(o.Command) == 0 {
		return usageError("run needs a command: ov run [flags] -- COMMAND [ARG...]")
	}
	return exitStatus(initcmd.Run(o, sigs))
}
