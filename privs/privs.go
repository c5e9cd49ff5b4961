//go:build linux

// Package privs takes away, for good, what a program started after a
// change of user could otherwise gain back: it sets no_new_privs and empties
// the capability bounding set of the calling thread.
//
// Both are properties of one thread (a task) that a child inherits across
// fork and execve, and neither can be undone. Callers lock the goroutine to
// its OS thread first and either exec from that thread or let it die with
// the goroutine; a Go program must never hand such a thread back to the
// scheduler.
package privs

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// SetNoNewPrivs sets PR_SET_NO_NEW_PRIVS on the calling thread: from then on
// execve never grants privileges (setuid and setgid bits and file
// capabilities are ignored), for this thread and every process it starts.
func SetNoNewPrivs() error {
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w (ov-init needs Linux 3.5 or newer; or pass --allow-new-privs)", err)
	}
	return nil
}

// ErrBoundingSetKept means the bounding set could not be emptied because
// the caller lacks CAP_SETPCAP (a container started with cap_drop: ALL, for
// one). With no_new_privs set that loses nothing: no execve can raise a
// capability then.
var ErrBoundingSetKept = errors.New("capability bounding set kept: no CAP_SETPCAP to drop it (no_new_privs still stops setuid binaries)")

// DropBoundingSet removes every capability from the calling thread's
// bounding set, so no program it starts can ever hold one, whatever its
// file capabilities or setuid bit. It needs CAP_SETPCAP; without it the
// error is ErrBoundingSetKept.
func DropBoundingSet() error {
	for c := 0; ; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		switch err {
		case nil:
			continue
		case unix.EINVAL:
			if c == 0 {
				return fmt.Errorf("prctl(PR_CAPBSET_DROP): %w", err)
			}
			return nil // past the kernel's last capability
		case unix.EPERM:
			return ErrBoundingSetKept
		}
		return fmt.Errorf("prctl(PR_CAPBSET_DROP, %d): %w", c, err)
	}
}

// Restrict is what --user asks for on the calling thread: with dropBounding
// (an app that does not run as root) the bounding set emptied, then
// no_new_privs set. A bounding set that must stay (no CAP_SETPCAP) is no
// failure: kept is then ErrBoundingSetKept, for the caller to log.
func Restrict(dropBounding bool) (kept, err error) {
	if dropBounding {
		if err := DropBoundingSet(); errors.Is(err, ErrBoundingSetKept) {
			kept = err
		} else if err != nil {
			return nil, err
		}
	}
	return kept, SetNoNewPrivs()
}
