// Package secretfiles delivers secrets as files that the app opens through
// a NAME_FILE variable: regular files in a directory on an in-memory file
// system (tmpfs or ramfs), or sealed memfds that live on no file system at
// all.
//
// Invariants:
//   - nothing is ever written to a directory that is not on tmpfs or ramfs
//     (statfs on the opened directory, never on a path looked up again);
//   - no symbolic link is followed on the way to the directory or inside it:
//     each component is opened with O_NOFOLLOW relative to the one before,
//     files are created with O_CREAT|O_EXCL|O_NOFOLLOW relative to the
//     directory's descriptor, and ownership and modes are changed through
//     descriptors (fchown, fchmod), never through a path;
//   - every directory above the secrets dir is owned by root or ov-init's
//     uid and writable by no one else unless it is sticky (like /tmp), so
//     that no other user, the app's included, can put a directory of its
//     own in the secrets dir's place once ov-init has checked it: the app
//     opens NAME_FILE by path, and PID 1 clears the directory by path;
//   - the directory is taken only when it is owned by ov-init's uid or the
//     app's, is not shared (sticky and writable by group or others, like
//     /tmp), and holds nothing but files an earlier ov-init left for the
//     same app; it ends mode 0500 and each file mode 0400, both owned by
//     the app's user;
//   - [Clear], which PID 1 runs, walks the path again under the same rules,
//     removes files by name and never reads one (PID 1 never holds a secret
//     value), and changes the mode of no directory but one of its own uid;
//   - a memfd is sealed against every write, grow and shrink before the app
//     gets it, and is close-on-exec until [Inherit] hands it to the app.
//
// Errors are one line naming the path and the fix, and never hold a value.
package secretfiles

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/ov-init/ov-init/internal/shellquote"
	"github.com/ov-init/ov-init/vault"
)

// Modes of what ov-init leaves: the directory can be listed and searched by
// the app's user alone, each file read by it alone.
const (
	DirMode  = 0o500
	FileMode = 0o400

	// writeMode is the directory's mode while ov-init writes into it.
	writeMode = 0o700
)

// In-memory file systems, as statfs(2) reports them.
const (
	tmpfsMagic = 0x01021994 // TMPFS_MAGIC: tmpfs, and the shmem behind memfds
	ramfsMagic = 0x858458f6 // RAMFS_MAGIC
)

// The advice every refusal of a directory ends with.
const recipes = "docker run --tmpfs DIR:mode=0700, compose tmpfs:, Kubernetes emptyDir with medium: Memory made 0700 by an init container, systemd RuntimeDirectory="

// recipesFor is recipes for the directory dir, quoted for the shell: the
// operator pastes the command.
func recipesFor(dir string) string {
	return strings.ReplaceAll(recipes, "DIR", shellquote.Quote(dir))
}

// Dir is a secrets directory that the exec stage has checked and taken for
// the app (see [Open]), then writes into (see [Dir.Write]).
type Dir struct {
	path     string
	fd       int
	uid, gid int      // the app's
	written  []string // names Write created, for Remove
}

