// Package execstage is ov-init's exec stage: the short-lived process,
// started by PID 1 and already holding the pid the app will have, that
// reads the machine key, opens the app's secrets, drops privileges and
// execve's the app with the secrets in its environment.
//
// Invariant: key bytes and secret plaintext exist only in this process, and
// execve discards its whole address space. PID 1 never holds either. Any
// key, vault or secret error ends the stage with ExitConfig before the app
// is started.
package execstage

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/account"
	"github.com/ov-init/ov-init/keyload"
	"github.com/ov-init/ov-init/reaper"
	"github.com/ov-init/ov-init/vault"
)

// Arg is the argv[1] by which ov-init recognises its own exec stage.
const Arg = "__ov_exec_stage"

// Config is what PID 1 passes to the exec stage (in argv, as JSON): only
// names and paths, never a secret.
type Config struct {
	// ReadyFD is the write end of PID 1's pipe: it closes on execve, which
	// tells PID 1 that the app runs and signals may be forwarded to it.
	ReadyFD int `json:"ready_fd"`

	App         string   `json:"app"`
	MachineKey  string   `json:"machine_key"`
	Vault       string   `json:"vault"`
	Secrets     []string `json:"secrets"`
	PreserveEnv bool     `json:"preserve_env,omitempty"`
	User        string   `json:"user,omitempty"`
	Verbose     int      `json:"verbose,omitempty"`
	Argv        []string `json:"argv"`
}

// Requested reports whether args start the exec stage.
func Requested(args []string) bool {
	return len(args) == 3 && args[1] == Arg
}

// Main runs the exec stage. It returns only on failure, with the status
// ov-init must exit with, after one line on stderr.
func Main(args []string) int {
	var cfg Config
	if err := json.Unmarshal([]byte(args[2]), &cfg); err != nil || len(cfg.Argv) == 0 || cfg.ReadyFD < 3 {
		fmt.Fprintln(os.Stderr, "ov-init: exec stage started without a valid configuration")
		return reaper.ExitInternal
	}
	// The pipe came in through dup2 and lost close-on-exec; the app must
	// not inherit it, and PID 1 must see it close.
	unix.CloseOnExec(cfg.ReadyFD)
	err := run(cfg)
	fmt.Fprintf(os.Stderr, "ov-init: %v\n", err)
	var ee *reaper.ExecError
	if errors.As(err, &ee) {
		return ee.Status()
	}
	return reaper.ExitConfig
}

// run returns only on failure.
func run(cfg Config) error {
	env, err := secretEnv(cfg)
	if err != nil {
		return err
	}
	if cfg.User != "" {
		acct, err := account.Lookup(cfg.User)
		if err != nil {
			return err
		}
		if err := drop(acct); err != nil {
			return err
		}
		if acct.Home != "" {
			env = setenv(env, "HOME", acct.Home, false)
		}
	}
	path, err := reaper.LookPath(cfg.Argv[0], env)
	if err != nil {
		return err
	}
	logf(cfg, 1, "executing %q", path)
	err = syscall.Exec(path, cfg.Argv, env)
	if err == syscall.ENOEXEC {
		if argv, ok := reaper.ShellFallback(path, cfg.Argv); ok {
			err = syscall.Exec(argv[0], argv, env)
		}
	}
	return &reaper.ExecError{Command: cfg.Argv[0], Err: err}
}

// secretEnv reads the key, opens the secrets and returns the app's
// environment. The key is wiped before it returns.
func secretEnv(cfg Config) ([]string, error) {
	key, err := keyload.Load(cfg.MachineKey)
	if err != nil {
		return nil, err
	}
	defer key.Wipe()
	v, err := vault.Load(cfg.Vault)
	if err != nil {
		return nil, vaultError(cfg, err)
	}
	secrets, err := v.Open(cfg.App, key.Bytes(), cfg.Secrets)
	if err != nil {
		return nil, vaultError(cfg, err)
	}
	defer vault.WipeAll(secrets)
	key.Wipe()

	env := os.Environ()
	names := make([]string, 0, len(secrets))
	for i := range secrets {
		env = setenv(env, secrets[i].Name, string(secrets[i].Value), cfg.PreserveEnv)
		names = append(names, secrets[i].Name)
	}
	logf(cfg, 1, "app %q: injecting %d secrets: %s", cfg.App, len(names), strings.Join(names, ", "))
	return env, nil
}

// vaultError says what went wrong with the vault in one line, with the fix.
// It never includes a value.
func vaultError(cfg Config, err error) error {
	derive := fmt.Sprintf("ov auth derive-machine-key --out %s --app %s --force", cfg.MachineKey, cfg.App)
	var wrong *vault.WrongAppError
	switch {
	case errors.As(err, &wrong):
		return fmt.Errorf("machine key %q is scoped to app %q, not %q; fix: derive a key for %q with `%s`",
			cfg.MachineKey, wrong.KeyApp, cfg.App, cfg.App, derive)
	case errors.Is(err, vault.ErrWrongKey):
		return fmt.Errorf("machine key %q does not open app %q in vault %q (a key from before `ov app rotate %s`, or for another vault); fix: derive it again with `%s`",
			cfg.MachineKey, cfg.App, cfg.Vault, cfg.App, derive)
	case errors.Is(err, vault.ErrNoSuchApp):
		return fmt.Errorf("vault %q has no app %q; fix: `ov app create %s` and seal its secrets, or correct --app", cfg.Vault, cfg.App, cfg.App)
	case errors.Is(err, vault.ErrNoSuchSecret):
		return fmt.Errorf("vault %q: %v; fix: `ov secret set NAME --app %s`, or correct --secrets", cfg.Vault, err, cfg.App)
	case errors.Is(err, vault.ErrTampered), errors.Is(err, vault.ErrDecrypt):
		return fmt.Errorf("vault %q: %v; fix: the file was changed outside ov: restore it from version control or a backup", cfg.Vault, err)
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%v; fix: mount the vault at %s or point --vault / OV_VAULT at it", err, cfg.Vault)
	case errors.Is(err, vault.ErrUnsupportedVersion):
		return fmt.Errorf("%v; fix: run the ov-init release that matches the ov that wrote the vault", err)
	}
	return fmt.Errorf("%v; fix: point --vault / OV_VAULT at a vault file written by ov, or restore it from version control", err)
}

// drop switches to the app's user for good: groups first, while still root.
func drop(a *account.Account) error {
	c := a.Credential
	groups := make([]int, len(c.Groups))
	for i, g := range c.Groups {
		groups[i] = int(g)
	}
	if err := syscall.Setgroups(groups); err != nil {
		return fmt.Errorf("--user: setgroups: %v (ov-init must start as root to change user)", err)
	}
	if err := syscall.Setgid(int(c.Gid)); err != nil {
		return fmt.Errorf("--user: setgid %d: %v (ov-init must start as root to change user)", c.Gid, err)
	}
	if err := syscall.Setuid(int(c.Uid)); err != nil {
		return fmt.Errorf("--user: setuid %d: %v (ov-init must start as root to change user)", c.Uid, err)
	}
	return nil
}

// setenv sets name=value in env; with keep, an existing name wins.
func setenv(env []string, name, value string, keep bool) []string {
	for i, kv := range env {
		if k, _, ok := strings.Cut(kv, "="); ok && k == name {
			if !keep {
				env[i] = name + "=" + value
			}
			return env
		}
	}
	return append(env, name+"="+value)
}

func logf(cfg Config, level int, format string, args ...any) {
	if cfg.Verbose >= level {
		fmt.Fprintf(os.Stderr, "ov-init: "+format+"\n", args...)
	}
}
