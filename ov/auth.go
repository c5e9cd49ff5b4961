package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/ov-init/ov-init/vault"
)

type authListCmd struct {
	App string `required:"" placeholder:"APP" help:"The app whose deployments to print."`
}

// Run unlocks the vault first: the list is what the root key's holder
// wrote (the table MAC covers every grant and retired key), not what
// anyone who could write the file claims.
func (c authListCmd) Run(g *Globals) error {
	v, root, err := g.unlockApp(c.App)
	if err != nil {
		return err
	}
	root.Wipe()
	deps, err := v.Deployments(c.App)
	if err != nil {
		return err
	}
	retired, err := v.RetiredKeys(c.App)
	if err != nil {
		return err
	}
	if len(deps) == 0 && len(retired) == 0 {
		fmt.Fprintf(os.Stderr, "ov: app %q has no deployments yet; grant one with: ov auth derive-machine-key --out PATH --app %s [--deployment NAME]\n", c.App, c.App)
		return nil
	}
	for _, d := range deps {
		fmt.Printf("%s\tgeneration %d\tcreated %s\trotated %s\n", d.Name, d.Generation, d.Created, d.Rotated)
	}
	for _, r := range retired {
		fmt.Printf("%s\tgeneration %d\t%s %s\n", r.Deployment, r.Generation, r.Reason, r.Date)
	}
	return nil
}

type authRevokeCmd struct {
	App  string `required:"" placeholder:"APP" help:"The app the deployment belongs to."`
	Name string `arg:"" name:"deployment" help:"The deployment to revoke (see ov auth list --app APP)."`
}

func (c authRevokeCmd) Run(g *Globals) error {
	if err := vault.ValidDeploymentName(c.Name); err != nil {
		return usageError(err.Error())
	}
	v, err := g.loadApp(c.App)
	if err != nil {
		return err
	}
	if !v.HasDeployment(c.App, c.Name) {
		return fmt.Errorf("app %q has no deployment %q; see: ov auth list --app %s", c.App, c.Name, c.App)
	}
	root, err := g.unlock(v)
	if err != nil {
		return err
	}
	defer root.Wipe()
	if err := v.RevokeDeployment(root, c.App, c.Name); err != nil {
		return err
	}
	if err := g.save(v); err != nil {
		return err
	}
	epoch, _ := v.Epoch(c.App)
	deps, _ := v.Deployments(c.App)
	others := make([]string, 0, len(deps))
	for _, d := range deps {
		others = append(others, d.Name)
	}
	fmt.Fprintf(os.Stderr, "ov: revoked deployment %q of app %q: its key opens no copy of vault %q written from now on (app %q moved to epoch %d)\n",
		c.Name, c.App, g.Vault, c.App, epoch)
	if len(others) > 0 {
		fmt.Fprintf(os.Stderr, "ov: every other deployment keeps working with its key file unchanged: %s (export the app again for them: ov vault export --app %s --out FILE; keys written before deployments, if any, stop)\n", strings.Join(others, ", "), c.App)
	} else {
		fmt.Fprintf(os.Stderr, "ov: app %q has no other deployment; grant one with: ov auth derive-machine-key --out PATH --app %s --deployment NAME\n", c.App, c.App)
	}
	fmt.Fprintf(os.Stderr, "ov: copies of the vault from before the revocation (git history, backups, images) still open with the revoked key: replace the vault everywhere, and change every value worth protecting NOW, after the revoke: ov secret set NAME --app %s\n", c.App)
	if names, _ := v.SecretNames(c.App); len(names) > 0 {
		fmt.Fprintf(os.Stderr, "ov: secrets of app %q to change: %s\n", c.App, strings.Join(names, ", "))
	}
	return nil
}
