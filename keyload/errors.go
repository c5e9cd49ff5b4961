//go:build linux

package keyload

import (
	"fmt"
	"strconv"

	"github.com/ov-init/ov-init/internal/shellquote"
)

// Kind says which check a machine key failed. A Kind is also an error, so
// errors.Is(err, keyload.KindMode) picks out one kind of refusal.
type Kind uint8

// The kinds of refusal, in the order Load checks them.
const (
	KindOpen       Kind = iota + 1 // open(2) failed for another reason: EACCES (a directory in the way), ENOTDIR, …
	KindNotExist                   // nothing at the path
	KindSymlink                    // the path is a symbolic link (O_NOFOLLOW: never followed; the text says ELOOP)
	KindNotRegular                 // a directory, FIFO, device or socket
	KindMode                       // permission bits are not exactly 0600
	KindOwner                      // not owned by the effective uid
	KindSize                       // not exactly Size bytes, or changed while being read
	KindRead                       // fstat(2) or read(2) failed, or the file was replaced while being opened
	KindMemory                     // locked memory could not be set up: prctl, mmap, mlock, madvise
)

var kindNames = [...]string{
	KindOpen:       "cannot be opened",
	KindNotExist:   "does not exist",
	KindSymlink:    "is a symbolic link",
	KindNotRegular: "is not a regular file",
	KindMode:       "has wrong permissions",
	KindOwner:      "has wrong owner",
	KindSize:       "has wrong size",
	KindRead:       "cannot be read",
	KindMemory:     "cannot be held in locked memory",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Error makes a Kind usable as an errors.Is target; it is not a full message.
func (k Kind) Error() string { return "machine key " + k.String() }

// Error is every error Load returns (and locked's when it cannot lock
// memory). Its text is one line that starts with "machine key" or
// "opening machine key:", quotes the path and ends with the fix. It never
// holds key bytes.
type Error struct {
	Kind Kind
	Path string // as given to Load; "" for locked
	Err  error  // the underlying errno, if any

	op     string // failing call, for KindRead and KindMemory
	what   string // file type, for KindNotRegular
	mode   uint32 // permission bits (mode & 07777), for KindMode
	uid    int    // owner of the file, for KindOwner
	euid   int    // effective uid, for KindOwner and KindOpen
	search bool   // a directory on the way is not searchable, for KindOpen
	dir    string // that directory, when known, for KindOpen with search
	size   int64  // bytes the file has, for KindSize
	change string // "", "grew" or "shrank" for KindSize; "replaced" for KindRead
	limit  string // RLIMIT_MEMLOCK soft limit, for KindMemory
}

// Unwrap returns the underlying errno, so errors.Is(err, fs.ErrNotExist)
// and errors.Is(err, unix.ELOOP) work.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is e's Kind.
func (e *Error) Is(target error) bool {
	k, ok := target.(Kind)
	return ok && k == e.Kind
}

// derive is the command that writes a fresh machine key to path.
func derive(path string) string {
	return "`ov auth derive-machine-key --out " + shellquote.Quote(path) + " --app APP --force`"
}

func (e *Error) Error() string {
	q, p := strconv.Quote(e.Path), shellquote.Quote(e.Path)
	switch e.Kind {
	case KindNotExist:
		return fmt.Sprintf("opening machine key: %s (%s); fix: mount the key at %s or point --machine-key / OV_MACHINE_KEY at it",
			errText(e.Err, "no such file or directory"), q, p)
	case KindSymlink:
		return fmt.Sprintf("opening machine key: %s (%s); fix: mount the key file itself, not a symlink (Kubernetes: mount it with subPath and defaultMode 0600)",
			errText(e.Err, "too many levels of symbolic links"), q)
	case KindOpen:
		if e.search && e.dir != "" {
			return fmt.Sprintf("opening machine key: permission denied (%s): directory %s is not searchable by uid %d; fix: chmod a+x %s, or run ov-init as root with --user so the app runs unprivileged",
				q, strconv.Quote(e.dir), e.euid, shellquote.Quote(e.dir))
		}
		if e.search {
			return fmt.Sprintf("opening machine key: permission denied (%s): a directory on the way to it is not searchable by uid %d; fix: find it with namei -l %s and chmod a+x it, or run ov-init as root with --user so the app runs unprivileged",
				q, e.euid, p)
		}
		if errText(e.Err, "") == "permission denied" {
			// Only the open for reading fails so, after fstat found the
			// file right (0600, owned by euid) and its directories
			// searchable: its mode is not what refuses it.
			return fmt.Sprintf("opening machine key: permission denied (%s), though it is mode 0600, owned by uid %d, and its directories are searchable; fix: find what else refuses it: a security module (AppArmor, SELinux: see the kernel's audit log), or whatever changed %s while ov-init opened it",
				q, e.euid, p)
		}
		return fmt.Sprintf("opening machine key: %s (%s); fix: mount the 32-byte key file at %s, readable by uid %d",
			errText(e.Err, "failed"), q, p, e.euid)
	case KindNotRegular:
		fix := "mount the 32-byte key file itself at " + p
		if e.what == "directory" {
			fix = "mount the key file itself at " + p + ", not a directory (Docker creates a directory when the bind-mount source does not exist on the host)"
		}
		return fmt.Sprintf("machine key is a %s, not a regular file (%s); fix: %s", e.what, q, fix)
	case KindMode:
		return fmt.Sprintf("machine key has permissions %04o — must be 0600 (%s); fix: chmod 600 %s (Kubernetes: defaultMode 0600 and no fsGroup)", e.mode, q, p)
	case KindOwner:
		// Another non-root uid's key: a Secret volume it is not (those are
		// root's), and root would refuse it too until it is root's.
		fix := fmt.Sprintf("chown %d %s, or chown 0 %s and run ov-init as root with --user so the app runs unprivileged", e.euid, p, p)
		if e.euid == 0 {
			fix = fmt.Sprintf("chown 0 %s", p) // already root: --user is about the app, not the key
		} else if e.uid == 0 {
			// A root-owned key read by another uid is the Kubernetes
			// case (a Secret volume is always root's, and no chown can
			// change that): lead with what works there.
			fix = fmt.Sprintf("run ov-init as root with --user so the app runs unprivileged, or chown %d %s (Kubernetes: a Secret volume is always root's: runAsUser 0, mount the key with subPath, pass --user)", e.euid, p)
		}
		return fmt.Sprintf("machine key is owned by uid %d but current uid is %d (%s); fix: %s", e.uid, e.euid, q, fix)
	case KindSize:
		switch e.change {
		case "grew":
			return fmt.Sprintf("machine key must be exactly %d bytes (%s grew while being read); fix: stop whatever writes to %s, then derive it again with %s",
				Size, q, p, derive(e.Path))
		case "shrank":
			return fmt.Sprintf("machine key must be exactly %d bytes (%s shrank to %s while being read); fix: stop whatever writes to %s, then derive it again with %s",
				Size, q, plural(e.size, "byte"), p, derive(e.Path))
		}
		return fmt.Sprintf("machine key must be exactly %d bytes (%s has %s); fix: derive it again with %s",
			Size, q, plural(e.size, "byte"), derive(e.Path))
	case KindRead:
		if e.change == "replaced" {
			return fmt.Sprintf("machine key could not be read: %s was replaced while being opened; fix: stop whatever replaces %s, then start ov-init again",
				q, p)
		}
		return fmt.Sprintf("machine key could not be read: %s: %s (%s); fix: check %s and the filesystem it is on",
			e.op, errText(e.Err, "failed"), q, p)
	case KindMemory:
		what, where := "machine key cannot be held in locked memory", " ("+q+")"
		if e.Path == "" {
			what, where = "key memory cannot be locked", ""
		}
		return fmt.Sprintf("%s: %s: %s%s; fix: %s", what, e.op, errText(e.Err, "failed"), where, e.memoryFix())
	}
	return fmt.Sprintf("machine key %s: %s (%s)", e.Kind, errText(e.Err, "failed"), q)
}

func (e *Error) memoryFix() string {
	switch e.op {
	case "mlock":
		return "raise RLIMIT_MEMLOCK (soft limit now " + e.limit + ") with ulimit -l, e.g. docker run --ulimit memlock=65536, or grant CAP_IPC_LOCK"
	case "madvise(MADV_DONTDUMP)":
		return "ov-init needs Linux 3.4 or newer"
	case "prctl(PR_SET_DUMPABLE)":
		return "allow prctl in the container's seccomp profile"
	}
	return "check the container's memory limit"
}

func errText(err error, fallback string) string {
	if err == nil {
		return fallback
	}
	return err.Error()
}

func plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}