// Open checks the directory at path and takes it for the app, which runs as
// uid:gid. It runs in the exec stage as ov-init's own user, before the
// privileges are dropped: a directory owned by ov-init's uid is given to
// the app's user here (fchown, which takes CAP_CHOWN when they differ).
// When the app runs as another user than ov-init, ov-init must keep
// CAP_DAC_OVERRIDE, so that PID 1 can remove the files from the app's 0500
// directory when the app exits; Open refuses the directory otherwise.
func Open(path string, uid, gid int) (*Dir, error) {
	fd, err := openDir(path)
	if err != nil {
		return nil, err
	}
	d := &Dir{path: path, fd: fd, uid: uid, gid: gid}
	if err := d.check(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// check is Open's rules, in the order an operator fixes them.
func (d *Dir) check() error {
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(d.fd, &sfs); err != nil {
		return fmt.Errorf("secrets dir %q: statfs: %v", d.path, err)
	}
	if !inMemory(sfs.Type) {
		return fmt.Errorf("secrets dir %q is on %s, not on an in-memory file system (tmpfs or ramfs), and ov-init writes no secret to disk; fix: mount a tmpfs there (%s), or use --secrets-as memfd",
			d.path, fsName(sfs.Type), recipesFor(d.path))
	}
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return fmt.Errorf("secrets dir %q: fstat: %v", d.path, err)
	}
	euid := os.Geteuid()
	if int(st.Uid) != euid && int(st.Uid) != d.uid {
		owners := fmt.Sprintf("ov-init and the app (uid %d)", euid)
		if euid != d.uid {
			owners = fmt.Sprintf("ov-init (uid %d) or the app (uid %d)", euid, d.uid)
		}
		return fmt.Errorf("secrets dir %q is owned by uid %d, not by %s; fix: give ov-init a directory of its own, owned by %s (a fresh tmpfs: %s)",
			d.path, st.Uid, owners, owners, recipesFor(d.path))
	}
	// Sticky and writable by others is a directory shared by every user.
	// Sticky alone is not: the app can set the bit on its own directory
	// (which, without CAP_FOWNER, keeps PID 1 from removing the files), and
	// Write clears it.
	if st.Mode&unix.S_ISVTX != 0 && st.Mode&0o022 != 0 {
		return fmt.Errorf("secrets dir %q has the sticky bit (mode %04o) and is writable by group or others: it is a directory shared by every user, like /tmp or /dev/shm, and ov-init would take it over; fix: mount one for ov-init alone, e.g. docker run --tmpfs %s:mode=0700",
			d.path, st.Mode&0o7777, d.path)
	}
	if euid != d.uid {
		// PID 1 runs as ov-init's uid and must remove the files from
		// the app's directory, mode 0500, which it does not own.
		if !hasCap(unix.CAP_DAC_OVERRIDE) {
			return fmt.Errorf("secrets dir %q: ov-init (uid %d) lacks CAP_DAC_OVERRIDE, which it needs to remove the secret files from the directory of the app's user (uid %d) when the app exits; fix: keep CAP_DAC_OVERRIDE (Docker grants it; in Kubernetes add it to securityContext.capabilities.add), or use --secrets-as memfd",
				d.path, euid, d.uid)
		}
	}
	if _, err := d.leftovers(); err != nil {
		return err
	}
	if int(st.Uid) != d.uid {
		if err := unix.Fchown(d.fd, d.uid, d.gid); err != nil {
			return fmt.Errorf("secrets dir %q: giving it to the app's user (uid %d): %v; fix: keep CAP_CHOWN, or mount the tmpfs owned by the app's user (docker run --tmpfs %s:mode=0700,uid=%d,gid=%d)",
				d.path, d.uid, err, d.path, d.uid, d.gid)
		}
	}
	return nil
}

// Write writes each secret into the directory as the file NAME, mode 0400,
// and leaves the directory mode 0500 (without the sticky bit, which the app
// may have set in an earlier run). It runs as the app's user (after the
// stage has dropped its privileges), which owns the directory since Open:
// the files are the app's without a chown. Files left by an earlier
// ov-init are replaced; anything else that appeared since Open stops it.
// On failure nothing Write created is left behind.
func (d *Dir) Write(secrets []vault.Secret) error {
	if err := unix.Fchmod(d.fd, writeMode); err != nil {
		return fmt.Errorf("secrets dir %q: chmod %04o: %v", d.path, writeMode, err)
	}
	stale, err := d.leftovers()
	if err != nil {
		return err
	}
	for _, name := range stale {
		if err := unix.Unlinkat(d.fd, name, 0); err != nil && err != unix.ENOENT {
			return fmt.Errorf("secrets dir %q: removing %q, left by an earlier ov-init: %v", d.path, name, err)
		}
	}
	for i := range secrets {
		if err := d.writeFile(secrets[i].Name, secrets[i].Value); err != nil {
			d.Remove()
			return err
		}
	}
	if err := unix.Fchmod(d.fd, DirMode); err != nil {
		d.Remove()
		return fmt.Errorf("secrets dir %q: chmod %04o: %v", d.path, DirMode, err)
	}
	return nil
}

// writeFile creates the file name, which must not exist, and writes value.
func (d *Dir) writeFile(name string, value []byte) error {
	fd, err := unix.Openat(d.fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, FileMode)
	if err == unix.EEXIST {
		return fmt.Errorf("secrets dir %q: %q appeared while ov-init was writing: another process writes into the directory; fix: mount it for ov-init alone (%s)",
			d.path, name, recipesFor(d.path))
	}
	if err != nil {
		return fmt.Errorf("secrets dir %q: creating %q: %v", d.path, name, err)
	}
	d.written = append(d.written, name)
	defer unix.Close(fd)
	// The mode at creation passed through the umask.
	if err := unix.Fchmod(fd, FileMode); err != nil {
		return fmt.Errorf("secrets dir %q: chmod %04o %q: %v", d.path, FileMode, name, err)
	}
	if err := writeAll(fd, value); err != nil {
		return fmt.Errorf("writing secret %s to %q: %v; fix: make the tmpfs at %q larger (size=), or use --secrets-as memfd",
			name, filepath.Join(d.path, name), err, d.path)
	}
	return nil
}

// Remove removes the files Write created: the stage's own clean-up when it
// fails after writing.
func (d *Dir) Remove() {
	for _, name := range d.written {
		_ = unix.Unlinkat(d.fd, name, 0)
	}
	d.written = nil
}

// Close closes the directory's descriptor.
func (d *Dir) Close() {
	if d != nil && d.fd >= 0 {
		unix.Close(d.fd)
		d.fd = -1
	}
}

// Path is the NAME_FILE value of secret name in dir.
func Path(dir, name string) string {
	return filepath.Join(dir, name)
}

// leftovers lists the directory and returns the files an earlier ov-init
// left for this app (a PID 1 killed with SIGKILL cannot remove them; a
// Kubernetes emptyDir outlives the container): regular files named like a
// secret, owned by the app's uid, mode 0400. Anything else is an error.
func (d *Dir) leftovers() ([]string, error) {
	names, err := list(d.fd)
	if err != nil {
		return nil, fmt.Errorf("secrets dir %q: listing it: %v", d.path, err)
	}
	var stale []string
	for _, name := range names {
		var st unix.Stat_t
		err := unix.Fstatat(d.fd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT {
			continue
		}
		if err != nil || !ours(name, &st, d.uid) {
			return nil, fmt.Errorf("secrets dir %q is not empty: it holds %q (%d entries), which ov-init did not leave there; fix: give ov-init an empty directory of its own (%s)",
				d.path, name, len(names), recipesFor(d.path))
		}
		stale = append(stale, name)
	}
	return stale, nil
}

// ours reports whether a directory entry is a file as ov-init leaves it.
func ours(name string, st *unix.Stat_t, uid int) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o7777 == FileMode &&
		int(st.Uid) == uid && vault.ValidSecretName(name) == nil
}

// Clear removes every regular file named like a secret, mode 0400 and
// owned by the directory's owner, from the directory at path: PID 1's
// clean-up when the app has exited, by name, never reading
// a file. It reports how many it removed. It walks the path as Open does,
// and refuses a directory with a directory above it that another user
// could change (see openDir). PID 1 runs as ov-init's user: as root it
// needs CAP_DAC_OVERRIDE for the app's 0500 directory (Open made sure it
// has it); as the directory's owner it makes it writable first, and it
// changes the mode of no other directory.
func Clear(path string) (int, error) {
	fd, err := openDir(path)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	var dst unix.Stat_t
	if err := unix.Fstat(fd, &dst); err != nil {
		return 0, fmt.Errorf("secrets dir %q: fstat: %v", path, err)
	}
	if int(dst.Uid) == os.Geteuid() && dst.Mode&0o200 == 0 {
		_ = unix.Fchmod(fd, writeMode)
	}
	names, err := list(fd)
	if err != nil {
		return 0, fmt.Errorf("secrets dir %q: listing it: %v", path, err)
	}
	n := 0
	var first error
	for _, name := range names {
		if vault.ValidSecretName(name) != nil {
			continue
		}
		var st unix.Stat_t
		// Only what the stage writes: a 0400 regular file of the
		// directory's owner (the app's user, as the stage left both). If
		// the app swapped another directory in, PID 1 must not remove
		// what the app itself could not.
		if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG ||
			st.Mode&0o7777 != FileMode || st.Uid != dst.Uid {
			continue
		}
		if err := unix.Unlinkat(fd, name, 0); err != nil && err != unix.ENOENT {
			if first == nil {
				first = fmt.Errorf("removing the secret files from %q: %s: %v", path, name, err)
				if err == unix.EPERM && dst.Mode&unix.S_ISVTX != 0 {
					first = fmt.Errorf("removing the secret files from %q: %s: %v: the directory has the sticky bit (mode %04o), which the app can set on its own directory, and PID 1 lacks CAP_FOWNER; the next start of ov-init replaces them; fix: keep CAP_FOWNER, or use --secrets-as memfd",
						path, name, err, dst.Mode&0o7777)
				}
			}
			continue
		}
		n++
	}
	return n, first
}

// openDir opens the directory at the absolute path one component at a
// time, each relative to the one before and with O_NOFOLLOW, so that no
// symbolic link is followed anywhere on the way (O_NOFOLLOW alone checks
// the last component only). Each directory above the last must pass
// checkAbove: the app opens NAME_FILE by path, and PID 1 clears the
// directory by path, after ov-init has checked it.
func openDir(path string) (int, error) {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return -1, fmt.Errorf("secrets dir %q: want a clean absolute path", path)
	}
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("secrets dir %q: opening /: %v", path, err)
	}
	walked := "/"
	for _, name := range strings.Split(path, "/") {
		if name == "" {
			continue
		}
		if err := checkAbove(fd, walked, path); err != nil {
			unix.Close(fd)
			return -1, err
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		here := filepath.Join(walked, name)
		if err != nil {
			err = openError(fd, name, path, here, err)
			unix.Close(fd)
			return -1, err
		}
		unix.Close(fd)
		fd, walked = next, here
	}
	return fd, nil
}

