package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ov-init/ov-init/account"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/vault"
)

type deriveCmd struct {
	Out        string `required:"" placeholder:"PATH" help:"Write the key to this file (mode 0600, written atomically). Missing directories are made mode 0755, so that the key's owner can reach it."`
	App        string `placeholder:"APP" help:"The app the key opens (and nothing else). Without --app (and without --all-apps), the key already at --out says which app and deployment."`
	Deployment string `placeholder:"NAME" help:"With --app: the deployment (host, pod, CI job) the key belongs to, revoked on its own with ov auth revoke (default: default)."`
	Force      bool   `help:"Replace the file at --out. When it holds the CURRENT key of the deployment asked for, ROTATE that deployment (a new key, the old one refused from now on; the app moves to a new epoch, other deployments keep their files). Any other file is replaced with the deployment's current key, nothing rotated, except a key of this app from before deployments: the app then moves to a new epoch so that key is refused."`
	Owner      string `placeholder:"USER[:GROUP]" help:"Give the file to this account, the one that runs ov-init (needs root). Only the file: directories made on the way stay root's. As root, --force over a file another account owns needs --owner: ov never gives a key away unasked."`
	AllApps    bool   `name:"all-apps" help:"Write the vault's root key instead: it opens EVERY app and cannot be revoked short of a new vault. Dangerous; prefer --app."`
}

// Help is kong's long help of derive-machine-key.
func (deriveCmd) Help() string {
	return `Each deployment of an app (--deployment, default "default") has its own key.
Deriving an existing deployment to a new path gives the same bytes again.
With --force over a file that holds the current key of the deployment asked
for (without --app: of the deployment the key names), the deployment is
rotated: a new key is written, the old one is refused, and every other
deployment keeps its file. Over any other file (another deployment's key, a
retired key, no key of this vault), --force writes the deployment's current
key and rotates nothing, and says what the file held. As root, a file that
another account owns is replaced only with --owner naming the account. A FIFO, a
device, a socket or a directory at --out is never replaced, even with --force.
Revoke a deployment with: ov auth revoke --app APP NAME.`
}

