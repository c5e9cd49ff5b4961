package initcmd

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ov-init/ov-init/account"
	"github.com/ov-init/ov-init/execpath"
	"github.com/ov-init/ov-init/execstage"
	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/internal/envlist"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/privs"
	"github.com/ov-init/ov-init/reaper"
	"github.com/ov-init/ov-init/secretfiles"
	"github.com/ov-init/ov-init/signame"
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
	Secrets     []string `env:"OV_SECRETS" placeholder:"A,B" group:"secrets" help:"Inject only these secrets (a missing one is an error); NAME:env, NAME:file or NAME:memfd chooses how one of them reaches the app."`
	PreserveEnv bool     `env:"OV_PRESERVE_ENV" group:"secrets" help:"An inherited variable wins over a secret of the same name (and an inherited NAME_FILE over a secret delivered as a file)."`
	SecretsAs   string   `env:"OV_SECRETS_AS" enum:"env,files,memfd" default:"env" placeholder:"env|files|memfd" group:"secrets" help:"How the app gets its secrets: env (NAME=value); files (NAME_FILE=DIR/NAME, a 0400 file of the app's user in --secrets-dir, which must be on tmpfs or ramfs; removed when the app exits); memfd (NAME_FILE=/proc/self/fd/N, a sealed memfd on no file system)."`
	SecretsDir  string   `env:"OV_SECRETS_DIR" default:"/run/ov" placeholder:"DIR" group:"secrets" help:"Where --secrets-as files writes: an existing directory on tmpfs or ramfs, owned by ov-init's uid or the app's, empty, not shared with other users, under directories only root or ov-init's uid can change (default: ${default})."`
	User        string   `short:"u" env:"OV_USER" placeholder:"USER[:GROUP]" help:"Run the app as this user (after the key is read); names from the image's /etc/passwd and /etc/group. The app starts with no_new_privs and, unless USER is root, no capabilities in its bounding set."`
	// AllowNewPrivs keeps the app's way back to privilege open.
	AllowNewPrivs bool `env:"OV_ALLOW_NEW_PRIVS" help:"With --user: let setuid binaries and file capabilities raise the app's privileges again (no no_new_privs, bounding set kept). Off by default."`
}

// secretsGroup is the kong group of the secrets-mode settings: given
// without --app, any of them is a usage error (see checkNeedsApp).
const secretsGroup = "secrets"

// Options is one run of ov-init. Make it with New (or Main's parser).
type Options struct {
	Flags
	Vault   string   // vault file, for secrets mode; "" for the default
	Command []string // the app's argv
	Env     []string // ov-init's environment, OV_* settings removed

	// prog names the program in every line a run prints, its exec
	// stage's and the reaper's included: the kong parser's name, "ov"
	// for `ov run`; "" is ov-init (see Prog).
	prog string

	// given records which secrets-mode settings, and --grace, were given
	// at all (as a flag or an OV_* variable, even empty), so that an empty
	// --app or --secrets, or a key or vault without --app, fails closed
	// instead of running the app without its secrets, and a --grace of 0
	// is not taken for none.
	given map[string]bool

	// emptyVault: --vault or OV_VAULT was given, and empty.
	emptyVault bool
}

// Run supervises the app and returns ov-init's exit status. A main that
// calls it must route the exec stage first (see the package doc).
func Run(o Options, sigs *reaper.Signals) int {
	cfg, err := o.config()
	if err != nil {
		return o.fail(exitcode.Usage, err)
	}
	mode := o.plainMode
	if o.App != "" {
		mode = o.secretsMode
	}
	if status, err := mode(&cfg); err != nil {
		return o.fail(status, err)
	}
	return reaper.Run(cfg, sigs)
}

// fail writes err as ov-init's one line on stderr and returns status.
func fail(status int, err error) int {
	return Options{}.fail(status, err)
}

// fail writes err as the run's one line on stderr, "ov-init: " or, for
// `ov run`, "ov: " first, and returns status.
func (o Options) fail(status int, err error) int {
	fmt.Fprintf(os.Stderr, "%s: %s\n", o.Prog(), shellquote.Line(err.Error()))
	return status
}

