// Package atomicfile writes a whole file so that readers see the old file or
// the new one, never a part, and a crash leaves one of the two.
//
// The steps, each for a reason: a new file in the destination's directory
// (created with O_EXCL and O_NOFOLLOW, so never an existing file and never
// through a link, and with exactly the mode asked for whatever the umask),
// fsync, rename over the destination (a symbolic link there is replaced, its
// target never written), fsync of the directory (so the rename survives a
// crash). On failure the new file is removed and the destination is as it
// was.
//
// With Options.DirPerm it first makes the destination's missing
// directories, each with exactly that mode whatever the umask: a key
// file's owner must be able to reach it through a directory root made.
package atomicfile

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Options say how the file is written.
type Options struct {
	// Perm is the new file's mode, applied exactly (the umask is undone).
	Perm fs.FileMode
	// NoReplace refuses to replace an existing destination, even one that
	// appeared while the file was being written: the error is then
	// fs.ErrExist.
	NoReplace bool
	// Chown, when set, gives the new file to Uid and Gid before it is put
	// in place (root only).
	Chown    bool
	Uid, Gid int
	// DirPerm, when not 0, makes the missing directories on the way to
	// the file, each with exactly this mode (the umask undone; never
	// through a link that appeared meanwhile). Directories that exist are
	// left as they are. When 0, a missing directory is an error.
	DirPerm fs.FileMode
}

// Write puts data at path as Options say. Its errors say which step failed,
// without repeating path: the caller names the file.
func Write(path string, data []byte, o Options) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	if base == "" {
		return errors.New("the path names a directory")
	}
	if o.DirPerm != 0 {
		if err := mkdirs(dir, o.DirPerm.Perm()); err != nil {
			return err
		}
	}
	var r [8]byte
	if _, err := rand.Read(r[:]); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+base+".tmp-"+hex.EncodeToString(r[:]))
	fd, err := unix.Open(tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(o.Perm.Perm()))
	if err != nil {
		return fmt.Errorf("creating a temporary file beside it: %w", err)
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
	if err := f.Chmod(o.Perm.Perm()); err != nil {
		return fmt.Errorf("chmod: %w", unwrap(err))
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write: %w", unwrap(err))
	}
	if o.Chown {
		if err := f.Chown(o.Uid, o.Gid); err != nil {
			return fmt.Errorf("chown: %w", unwrap(err))
		}
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("fsync: %w", unwrap(err))
	}
	err = f.Close()
	f = nil
	if err != nil {
		return fmt.Errorf("close: %w", unwrap(err))
	}
	if err := place(tmp, path, o.NoReplace); err != nil {
		return err
	}
	placed = true
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("written, but opening its directory to sync it failed: %w", unwrap(err))
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("written, but syncing its directory failed: %w", unwrap(err))
	}
	return nil
}

// mkdirs makes dir and its missing parents, each with exactly perm. A
// directory that someone else makes meanwhile is theirs and keeps its mode;
// one this call made is chmod'ed through a descriptor opened with
// O_NOFOLLOW, so a link put in its place is never followed.
func mkdirs(dir string, perm fs.FileMode) error {
	var missing []string // deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		_, err := os.Lstat(d)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("making directory %q: %w", d, unwrap(err))
		}
		missing = append(missing, d)
		if d == filepath.Dir(d) {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		// Made with perm, which the umask can only narrow: never more
		// open than asked, even before the chmod.
		err := unix.Mkdir(d, uint32(perm))
		if err == unix.EEXIST {
			continue
		}
		if err != nil {
			return fmt.Errorf("making directory %q: %w", d, err)
		}
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("making directory %q: open: %w", d, err)
		}
		err = unix.Fchmod(fd, uint32(perm))
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("making directory %q: chmod: %w", d, err)
		}
	}
	return nil
}

// place renames tmp to path; with noReplace it fails with fs.ErrExist when
// path exists.
func place(tmp, path string, noReplace bool) error {
	if !noReplace {
		if err := os.Rename(tmp, path); err != nil {
			return fmt.Errorf("rename: %w", unwrap(err))
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
		return fs.ErrExist
	case err != nil:
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// unwrap drops an *fs.PathError's own copy of the path.
func unwrap(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