func (c deriveCmd) Run(g *Globals) error {
	out, err := filepath.Abs(c.Out)
	if err != nil {
		return err
	}
	if c.AllApps && c.App != "" {
		return usageError("--all-apps writes the root key, which opens every app; it takes no --app")
	}
	if c.AllApps && c.Deployment != "" {
		return usageError("--all-apps writes the root key, which belongs to no deployment; it takes no --deployment")
	}
	if c.Deployment != "" && c.App == "" {
		return usageError("--deployment needs --app: pass --app APP --deployment NAME (without --app, the key at --out names its app and deployment)")
	}
	if c.App != "" {
		if err := vault.ValidAppName(c.App); err != nil {
			return usageError(err.Error())
		}
		if c.Deployment == "" {
			c.Deployment = vault.DefaultDeployment
		}
		if err := vault.ValidDeploymentName(c.Deployment); err != nil {
			return usageError(err.Error())
		}
	}
	// The key at --out, when the command must identify it.
	var existing []byte
	if c.App == "" && !c.AllApps {
		fi, err := os.Lstat(out)
		if err != nil {
			return usageError(fmt.Sprintf("no --app and no key file at %s to derive again for: pass --app APP (and --deployment NAME) for a key that opens one app", shellquote.Quote(out)))
		}
		if fi.Mode()&os.ModeSymlink != 0 || !fi.Mode().IsRegular() {
			return checkKeyPath(out, c.Force) // refuses each of them
		}
		k, err := readExistingKey(out)
		if err != nil {
			return err
		}
		if k == nil {
			return usageError(fmt.Sprintf("no --app, and the file at %s is not a 32-byte machine key: pass --app APP", shellquote.Quote(out)))
		}
		existing = k
		defer clear(existing)
	} else if err := checkKeyPath(out, c.Force); err != nil {
		return err
	} else if c.App != "" {
		// --force over an existing file: what it holds decides between
		// rotating and writing the current key. A file that is not a
		// 32-byte key counts as no key of this vault; one ov cannot
		// read is refused, never taken for "no key".
		k, err := readExistingKey(out)
		if err != nil {
			return err
		}
		existing = k
		defer clear(existing)
	}
	exists := false
	if fi, err := os.Lstat(out); err == nil {
		exists = true
		if err := c.checkOwnerNamed(out, fi); err != nil {
			return err
		}
	}
	var owner *syscall.Credential
	if c.Owner != "" {
		if os.Geteuid() != 0 {
			return fmt.Errorf("--owner needs root to change the file's owner; run ov as root, or leave --owner out and run ov as the account that runs ov-init")
		}
		acct, err := account.Lookup(c.Owner)
		if err != nil {
			// account speaks of ov-init's --user; here it is --owner.
			return usageError(strings.Replace(err.Error(), "--user", "--owner", 1))
		}
		owner = &acct.Credential
	}
	v, err := g.load()
	if err != nil {
		return err
	}
	if c.App != "" {
		if err := g.app(v, c.App); err != nil {
			return err
		}
	}
	root, err := g.unlock(v)
	if err != nil {
		return err
	}
	defer root.Wipe()

	if c.AllApps {
		if err := writeKeyFile(out, root.Bytes(), c.Force, owner); err != nil {
			return err
		}
		root.Wipe()
		c.warn(out, "", "", false)
		sayUnreachable(out, c.Owner, owner)
		return nil
	}
	// rotate: the file at --out holds the current key of the deployment to
	// write, and --force asks for a new one. Otherwise replaced says what
	// the file held, when there was one.
	rotate, rotateApp, replaced := false, false, ""
	if c.App != "" && exists {
		rotate, rotateApp, replaced, err = c.identifyOut(v, root, existing)
		if err != nil {
			return err
		}
	} else if existing != nil {
		app, dep, _, retired, ok, err := v.IdentifyKey(root, existing)
		if err != nil {
			return err
		}
		switch {
		case !ok:
			return usageError(fmt.Sprintf("the key at %s is no key of vault %q (another vault, or an app key from before a rotation): pass --app APP", shellquote.Quote(out), g.Vault))
		case app == "":
			return usageError(fmt.Sprintf("the key at %s is the vault's root key; pass --all-apps to write it again, or --app APP for a key that opens one app", shellquote.Quote(out)))
		case retired != nil && retired.Reason == vault.ReasonRevoked:
			return usageError(fmt.Sprintf("the key at %s is of deployment %q of app %q, revoked on %s; grant a new deployment with --app %s --deployment NAME",
				shellquote.Quote(out), dep, app, retired.Date, app))
		case retired != nil && !v.HasDeployment(app, dep):
			return usageError(fmt.Sprintf("the key at %s is of deployment %q of app %q, which no longer exists; grant a new deployment with --app %s --deployment NAME",
				shellquote.Quote(out), dep, app, app))
		case dep == "":
			dep = vault.DefaultDeployment // a legacy app key: its app's default deployment
			exists = false                // write that deployment's current key
			rotateApp = c.Force           // and, as asked, cut the old key off
			fmt.Fprintf(os.Stderr, "ov: the key at %s is app %q's key from before deployments; replacing it with the key of deployment %q\n", shellquote.Quote(out), app, dep)
		case !c.Force && retired == nil:
			return fmt.Errorf("%s holds the current key of deployment %q of app %q; pass --force to rotate it", shellquote.Quote(out), dep, app)
		}
		c.App, c.Deployment = app, dep
		if retired != nil {
			exists = false // a superseded key: write the current one, no new rotation
			fmt.Fprintf(os.Stderr, "ov: the key at %s is of deployment %q of app %q, replaced on %s; writing its current key\n", shellquote.Quote(out), dep, app, retired.Date)
		}
		if !c.Force {
			return fmt.Errorf("%s exists; pass --force to replace it", shellquote.Quote(out))
		}
		rotate = exists && v.HasDeployment(c.App, c.Deployment)
	}

	if rotateApp {
		if err := v.RotateApp(root, c.App); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "ov: moved app %q to a new epoch: its key from before deployments is refused from now on (every deployment keeps its key file)\n", c.App)
	}
	var key []byte
	rotated, created := false, false
	if rotate {
		key, err = v.RotateDeployment(root, c.App, c.Deployment)
		rotated = true
	} else {
		key, created, err = v.DeploymentKey(root, c.App, c.Deployment)
	}
	if err != nil {
		return err
	}
	defer clear(key)
	// The vault first: a key file whose grant was not saved would open nothing.
	if rotated || created || rotateApp {
		if err := g.save(v); err != nil {
			return err
		}
	}
	if created {
		c.sayGranted(v)
	}
	if err := writeKeyFile(out, key, c.Force, owner); err != nil {
		if rotated {
			return fmt.Errorf("%v; the vault already holds the new generation: write its key with ov auth derive-machine-key --out PATH --app %s --deployment %s", err, c.App, c.Deployment)
		}
		return err
	}
	clear(key)
	root.Wipe()
	if replaced != "" {
		what := "nothing rotated"
		if rotateApp {
			what = "the old key refused: the app moved to a new epoch"
		}
		fmt.Fprintf(os.Stderr, "ov: replaced %s at %s with the key of deployment %q of app %q (%s)\n",
			replaced, shellquote.Quote(out), c.Deployment, c.App, what)
	}
	c.warn(out, c.App, c.Deployment, rotated)
	if rotated {
		deps, _ := v.Deployments(c.App)
		for _, d := range deps {
			if d.Name == c.Deployment {
				fmt.Fprintf(os.Stderr, "ov: rotated deployment %q of app %q to generation %d: the old key is refused from now on; app %q moved to a new epoch, every other deployment keeps its key file unchanged (keys written before deployments, if any, stop too)\n",
					c.Deployment, c.App, d.Generation, c.App)
			}
		}
	}
	sayUnreachable(out, c.Owner, owner)
	return nil
}

