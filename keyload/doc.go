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
// The key file is trusted only if the descriptor that is read from is, by
// fstat, a regular file with permission bits exactly 0600, owned by the
// effective uid, and exactly [Size] bytes long; the path is opened with
// O_NOFOLLOW, so a symbolic link is refused, and O_NONBLOCK, so a FIFO cannot
// hang the container. Every refusal is an [*Error] whose text is one line:
// what is wrong, the quoted path, and the fix.
//
// Load marks the process non-dumpable (PR_SET_DUMPABLE 0) before it reads.
// It never changes RLIMIT_CORE: the app inherits that.
package keyload
