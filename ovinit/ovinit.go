// Package ovinit is ov-init's command line: it turns flags and OV_*
// variables into a reaper.Config, and in secrets mode starts ov-init's own
// exec stage instead of the app. Both bin/ov-init and `ov run` use it, so
// they behave the same.
package ovinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ov-init/ov-init/account"
	"github.com/ov-init/ov-init/execstage"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/privs"
	"github.com/ov-init/ov-init/reaper"
	"github.com/ov-init/ov-init/vault"
)

// Flags are ov-init's options; `ov run` takes the same ones.
type Flags struct {
	KillGroup bool          `short:"g" env:"OV_KILL_GROUP" help:"Send forwarded signals to the app's whole process group."`
	RemapExit []int         `short:"e" name:"remap-exit" env:"OV_REMAP_EXIT" placeholder:"CODE" help:"Exit 0 when the app exits with CODE (repeatable; e.g. 143 for Java)."`
	Rewrite   []string      `env:"OV_REWRITE" placeholder:"FROM:TO" help:"Forward signal FROM as TO (repeatable; TO 0 drops FROM), e.g. TERM:QUIT."`
	TermDelay time.Duration `env:"OV_TERM_DELAY" placeholder:"DURATION" help:"Hold SIGTERM this long before forwarding it (let load balancers drain)."`
	Grace     time.Duration `env:"OV_GRACE" placeholder:"DURATION" help:"SIGKILL the app's group this long after a forwarded TERM/INT/QUIT; also the time left-behind processes get between SIGTERM and SIGKILL after the app exits (default 5s for those)."`
	Verbose   int           `short:"v" type:"counter" env:"OV_VERBOSE" help:"Diagnostics on stderr (repeat for more). Never prints secret values."`

	App         string   `env:"OV_APP" placeholder:"NAME" group:"secrets" help:"Secrets mode: inject the secrets of app NAME from the vault."`
	MachineKey  string   `env:"OV_MACHINE_KEY" default:"/run/secrets/machine.kek" placeholder:"PATH" group:"secrets" help:"The 32-byte machine key file, mode 0600, owned by ov-init's uid (default: ${default})."`
	Secrets     []string `env:"OV_SECRETS" placeholder:"A,B" group:"secrets" help:"Inject only these secrets (a missing one is an error)."`
	PreserveEnv bool     `env:"OV_PRESERVE_ENV" group:"secrets" help:"An inherited variable wins over a secret of the same name."`
	User        string   `short:"u" env:"OV_USER" placeholder:"USER[:GROUP]" help:"Run the app as this user (after the key is read); names from the image's /etc/passwd and /etc/group. The app starts with no_new_privs and, unless USER is root, no capabilities in its bounding set."`
	// AllowNewPrivs keeps the app's way back to privilege open.
	AllowNewPrivs bool `env:"OV_ALLOW_NEW_PRIVS" help:"With --user: let setuid binaries and file capabilities raise the app's privileges again (no no_new_privs, bounding set kept). Off by default."`
}

// Options is one run of ov-init.
type Options struct {
	Flags
	Vault   string   // vault file, for secrets mode
	Command []string // the app's argv
	Env     []string // ov-init's environment, OV_* settings removed
	Self    string   // executable that carries the exec stage (/proc/self/exe)

	// Given records which secrets-mode settings were given at all (as a
	// flag or an OV_* variable, even empty), so that an empty --app or
	// --secrets, or a key or vault without --app, fails closed instead of
	// running the app without its secrets.
	Given map[string]bool
}

// Run supervises the app and returns ov-init's exit status.
func Run(o Options, sigs *reaper.Signals) int {
	cfg, err := o.config()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ov-init: %s\n", shellquote.Line(err.Error()))
		return reaper.ExitUsage
	}
	if o.App == "" {
		path, err := reaper.LookPath(o.Command[0], o.Env)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ov-init: %s\n", shellquote.Line(err.Error()))
			return err.(*reaper.ExecError).Status()
		}
		cfg.Path, cfg.Argv = path, o.Command
		if o.User != "" {
			if euid := os.Geteuid(); euid != 0 {
				fmt.Fprintf(os.Stderr, "ov-init: --user %s: ov-init runs as uid %d and can only change user when it starts as root\n", o.User, euid)
				return reaper.ExitConfig
			}
			acct, err := account.Lookup(o.User)
			if err != nil {
				fmt.Fprintf(os.Stderr, "ov-init: %s\n", shellquote.Line(err.Error()))
				return reaper.ExitConfig
			}
			cfg.Credential = &acct.Credential
			cfg.Env = withHome(cfg.Env, acct.Home)
			if !o.AllowNewPrivs {
				cfg.Restrict = restrict(acct.Credential.Uid, o.Verbose)
			}
		}
		return reaper.Run(cfg, sigs)
	}
	if o.Vault == "" {
		o.Vault = DefaultVault()
	}
	stage := execstage.Config{
		App:         o.App,
		MachineKey:  o.MachineKey,
		Vault:       o.Vault,
		Secrets:     o.Secrets,
		PreserveEnv: o.PreserveEnv,
		User:        o.User,
		Verbose:     o.Verbose,
		NoNewPrivs:  o.User != "" && !o.AllowNewPrivs,
	}
	b, err := stage.MarshalBinary()
	if err != nil {
		fmt.Fprintf(os.Stderr, "ov-init: %s\n", shellquote.Line(err.Error()))
		return reaper.ExitInternal
	}
	cfg.ReadyFD = reaper.FreeFD()
	cfg.Path = o.Self
	cfg.Argv = execstage.Argv(cfg.ReadyFD, o.Command)
	cfg.Stage = b
	return reaper.Run(cfg, sigs)
}