// checkOwnerNamed refuses, as root and before the password, to replace
// without --owner a file that another account owns: the new key would be
// root's, and that account (the systemd unit's User=deploy, after the
// README's `--out K --force`) could no longer start its app. It never
// keeps the old owner by itself: whoever can put a file at --out (a
// revoked key, a file swapped in while ov reads) would be handed the new
// key. The operator names the account with --owner instead.
func (c deriveCmd) checkOwnerNamed(out string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !c.Force || c.Owner != "" || os.Geteuid() != 0 || !fi.Mode().IsRegular() {
		return nil
	}
	if int(st.Uid) == os.Geteuid() && int(st.Gid) == os.Getegid() {
		return nil
	}
	// The file's owner is not offered as the fix: it may be whoever put
	// the file there.
	return usageError(fmt.Sprintf("%s is owned by uid %d, gid %d, not root, and ov never gives a key to a file's owner by itself: "+
		"pass --owner ACCOUNT, the account that runs ov-init (deploy in the README's systemd recipe), once you know that this file is the key you gave it, or --owner root; nothing written",
		shellquote.Quote(out), st.Uid, st.Gid))
}

// identifyOut tells, for --app with a file at --out (key is what it holds,
// nil when it holds no key ov can read), whether to rotate (the file holds
// the current key of the deployment asked for), whether to move the app to
// a new epoch (it holds the app's key from before deployments), and else
// what the file held.
func (c deriveCmd) identifyOut(v *vault.Vault, root *vault.Root, key []byte) (rotate, rotateApp bool, held string, err error) {
	if key == nil {
		return false, false, "a file that held no key of this vault", nil
	}
	app, dep, _, retired, ok, err := v.IdentifyKey(root, key)
	switch {
	case err != nil:
		return false, false, "", err
	case !ok:
		return false, false, "a file that held no key of this vault", nil
	case app == "":
		return false, false, "the vault's root key (it still opens every app; only a new vault revokes it)", nil
	case dep == "":
		// A key of this app from before deployments: moving the app to
		// a new epoch is the only way to refuse it.
		return false, app == c.App, fmt.Sprintf("app %q's key from before deployments", app), nil
	case retired != nil:
		return false, false, fmt.Sprintf("the key of deployment %q of app %q (%s on %s)", dep, app, retired.Reason, retired.Date), nil
	case app == c.App && dep == c.Deployment:
		return true, false, "", nil
	}
	return false, false, fmt.Sprintf("the key of deployment %q of app %q (it still works: ov auth revoke --app %s %s if it leaked)", dep, app, app, dep), nil
}

