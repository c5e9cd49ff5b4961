// Package execstage is ov-init's exec stage: the short-lived process,
// started by PID 1 and already holding the pid the app will have, that
// reads the machine key, opens the app's secrets, drops privileges and
// execve's the app with the secrets in its environment, or (--secrets-as
// files|memfd, deliver.go) with NAME_FILE naming a file it wrote on the
// secrets dir's tmpfs or a sealed memfd it made, as the app's user.
//
// Invariant: key bytes and secret plaintext exist only in this process, and
// execve discards its whole address space. PID 1 never holds either. Any
// key, vault or secret error ends the stage before the app is started, with
// one line on stderr and its status sent back to PID 1 (see handoff.go).
package execstage

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/account"
	"github.com/ov-init/ov-init/execpath"
	"github.com/ov-init/ov-init/exitcode"
	"github.com/ov-init/ov-init/internal/envlist"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/keyload"
	"github.com/ov-init/ov-init/privs"
	"github.com/ov-init/ov-init/secretfiles"
	"github.com/ov-init/ov-init/vault"
)

// Arg is the argv[1] by which ov-init recognises its own exec stage.
const Arg = "__ov_exec_stage"

// Config is what PID 1 passes to the exec stage through the hand-off
// socket: only names and paths, never a secret. The app's argv travels as
// the stage's own argv.
type Config struct {
	App         string
	MachineKey  string
	Vault       string
	Secrets     []string // nil: every secret of the app; NAME or NAME:HOW (see secretfiles.ParseSpec)
	PreserveEnv bool
	SecretsAs   string // secretfiles.AsEnv ("" too), AsFiles or AsMemfd
	SecretsDir  string // for AsFiles: a clean absolute path
	User        string
	Verbose     int
	// NoNewPrivs: with User, the app starts with no_new_privs set and, if
	// it does not run as root, an empty capability bounding set.
	NoNewPrivs bool
}

// Main runs the exec stage. It returns only on failure, with the status
// ov-init must exit with, after one line on stderr and after sending that
// status to PID 1, which exits with it as it is: a failure here is never
// taken for the app's own exit (--remap-exit does not apply to it).
func Main(args []string) int {
	prog = Prog(args)
	fd, err := strconv.Atoi(args[2])
	if err != nil || fd < 3 || strconv.Itoa(fd) != args[2] {
		return invalid()
	}
	// Only PID 1's socket: never read from or answer into a file that a
	// stage started by hand happens to have at that number.
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFSOCK {
		return invalid()
	}
	// And only from PID 1: the socket's other end must belong to our
	// parent (the kernel records who made a socket pair). Any other peer,
	// say a connection inetd or systemd's Accept=yes left at that number,
	// could otherwise name the app, the key and the vault.
	if cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED); err != nil || int(cred.Pid) != parent() {
		return invalid()
	}
	// The socket came in through dup2 and lost close-on-exec; the app must
	// not inherit it, and PID 1 must see it close when the app runs.
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return invalid()
	}
	sock := os.NewFile(uintptr(fd), "exec-stage")
	data, err := io.ReadAll(io.LimitReader(sock, maxConfig+1))
	var cfg Config
	if err != nil || len(data) > maxConfig || cfg.UnmarshalBinary(data) != nil {
		return fail(sock, exitcode.Internal, errors.New("exec stage started without a valid configuration"))
	}
	err = run(cfg, args[3:], sock)
	status := exitcode.Config
	var ee *execpath.Error
	if errors.As(err, &ee) {
		status = ee.Status()
	}
	return fail(sock, status, err)
}

// parent is the pid whose socket the stage takes: PID 1, which started it.
// A variable so that a test running Main in its own process can be the peer.
var parent = os.Getppid

// invalid is the end of a stage started by hand or by something else.
func invalid() int {
	say("exec stage started without a valid configuration")
	return exitcode.Internal
}

// fail reports status to PID 1, then err on stderr, and returns status.
// The status goes first: if stderr is gone, PID 1 still knows.
func fail(sock *os.File, status int, err error) int {
	_, _ = sock.Write([]byte{byte(status)})
	say("%v", err)
	return status
}

// prog starts each line the stage writes: "ov" or "ov-init", as the
// program that started the stage (see Prog). Main sets it first.
var prog = ovInitProg

// say writes one line to stderr with write(2) itself. Through os.Stderr, a
// write to a closed pipe raises SIGPIPE, which would end the stage before
// it could tell PID 1 anything; here it is only an error, ignored.
func say(format string, args ...any) {
	line := shellquote.Line(fmt.Sprintf(format, args...))
	_, _ = unix.Write(2, []byte(prog+": "+line+"\n"))
}