// Prog is the program whose lines the run prints: "ov" for `ov run`,
// else "ov-init".
func (o Options) Prog() string {
	if o.prog == "" {
		return ovInitName
	}
	return o.prog
}

// plainMode makes cfg start the command itself: looked up in ov-init's PATH,
// and with --user as that user, under no_new_privs unless
// --allow-new-privs. On failure it returns the status to exit with.
func (o Options) plainMode(cfg *reaper.Config) (int, error) {
	path, err := execpath.LookPath(o.Command[0], o.Env)
	if err != nil {
		return err.(*execpath.Error).Status(), err
	}
	cfg.Path, cfg.Argv = path, o.Command
	if o.User == "" {
		return 0, nil
	}
	if euid := os.Geteuid(); euid != 0 {
		return exitcode.Config, fmt.Errorf("--user %s: ov-init runs as uid %d and can only change user when it starts as root", o.User, euid)
	}
	acct, err := account.Lookup(o.User)
	if err != nil {
		return exitcode.Config, err
	}
	cfg.Credential = &acct.Credential
	if acct.Home != "" {
		// As su and gosu do; the HOME ov-init inherited is usually root's.
		cfg.Env = envlist.Set(cfg.Env, "HOME", acct.Home)
	}
	if !o.AllowNewPrivs {
		cfg.Restrict = restrict(o.Prog(), acct.Credential.Uid, o.Verbose)
	}
	return 0, nil
}

// secretsMode makes cfg start ov-init's exec stage in place of the command
// (see the package doc): the stage gets the command as its argv and the
// names and paths it needs through the hand-off socket.
func (o Options) secretsMode(cfg *reaper.Config) (int, error) {
	if o.Vault == "" {
		o.Vault = defaultVault()
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
		SecretsAs:   o.secretsAs(),
	}
	if secretfiles.UsesFiles(stage.SecretsAs, o.Secrets) {
		stage.SecretsDir = filepath.Clean(o.SecretsDir)
		cfg.StageCleanup = clearSecretsDir(stage.SecretsDir)
	}
	b, err := stage.MarshalBinary()
	if err != nil {
		return exitcode.Internal, err
	}
	cfg.StageFD = reaper.FreeFD()
	cfg.Path = self
	cfg.Argv = execstage.Argv(o.Prog(), cfg.StageFD, o.Command)
	cfg.StageConfig = b
	return 0, nil
}

// secretsAs is --secrets-as, env when unset (the plain fast path leaves it
// so, as kong's default would).
func (o Options) secretsAs() string {
	if o.SecretsAs == "" {
		return secretfiles.AsEnv
	}
	return o.SecretsAs
}

// clearSecretsDir is PID 1's clean-up of --secrets-as files: when the app
// has exited, however it ended, the files the exec stage wrote are
// removed, by name (see secretfiles.Clear).
func clearSecretsDir(dir string) func(logf func(int, string, ...any)) {
	return func(logf func(int, string, ...any)) {
		n, err := secretfiles.Clear(dir)
		if err != nil {
			logf(0, "%s", shellquote.Line(err.Error()))
			return
		}
		logf(1, "removed %d secret files from %s", n, shellquote.Quote(dir))
	}
}

// self is the executable the exec stage runs from: ov-init itself (or ov,
// for `ov run`), even when its file has been replaced or removed since it
// started.
const self = "/proc/self/exe"

// restrict is plain mode's Config.Restrict with --user: no_new_privs, and
// an empty bounding set unless the app runs as root.
func restrict(prog string, uid uint32, verbose int) func() error {
	return func() error {
		kept, err := privs.Restrict(uid != 0)
		if kept != nil && verbose >= 1 {
			fmt.Fprintf(os.Stderr, "%s: %s\n", prog, shellquote.Line(kept.Error()))
		}
		return err
	}
}

