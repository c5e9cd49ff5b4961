//go:build linux

package keyload

import (
	"golang.org/x/sys/unix"
)

// Size is the length of a machine key in bytes. The key file is exactly this
// many raw bytes, no header.
const Size = 32

// permBits are the permission bits compared with 0600: setuid, setgid and
// sticky included, so mode 4600 is refused too.
const permBits = 0o7777

// openFlags open the key without following a final symlink (ELOOP), without
// blocking on a FIFO, and without leaking the descriptor across exec.
const openFlags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// Key is a machine key held in one locked, non-dumpable page.
// It must be released with Wipe. A Key is not safe for concurrent use.
type Key struct {
	page []byte // the whole locked page; nil after Wipe
}

// Load marks the process non-dumpable, opens the machine key at path,
// verifies it on the opened descriptor, and reads it into locked memory.
// Every error is an [*Error].
func Load(path string) (*Key, error) {
	if err := unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0); err != nil {
		return nil, &Error{Kind: KindMemory, Path: path, Err: err, op: "prctl(PR_SET_DUMPABLE)"}
	}
	fd, err := openKey(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if err := checkKey(fd, path); err != nil {
		return nil, err
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

// openKey opens path with openFlags. When the open fails it says why in
// the user's terms: a socket, for one, fails here with ENXIO.
func openKey(path string) (int, error) {
	for {
		fd, err := unix.Open(path, openFlags, 0)
		switch err {
		case nil:
			return fd, nil
		case unix.EINTR:
			continue
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
}

// fileTypeAt names the type of the non-regular file at path, or returns "".
// It explains a failed open only: O_PATH neither opens a device nor reads,
// and no check is based on it.
func fileTypeAt(path string) string {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
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

// checkKey verifies the opened key by fstat on its descriptor, never by the
// path: regular file, mode exactly 0600, owned by the effective uid, Size
// bytes.
func checkKey(fd int, path string) *Error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &Error{Kind: KindRead, Path: path, Err: err, op: "fstat"}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &Error{Kind: KindNotRegular, Path: path, what: fileType(st.Mode)}
	}
	if perm := st.Mode & permBits; perm != 0o600 {
		return &Error{Kind: KindMode, Path: path, mode: perm}
	}
	if euid := unix.Geteuid(); int(st.Uid) != euid {
		return &Error{Kind: KindOwner, Path: path, uid: int(st.Uid), euid: euid}
	}
	if st.Size != Size {
		return &Error{Kind: KindSize, Path: path, size: st.Size}
	}
	return nil
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