// checkAbove checks the directory fd, at here, above the secrets dir path:
// it must be owned by root or by ov-init's uid, and writable by group or
// others only if it is sticky (OpenSSH's StrictModes, with /tmp's
// exception). Another owner, or anyone who can write to a directory that
// is not sticky, could rename the next component away and put a directory
// of their own in its place: the app would then read their values through
// NAME_FILE, and PID 1 would clear their directory. A sticky directory
// lets its users rename only what they own, and the component under it
// must then pass these rules (or Open's owner rule) too.
func checkAbove(fd int, here, path string) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("secrets dir %q: fstat %q: %v", path, here, err)
	}
	euid := os.Geteuid()
	if st.Uid != 0 && int(st.Uid) != euid {
		owners := "root"
		if euid != 0 {
			owners = fmt.Sprintf("root or ov-init (uid %d)", euid)
		}
		return fmt.Errorf("secrets dir %q: %q, a directory above it, is owned by uid %d, not by %s, and that user could put a directory of their own in the secrets dir's place; fix: put the secrets dir under directories that only %s can change, e.g. a tmpfs at /run/ov (%s)",
			path, here, st.Uid, owners, owners, recipesFor("/run/ov"))
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return fmt.Errorf("secrets dir %q: %q, a directory above it, is writable by group or others and not sticky (mode %04o), and any of them could put a directory of their own in the secrets dir's place; fix: chmod go-w %q, or put the secrets dir elsewhere, e.g. a tmpfs at /run/ov (%s)",
			path, here, st.Mode&0o7777, here, recipesFor("/run/ov"))
	}
	return nil
}

