package execstage

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/ov-init/ov-init/internal/envlist"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/reaper"
	"github.com/ov-init/ov-init/secretfiles"
	"github.com/ov-init/ov-init/vault"
)

// delivery is how the app gets its secrets (--secrets-as, --secrets
// NAME:HOW): the environment it starts with, and the secrets that reach it
// as files in the secrets dir or as sealed memfds, through NAME_FILE.
type delivery struct {
	env     []string       // the app's environment: memfd paths are added by deliver
	files   []vault.Secret // written into the secrets dir, as the app's user
	memfds  []vault.Secret // put into sealed memfds, as the app's user
	skipped []string       // not delivered: --preserve-env keeps what was inherited

	dir *secretfiles.Dir // the secrets dir, once taken (see take)
	fds []int            // the memfds, once made
}

// howOf returns, for each secret name, how it reaches the app: the suffix
// of its --secrets entry (NAME:file), else --secrets-as.
func howOf(cfg Config) map[string]string {
	as := cfg.SecretsAs
	if as == "" {
		as = secretfiles.AsEnv
	}
	how := map[string]string{"": as}
	for _, spec := range cfg.Secrets {
		if name, h, err := secretfiles.ParseSpec(spec); err == nil && h != "" {
			how[name] = h
		}
	}
	return how
}

// specNames are the secret names of cfg.Secrets, without their NAME:HOW
// suffixes: what to open from the vault (nil: every secret).
func specNames(specs []string) []string {
	if specs == nil {
		return nil
	}
	out := make([]string, 0, len(specs))
	for _, spec := range specs {
		name, _, _ := strings.Cut(spec, ":")
		out = append(out, name)
	}
	return out
}

// plan decides how each secret reaches the app and builds the app's
// environment: inherited, each env secret in place of its name (unless
// --preserve-env keeps an inherited one), and for each file or memfd
// secret its NAME removed and NAME_FILE set (a memfd's path is set by
// deliver, once its number is known). It refuses, before anything is
// written: a NAME_FILE that is a reserved name, one that the inherited
// environment already sets (with --preserve-env the inherited one wins and
// the secret is not delivered), and one that is the name of another secret.
func plan(cfg Config, inherited []string, secrets []vault.Secret) (*delivery, error) {
	how := howOf(cfg)
	d := &delivery{}
	var env []vault.Secret
	for i := range secrets {
		s := secrets[i]
		h, ok := how[s.Name]
		if !ok {
			h = how[""]
		}
		if h == secretfiles.AsEnv {
			env = append(env, s)
			continue
		}
		fileVar := s.Name + secretfiles.FileSuffix
		as := map[string]string{secretfiles.AsFiles: "a file", secretfiles.AsMemfd: "a memfd"}[h]
		if err := vault.ReservedName(fileVar); err != nil {
			return nil, fmt.Errorf("secret %s as %s: %v; fix: deliver it in the environment (--secrets %s:env), or seal the value under another name", s.Name, as, err, s.Name)
		}
		if slices.ContainsFunc(secrets, func(o vault.Secret) bool { return o.Name == fileVar }) {
			return nil, fmt.Errorf("secret %s as %s is given to the app as %s, and the app has a secret of that name too; fix: deliver one of them another way (--secrets %s:env or --secrets %s:memfd), or seal one under another name",
				s.Name, as, fileVar, s.Name, fileVar)
		}
		_, inheritedFile := envlist.Get(inherited, fileVar)
		_, inheritedName := envlist.Get(inherited, s.Name)
		switch {
		case cfg.PreserveEnv && (inheritedFile || inheritedName):
			d.skipped = append(d.skipped, s.Name)
			continue
		case inheritedFile:
			return nil, fmt.Errorf("the environment already sets %s, the variable that gives the app secret %s as %s; fix: remove %s from ov-init's environment, keep it with --preserve-env (secret %s is then not delivered), or deliver %s in the environment (--secrets %s:env)",
				fileVar, s.Name, as, fileVar, s.Name, s.Name, s.Name)
		}
		if h == secretfiles.AsFiles {
			d.files = append(d.files, s)
		} else {
			d.memfds = append(d.memfds, s)
		}
	}
	d.env = appEnv(inherited, env, cfg.PreserveEnv)
	for _, s := range d.files {
		d.env = envlist.Set(envlist.Unset(d.env, s.Name), s.Name+secretfiles.FileSuffix, secretfiles.Path(cfg.SecretsDir, s.Name))
	}
	for _, s := range d.memfds {
		d.env = envlist.Unset(d.env, s.Name)
	}
	return d, nil
}

// log says, at -v, which secret goes where: names only.
func (d *delivery) log(cfg Config) {
	list := func(secrets []vault.Secret) string {
		var n []string
		for i := range secrets {
			n = append(n, secrets[i].Name)
		}
		return strings.Join(n, ", ")
	}
	if len(d.files) > 0 {
		logf(cfg, 1, "as files in %s: %s", shellquote.Quote(cfg.SecretsDir), list(d.files))
	}
	if len(d.memfds) > 0 {
		logf(cfg, 1, "as sealed memfds: %s", list(d.memfds))
	}
	if len(d.skipped) > 0 {
		logf(cfg, 1, "not delivered, --preserve-env keeps the inherited NAME or NAME_FILE: %s", strings.Join(d.skipped, ", "))
	}
}

// take checks the secrets dir and takes it for the app's user uid:gid, as
// ov-init's own user, before the privileges are dropped (see
// secretfiles.Open). Without file secrets it does nothing.
func (d *delivery) take(cfg Config, uid, gid int) error {
	if len(d.files) == 0 {
		return nil
	}
	dir, err := secretfiles.Open(cfg.SecretsDir, uid, gid)
	if err != nil {
		return err
	}
	d.dir = dir
	return nil
}

// deliver writes the file secrets and makes the memfds, as the app's user,
// then wipes every value it was given. Before the first file it tells
// PID 1 (reaper.StageLeavesFiles), which from then on removes the files
// when the app or this stage ends.
func (d *delivery) deliver(sock *os.File) error {
	if d.dir != nil {
		if _, err := sock.Write([]byte{reaper.StageLeavesFiles}); err != nil {
			return fmt.Errorf("telling PID 1 about the secret files: %v", err)
		}
		if err := d.dir.Write(d.files); err != nil {
			return err
		}
	}
	for i := range d.memfds {
		fd, err := secretfiles.Memfd(d.memfds[i].Name, d.memfds[i].Value)
		if err != nil {
			return err
		}
		d.fds = append(d.fds, fd)
		d.env = envlist.Set(d.env, d.memfds[i].Name+secretfiles.FileSuffix, secretfiles.MemfdPath(fd))
	}
	d.wipe()
	return nil
}

// undo removes the files deliver wrote: the stage failed after writing
// them (PID 1 removes them too, having had the notice).
func (d *delivery) undo() {
	if d.dir != nil {
		d.dir.Remove()
	}
}

// close closes the secrets dir's descriptor; the memfds stay for execve.
func (d *delivery) close() {
	d.dir.Close()
}

// wipe zeroes the values of the file and memfd secrets.
func (d *delivery) wipe() {
	vault.WipeAll(d.files)
	vault.WipeAll(d.memfds)
}
