package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/ov-init/ov-init/internal/atomicfile"
	"github.com/ov-init/ov-init/vault"
)

// cli is ov's command tree.
type cli struct {
	Globals `embed:""`

	VaultCmd vaultCmd  `cmd:"" name:"vault" help:"Create the vault, change its master password, upgrade its format, export an app for a host."`
	App      appCmd    `cmd:"" help:"Create, list and rotate apps."`
	Secret   secretCmd `cmd:"" help:"Set, list and remove an app's secrets."`
	Auth     authCmd   `cmd:"" help:"Derive, list, rotate and revoke the machine keys ov-init reads, one per deployment."`
	Run      runCmd    `cmd:"" help:"Run a command as ov-init does, with the same flags."`
}

// Globals are the flags every command takes.
type Globals struct {
	Vault        string           `env:"OV_VAULT" default:"${vault}" placeholder:"PATH" help:"The vault file (default: ${default})."`
	PasswordFile string           `env:"OV_PASSWORD_FILE" placeholder:"PATH" help:"Read the master password from the first line of this file instead of asking on the terminal."`
	Version      kong.VersionFlag `help:"Print the version and exit."`

	// loaded is the format version of the vault as load read it (0: none
	// read), so that save can tell a write that upgraded it; rekeyed says
	// the write changed the master password.
	loaded  int
	rekeyed bool
}

type vaultCmd struct {
	Init    vaultInitCmd    `cmd:"" help:"Create a new, empty vault under a new master password."`
	Passwd  vaultPasswdCmd  `cmd:"" help:"Change the master password. Machine keys stay valid."`
	Upgrade vaultUpgradeCmd `cmd:"" help:"Upgrade a format-1 vault to format 2, whose table of apps is authenticated (any other write upgrades it too). Machine keys stay valid."`
	Export  vaultExportCmd  `cmd:"" help:"Write one app's sealed secrets and grants, without the master-password key, for a host or an image (/etc/ov/vault.json)."`
}

type appCmd struct {
	Create appCreateCmd `cmd:"" help:"Add an app to the vault."`
	List   appListCmd   `cmd:"" help:"Print the vault's apps, one per line."`
	Rotate appRotateCmd `cmd:"" help:"Re-seal an app under a new key. Deployment keys keep working; keys from before deployments stop."`
}

type secretCmd struct {
	Set  secretSetCmd  `cmd:"" help:"Seal a secret for an app. The value comes from stdin (less one final newline, \\n or \\r\\n), or a prompt when stdin is a terminal."`
	List secretListCmd `cmd:"" help:"Print an app's secret names (never values), one per line."`
	Rm   secretRmCmd   `cmd:"" help:"Remove a secret from an app."`
}

type authCmd struct {
	DeriveMachineKey deriveCmd     `cmd:"" name:"derive-machine-key" help:"Write the machine key of one deployment of an app for ov-init (--machine-key); with --force over an existing key file, rotate it."`
	List             authListCmd   `cmd:"" help:"Print an app's deployments (name, generation, created, last rotated) and its retired keys."`
	Revoke           authRevokeCmd `cmd:"" help:"Revoke one deployment's key: the app moves to a new key, every other deployment keeps its key file."`
}

// path returns the vault file's path, or says how to name one.
func (g *Globals) path() (string, error) {
	if g.Vault == "" {
		return "", usageError("no vault file: the home directory is unknown ($HOME unset); pass --vault PATH or set OV_VAULT")
	}
	return g.Vault, nil
}

// load reads and parses the vault file.
func (g *Globals) load() (*vault.Vault, error) {
	path, err := g.path()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no vault at %q; create one with: ov vault init (or pass --vault PATH)", path)
	}
	v, err := vault.Load(path)
	if err != nil {
		return nil, err
	}
	g.loaded = v.Version()
	return v, nil
}

