package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/ov-init/ov-init/internal/atomicfile"
	"github.com/ov-init/ov-init/internal/shellquote"
)

// keyFileMode is the only mode ov-init's key loader accepts.
const keyFileMode = 0o600

// checkKeyPath refuses, before any password is typed, an --out that
// writeKeyFile would refuse: a symbolic link (always), an existing file
// without replace, a directory, a parent that is not a directory.
func checkKeyPath(path string, replace bool) error {
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%q is a symbolic link; ov never writes a key through a link, even with --force: remove the link or choose another --out", path)
	case err == nil && fi.IsDir():
		return fmt.Errorf("%q is a directory; --out names the key file, e.g. --out %s", path, shellquote.Quote(filepath.Join(path, "machine.kek")))
	case err == nil && !replace:
		return fmt.Errorf("%q exists; pass --force to replace it", path)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%q: %v", path, pathErr(err))
	}
	// A missing directory is made (0700) when the key is written, as
	// vault init does for the vault's; one that is not a directory is not.
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
		return fmt.Errorf("%q is not a directory; choose another --out", dir)
	}
	return nil
}

// writeKeyFile puts key at path atomically with mode 0600, owned by owner
// when it is not nil, in a directory it makes (0700) if missing: see
// atomicfile. A symbolic link at path is replaced, its target never
// written; without replace, a file that appeared at path since
// checkKeyPath looked is not replaced either.
func writeKeyFile(path string, key []byte, replace bool, owner *syscall.Credential) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the key's directory: %v", err)
	}
	o := atomicfile.Options{Perm: keyFileMode, NoReplace: !replace}
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
