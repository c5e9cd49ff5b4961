package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ov-init/ov-init/account"
	"github.com/ov-init/ov-init/internal/shellquote"
)

type deriveCmd struct {
	Out   string `required:"" placeholder:"PATH" help:"Write the key to this file (mode 0600, written atomically)."`
	App   string `placeholder:"APP" help:"Scope the key to this app: it opens that app and nothing else. Without --app the key is the vault's root key."`
	Force bool   `help:"Replace an existing file at --out (never a symbolic link)."`
	Owner string `placeholder:"USER[:GROUP]" help:"Give the file to this account, the one that runs ov-init (needs root)."`
}

func (c deriveCmd) Run(g *Globals) error {
	out, err := filepath.Abs(c.Out)
	if err != nil {
		return err
	}
	if err := checkKeyPath(out, c.Force); err != nil {
		return err
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
	key := root.Bytes() // unscoped: the root key itself; Wipe clears it
	if c.App != "" {
		if key, err = v.AppKey(root, c.App); err != nil {
			return err
		}
		defer clear(key)
	}
	if err := writeKeyFile(out, key, c.Force, owner); err != nil {
		return err
	}
	clear(key)
	root.Wipe()
	c.warn(out)
	return nil
}

// warn tells what the key file is worth and how to take it back.
func (c deriveCmd) warn(out string) {
	p := shellquote.Quote(out)
	again := "ov auth derive-machine-key --out " + p
	if c.App != "" {
		again += " --app " + c.App
	}
	if c.Owner != "" {
		again += " --owner " + shellquote.Quote(c.Owner)
	}
	again += " --force"
	var b strings.Builder
	if c.App != "" {
		fmt.Fprintf(&b, "ov: wrote machine key for app %q to %s\n", c.App, p)
	} else {
		fmt.Fprintf(&b, "ov: wrote an unscoped machine key (the vault's root key) to %s\n", p)
	}
	b.WriteString("This file is as sensitive as your master password.\n")
	b.WriteString("  - keep it mode 0600, owned by the account that runs ov-init\n")
	fmt.Fprintf(&b, "  - never commit it, never bake it into an image; mount it at run time (e.g. -v %s:/run/secrets/machine.kek:ro)\n", p)
	if c.App != "" {
		fmt.Fprintf(&b, "  - to revoke it: ov app rotate %s  (every earlier key for %s stops opening the rotated vault; copies of the vault from before still open with it, so change the values too)\n", c.App, c.App)
	} else {
		b.WriteString("  - an unscoped key is the vault's root key: it opens every app and cannot be revoked short of a new vault; prefer --app\n")
	}
	fmt.Fprintf(&b, "  - to derive it again: %s\n", again)
	os.Stderr.WriteString(b.String())
}
