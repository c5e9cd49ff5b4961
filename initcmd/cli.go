package initcmd

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/internal/envlist"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/reaper"
	"github.com/ov-init/ov-init/secretfiles"
)

// defaultMachineKey is where Docker and Kubernetes users mount the key
// (the default of Flags.MachineKey, which kong reads from its tag).
const defaultMachineKey = "/run/secrets/machine.kek"

// ovInitName is ov-init's own name: its parser's, and the start of its lines.
const ovInitName = "ov-init"

// Version and Commit are set at build time (-ldflags -X, see the
// Makefile); ov reports them too, and VersionLine says what a build without
// them prints.
var (
	Version = "dev"
	Commit  = ""
)

// intro is the top of ov-init --help; the exit-status paragraph follows,
// from exitcode's table.
const intro = `A container init (PID 1) that also injects sealed secrets.

Starts COMMAND, forwards signals to it, reaps zombies and exits with its
status. With --app it first reads the machine key, opens that app's secrets
from the vault and puts them in COMMAND's environment.`

type cli struct {
	Flags   `embed:""`
	Vault   string           `env:"OV_VAULT" placeholder:"PATH" group:"secrets" help:"The vault file (default: /etc/ov/vault.json, else ~/.config/ov/vault.json where ov keeps it)."`
	Version kong.VersionFlag `help:"Print the version and exit."`
	Command []string         `arg:"" optional:"" passthrough:"partial" name:"command" help:"The app and its arguments (after --)."`
}

// Main is bin/ov-init's main, after the exec stage has been routed and the
// signals subscribed.
func Main(sigs *reaper.Signals) int {
	args, env := os.Args[1:], os.Environ()
	o, ok := plain(args, env)
	if !ok {
		var status int
		if o, status, ok = parse(args, env); !ok {
			return status
		}
	}
	return Run(o, sigs)
}

// New is one run of ov-init as a kong parser read it, for ov-init's own
// command line and for `ov run` alike: ctx is the parsed context, f the
// Flags it filled, vault the --vault it read (which counts only if given:
// otherwise ov-init looks in its default places), command kong's
// passthrough argument and env the environment kong read the OV_*
// variables from. Which settings were given, which variables configure
// ov-init rather than the app, and the name every line of the run starts
// with (the parser's: "ov" for `ov run`, see Options.Prog) come from ctx's
// model, so the two commands cannot drift apart.
func New(ctx *kong.Context, f Flags, vault string, command, env []string) Options {
	o := Options{
		Flags:   f,
		Command: commandOf(ctx.Args, command),
		prog:    ctx.Model.Name,
		given:   map[string]bool{},
	}
	var names []string
	for _, fl := range ctx.Flags() {
		names = append(names, fl.Envs...)
		if !given(ctx, fl, env) {
			continue
		}
		if fl.Name == "vault" {
			// ov's own --vault too (`ov run`), which is not in the
			// secrets group: given empty, it is refused all the same.
			o.Vault, o.emptyVault = vault, vault == ""
		}
		if fl.Group != nil && fl.Group.Key == secretsGroup || fl.Name == "grace" {
			o.given[fl.Name] = true
		}
	}
	o.Env = envlist.Unset(env, names...)
	return o
}

// given reports whether flag f was given on the command line or through its
// variable in env (even empty).
func given(ctx *kong.Context, f *kong.Flag, env []string) bool {
	for _, p := range ctx.Path {
		if p.Flag != nil && p.Flag.Name == f.Name { // parsed from the command line
			return true
		}
	}
	for _, e := range f.Envs {
		if _, ok := envlist.Get(env, e); ok {
			return true
		}
	}
	return false
}

// commandOf is the app's argv from kong's passthrough argument: verbatim,
// and without the "--" that kong keeps there.
func commandOf(args, command []string) []string {
	command = verbatim(args, command)
	if len(command) > 0 && command[0] == "--" {
		command = command[1:]
	}
	return command
}

// parse reads the command line and the OV_* variables with kong. When
// ov-init must stop instead (--help, --version, a usage error) it returns
// false and the exit status.
func parse(args, env []string) (Options, int, bool) {
	var c cli
	exit := -1
	parser, err := kong.New(&c,
		kong.Name(ovInitName),
		kong.Description(intro+"\n\n"+exitcode.Help()),
		kong.Vars{"version": VersionLine(ovInitName)},
		kong.ExplicitGroups([]kong.Group{{Key: secretsGroup, Title: "Secrets mode (with --app)"}}),
		kong.Exit(func(code int) { exit = code }),
		kong.Writers(os.Stdout, os.Stderr),
		kong.Help(help),
		BytesOption,
	)
	if err != nil {
		return Options{}, fail(exitcode.Internal, err), false
	}
	ctx, err := parser.Parse(args)
	if exit >= 0 {
		return Options{}, exit, false // --help or --version
	}
	if err != nil {
		return Options{}, usageError(err), false
	}
	return New(ctx, c.Flags, c.Vault, c.Command, env), 0, true
}

func usageError(err error) int {
	var pe *kong.ParseError
	msg := err.Error()
	if errors.As(err, &pe) {
		msg = pe.Error()
	}
	// kong repeats what it did not understand, bytes and all.
	fmt.Fprintf(os.Stderr, "ov-init: %s (see ov-init --help)\n", shellquote.Line(msg))
	return exitcode.Usage
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

// plain recognises the common `ov-init -- COMMAND...` (or `ov-init
// COMMAND...`) with no OV_* setting in the environment, for which every
// option has its zero value. It spares PID 1's start-up kong's reflective
// model building, most of a millisecond; TestPlainMatchesKong holds it to
// what kong would produce.
func plain(args, env []string) (Options, bool) {
	if len(args) == 0 {
		return Options{}, false
	}
	if args[0] == "--" {
		args = args[1:]
	} else if strings.HasPrefix(args[0], "-") {
		return Options{}, false
	}
	if len(args) == 0 {
		return Options{}, false
	}
	for _, kv := range env {
		if strings.HasPrefix(kv, "OV_") {
			return Options{}, false
		}
	}
	o := Options{Command: args, Env: env, prog: ovInitName, given: map[string]bool{}}
	o.MachineKey = defaultMachineKey
	o.SecretsAs, o.SecretsDir = secretfiles.AsEnv, secretfiles.DefaultDir
	return o, true
}

// verbatim returns the command exactly as it was given. kong turns bytes
// that are not UTF-8 into U+FFFD, but argv is bytes and must reach the app
// unchanged; the command is always the tail of the arguments.
func verbatim(args, command []string) []string {
	if len(command) > len(args) {
		return command
	}
	tail := args[len(args)-len(command):]
	for i := range command {
		if command[i] != tail[i] && command[i] != string([]rune(tail[i])) {
			return command
		}
	}
	return tail
}

// BytesOption makes kong take every string flag, variable and argument
// byte for byte. kong's own string mapper goes through encoding/json, which
// turns bytes that are not UTF-8 into U+FFFD: a --machine-key or --vault
// path holding one would name another file. ov's parser uses it too.
var BytesOption = kong.KindMapper(reflect.String, kong.MapperFunc(func(ctx *kong.DecodeContext, target reflect.Value) error {
	t, err := ctx.Scan.PopValue("string")
	if err != nil {
		return err
	}
	s, ok := t.Value.(string)
	if !ok {
		return fmt.Errorf("expected a string, not %v", t)
	}
	target.SetString(s)
	return nil
}))
