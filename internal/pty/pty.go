// Package pty opens pseudo-terminal pairs, for the tests that run ov-init
// and ov on a terminal as `docker run -it` and a user at a prompt do.
//
// Invariant: neither end becomes the caller's controlling terminal
// (O_NOCTTY); a child takes the slave as its own with Setsid and Setctty.
package pty

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Ptmx is the multiplexer that hands out a new pair at each open.
const Ptmx = "/dev/ptmx"

// Open returns a new pseudo-terminal's master and slave ends, unlocked and
// open for reading and writing. The caller closes both.
func Open() (master, slave *os.File, err error) {
	master, err = os.OpenFile(Ptmx, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("pty: opening a pseudo-terminal: %w", err)
	}
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty: unlocking the slave of %q: %w", Ptmx, err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty: numbering the slave of %q: %w", Ptmx, err)
	}
	name := "/dev/pts/" + strconv.FormatUint(uint64(n), 10)
	slave, err = os.OpenFile(name, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("pty: opening the slave: %w", err)
	}
	return master, slave, nil
}