// unlock asks for the master password and unwraps v's root key, which
// verifies the table of a format-2 vault, then refuses a vault older than
// the newest generation ov has seen of it (seen.go). The caller wipes the
// root.
func (g *Globals) unlock(v *vault.Vault) (*vault.Root, error) {
	if err := v.ExportError(); err != nil { // before anyone types a password
		return nil, fmt.Errorf("vault %q: %w", g.Vault, err)
	}
	pw, err := g.password()
	if err != nil {
		return nil, err
	}
	defer clear(pw)
	root, err := v.Unlock(pw)
	if errors.Is(err, vault.ErrWrongPassword) {
		fix := "try again"
		if g.PasswordFile != "" {
			fix = fmt.Sprintf("check the password file %q", g.PasswordFile)
		}
		return nil, fmt.Errorf("wrong password for vault %q (or its header was altered); %s", g.Vault, fix)
	}
	if errors.Is(err, vault.ErrTampered) {
		return nil, fmt.Errorf("vault %q: %w; nothing was changed: restore it from a copy you trust", g.Vault, err)
	}
	if err != nil {
		return nil, fmt.Errorf("vault %q: %w", g.Vault, err)
	}
	// The generation is authenticated now: refuse an older copy than one
	// seen before, before anything is derived or written.
	if err := g.checkSeen(v); err != nil {
		root.Wipe()
		return nil, err
	}
	return root, nil
}

// password is the master password: the first line of --password-file, else
// a prompt on the terminal. The caller wipes it.
func (g *Globals) password() ([]byte, error) {
	if g.PasswordFile != "" {
		return readPasswordFile(g.PasswordFile)
	}
	return prompt("Master password: ",
		"no terminal to ask for the master password; use --password-file or OV_PASSWORD_FILE")
}

// save writes v back to the vault file and records its new generation as
// the newest seen. When the write upgraded a format-1 vault, it says so in
// one line, with the table it has just authenticated.
func (g *Globals) save(v *vault.Vault) error {
	data, err := v.Marshal()
	if err == nil {
		err = atomicfile.Write(g.Vault, data, atomicfile.Options{Perm: 0o600})
	}
	if err != nil {
		return fmt.Errorf("saving vault %q: %w", g.Vault, err)
	}
	g.recordSeen(v)
	if g.loaded == vault.Version1 && v.Version() == vault.Version {
		g.loaded = v.Version()
		closing := "to make old-format copies useless, change the master password: ov vault passwd"
		if g.rekeyed {
			closing = "old-format copies do not unlock with the new master password"
		}
		fmt.Fprintf(os.Stderr, "ov: upgraded vault %q from format 1 to 2: its table of apps is now authenticated under the root key (apps: %s); "+
			"if you had upgraded this vault before, someone replaced it with an old-format copy: restore it from a copy you trust; %s\n",
			g.Vault, appTable(v), closing)
	}
	return nil
}

// appTable lists v's apps and their epochs: "api epoch 1, web epoch 2".
func appTable(v *vault.Vault) string {
	var b strings.Builder
	for i, app := range v.Apps() {
		if i > 0 {
			b.WriteString(", ")
		}
		epoch, _ := v.Epoch(app)
		fmt.Fprintf(&b, "%s epoch %d", app, epoch)
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}

// loadApp reads the vault and checks that it has app, before anyone types
// a password.
func (g *Globals) loadApp(app string) (*vault.Vault, error) {
	v, err := g.load()
	if err != nil {
		return nil, err
	}
	if err := g.app(v, app); err != nil {
		return nil, err
	}
	return v, nil
}

// unlockApp is loadApp, then the password: the vault, its root key (the
// caller wipes it) and, for a format-2 vault, a verified table.
func (g *Globals) unlockApp(app string) (*vault.Vault, *vault.Root, error) {
	v, err := g.loadApp(app)
	if err != nil {
		return nil, nil, err
	}
	root, err := g.unlock(v)
	if err != nil {
		return nil, nil, err
	}
	return v, root, nil
}

// app checks that the vault has app, before anyone types a password.
func (g *Globals) app(v *vault.Vault, app string) error {
	if err := vault.ValidAppName(app); err != nil {
		return usageError(err.Error())
	}
	if !v.HasApp(app) && v.Exported() != "" {
		return fmt.Errorf("vault %q is an export of app %q only, for hosts and images; run ov on the full vault (--vault PATH)", g.Vault, v.Exported())
	}
	if !v.HasApp(app) {
		return fmt.Errorf("vault %q has no app %q; create it with: ov app create %s", g.Vault, app, app)
	}
	return nil
}

type vaultInitCmd struct{}

func (vaultInitCmd) Run(g *Globals) error {
	path, err := g.path()
	if err != nil {
		return err
	}
	if err := refuseExisting(path); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the vault's directory: %w", err)
	}
	pw, err := newPassword(g.PasswordFile, "--password-file or OV_PASSWORD_FILE")
	if err != nil {
		return err
	}
	defer clear(pw)
	v, root, err := vault.New(pw)
	if err != nil {
		return err
	}
	root.Wipe()
	// Again: it may have appeared while the password was typed.
	if err := refuseExisting(path); err != nil {
		return err
	}
	if err := g.save(v); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ov: created vault %q\n", path)
	return nil
}

