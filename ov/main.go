// Command ov is ov-init's companion. Offline, on a vault file, it creates the
// vault under a master password, seals secrets for apps, derives the machine
// keys that ov-init reads, and runs a command exactly as ov-init does
// (`ov run`). See the README.
//
// ov never takes a password or a secret value from its command line, and never
// prints a value. It writes only lists (app and secret names) to stdout;
// everything else goes to stderr.
package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/execstage"
	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/initcmd"
	"github.com/ov-init/ov-init/internal/shellquote"
)

// Exit statuses of ov. `ov run` exits with ov-init's statuses instead.
const (
	// exitFailure: the command failed; the vault and the key file are as
	// they were.
	exitFailure = 1
	// exitUsage: the command line or an OV_* variable is wrong (as ov-init).
	exitUsage = exitcode.Usage
)

const description = `Works offline on a vault file: creates it under a master password,
seals secrets for apps, derives the machine keys that ov-init reads,
and runs a command as ov-init does.

The master password comes from a prompt on the terminal, or from the
first line of --password-file. Secret values come from stdin or from a
prompt, never from the command line.

Exit status: 0 done; 1 failed (nothing changed); 2 usage error.
"ov run" exits as ov-init does.`

func main() {
	// `ov run` starts its exec stage by re-executing /proc/self/exe, which
	// is this binary.
	if execstage.Requested(os.Args) {
		os.Exit(execstage.Main(os.Args))
	}
	os.Exit(Main(os.Args[1:]))
}

// usageError is a mistake on the command line: exit 2, with a pointer to
// --help.
type usageError string

func (e usageError) Error() string { return string(e) }

// exitStatus carries `ov run`'s exit status out of kong's Run.
type exitStatus int

func (e exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// Main parses args, runs the command and returns ov's exit status.
func Main(args []string) int {
	var c cli
	exit := -1
	home, _ := os.UserHomeDir()
	defaultVault := ""
	if home != "" {
		defaultVault = filepath.Join(home, initcmd.UserVault)
	}
	parser, err := kong.New(&c,
		kong.Name("ov"),
		kong.Description(description),
		kong.Vars{"version": initcmd.VersionLine("ov"), "vault": defaultVault},
		kong.ExplicitGroups([]kong.Group{{Key: "secrets", Title: "Secrets mode (with --app)"}}),
		kong.Exit(func(code int) { exit = code }),
		kong.Writers(os.Stdout, os.Stderr),
		initcmd.BytesOption,
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ov: %v\n", err)
		return exitFailure
	}
	ctx, err := parser.Parse(args)
	if exit >= 0 {
		return exit // --help or --version
	}
	if err != nil {
		var pe *kong.ParseError
		msg := err.Error()
		if errors.As(err, &pe) {
			msg = pe.Error()
			if refused := valueOnCommandLine(pe); refused != nil {
				return report(refused)
			}
		}
		return report(usageError(msg))
	}
	return report(ctx.Run(&c.Globals))
}

// report prints err in one line and returns the exit status it stands for.
func report(err error) int {
	var status exitStatus
	var usage usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &usage):
		fmt.Fprintf(os.Stderr, "ov: %s (see ov --help)\n", shellquote.Line(err.Error()))
		return exitUsage
	}
	// One line, whatever bytes a parser or a file put in the message.
	fmt.Fprintf(os.Stderr, "ov: %s\n", shellquote.Line(err.Error()))
	return exitFailure
}

// valueOnCommandLine replaces kong's error for an extra argument or an
// unknown flag of `secret set` and `secret rm`, which would repeat it: it
// may be the secret's value.
func valueOnCommandLine(pe *kong.ParseError) error {
	if pe.Context == nil || pe.Context.Selected() == nil {
		return nil
	}
	cmd := ""
	switch pe.Context.Selected().Target.Addr().Interface().(type) {
	case *secretSetCmd:
		cmd = "secret set"
	case *secretRmCmd:
		cmd = "secret rm"
	default:
		return nil
	}
	switch msg := pe.Error(); {
	case strings.HasPrefix(msg, "unexpected argument") && cmd == "secret set":
		return errValueArg
	case strings.HasPrefix(msg, "unexpected argument"):
		return usageError(cmd + ": unexpected argument (not repeated here: it may be a secret value); usage: ov secret rm NAME --app APP")
	case strings.HasPrefix(msg, "unknown flag"):
		return usageError(cmd + ": unknown flag (not repeated here: it may be a secret value); " +
			"the value goes on stdin or in the prompt, never on the command line")
	}
	return nil
}