// sayGranted says that derive-machine-key granted a new deployment, and
// when its name was revoked before, that the revoked key stays refused.
func (c deriveCmd) sayGranted(v *vault.Vault) {
	deps, _ := v.Deployments(c.App)
	for _, d := range deps {
		if d.Name == c.Deployment {
			fmt.Fprintf(os.Stderr, "ov: granted NEW deployment %q of app %q (generation %d)\n", c.Deployment, c.App, d.Generation)
		}
	}
	retired, _ := v.RetiredKeys(c.App)
	for i := len(retired) - 1; i >= 0; i-- {
		if r := retired[i]; r.Deployment == c.Deployment && r.Reason == vault.ReasonRevoked {
			fmt.Fprintf(os.Stderr, "ov: deployment %q of app %q was revoked on %s; this is a new key, and the revoked key (generation %d) stays refused\n",
				c.Deployment, c.App, r.Date, r.Generation)
			break
		}
	}
}

// warn tells what the key file is worth and how to take it back.
func (c deriveCmd) warn(out, app, dep string, rotated bool) {
	p := shellquote.Quote(out)
	var b strings.Builder
	if app == "" {
		fmt.Fprintf(&b, "ov: wrote an unscoped machine key (the vault's root key) to %s\n", p)
		b.WriteString("WARNING: this key opens EVERY app of the vault, now and in the future, and cannot be revoked per deployment:\n")
		b.WriteString("  revoking it takes a new vault. A host that holds it can read every secret of every app. Prefer --app APP.\n")
	} else {
		fmt.Fprintf(&b, "ov: wrote machine key of deployment %q of app %q to %s\n", dep, app, p)
	}
	// The product page's words, kept as they are: users search for them.
	b.WriteString("This file is a credential. It grants decryption access to secrets.\n")
	b.WriteString("  - keep it mode 0600, owned by the account that runs ov-init\n")
	fmt.Fprintf(&b, "  - never commit it, never bake it into an image; mount it at run time (e.g. -v %s:/run/secrets/machine.kek:ro)\n", p)
	owner := ""
	if c.Owner != "" {
		owner = " --owner " + shellquote.Quote(c.Owner)
	}
	if app != "" {
		fmt.Fprintf(&b, "  - to revoke this deployment alone (the others keep their files): ov auth revoke --app %s %s\n", app, dep)
		fmt.Fprintf(&b, "  - to rotate it (a new key here, the old one refused): ov auth derive-machine-key --out %s%s --force\n", p, owner)
		fmt.Fprintf(&b, "  - to write it again where it is missing (same bytes): ov auth derive-machine-key --out %s --app %s --deployment %s%s\n", p, app, dep, owner)
	}
	os.Stderr.WriteString(b.String())
}

// readExistingKey reads the key file at path to find out whose key it is.
// It is no check of the file (ov-init's is strict; a key written with
// --owner belongs to another account, so the owner check would fail here):
// a regular file of exactly 32 bytes is a key, anything else is none (nil,
// nil). A file ov cannot read is an error, never taken for "no key".
func readExistingKey(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) || errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the key file at %s to tell whose key it is: %v; run ov as root, or as the file's owner", shellquote.Quote(path), pathErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != vault.KeySize {
		return nil, nil
	}
	key := make([]byte, vault.KeySize+1)
	n, err := io.ReadFull(f, key)
	if err != io.ErrUnexpectedEOF || n != vault.KeySize {
		clear(key)
		return nil, nil // it changed size while read: no key
	}
	return key[:vault.KeySize], nil
}
