// Package keyload opens, verifies and reads ov-init's 32-byte machine key into
// locked memory.
//
// Invariant: key bytes never leave locked memory. They are read straight from
// the file descriptor into an anonymous, mlock'ed, MADV_DONTDUMP page, and
// [Key.Bytes] is a view into that page, not a copy; [Key.Wipe] zeroes the page
// before unmapping it. Callers that derive further keys keep them in memory
// from [Locked] for the same reason.
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
