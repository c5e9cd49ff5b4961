package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/ov-init/ov-init/internal/atomicfile"
	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/vault"
)

// keyFileMode is the only mode ov-init's key loader accepts.
const keyFileMode = 0o600

// checkKeyPath refuses, before any password is typed, an --out that
// writeKeyFile would refuse: a symbolic link (always), anything else that
// is not a regular file (always: a directory, a FIFO, a device node such as
// /dev/null, a socket), an existing file without replace, a parent that is
// not a directory.
func checkKeyPath(path string, replace bool) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%q is a symbolic link; ov never writes a key through a link, even with --force: remove the link or choose another --out", path)
	case err == nil && !fi.Mode().IsRegular():
		return notRegularError(path, fi.Mode())
	case err == nil && !replace:
		return fmt.Errorf("%q exists; pass --force to replace it", path)
	case err == nil:
		// --force: a rotation's flag, one typo away from the vault.
		if _, what, _ := vaultFile(path); what != "" {
			return usageError(fmt.Sprintf("--out %s is %s; a key never replaces it, even with --force: choose another --out", shellquote.Quote(path), what))
		}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%q: %v", path, pathErr(err))
	}
	// A missing directory is made (keyDirMode) when the key is written;
	// one that is not a directory is not.
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%q is not a directory; choose another --out", dir)
	}
	return nil
}

// notRegularError refuses to put a key where a file that is not a regular
// file is: rename(2) would replace a FIFO or a device node (as root, --out
// /dev/null --force would take the system's /dev/null) as it replaces a
// file. A usage error, as export's: the path is the mistake.
func notRegularError(path string, m fs.FileMode) error {
	if m.IsDir() {
		return usageError(fmt.Sprintf("%q is a directory; --out names the key file, e.g. --out %s", path, shellquote.Quote(filepath.Join(path, "machine.kek"))))
	}
	return usageError(fmt.Sprintf("%q is %s, not a regular file; a key never replaces one, even with --force: choose another --out", path, vault.FileKind(m)))
}

// keyDirMode is the mode of each directory derive-machine-key makes on the
// way to the key, whatever the umask. The key's owner (--owner, the account
// that runs ov-init) must be able to search it, or the strict 0600 file is
// out of its reach: the product page's `--out /etc/ov/machine.kek` then
// `chown deploy` would fail with "permission denied". The key stays private
// by its own mode; the directory only lets others see its name.
//
// The directory stays root's, not --owner's: /etc/ov holds the vault too
// (/etc/ov/vault.json), and an account that owns the directory can replace
// or remove what is in it, an older copy of the vault included. Running
// ov-init takes searching the directory, not writing it. A demanding
// operator expects /etc/ov as /etc/ssh: root's, 0755.
const keyDirMode = 0o755

// writeKeyFile puts key at path atomically with mode 0600, owned by owner
// when it is not nil, in directories it makes (keyDirMode) where missing:
// see atomicfile. A symbolic link at path is replaced, its target never
// written; without replace, a file that appeared at path since
// checkKeyPath looked is not replaced either, and with it, neither is one
// that is not a regular file (looked at again here, after the password).
func writeKeyFile(path string, key []byte, replace bool, owner *syscall.Credential) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink == 0 && !fi.Mode().IsRegular() {
		return fmt.Errorf("%s; nothing written", notRegularError(path, fi.Mode()))
	}
	o := atomicfile.Options{Perm: keyFileMode, NoReplace: !replace, DirPerm: keyDirMode}
	if owner != nil {
		o.Chown, o.Uid, o.Gid = true, int(owner.Uid), int(owner.Gid)
	}
	err := atomicfile.Write(path, key, o)
	switch {
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%q exists; pass --force to replace it", path)
	case err != nil && owner != nil && errors.Is(err, syscall.EPERM):
		return fmt.Errorf("--owner: writing %q: %v", path, err)
	case err != nil:
		return fmt.Errorf("writing %q: %v", path, err)
	}
	return nil
}

// sayUnreachable warns when a directory on the way to the key at path (made
// by someone else, or by an older ov as 0700) keeps owner, the account
// --owner named as spec, from reaching it: ov-init would then refuse to
// start with "permission denied". Mode bits only; root reaches everything.
func sayUnreachable(path, spec string, owner *syscall.Credential) {
	if owner == nil || owner.Uid == 0 {
		return
	}
	dir, fi := blockingDir(path, owner)
	if dir == "" {
		return
	}
	st := fi.Sys().(*syscall.Stat_t)
	fmt.Fprintf(os.Stderr, "ov: warning: --owner %s (uid %d) cannot reach the key: directory %q (mode %04o, owned by uid %d) is not searchable by it, and ov-init running as uid %d will say \"permission denied\"; fix: chmod a+x %s\n",
		shellquote.Quote(spec), owner.Uid, dir, fi.Mode().Perm(), st.Uid, owner.Uid, shellquote.Quote(dir))
}

// blockingDir returns the first directory on the way to the absolute path
// that cred may not search, judged by its mode bits as the kernel does
// (owner, else group, else others), and what stat said of it; "" when
// there is none.
func blockingDir(path string, cred *syscall.Credential) (string, os.FileInfo) {
	var dirs []string
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		dirs = append(dirs, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		fi, err := os.Stat(dirs[i])
		if err != nil {
			return "", nil // not ov's to judge: ov-init's own message will say
		}
		st := fi.Sys().(*syscall.Stat_t)
		var bit os.FileMode = 0o001
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid || slices.Contains(cred.Groups, st.Gid):
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return dirs[i], fi
		}
	}
	return "", nil
}

// vaultFile reads the file at path and says what it is when it is a
// vault, an export, or looks like a vault that no longer parses (a bad
// merge, a truncated copy, a newer version): files that a key or an export
// must never replace, since the vault's master-password key and its other
// apps would go with them. It returns the parsed file when it parses, and
// what is "" for anything else. err is why it could not be read (a key
// writer lets the write say it; export must know).
func vaultFile(path string) (v *vault.Vault, what string, err error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, "", err
	}
	data, err := io.ReadAll(io.LimitReader(f, vault.MaxFileSize+1))
	if err != nil {
		return nil, "", err
	}
	v, perr := vault.Parse(data)
	switch {
	case perr == nil && v.Exported() != "":
		return v, fmt.Sprintf("an export of app %q (generation %d)", v.Exported(), v.Generation()), nil
	case perr == nil:
		return v, fmt.Sprintf("a vault (apps: %s; generation %d)", appTable(v), v.Generation()), nil
	case bytes.Contains(data, []byte(`"wrapped_root"`)) || bytes.Contains(data, []byte(`"root_check"`)):
		return nil, "what looks like a vault, though it does not parse (" + perr.Error() + ")", nil
	}
	return nil, "", nil
}