// config checks the settings kong's types cannot, and turns the signal
// handling ones into a reaper.Config. Each rule is one function below; the
// first broken one is the usage error.
func (o Options) config() (reaper.Config, error) {
	cfg := reaper.Config{
		Env:       o.Env,
		KillGroup: o.KillGroup,
		TermDelay: o.TermDelay,
		Grace:     o.Grace,
		Verbose:   o.Verbose,
		Log:       os.Stderr,
		Prog:      o.Prog(),
	}
	var err error
	if err = checkCommand(o.Command); err != nil {
		return cfg, err
	}
	if err = checkDurations(o.TermDelay, o.Grace, o.given["grace"]); err != nil {
		return cfg, err
	}
	if cfg.RemapExit, err = remapExit(o.RemapExit); err != nil {
		return cfg, err
	}
	if cfg.Rewrite, err = rewrites(o.Rewrite); err != nil {
		return cfg, err
	}
	return cfg, o.checkSecretsMode()
}

func checkCommand(command []string) error {
	if len(command) == 0 {
		return errors.New("no command given: usage is ov-init [flags] -- COMMAND [ARG...]")
	}
	return nil
}

// checkDurations: neither is negative, and a --grace that was given is
// more than 0. Unset, --grace means no SIGKILL of the app; 0 would read as
// "kill at once", which it never did, so it is refused rather than
// quietly taken as unset.
func checkDurations(termDelay, grace time.Duration, graceGiven bool) error {
	if termDelay < 0 || grace < 0 {
		return errors.New("--term-delay and --grace take a positive duration such as 5s")
	}
	if graceGiven && grace == 0 {
		return errors.New("--grace / OV_GRACE is 0: give a duration over 0, such as 5s, or leave it unset (the app is then never sent SIGKILL)")
	}
	return nil
}

// remapExit is --remap-exit as a set; nil when empty.
func remapExit(codes []int) (map[int]bool, error) {
	var set map[int]bool
	for _, code := range codes {
		if code < 0 || code > 255 {
			return nil, fmt.Errorf("--remap-exit %d: an exit status is 0..255", code)
		}
		if set == nil {
			set = map[int]bool{}
		}
		set[code] = true
	}
	return set, nil
}

// rewrites is --rewrite as a map FROM → TO; nil when empty.
func rewrites(specs []string) (map[syscall.Signal]syscall.Signal, error) {
	var m map[syscall.Signal]syscall.Signal
	for _, spec := range specs {
		from, to, err := parseRewrite(spec)
		if err != nil {
			return nil, err
		}
		if m == nil {
			m = map[syscall.Signal]syscall.Signal{}
		}
		m[from] = to
	}
	return m, nil
}

// parseRewrite reads a --rewrite FROM:TO spec.
func parseRewrite(spec string) (from, to syscall.Signal, err error) {
	f, t, ok := strings.Cut(spec, ":")
	if !ok {
		return 0, 0, fmt.Errorf("--rewrite %q: want FROM:TO, e.g. TERM:QUIT or USR1:0", spec)
	}
	if from, err = signame.Parse(f, false); err != nil {
		return 0, 0, fmt.Errorf("--rewrite %q: %v", spec, err)
	}
	if to, err = signame.Parse(t, true); err != nil {
		return 0, 0, fmt.Errorf("--rewrite %q: %v", spec, err)
	}
	// A rewrite of a signal that never reaches the app through ov-init
	// would do nothing: say so rather than accept it.
	switch {
	case from == syscall.SIGKILL || from == syscall.SIGSTOP:
		return 0, 0, fmt.Errorf("--rewrite %q: %s cannot be caught, so ov-init never sees it to forward: drop this --rewrite", spec, signame.Name(from))
	case !reaper.Forwardable(from):
		return 0, 0, fmt.Errorf("--rewrite %q: ov-init never forwards %s (its own, or the Go runtime's): drop this --rewrite", spec, signame.Name(from))
	}
	return from, to, nil
}

// checkSecretsMode holds the fail-closed rules: the app never runs without
// the secrets it was meant to get.
func (o Options) checkSecretsMode() error {
	if err := o.checkApp(); err != nil {
		return err
	}
	if err := o.checkNeedsApp(); err != nil {
		return err
	}
	if err := o.checkPaths(); err != nil {
		return err
	}
	if err := o.checkSecrets(); err != nil {
		return err
	}
	return o.checkSecretsDir()
}