func refuseExisting(path string) error {
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("vault %q already exists; pass another --vault PATH, or remove it first", path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

type vaultPasswdCmd struct {
	NewPasswordFile string `env:"OV_NEW_PASSWORD_FILE" placeholder:"PATH" help:"Read the new master password from the first line of this file instead of asking on the terminal."`
}

func (c vaultPasswdCmd) Run(g *Globals) error {
	v, err := g.load()
	if err != nil {
		return err
	}
	root, err := g.unlock(v)
	if err != nil {
		return err
	}
	defer root.Wipe()
	pw, err := newPassword(c.NewPasswordFile, "--new-password-file or OV_NEW_PASSWORD_FILE")
	if err != nil {
		return err
	}
	defer clear(pw)
	if err := v.ChangePassword(root, pw); err != nil {
		return err
	}
	g.rekeyed = true
	if err := g.save(v); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ov: changed the master password of vault %q; machine keys stay valid\n", g.Vault)
	return nil
}

type vaultUpgradeCmd struct{}

func (vaultUpgradeCmd) Run(g *Globals) error {
	v, err := g.load()
	if err != nil {
		return err
	}
	root, err := g.unlock(v) // verifies the table of a format-2 vault
	if err != nil {
		return err
	}
	defer root.Wipe()
	if v.Version() == vault.Version {
		fmt.Fprintf(os.Stderr, "ov: vault %q is already format %d and its table of apps verified under the root key; nothing changed\n", g.Vault, vault.Version)
		return nil
	}
	if err := v.Upgrade(root); err != nil {
		return fmt.Errorf("vault %q: %w", g.Vault, err)
	}
	return g.save(v) // says what it upgraded
}

type appCreateCmd struct {
	Name string `arg:"" name:"app" help:"The app's name: lowercase letters, digits, '.', '_', '-'."`
}

func (c appCreateCmd) Run(g *Globals) error {
	if err := vault.ValidAppName(c.Name); err != nil {
		return usageError(err.Error())
	}
	v, err := g.load()
	if err != nil {
		return err
	}
	if v.HasApp(c.Name) {
		return fmt.Errorf("app %q already exists in vault %q", c.Name, g.Vault)
	}
	root, err := g.unlock(v)
	if err != nil {
		return err
	}
	defer root.Wipe()
	if err := v.CreateApp(root, c.Name); err != nil {
		return err
	}
	if err := g.save(v); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ov: created app %q; add secrets with: ov secret set NAME --app %s\n", c.Name, c.Name)
	return nil
}

type appListCmd struct{}

func (appListCmd) Run(g *Globals) error {
	v, err := g.load()
	if err != nil {
		return err
	}
	for _, app := range v.Apps() {
		fmt.Println(app)
	}
	return nil
}

type appRotateCmd struct {
	Name string `arg:"" name:"app" help:"The app to rotate."`
}

func (c appRotateCmd) Run(g *Globals) error {
	v, root, err := g.unlockApp(c.Name)
	if err != nil {
		return err
	}
	defer root.Wipe()
	if err := v.RotateApp(root, c.Name); err != nil {
		return err
	}
	if err := g.save(v); err != nil {
		return err
	}
	epoch, _ := v.Epoch(c.Name)
	fmt.Fprintf(os.Stderr, "ov: rotated app %q to epoch %d: every deployment key keeps working (its grant was re-sealed); app keys from before deployments stopped working (an unscoped key, the vault's root key, still opens it)\n", c.Name, epoch)
	fmt.Fprintf(os.Stderr, "ov: to cut off one leaked key, revoke its deployment instead: ov auth revoke --app %s NAME (see ov auth list --app %s)\n", c.Name, c.Name)
	// Rotation re-seals the same plaintext: say what it does not do, and
	// which values to change (names only, never a value).
	fmt.Fprintf(os.Stderr, "ov: the secret values stay the same, and a leaked key still opens every copy of the vault from before the rotation (git history, backups, images); after a leak, change the values too: ov secret set NAME --app %s\n", c.Name)
	if names, _ := v.SecretNames(c.Name); len(names) > 0 {
		fmt.Fprintf(os.Stderr, "ov: secrets of app %q to change after a leak: %s\n", c.Name, strings.Join(names, ", "))
	}
	return nil
}

type secretSetCmd struct {
	Name string `arg:"" name:"name" help:"The secret's name, an environment variable name."`
	App  string `required:"" placeholder:"APP" help:"The app the secret belongs to."`
}

// errValueArg refuses a secret value on the command line. It never repeats
// the argument: it may be the value.
const errValueArg = usageError("secret set takes the value on stdin or from the prompt, never as an argument " +
	"(ps and the shell history would show it; the argument is not repeated here): printf %s \"$VALUE\" | ov secret set NAME --app APP")

// errInvalidSecretName refuses a NAME of secret set or secret rm that is not
// an environment variable name. It never repeats the argument: a value typed
// where the name goes must not end up in a terminal's scrollback or a CI log.
const errInvalidSecretName = usageError("invalid secret name (not repeated here: it may be a secret value): " +
	"names must match [A-Za-z_][A-Za-z0-9_]*, at most 255 bytes")

func (c secretSetCmd) Run(g *Globals) error {
	// NAME=VALUE: the value on the command line. Main refuses a third
	// argument.
	if strings.Contains(c.Name, "=") {
		return errValueArg
	}
	if vault.ValidSecretName(c.Name) != nil {
		return errInvalidSecretName
	}
	// A valid name, so it may be named: PATH, LD_PRELOAD and the like.
	if err := vault.ReservedName(c.Name); err != nil {
		return usageError(err.Error())
	}
	v, root, err := g.unlockApp(c.App)
	if err != nil {
		return err
	}
	defer root.Wipe()
	value, err := readValue(c.Name)
	if err != nil {
		return err
	}
	defer clear(value)
	if err := v.SetSecret(root, c.App, c.Name, value); err != nil {
		return err
	}
	if err := g.save(v); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ov: set secret %q of app %q\n", c.Name, c.App)
	return nil
}

type secretListCmd struct {
	App string `required:"" placeholder:"APP" help:"The app whose secret names to print."`
}

func (c secretListCmd) Run(g *Globals) error {
	v, err := g.loadApp(c.App)
	if err != nil {
		return err
	}
	names, err := v.SecretNames(c.App)
	if err != nil {
		return err
	}
	for _, name := range names {
		fmt.Println(name)
	}
	return nil
}

type secretRmCmd struct {
	Name string `arg:"" name:"name" help:"The secret to remove."`
	App  string `required:"" placeholder:"APP" help:"The app the secret belongs to."`
}

func (c secretRmCmd) Run(g *Globals) error {
	if vault.ValidSecretName(c.Name) != nil {
		return errInvalidSecretName
	}
	v, err := g.loadApp(c.App)
	if err != nil {
		return err
	}
	names, _ := v.SecretNames(c.App)
	if !slices.Contains(names, c.Name) {
		return fmt.Errorf("app %q has no secret %q; see: ov secret list --app %s", c.App, c.Name, c.App)
	}
	root, err := g.unlock(v)
	if err != nil {
		return err
	}
	defer root.Wipe()
	if err := v.RemoveSecret(root, c.App, c.Name); err != nil {
		return err
	}
	if err := g.save(v); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "ov: removed secret %q from app %q\n", c.Name, c.App)
	return nil
}
