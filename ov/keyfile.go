package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

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
// when it is not nil. It writes a temporary file in path's directory
// (O_EXCL, O_NOFOLLOW: never an existing file, never through a link), fsyncs
// it, renames it over path (over nothing unless replace) and fsyncs the
// directory. Readers see the old file or the new one, never a part; a
// symbolic link at path is replaced, its target never written. On failure
// the temporary file is removed.
func writeKeyFile(path string, key []byte, replace bool, owner *syscall.Credential) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("creating the key's directory: %v", err)
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(r[:]))
	fd, err := unix.Open(tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, keyFileMode)
	if err != nil {
		return fmt.Errorf("creating a temporary file in %q: %v", dir, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	placed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !placed {
			os.Remove(tmp)
		}
	}()
	// The umask may have taken bits from the mode open asked for; the
	// loader wants exactly 0600.
	if err := f.Chmod(keyFileMode); err != nil {
		return fmt.Errorf("%q: %v", tmp, pathErr(err))
	}
	if _, err := f.Write(key); err != nil {
		return fmt.Errorf("writing %q: %v", tmp, pathErr(err))
	}
	if owner != nil {
		if err := f.Chown(int(owner.Uid), int(owner.Gid)); err != nil {
			return fmt.Errorf("--owner: %v", pathErr(err))
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %q: %v", tmp, pathErr(err))
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("writing %q: %v", tmp, pathErr(err))
	}
	if err := place(tmp, path, replace); err != nil {
		return err
	}
	placed = true
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("wrote %q, but syncing its directory failed: %v", path, err)
	}
	return nil
}

// place renames tmp to path; without replace it fails when path exists,
// even if path appeared after checkKeyPath looked.
func place(tmp, path string, replace bool) error {
	if replace {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("replacing %q: %v", path, pathErr(err))
		}
		return nil
	}
	err := unix.Renameat2(unix.AT_FDCWD, tmp, unix.AT_FDCWD, path, unix.RENAME_NOREPLACE)
	if err == unix.EINVAL || err == unix.ENOSYS {
		// A file system without RENAME_NOREPLACE: link(2) also refuses
		// to replace.
		if err = unix.Link(tmp, path); err == nil {
			os.Remove(tmp)
		}
	}
	switch {
	case err == unix.EEXIST:
		return fmt.Errorf("%q exists; pass --force to replace it", path)
	case err != nil:
		return fmt.Errorf("writing %q: %v", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return pathErr(err)
	}
	defer d.Close()
	return pathErr(d.Sync())
}
