// Package keyload opens, verifies and reads ov-init's 32-byte machine key into
// locked memory.
//
// Invariant: this package never copies key bytes out of locked memory. They
// are read straight from the file descriptor into an anonymous, mlock'ed,
// MADV_DONTDUMP page, and [Key.Bytes] is a view into that page, not a copy;
// [Key.Wipe] zeroes the page before unmapping it. What callers derive from
// the key (the vault's HKDF outputs, the AEAD's key schedule) lives on the Go
// heap and is zeroed on a best-effort basis; ov-init's guarantee for it is
// that only the short-lived exec stage ever holds it, and execve discards it.
//
// The key file is trusted only if it is, by fstat, a regular file with
// permission bits exactly 0600, owned by the effective uid, and exactly
// [Size] bytes long. Load looks the path up with O_PATH|O_NOFOLLOW, which
// reads nothing and opens no device, and checks that descriptor first: a
// symbolic link, device, FIFO or socket is refused before anything opens it
// for reading, and a key of another uid is refused with the owner's uid, not
// a bare "permission denied". Only then does it open the same inode for
// reading, through /proc/self/fd (or, without /proc, the path again with
// O_NOFOLLOW), with O_NONBLOCK, and check the read descriptor again: same
// device and inode, same rules. No check ever stats the path. Every refusal
// is an [*Error] whose text is one line: what is wrong, the quoted path, and
// the fix.
//
// Load marks the process non-dumpable (PR_SET_DUMPABLE 0) before it reads.
// It never changes RLIMIT_CORE: the app inherits that.
package keyload
