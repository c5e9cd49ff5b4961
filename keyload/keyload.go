//go:build linux

package keyload

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Size is the length of a machine key in bytes. The key file is exactly this
// many raw bytes, no header.
const Size = 32

// permBits are the permission bits compared with 0600: setuid, setgid and
// sticky included, so mode 4600 is refused too.
const permBits = 0o7777

// pathFlags look the key up without opening it for reading: O_PATH neither
// reads nor opens a device or FIFO, so the file type, mode, owner and size
// are checked before anything is opened that could block, have a side
// effect, or hand out bytes. With O_PATH, O_NOFOLLOW yields the link itself,
// and checkKey refuses it.
const pathFlags = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC

// reopenFlags open, through /proc/self/fd/N, the inode that the O_PATH
// descriptor N refers to. No O_NOFOLLOW: /proc/self/fd/N is the kernel's
// link to our own descriptor, not a link in the key's file system.
const reopenFlags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK

// openFlags open the key for reading by its path when /proc is not mounted:
// without following a final symlink (ELOOP), without blocking on a FIFO, and
// without leaking the descriptor across exec.
const openFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// fdDir is where a process finds its own descriptors.
const fdDir = "/proc/self/fd/"

// openFile is open(2), retried on EINTR. Every open Load makes goes through
// it, so a test can see which path is opened with which flags, and in
// which order.
var openFile = func(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// Key is a machine key held in one locked, non-dumpable page.
// It must be released with Wipe. A Key is not safe for concurrent use.
type Key struct {
	page []byte // the whole locked page; nil after Wipe
}

// Load marks the process non-dumpable, looks the machine key up at path
// with O_PATH, verifies it by fstat on that descriptor, opens the same inode
// for reading, verifies it again on the read descriptor, and reads it into
// locked memory. A device, FIFO or socket is refused before anything opens
// it for reading. Every error is an [*Error].
func Load(path string) (*Key, error) {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, &Error{Kind: KindMemory, Path: path, Err: err, op: "prctl(PR_SET_DUMPABLE)"}
	}
	pathFD, err := lookupKey(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(pathFD)
	looked, err := checkKey(pathFD, path)
	if err != nil {
		return nil, err
	}
	fd, err := reopenKey(pathFD, path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	opened, err := checkKey(fd, path)
	if err != nil {
		return nil, err
	}
	if opened.Dev != looked.Dev || opened.Ino != looked.Ino {
		return nil, &Error{Kind: KindRead, Path: path, op: "open", change: "replaced"}
	}
	page, lockErr := lockedPage()
	if lockErr != nil {
		lockErr.Path = path
		return nil, lockErr
	}
	if err := readKey(fd, page, path); err != nil {
		release(page)
		return nil, err
	}
	return &Key{page: page}, nil
}

// Bytes returns the key: Size bytes in locked memory, not a copy. Do not
// copy them anywhere else. The slice is invalid after Wipe, and Bytes
// returns nil then.
func (k *Key) Bytes() []byte {
	if k == nil || k.page == nil {
		return nil
	}
	return k.page[:Size:Size]
}

// Wipe zeroes the key, unlocks and unmaps its page. Calling it again does
// nothing.
func (k *Key) Wipe() {
	if k == nil || k.page == nil {
		return
	}
	release(k.page)
	k.page = nil
}

// lookupKey opens path with pathFlags: an O_PATH descriptor that can be
// fstat'ed but not read. When the lookup fails it says why in the user's
// terms.
func lookupKey(path string) (int, *Error) {
	fd, err := openFile(path, pathFlags)
	switch err {
	case nil:
		return fd, nil
	case unix.ENOENT:
		return -1, &Error{Kind: KindNotExist, Path: path, Err: err}
	case unix.ELOOP: // a loop of links among the directories
		return -1, &Error{Kind: KindSymlink, Path: path, Err: err}
	case unix.EACCES: // O_PATH needs no permission on the file: a directory is in the way
		return -1, &Error{Kind: KindOpen, Path: path, Err: err, euid: unix.Geteuid(), search: true, dir: unsearchableDir(path)}
	}
	return -1, &Error{Kind: KindOpen, Path: path, Err: err, euid: unix.Geteuid()}
}

// unsearchableDir returns the first directory on the way to path that the
// effective uid may not search, or "" when it finds none (the refusal came
// from elsewhere: a security module, a directory changed since).
func unsearchableDir(path string) string {
	dir, rest := ".", path
	if strings.HasPrefix(path, "/") {
		dir, rest = "/", strings.TrimLeft(path, "/")
	}
	for {
		if unix.Faccessat(unix.AT_FDCWD, dir, unix.X_OK, unix.AT_EACCESS) == unix.EACCES {
			return dir
		}
		name, more, ok := strings.Cut(rest, "/")
		if !ok { // name is the key itself
			return ""
		}
		switch {
		case name == "":
		case dir == ".":
			dir = name
		case dir == "/":
			dir = "/" + name
		default:
			dir += "/" + name
		}
		rest = more
	}
}

// reopenKey opens for reading the inode that the O_PATH descriptor pathFD
// refers to, through /proc/self/fd. Without /proc it opens path again with
// openFlags; the caller then confirms that it is the same inode.
func reopenKey(pathFD int, path string) (int, *Error) {
	if !isProc(fdDir) {
		// Not the kernel's /proc (none mounted, or something mounted in
		// its place): its fd/N could point anywhere, a device included.
		return openKey(path)
	}
	fd, err := openFile(fdDir+strconv.Itoa(pathFD), reopenFlags)
	switch err {
	case nil:
		return fd, nil
	case unix.ENOENT: // no /proc, or one of another PID namespace
		return openKey(path)
	}
	return -1, &Error{Kind: KindOpen, Path: path, Err: err, euid: unix.Geteuid()}
}

// isProc reports whether dir is on a proc file system. A variable so that a
// test can stand in for a /proc that is not one.
var isProc = func(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.PROC_SUPER_MAGIC
}

// openKey opens path with openFlags. When the open fails it says why in
// the user's terms: a socket, for one, fails here with ENXIO.
func openKey(path string) (int, *Error) {
	fd, err := openFile(path, openFlags)
	switch err {
	case nil:
		return fd, nil
	case unix.ENOENT:
		return -1, &Error{Kind: KindNotExist, Path: path, Err: err}
	case unix.ELOOP:
		return -1, &Error{Kind: KindSymlink, Path: path, Err: err}
	}
	if what := fileTypeAt(path); what != "" {
		return -1, &Error{Kind: KindNotRegular, Path: path, Err: err, what: what}
	}
	return -1, &Error{Kind: KindOpen, Path: path, Err: err, euid: unix.Geteuid()}
}

// fileTypeAt names the type of the non-regular file at path, or returns "".
// It explains a failed open only: O_PATH neither opens a device nor reads,
// and no check is based on it.
func fileTypeAt(path string) string {
	fd, err := openFile(path, pathFlags)
	if err != nil {
		return ""
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT == unix.S_IFREG {
		return ""
	}
	return fileType(st.Mode)
}

func fileType(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "regular file"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFLNK:
		return "symbolic link"
	}
	return "file of unknown type"
}

// checkKey verifies the key by fstat on its descriptor (the O_PATH one or
// the one opened for reading), never by the path: regular file, mode
// exactly 0600, owned by the effective uid, Size bytes. It returns the stat
// so that the caller can compare the two descriptors' inodes.
func checkKey(fd int, path string) (unix.Stat_t, *Error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return st, &Error{Kind: KindRead, Path: path, Err: err, op: "fstat"}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFLNK: // O_PATH|O_NOFOLLOW opened the link itself
		return st, &Error{Kind: KindSymlink, Path: path, Err: unix.ELOOP}
	default:
		return st, &Error{Kind: KindNotRegular, Path: path, what: fileType(st.Mode)}
	}
	if perm := st.Mode & permBits; perm != 0o600 {
		return st, &Error{Kind: KindMode, Path: path, mode: perm}
	}
	if euid := unix.Geteuid(); int(st.Uid) != euid {
		return st, &Error{Kind: KindOwner, Path: path, uid: int(st.Uid), euid: euid}
	}
	if st.Size != Size {
		return st, &Error{Kind: KindSize, Path: path, size: st.Size}
	}
	return st, nil
}

// readKey reads exactly Size bytes into page and then confirms end of file:
// the file may have changed since fstat. The probe byte also lands in the
// locked page, so not even a stray 33rd byte reaches the Go heap.
func readKey(fd int, page []byte, path string) *Error {
	n, err := readFull(fd, page[:Size])
	if err != nil {
		return &Error{Kind: KindRead, Path: path, Err: err, op: "read"}
	}
	if n < Size {
		return &Error{Kind: KindSize, Path: path, size: int64(n), change: "shrank"}
	}
	n, err = readFull(fd, page[Size:Size+1])
	page[Size] = 0
	if err != nil {
		return &Error{Kind: KindRead, Path: path, Err: err, op: "read"}
	}
	if n != 0 {
		return &Error{Kind: KindSize, Path: path, change: "grew"}
	}
	return nil
}

// readFull reads until buf is full or end of file.
func readFull(fd int, buf []byte) (int, error) {
	got := 0
	for got < len(buf) {
		n, err := unix.Read(fd, buf[got:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return got, err
		}
		if n == 0 {
			break
		}
		got += n
	}
	return got, nil
}