// restrict is plain mode's Config.Restrict with --user: no_new_privs, and
// an empty bounding set unless the app runs as root.
func restrict(uid uint32, verbose int) func() error {
	return func() error {
		if uid != 0 {
			if err := privs.DropBoundingSet(); errors.Is(err, privs.ErrBoundingSetKept) {
				if verbose >= 1 {
					fmt.Fprintf(os.Stderr, "ov-init: %s\n", shellquote.Line(err.Error()))
				}
			} else if err != nil {
				return err
			}
		}
		return privs.SetNoNewPrivs()
	}
}

// config checks the flags that need more than kong's types.
func (o Options) config() (reaper.Config, error) {
	cfg := reaper.Config{
		Env:       o.Env,
		KillGroup: o.KillGroup,
		TermDelay: o.TermDelay,
		Grace:     o.Grace,
		Verbose:   o.Verbose,
		Log:       os.Stderr,
	}
	if len(o.Command) == 0 {
		return cfg, fmt.Errorf("no command given: usage is ov-init [flags] -- COMMAND [ARG...]")
	}
	if o.TermDelay < 0 || o.Grace < 0 {
		return cfg, fmt.Errorf("--term-delay and --grace take a positive duration such as 5s")
	}
	for _, code := range o.RemapExit {
		if code < 0 || code > 255 {
			return cfg, fmt.Errorf("--remap-exit %d: an exit status is 0..255", code)
		}
		if cfg.RemapExit == nil {
			cfg.RemapExit = map[int]bool{}
		}
		cfg.RemapExit[code] = true
	}
	for _, spec := range o.Rewrite {
		from, to, err := ParseRewrite(spec)
		if err != nil {
			return cfg, err
		}
		if cfg.Rewrite == nil {
			cfg.Rewrite = map[syscall.Signal]syscall.Signal{}
		}
		cfg.Rewrite[from] = to
	}
	if o.Given["app"] {
		if err := vault.ValidAppName(o.App); err != nil {
			return cfg, fmt.Errorf("--app / OV_APP: %v", err)
		}
	}
	if o.App == "" {
		for _, name := range []string{"machine-key", "vault", "secrets", "preserve-env"} {
			if o.Given[name] {
				return cfg, fmt.Errorf("--%s needs --app NAME (secrets mode); without --app ov-init injects no secrets", name)
			}
		}
		if len(o.Secrets) > 0 || o.PreserveEnv {
			return cfg, fmt.Errorf("--secrets and --preserve-env need --app NAME (secrets mode)")
		}
	}
	if o.Given["secrets"] {
		if len(o.Secrets) == 0 {
			return cfg, fmt.Errorf("--secrets / OV_SECRETS is empty: name the secrets to inject, or leave it unset for all of them")
		}
		for _, name := range o.Secrets {
			if err := vault.ValidSecretName(name); err != nil {
				return cfg, fmt.Errorf("--secrets: %v", err)
			}
		}
	}
	return cfg, nil
}

// ParseRewrite reads a --rewrite FROM:TO spec.
func ParseRewrite(spec string) (from, to syscall.Signal, err error) {
	f, t, ok := strings.Cut(spec, ":")
	if !ok {
		return 0, 0, fmt.Errorf("--rewrite %q: want FROM:TO, e.g. TERM:QUIT or USR1:0", spec)
	}
	if from, err = reaper.ParseSignal(f, false); err != nil {
		return 0, 0, fmt.Errorf("--rewrite %q: %v", spec, err)
	}
	if to, err = reaper.ParseSignal(t, true); err != nil {
		return 0, 0, fmt.Errorf("--rewrite %q: %v", spec, err)
	}
	return from, to, nil
}

// CleanEnv removes ov-init's own OV_* settings from env: they configure
// ov-init, not the app.
func CleanEnv(env []string, names []string) []string {
	out := make([]string, 0, len(env))
next:
	for _, kv := range env {
		for _, n := range names {
			if strings.HasPrefix(kv, n) && len(kv) > len(n) && kv[len(n)] == '=' {
				continue next
			}
		}
		out = append(out, kv)
	}
	return out
}

// withHome points HOME at the home of the user the app runs as, as su and
// gosu do; the one ov-init inherited is usually root's.
func withHome(env []string, home string) []string {
	if home == "" {
		return env
	}
	env = CleanEnv(env, []string{"HOME"})
	return append(env, "HOME="+home)
}

// SystemVault is where ov-init looks for the vault first.
const SystemVault = "/etc/ov/vault.json"

// UserVault is ov's default vault, relative to the home directory.
const UserVault = ".config/ov/vault.json"

// DefaultVault is /etc/ov/vault.json, or else the vault ov itself uses by
// default, so that a vault made with plain `ov vault init` works on the
// same host without --vault.
func DefaultVault() string {
	if _, err := os.Stat(SystemVault); err == nil {
		return SystemVault
	}
	if home, err := os.UserHomeDir(); err == nil {
		if p := filepath.Join(home, UserVault); fileExists(p) {
			return p
		}
	}
	return SystemVault
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