// run returns only on failure. Just before execve it writes the 0 byte
// that tells PID 1 the app is starting (see reaper.Config.StageFD).
func run(cfg Config, argv []string, sock *os.File) error {
	if cfg.NoNewPrivs {
		// no_new_privs and the bounding set belong to one thread, and
		// execve takes the calling thread's: stay on one to the end.
		// Only then: a locked thread blocking in a read makes the
		// runtime start another, which start-up pays for.
		runtime.LockOSThread()
	}
	// The app is looked up with the PATH ov-init inherited, never one a
	// secret could bring.
	inherited := os.Environ()
	d, secrets, err := openSecrets(cfg, inherited)
	defer vault.WipeAll(secrets)
	if err != nil {
		return err
	}
	var acct *account.Account
	uid, gid := os.Geteuid(), os.Getegid()
	if cfg.User != "" {
		if acct, err = account.Lookup(cfg.User); err != nil {
			return err
		}
		uid, gid = int(acct.Credential.Uid), int(acct.Credential.Gid)
	}
	// The secrets dir is checked and given to the app's user while
	// ov-init is still itself; the files are written as the app's user.
	if err := d.take(cfg, uid, gid); err != nil {
		return err
	}
	defer d.close()
	if acct != nil {
		if cfg.NoNewPrivs {
			// While still root: emptying the bounding set takes
			// CAP_SETPCAP.
			kept, err := privs.Restrict(acct.Credential.Uid != 0)
			if kept != nil {
				logf(cfg, 1, "%v", kept)
			}
			if err != nil {
				return err
			}
		}
		if err := drop(acct); err != nil {
			return err
		}
		// Changing credentials resets the dumpable flag to
		// fs.suid_dumpable, which a host may set to 1: the app's user
		// could then ptrace this process, which still holds the
		// secrets (and Go heap copies of key material).
		if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
			return fmt.Errorf("--user: prctl(PR_SET_DUMPABLE): %v", err)
		}
		if acct.Home != "" {
			d.env = envlist.Set(d.env, "HOME", acct.Home)
		}
	}
	path, err := execpath.LookPath(argv[0], inherited)
	if err != nil {
		return err
	}
	// run returns only on failure: whatever deliver wrote goes then.
	defer d.undo()
	if err := d.deliver(sock); err != nil {
		return err
	}
	if err := secretfiles.Inherit(d.fds); err != nil {
		return err
	}
	logf(cfg, 1, "executing %q", path)
	if _, err := sock.Write([]byte{0}); err != nil {
		return fmt.Errorf("telling PID 1 that the app starts: %v", err)
	}
	env := d.env
	err = syscall.Exec(path, argv, env)
	if err == syscall.ENOEXEC {
		if shArgv, ok := execpath.ShellFallback(path, argv); ok {
			err = syscall.Exec(shArgv[0], shArgv, env)
		}
	}
	return &execpath.Error{Command: argv[0], Err: err}
}

// openSecrets reads the key, opens the secrets and plans their delivery
// (see plan): the app's environment, inherited plus the env secrets, and
// the secrets that go into files or memfds. The key is wiped before it
// returns; the values, which the caller wipes, are returned for that.
func openSecrets(cfg Config, inherited []string) (*delivery, []vault.Secret, error) {
	key, err := keyload.Load(cfg.MachineKey)
	if err != nil {
		return nil, nil, err
	}
	defer key.Wipe()
	v, err := vault.Load(cfg.Vault)
	if err != nil {
		return nil, nil, vaultError(cfg, err)
	}
	secrets, err := v.Open(cfg.App, key.Bytes(), specNames(cfg.Secrets))
	if err != nil {
		return nil, nil, vaultError(cfg, err)
	}
	key.Wipe()

	// Checked again here, not only by ov secret set: the vault may come
	// from an older or a hostile writer.
	for i := range secrets {
		if err := vault.ReservedName(secrets[i].Name); err != nil {
			return nil, secrets, fmt.Errorf("app %q in vault %q: secret %s: %v; fix: remove it with `ov secret rm %s --app %s` and seal the value under another name",
				cfg.App, cfg.Vault, secrets[i].Name, err, secrets[i].Name, cfg.App)
		}
	}
	names := make([]string, 0, len(secrets))
	for i := range secrets {
		names = append(names, secrets[i].Name)
	}
	logf(cfg, 1, "app %q: injecting %d secrets: %s", cfg.App, len(names), strings.Join(names, ", "))
	d, err := plan(cfg, inherited, secrets)
	if err != nil {
		return nil, secrets, err
	}
	d.log(cfg)
	return d, secrets, nil
}

// appEnv is the app's environment: inherited, with each secret in place of
// every inherited copy of its name, unless preserveEnv keeps the inherited
// one.
func appEnv(inherited []string, secrets []vault.Secret, preserveEnv bool) []string {
	env := inherited
	for i := range secrets {
		if _, found := envlist.Get(inherited, secrets[i].Name); !found || !preserveEnv {
			env = envlist.Set(env, secrets[i].Name, string(secrets[i].Value))
		}
	}
	return env
}