// checkPaths: a --vault or --machine-key given empty (OV_VAULT= in a
// manifest whose value did not get filled in) is a mistake, refused as
// OV_APP= is, not a quiet fall-back to the default places.
func (o Options) checkPaths() error {
	if o.emptyVault && o.App != "" {
		return errors.New("--vault / OV_VAULT is empty: give the vault's path, or leave it unset for the default places (/etc/ov/vault.json, else ~/.config/ov/vault.json)")
	}
	if o.given["machine-key"] && o.MachineKey == "" {
		return errors.New("--machine-key / OV_MACHINE_KEY is empty: give the key's path, or leave it unset for " + defaultMachineKey)
	}
	return nil
}

// checkApp: an --app that was given, even empty, must be a valid name.
func (o Options) checkApp() error {
	if o.given["app"] {
		if err := vault.ValidAppName(o.App); err != nil {
			return fmt.Errorf("--app / OV_APP: %v", err)
		}
	}
	return nil
}

// checkNeedsApp: a secrets-mode setting without --app is a mistake, never a
// plain run.
func (o Options) checkNeedsApp() error {
	if o.App != "" {
		return nil
	}
	for _, name := range []string{"machine-key", "vault", "secrets", "preserve-env", "secrets-as", "secrets-dir"} {
		if o.given[name] {
			return fmt.Errorf("--%s needs --app NAME (secrets mode); without --app ov-init injects no secrets", name)
		}
	}
	if len(o.Secrets) > 0 || o.PreserveEnv {
		return errors.New("--secrets and --preserve-env need --app NAME (secrets mode)")
	}
	return nil
}

// checkSecrets: a --secrets that was given names at least one secret, each
// a valid name, NAME:HOW with a known HOW, and no name twice in two ways.
func (o Options) checkSecrets() error {
	if !o.given["secrets"] {
		return nil
	}
	if len(o.Secrets) == 0 {
		return errors.New("--secrets / OV_SECRETS is empty: name the secrets to inject, or leave it unset for all of them")
	}
	how := map[string]string{}
	for _, spec := range o.Secrets {
		name, h, err := secretfiles.ParseSpec(spec)
		if err != nil {
			return fmt.Errorf("--secrets: %v", err)
		}
		if prev, seen := how[name]; seen && prev != h {
			return fmt.Errorf("--secrets names %s twice, in two ways; fix: name it once", name)
		}
		how[name] = h
	}
	return nil
}

// checkSecretsDir: --secrets-dir is an absolute path, and is given only
// when a secret goes there (a setting that does nothing is a mistake).
func (o Options) checkSecretsDir() error {
	if !o.given["secrets-dir"] {
		return nil
	}
	if !filepath.IsAbs(o.SecretsDir) {
		return fmt.Errorf("--secrets-dir / OV_SECRETS_DIR %q: want an absolute path, such as /run/ov", o.SecretsDir)
	}
	if !secretfiles.UsesFiles(o.secretsAs(), o.Secrets) {
		return errors.New("--secrets-dir / OV_SECRETS_DIR is where --secrets-as files (or --secrets NAME:file) writes, and no secret is delivered as a file: drop it, or add --secrets-as files")
	}
	return nil
}

// systemVault is where ov-init looks for the vault first.
const systemVault = "/etc/ov/vault.json"

// UserVault is ov's default vault, relative to the home directory.
const UserVault = ".config/ov/vault.json"

// defaultVault is /etc/ov/vault.json, or else the vault ov itself uses by
// default, so that a vault made with plain `ov vault init` works on the
// same host without --vault.
func defaultVault() string {
	home, _ := os.UserHomeDir()
	return pickVault(systemVault, home)
}

// pickVault is defaultVault's choice between the system vault and the one
// in home. Only a system vault that is not there at all (ENOENT) gives way:
// one that is there but unreadable, a dangling link (a broken ConfigMap
// mount), a directory that ov-init cannot search, is what the host was
// given, and its error is reported. Falling back would open another, maybe
// older, vault, where keys revoked since still work.
func pickVault(system, home string) string {
	if _, err := os.Lstat(system); !errors.Is(err, fs.ErrNotExist) {
		return system
	}
	if home != "" {
		if p := filepath.Join(home, UserVault); fileExists(p) {
			return p
		}
	}
	return system
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