// openError says why component name (at here) of the secrets dir path
// could not be opened, looking at it without following it.
func openError(parent int, name, path, here string, err error) error {
	var st unix.Stat_t
	if unix.Fstatat(parent, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			return fmt.Errorf("secrets dir %q: %q is a symbolic link, and ov-init follows none on the way to the secrets; fix: give --secrets-dir the real path", path, here)
		case unix.S_IFDIR:
		default:
			return fmt.Errorf("secrets dir %q: %q is not a directory; fix: mount a tmpfs at %q (%s)", path, here, path, recipesFor(path))
		}
	}
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("secrets dir %q does not exist; fix: mount an in-memory file system there (%s), or use --secrets-as memfd", path, recipesFor(path))
	}
	return fmt.Errorf("secrets dir %q: opening %q: %v", path, here, err)
}

// list returns the names in the directory fd, through a descriptor of its
// own (a dup would share fd's offset).
func list(fd int) ([]string, error) {
	own, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(own), "secrets dir")
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// writeAll writes b to fd in full.
func writeAll(fd int, b []byte) error {
	for len(b) > 0 {
		n, err := unix.Write(fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return unix.EIO
		}
		b = b[n:]
	}
	return nil
}

func inMemory(magic int64) bool {
	return magic == tmpfsMagic || magic == ramfsMagic
}

// fsName names a file system type for the refusal of a directory on disk.
func fsName(magic int64) string {
	names := map[int64]string{
		0xef53:     "ext2/ext3/ext4",
		0x794c7630: "overlayfs",
		0x58465342: "xfs",
		0x9123683e: "btrfs",
		0x2fc12fc1: "zfs",
		0x6969:     "nfs",
		0xff534d42: "cifs",
		0x65735546: "fuse",
		0x01021997: "9p",
		0x4d44:     "vfat",
		0xf2f52010: "f2fs",
		0x5346544e: "ntfs",
		0x6165676c: "pstore",
		0x62656572: "sysfs",
		0x9fa0:     "proc",
	}
	if n, ok := names[magic]; ok {
		return n
	}
	return fmt.Sprintf("a file system of type %#x", magic)
}

// hasCap reports whether the calling thread has capability c in its
// effective set.
func hasCap(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}