// vaultError says what went wrong with the vault in one line, with the fix.
// It never includes a value.
func vaultError(cfg Config, err error) error {
	key, app := shellquote.Quote(cfg.MachineKey), shellquote.Quote(cfg.App)
	derive := fmt.Sprintf("ov auth derive-machine-key --out %s --app %s --force", key, app)
	var wrong *vault.WrongAppError
	var retired *vault.RetiredKeyError
	switch {
	// The retired list is not authenticated for a machine key: report what
	// the vault says, not a fact.
	case errors.As(err, &retired) && retired.Reason == vault.ReasonRevoked:
		return fmt.Errorf("machine key %q is refused: the vault says deployment %q of app %q (generation %d) was revoked on %s; fix: if this host should run, grant it a new deployment with `ov auth derive-machine-key --out %s --app %s --deployment NAME --force` and deploy that key",
			cfg.MachineKey, retired.Deployment, retired.App, retired.Generation, retired.Date, key, app)
	case errors.As(err, &retired):
		return fmt.Errorf("machine key %q is refused: the vault says deployment %q of app %q (generation %d) was rotated on %s, to a newer key; fix: derive the current key with `ov auth derive-machine-key --out %s --app %s --deployment %s --force` and deploy it",
			cfg.MachineKey, retired.Deployment, retired.App, retired.Generation, retired.Date, key, app, shellquote.Quote(retired.Deployment))
	case errors.As(err, &wrong) && wrong.KeyDeployment != "":
		return fmt.Errorf("machine key %q is deployment %q of app %q, not a key of app %q; fix: mount the key of app %q, or derive one with `%s`",
			cfg.MachineKey, wrong.KeyDeployment, wrong.KeyApp, cfg.App, cfg.App, derive)
	case errors.As(err, &wrong):
		return fmt.Errorf("machine key %q is scoped to app %q, not %q; fix: derive a key for %q with `%s`",
			cfg.MachineKey, wrong.KeyApp, cfg.App, cfg.App, derive)
	case errors.Is(err, vault.ErrWrongKey) && errors.Is(err, vault.ErrExport):
		return fmt.Errorf("machine key %q does not open app %q in vault %q: %v; fix: if the key was derived or rotated after the export was made, export again with `ov vault export --app %s --out FILE` and deploy that file (the key stays); otherwise check --vault and --machine-key",
			cfg.MachineKey, cfg.App, cfg.Vault, err, app)
	case errors.Is(err, vault.ErrWrongKey):
		return fmt.Errorf("machine key %q does not open app %q in vault %q: it is a key of another vault, or a key from before `ov app rotate %s` or from a vault restored from an older copy; fix: check --vault and --machine-key, or derive it again with `%s`",
			cfg.MachineKey, cfg.App, cfg.Vault, app, derive)
	case errors.Is(err, vault.ErrNoSuchApp) && errors.Is(err, vault.ErrExport):
		return fmt.Errorf("vault %q: %v; fix: export app %s from the full vault with `ov vault export --app %s --out FILE` and deploy that file, or correct --app",
			cfg.Vault, err, app, app)
	case errors.Is(err, vault.ErrNoSuchApp):
		return fmt.Errorf("vault %q has no app %q; fix: `ov app create %s` and seal its secrets, or correct --app", cfg.Vault, cfg.App, app)
	case errors.Is(err, vault.ErrNoSuchSecret):
		return fmt.Errorf("vault %q: %v; fix: `ov secret set NAME --app %s`, or correct --secrets", cfg.Vault, err, app)
	case errors.Is(err, vault.ErrTampered), errors.Is(err, vault.ErrDecrypt):
		return fmt.Errorf("vault %q: %v; fix: the file was changed outside ov: restore it from version control or a backup", cfg.Vault, err)
	case errors.Is(err, vault.ErrUnauthenticatedTable):
		return fmt.Errorf("vault %q: %v; fix: `ov vault upgrade --vault %s`, then redeploy the file", cfg.Vault, err, shellquote.Quote(cfg.Vault))
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%v; fix: mount the vault at %s or point --vault / OV_VAULT at it", err, shellquote.Quote(cfg.Vault))
	case errors.Is(err, fs.ErrPermission):
		// The vault is read before --user drops privileges: as ov-init's
		// uid. Never chown: the owner could write the file and put an
		// older copy back. And 644 only for an export: a full vault also
		// holds the password-wrapped root key, open to offline guessing.
		uid, p := os.Geteuid(), shellquote.Quote(cfg.Vault)
		return fmt.Errorf("%v; fix: let uid %d (ov-init) read it: if it is an export (ov vault export), chmod 644 %s; if it is the full vault, deploy the app's export there instead (`ov vault export --app %s --out FILE`); and make its directories searchable by uid %d",
			err, uid, p, app, uid)
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

func logf(cfg Config, level int, format string, args ...any) {
	if cfg.Verbose >= level {
		say(format, args...)
	}
}
