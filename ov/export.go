package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/ov-init/ov-init/internal/atomicfile"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/vault"
)

// vaultExportCmd writes what a host or an image of one app needs, and
// nothing more: the app's sealed section and grants, no other app, no
// password-wrapped root key (vault/SPEC.md, "Exports").
type vaultExportCmd struct {
	App   string `required:"" placeholder:"APP" help:"The app to export."`
	Out   string `required:"" placeholder:"FILE" help:"Write the export to this file (mode 0644: it is ciphertext), atomically; missing directories are made mode 0755. An earlier export there is replaced; any other file only with --force."`
	Force bool   `help:"Replace a file at --out that is not an export of this app (never a vault, nor an export newer than the vault: that would undo revocations)."`
}

// Help is kong's long help of vault export.
func (vaultExportCmd) Help() string {
	return `The export opens with the app's machine keys, as the vault does: give it to
ov-init or ov run as /etc/ov/vault.json (or --vault FILE), COPY it into an
image, or put it in a Kubernetes ConfigMap. It holds no other app and no
master-password-wrapped root key, so ov cannot unlock or change it: keep
working on the full vault, and export again after every change (a revoke,
a rotation, a new secret).`
}

func (c vaultExportCmd) Run(g *Globals) error {
	v, err := g.loadApp(c.App)
	if err != nil {
		return err
	}
	if app := v.Exported(); app != "" {
		return fmt.Errorf("vault %q is itself an export of app %q, which ov cannot unlock; export from the full vault (--vault PATH)", g.Vault, app)
	}
	// Before the password: a file at --out that must not be replaced.
	old, err := c.checkOut(g.Vault)
	if err != nil {
		return err
	}
	root, err := g.unlock(v) // verifies the table and the generation seen
	if err != nil {
		return err
	}
	defer root.Wipe()
	if old != nil {
		if err := c.checkOldExport(g, v, root, old); err != nil {
			return err
		}
	}
	exp, err := v.Export(root, c.App)
	if err != nil {
		return fmt.Errorf("vault %q: %w", g.Vault, err)
	}
	data, err := exp.Marshal()
	if err == nil {
		err = atomicfile.Write(c.Out, data, atomicfile.Options{Perm: 0o644, DirPerm: 0o755})
	}
	if err != nil {
		return fmt.Errorf("writing the export to %s: %w", shellquote.Quote(c.Out), err)
	}
	deps, _ := v.Deployments(c.App)
	names := make([]string, 0, len(deps))
	for _, d := range deps {
		names = append(names, d.Name)
	}
	granted := "no deployment yet: derive one with ov auth derive-machine-key --out PATH --app " + c.App
	if len(names) > 0 {
		granted = "deployments " + strings.Join(names, ", ")
	}
	fmt.Fprintf(os.Stderr, "ov: exported app %q (generation %d; %s) to %s: ciphertext for hosts and images, readable at mode 0644; "+
		"it opens with the app's machine keys only and holds no other app and no master-password key: export again after every change\n",
		c.App, exp.Generation(), granted, shellquote.Quote(c.Out))
	return nil
}

// checkOut refuses, before the password, a destination that must not be
// replaced: the vault itself or any other vault, whatever --force says (an
// export there would lose its master-password key and every other app),
// and, without --force, anything that is not an export. An export there is
// returned, for checkOldExport once the vault is unlocked.
func (c vaultExportCmd) checkOut(vaultPath string) (*vault.Vault, error) {
	out := shellquote.Quote(c.Out)
	fi, err := os.Lstat(c.Out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("checking %s before writing the export there: %w", out, pathErr(err))
	}
	if vi, err := os.Stat(vaultPath); err == nil && os.SameFile(fi, vi) {
		return nil, usageError(fmt.Sprintf("--out %s is the vault itself; an export there would lose every other app and the master-password key: choose another file", out))
	}
	// The write replaces the link, not the file it names, and what that
	// file is (a newer export, a vault) would go unchecked.
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, usageError(fmt.Sprintf("--out %s is a symbolic link; an export is never written over one, even with --force: give the path of the file itself", out))
	}
	if !fi.Mode().IsRegular() {
		return nil, usageError(fmt.Sprintf("--out %s is not a regular file; choose a file path", out))
	}
	old, what, err := vaultFile(c.Out)
	switch {
	case old != nil && old.Exported() != "":
		return old, nil // an earlier export: checkOldExport decides
	case what != "":
		return nil, usageError(fmt.Sprintf("--out %s is %s, not an export; an export never replaces a vault, even with --force: choose another file", out, what))
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("reading %s to tell whether it is an earlier export: %w; run ov as a user who can read it", out, pathErr(err))
	case err != nil:
		// Unread, it could be a newer export: never taken for "not one".
		return nil, fmt.Errorf("reading %s to tell whether it is an earlier export: %w", out, pathErr(err))
	case c.Force:
		return nil, nil
	}
	return nil, usageError(fmt.Sprintf("%s exists and is not an export of a vault; pass --force to replace it", out))
}

// checkOldExport decides, with the vault unlocked, whether the export old
// at --out may be replaced. An export of another vault or app needs
// --force. An export of this vault that verifies under its root key has an
// authenticated generation: when it is newer than the vault, the vault is
// an older copy (restored, or checked out from git), and replacing the
// export would give the hosts back every key revoked since. That is
// refused even with --force, which operators pass to replace a stray
// file, not to undo a revocation; the newer generation is remembered as
// seen, as ov does for vaults, so going back on purpose takes the same
// deliberate step as for a vault: removing the record's line (and the
// export).
func (c vaultExportCmd) checkOldExport(g *Globals, v *vault.Vault, root *vault.Root, old *vault.Vault) error {
	out := shellquote.Quote(c.Out)
	if !bytes.Equal(old.RootCheck(), v.RootCheck()) {
		if c.Force {
			return nil
		}
		return usageError(fmt.Sprintf("%s is an export of app %q of another vault; pass --force to replace it", out, old.Exported()))
	}
	if err := old.VerifyExport(root); err != nil {
		fmt.Fprintf(os.Stderr, "ov: the export at %s does not verify under this vault's root key (%v); replacing it\n", out, err)
		return nil
	}
	if old.Generation() > v.Generation() {
		g.recordSeen(old)
		return fmt.Errorf("the export at %s is of generation %d, newer than vault %q (generation %d): the vault is an older copy, and this export would give its hosts back every key revoked since; "+
			"nothing was written, even with --force: export from the newest copy of the vault", out, old.Generation(), g.Vault, v.Generation())
	}
	if old.Exported() != c.App && !c.Force {
		return usageError(fmt.Sprintf("%s is an export of app %q, not %q; pass --force to replace it", out, old.Exported(), c.App))
	}
	return nil
}
